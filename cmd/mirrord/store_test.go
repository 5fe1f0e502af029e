package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mirrord/mirrord/internal/storetest"
	"github.com/mirrord/mirrord/internal/synth"
	"github.com/mirrord/mirrord/kv"
	"github.com/mirrord/mirrord/mirror"
	"github.com/mirrord/mirrord/schema"
)

// A store that is not ours (issue 7, item 3), through the command line:
// every command that opens the store exits 1 with one line naming the
// store and the way out, nothing in the directory is deleted, and the way
// out named works. (mirror/notours_test.go holds the library's side.)

func TestStoreThatIsNotOurs(t *testing.T) {
	for _, tc := range []struct {
		name string
		// spoil turns the mirrored store into one that is not ours.
		spoil func(t *testing.T, store string)
		// wayOut: what the message says to do; resync: the way out is
		// --resync (else moving the directory aside).
		wayOut []string
		resync bool
	}{
		{"unrelated files", func(t *testing.T, store string) {
			if err := os.RemoveAll(store); err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(store, 0o755); err != nil {
				t.Fatal(err)
			}
			writeFile(t, filepath.Join(store, "thesis.tex"), "years of work")
		}, []string{"holds no store", "choose an empty or new directory"}, false},
		{"newer mirrord", func(t *testing.T, store string) {
			storetest.Put(t, store, kv.PutOp(schema.SchemaKey, map[string]int{"version": mirror.SchemaVersion + 1}))
		}, []string{"newer mirrord", "--resync"}, true},
		{"another program's data", func(t *testing.T, store string) {
			if err := os.RemoveAll(store); err != nil {
				t.Fatal(err)
			}
			storetest.Put(t, store, kv.PutOp("session:42", "x"))
		}, []string{"did not write", "aside", "--resync"}, true},
		{"garbled MANIFEST", func(t *testing.T, store string) {
			storetest.Spoil(t, store, "MANIFEST-000001", storetest.InvertMiddle)
		}, []string{"corrupt", "aside"}, false},
		{"garbled sstables", func(t *testing.T, store string) {
			storetest.Spoil(t, store, ".sst", storetest.InvertMiddle)
		}, []string{"corrupt", "aside"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			log, store := filepath.Join(dir, "data.json"), filepath.Join(dir, "store")
			writeLog(t, log, synth.New(41).Events(150))
			env := map[string]string{"MIRRORD_EVENTLOG": log, "MIRRORD_STORE": store}
			if r := mirrord(t, env, "sync", "--once"); r.code != 0 {
				t.Fatal(r.err)
			}
			tc.spoil(t, store)
			before := storetest.Files(t, store)
			var content string
			if tc.resync { // a store Pebble opens: its keys are the content
				content = storeContent(t, store)
			}

			// The commands that write refuse it; the read-only queries
			// refuse it too when they cannot read it at all (a newer or
			// foreign store they read as it is: reading harms nothing).
			cmds := [][]string{{"sync", "--once"}, {"run"}}
			if !tc.resync {
				cmds = append(cmds, []string{"verify"}, []string{"keys"})
			}
			for _, args := range cmds {
				r := mirrord(t, env, args...)
				if r.code != 1 {
					t.Fatalf("%v: exit %d (%v), want 1", args, r.code, r.err)
				}
				msg := r.msg()
				for _, want := range append([]string{store}, tc.wayOut...) {
					if !strings.Contains(msg, want) {
						t.Errorf("%v: message %q does not say %q", args, msg, want)
					}
				}
				if strings.Contains(msg, "\n") {
					t.Errorf("%v: message is more than one line: %q", args, msg)
				}
			}
			// Nothing deleted. A store Pebble opens keeps every key and
			// value (Pebble may flush its WAL and compact tables when it
			// opens a store, so its files are not compared); a corrupt one
			// keeps its tables, and anything not Pebble's stays, byte for
			// byte.
			if tc.resync {
				if got := storeContent(t, store); got != content {
					t.Errorf("the refused store's keys and values changed")
				}
			} else {
				after := storetest.Files(t, store)
				for name, sum := range before {
					if (strings.HasSuffix(name, ".sst") || !storetest.IsPebbleFile(name)) && after[name] != sum {
						t.Errorf("%s was deleted or rewritten", name)
					}
				}
			}

			// The way out works.
			if tc.resync {
				if r := mirrord(t, env, "sync", "--once", "--resync"); r.code != 0 {
					t.Fatalf("sync --once --resync: %v\n%s", r.err, r.stderr)
				}
			} else {
				aside := store + ".aside"
				if err := os.Rename(store, aside); err != nil {
					t.Fatal(err)
				}
				if r := mirrord(t, env, "sync", "--once"); r.code != 0 {
					t.Fatalf("sync --once after moving the store aside: %v", r.err)
				}
				if got := storetest.Files(t, aside); len(got) != len(before) {
					t.Errorf("the directory moved aside holds %d files, had %d", len(got), len(before))
				}
			}
			if r := mirrord(t, env, "verify"); r.code != 0 {
				t.Fatalf("verify after the way out: exit %d %v\n%s", r.code, r.err, r.stdout)
			}
		})
	}
}

// storeContent is every key and value of a store, read through kv.
func storeContent(t *testing.T, store string) string {
	t.Helper()
	db, err := kv.Open(store, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var b strings.Builder
	if err := db.ScanRaw(nil, func(k, v []byte) error {
		fmt.Fprintf(&b, "%q=%q\n", k, v)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if b.Len() == 0 {
		t.Fatal("the store is empty")
	}
	return b.String()
}

// The real process, on the store that used to crash it: Pebble's default
// reaction to a checksum mismatch is a fatal log call, which panicked in
// a background goroutine (exit 2 and a long stack trace). Now the daemon
// exits 1 with one line that says what to do.
func TestCorruptStoreProcessExitsCleanly(t *testing.T) {
	dir := t.TempDir()
	log, store := filepath.Join(dir, "data.json"), filepath.Join(dir, "store")
	writeLog(t, log, synth.New(42).Events(200))
	if r := mirrord(t, map[string]string{"MIRRORD_EVENTLOG": log, "MIRRORD_STORE": store}, "sync", "--once"); r.code != 0 {
		t.Fatal(r.err)
	}
	storetest.Spoil(t, store, ".sst", storetest.InvertMiddle)
	c := startChild(t, "run", "--eventlog", log, "--store", store, "--log-format", "text")
	if code := c.Wait(30 * time.Second); code != 1 {
		t.Fatalf("exit %d, want 1:\n%s", code, c.Output())
	}
	out := c.Output()
	if strings.Contains(out, "panic") || strings.Contains(out, "goroutine ") {
		t.Fatalf("mirrord crashed:\n%s", out)
	}
	var last string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "mirrord: ") {
			last = l
		}
	}
	if !strings.Contains(last, "corrupt") || !strings.Contains(last, store+" aside") {
		t.Fatalf("no one-line error naming the store and the way out:\n%s", out)
	}
}
