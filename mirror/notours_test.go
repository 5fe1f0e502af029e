package mirror

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mirrord/mirrord/eventlog"
	"github.com/mirrord/mirrord/internal/storetest"
	"github.com/mirrord/mirrord/internal/synth"
	"github.com/mirrord/mirrord/kv"
	"github.com/mirrord/mirrord/schema"
)

// Tests of a store that is not ours (issue 7, item 3): a directory that
// is not a store, a store a newer mirrord wrote, a store holding someone
// else's data, and a corrupt store. Each is refused with an error that
// names the directory and the way out, and nothing in it is deleted. The
// stores are real Pebble directories on disk, because corruption is a
// matter of bytes in files.

// wantFilesKept fails unless every file of before is still in dir with
// the same content (new files, which Pebble may add while it tries, are
// allowed: what matters is that nothing was wiped or rewritten). When
// Pebble did open the store (opened), it may have replayed its WAL and
// replaced its manifest, as every open does; the tables, which hold the
// data, and every file that is not Pebble's must still be there.
func wantFilesKept(t *testing.T, dir string, before map[string][32]byte, opened bool) {
	t.Helper()
	after := storetest.Files(t, dir)
	for name, sum := range before {
		if name == "LOCK" {
			continue // an empty lock file, re-created by every open
		}
		if opened && !strings.HasSuffix(name, ".sst") && storetest.IsPebbleFile(name) {
			continue
		}
		got, ok := after[name]
		if !ok {
			t.Errorf("%s was deleted", name)
		} else if got != sum {
			t.Errorf("%s was rewritten", name)
		}
	}
}

