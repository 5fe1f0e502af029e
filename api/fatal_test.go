package api_test

import (
	"errors"
	"io/fs"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/mirrord/mirrord/kv"
)

// A request that reads a corrupt part of the store fails, and the error
// goes to Config.Fatal (the daemon stops on it); a request that only
// finds a key missing does not.
func TestCorruptReadIsFatal(t *testing.T) {
	var mu sync.Mutex
	var fatal []error
	f := newFixture(t, fixtureOptions{events: 2000, fatal: func(err error) {
		mu.Lock()
		defer mu.Unlock()
		fatal = append(fatal, err)
	}})
	fatals := func() []error {
		mu.Lock()
		defer mu.Unlock()
		return append([]error(nil), fatal...)
	}
	if code, _ := httpDo(t, f.sock, "GET", "/v1/get?key=event:nope"); code != http.StatusNotFound || len(fatals()) != 0 {
		t.Fatalf("a missing key: %d, fatal %v", code, fatals())
	}
	// A compaction may replace a table between the damage and the read;
	// the damage is then made again.
	var code int
	var body string
	for range 10 {
		corruptTables(t, f.fs, storePath)
		if code, body = httpDo(t, f.sock, "GET", "/v1/dump"); len(fatals()) > 0 {
			break
		}
	}
	errs := fatals()
	if len(errs) == 0 || !errors.Is(errs[0], kv.ErrCorrupt) {
		t.Fatalf("a dump over a corrupt table: %d, fatal %v, body ends %q", code, errs, tail(body))
	}
	if !strings.Contains(tail(body), "store is corrupt") {
		t.Fatalf("the dump does not end with the corruption: %q", tail(body))
	}
}

// corruptTables overwrites the middle half of every sstable of the store
// in place, as a failing disk would, keeping their sizes; a table removed
// meanwhile is skipped.
func corruptTables(t *testing.T, fsys vfs.FS, dir string) {
	t.Helper()
	names, err := fsys.List(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, name := range names {
		if !strings.HasSuffix(name, ".sst") {
			continue
		}
		path := fsys.PathJoin(dir, name)
		st, err := fsys.Stat(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue // compacted away since the listing
		}
		if err != nil {
			t.Fatal(err)
		}
		f, err := fsys.OpenReadWrite(path, vfs.WriteCategoryUnspecified)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		junk := []byte(strings.Repeat("\xa5", int(st.Size()/2)))
		if _, err := f.WriteAt(junk, st.Size()/4); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n == 0 {
		t.Fatalf("no sstable in %s: %v", dir, names)
	}
}
