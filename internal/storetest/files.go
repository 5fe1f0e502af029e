package storetest

import (
	"crypto/sha256"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mirrord/mirrord/kv"
)

// Files maps every regular file under dir (by its path relative to dir) to
// a hash of its content, to show later that nothing was deleted or
// rewritten.
func Files(t testing.TB, dir string) map[string][32]byte {
	t.Helper()
	out := map[string][32]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out[rel] = sha256.Sum256(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// IsPebbleFile reports whether a file name is one of the files Pebble
// rewrites or replaces when it opens a store (its manifest, options,
// markers, lock and write-ahead logs), as opposed to its tables and to
// files that are not Pebble's.
func IsPebbleFile(name string) bool {
	for _, p := range []string{"MANIFEST-", "OPTIONS-", "marker.", "CURRENT", "LOCK"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return strings.HasSuffix(name, ".log")
}

// Spoil rewrites with fn every file of dir whose name ends in suffix; it
// fails the test when there is none.
func Spoil(t testing.TB, dir, suffix string, fn func([]byte) []byte) {
	t.Helper()
	names, _ := filepath.Glob(filepath.Join(dir, "*"+suffix))
	if len(names) == 0 {
		t.Fatalf("no *%s file in %s", suffix, dir)
	}
	for _, p := range names {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, fn(b), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// InvertMiddle inverts the middle half of b, in place: every checksummed
// block in it fails its check.
func InvertMiddle(b []byte) []byte {
	for i := len(b) / 4; i < 3*len(b)/4; i++ {
		b[i] ^= 0xFF
	}
	return b
}

// Put writes ops into the closed store at dir through kv, as another
// program using the same library would.
func Put(t testing.TB, dir string, ops ...kv.Op) {
	t.Helper()
	db, err := kv.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Batch(ops); err != nil {
		t.Fatal(err)
	}
}