// mirroredStore writes a log of n events and mirrors it into a new store
// on disk, closed on return.
func mirroredStore(t *testing.T, n int) (store, log string) {
	t.Helper()
	dir := t.TempDir()
	store, log = filepath.Join(dir, "store"), filepath.Join(dir, "data.json")
	if err := os.WriteFile(log, eventlog.Format(synth.New(uint64(n)).Events(n)), 0o644); err != nil {
		t.Fatal(err)
	}
	db, err := kv.Open(store, &kv.Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	e, err := Open(db, &Options{EventLog: log, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := e.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	return store, log
}

// notOursCases are the stores of item 3, shared with the command's tests
// through the same shapes (cmd/mirrord/store_test.go).
var notOursCases = []struct {
	name string
	// prepare makes the store; it returns the store and its log.
	prepare func(t *testing.T) (store, log string)
	// kvErr: kv.Open fails with this cause; nil: it opens, and mirror.Open
	// fails with engineErr. Damage may be met by either (Pebble reads some
	// files at open, others at the first read): corrupt accepts both.
	kvErr, engineErr error
	corrupt          bool
	// wayOut is what the message must say to do.
	wayOut []string
	// resync: Options.Resync lets mirror.Open accept the store, and
	// Resync rebuilds it.
	resync bool
}{
	{
		name: "directory of unrelated files",
		prepare: func(t *testing.T) (string, string) {
			dir := t.TempDir()
			store := filepath.Join(dir, "photos")
			if err := os.MkdirAll(filepath.Join(store, "2024"), 0o755); err != nil {
				t.Fatal(err)
			}
			for _, f := range []string{"notes.txt", "2024/beach.jpg", "000001.log"} {
				if err := os.WriteFile(filepath.Join(store, f), []byte("not mirrord's: "+f), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			return store, filepath.Join(dir, "data.json")
		},
		kvErr:  kv.ErrNotStore,
		wayOut: []string{"choose an empty or new directory"},
	},
	{
		name: "store written by a newer mirrord",
		prepare: func(t *testing.T) (string, string) {
			store, log := mirroredStore(t, 20)
			storetest.Put(t, store, kv.PutOp(schema.SchemaKey, map[string]any{"version": SchemaVersion + 1, "future": true}),
				kv.PutOp(schema.CheckpointKey, map[string]any{"offset": "a shape this mirrord cannot decode"}))
			return store, log
		},
		engineErr: ErrNewerStore,
		wayOut:    []string{"upgrade mirrord", "--resync"},
		resync:    true,
	},
	{
		name: "store holding another program's data",
		prepare: func(t *testing.T) (string, string) {
			store := filepath.Join(t.TempDir(), "store")
			storetest.Put(t, store, kv.PutOp("user:1", map[string]string{"name": "ann"}), kv.PutOp("event:x", 1))
			log := filepath.Join(filepath.Dir(store), "data.json")
			if err := os.WriteFile(log, eventlog.Format(synth.New(5).Events(5)), 0o644); err != nil {
				t.Fatal(err)
			}
			return store, log
		},
		engineErr: ErrForeignStore,
		wayOut:    []string{"move", "aside", "--resync"},
		resync:    true,
	},
	{
		name: "garbled MANIFEST",
		prepare: func(t *testing.T) (string, string) {
			store, log := mirroredStore(t, 20)
			storetest.Spoil(t, store, "MANIFEST-000001", storetest.InvertMiddle)
			return store, log
		},
		corrupt: true,
	},
	{
		name: "garbled sstables",
		prepare: func(t *testing.T) (string, string) {
			store, log := mirroredStore(t, 200)
			storetest.Spoil(t, store, ".sst", storetest.InvertMiddle)
			return store, log
		},
		// Pebble may open the store without reading these tables; then the
		// first read meets the damage. Before the fix, Pebble's default
		// reaction (Logger.Fatalf) crashed the process from a background
		// goroutine.
		corrupt: true,
	},
	{
		name: "truncated sstable",
		prepare: func(t *testing.T) (string, string) {
			store, log := mirroredStore(t, 200)
			storetest.Spoil(t, store, ".sst", func(b []byte) []byte { return b[:len(b)/2] })
			return store, log
		},
		corrupt: true,
	},
}

func TestStoreThatIsNotOursIsRefusedAndKept(t *testing.T) {
	for _, tc := range notOursCases {
		t.Run(tc.name, func(t *testing.T) {
			store, log := tc.prepare(t)
			before := storetest.Files(t, store)
			var keysBefore []string
			if tc.engineErr != nil {
				keysBefore = storeKeys(t, store)
			}

			db, err := kv.Open(store, &kv.Options{Logger: testLogger(t)})
			opened := err == nil
			if err == nil {
				_, err = Open(db, &Options{EventLog: log, Logger: testLogger(t)})
				db.Close()
			}
			switch {
			case tc.corrupt:
				if !errors.Is(err, kv.ErrCorrupt) {
					t.Fatalf("opening a corrupt store: %v; want kv.ErrCorrupt", err)
				}
			case tc.kvErr != nil:
				if opened || !errors.Is(err, kv.ErrInitialization) || !errors.Is(err, tc.kvErr) {
					t.Fatalf("kv.Open: %v; want ErrInitialization and %v", err, tc.kvErr)
				}
			default:
				if !opened || !errors.Is(err, tc.engineErr) {
					t.Fatalf("mirror.Open: %v; want %v", err, tc.engineErr)
				}
			}
			msg := err.Error()
			for _, want := range append([]string{store}, tc.wayOut...) {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q does not say %q", msg, want)
				}
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("error is more than one line: %q", msg)
			}
			wantFilesKept(t, store, before, opened)
			if keysBefore != nil {
				if after := storeKeys(t, store); strings.Join(after, " ") != strings.Join(keysBefore, " ") {
					t.Errorf("the refused store's keys changed:\nbefore %q\nafter  %q", keysBefore, after)
				}
			}
			if tc.resync {
				resyncForeign(t, store, log, tc.engineErr)
			}
		})
	}
}

// storeKeys lists every key of a closed store.
func storeKeys(t *testing.T, store string) []string {
	t.Helper()
	db, err := kv.Open(store, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	keys, err := db.Keys("")
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// resyncForeign takes the way out the error names: with Options.Resync
// the engine opens the store, refuses a plain Sync still, and Resync
// rebuilds it into a store that equals the log.
func resyncForeign(t *testing.T, store, log string, refused error) {
	t.Helper()
	db, err := kv.Open(store, &kv.Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	e, err := Open(db, &Options{EventLog: log, Logger: testLogger(t), Resync: true})
	if err != nil {
		t.Fatalf("Open with Resync: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := e.Sync(ctx); !errors.Is(err, refused) {
		t.Fatalf("Sync (not Resync) on a refused store: %v, want %v", err, refused)
	}
	if err := e.Resync(ctx); err != nil {
		t.Fatalf("Resync: %v", err)
	}
	r, err := Verify(ctx, db, log, 0)
	if err != nil || !r.OK() {
		t.Fatalf("after the resync: %v %+v", err, r)
	}
	var rec schemaRecord
	if found, err := db.Get(schema.SchemaKey, &rec); !found || err != nil || rec.Version != SchemaVersion {
		t.Fatalf("schema after the resync: %+v %v %v", rec, found, err)
	}
	// And the store now opens normally.
	if _, err := Open(db, &Options{EventLog: log, Logger: testLogger(t)}); err != nil {
		t.Fatalf("Open after the resync: %v", err)
	}
}
