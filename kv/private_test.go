package kv

import (
	"context"
	"io/fs"
	"path/filepath"
	"syscall"
	"testing"
)

// TestStoreModesIgnoreUmask: whatever the umask, the store's directory
// and every file in it are the owner's only, including the tables a bulk
// ingest writes and the lock.
func TestStoreModesIgnoreUmask(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	path := filepath.Join(t.TempDir(), "a", "store")
	db, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	mustPut(t, db, "event:1", map[string]int{"n": 1})
	in := db.NewIngest("modifier:", []byte("modifier;"))
	f := in.File()
	if err := f.Add([]byte("modifier:1:a"), []byte(`{"value":1}`)); err != nil {
		t.Fatal(err)
	}
	if err := in.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	files := 0
	check := func() {
		err := filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			fi, err := d.Info()
			if err != nil {
				return err
			}
			want := fs.FileMode(0o600)
			if d.IsDir() {
				want = 0o700
			} else {
				files++
			}
			if fi.Mode().Perm() != want {
				t.Errorf("%s: mode %04o, want %04o (umask 000)", p, fi.Mode().Perm(), want)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	check()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	check()
	if files < 4 {
		t.Fatalf("only %d files checked: the store was not written", files)
	}
}
