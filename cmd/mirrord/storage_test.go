package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"github.com/mirrord/mirrord/internal/faultfs"
	"github.com/mirrord/mirrord/internal/synth"
)

// A store that cannot be written: a full disk, a read-only file system, a
// directory without write permission. "mirrord sync" says so on one line
// naming the store, exits 1, and leaves the store as it was: once the
// disk has room (or the directory is writable) again, sync and verify
// succeed.

// The child processes of these tests (the test binary run as mirrord) open
// the store through errorfs when MIRRORDTEST_STORE_FAULT asks for it; with
// MIRRORDTEST_STORE_FAULT_ARM set, the fault starts once the file it names
// exists (a disk that fills while the daemon runs).
func init() {
	testStoreFS = faultFS(os.Getenv("MIRRORDTEST_STORE_FAULT"), os.Getenv("MIRRORDTEST_STORE_FAULT_ARM"))
}

// faultFS is the file system of a store that fails as fault says
// ("enospc": a full disk, "erofs": a read-only file system; "": none,
// nil), from the moment the file arm exists when arm is set.
func faultFS(fault, arm string) vfs.FS {
	var inject func(errorfs.Op) error
	switch fault {
	case "enospc":
		inject = faultfs.DiskFull
	case "erofs":
		inject = faultfs.ReadOnly
	default:
		return nil
	}
	if arm != "" {
		fault := inject
		inject = func(op errorfs.Op) error {
			if _, err := os.Stat(arm); err != nil {
				return nil
			}
			return fault(op)
		}
	}
	return errorfs.Wrap(vfs.Default, errorfs.InjectorFunc(inject))
}

func TestSyncOnAStoreThatCannotBeWritten(t *testing.T) {
	for _, tc := range []struct {
		fault, want string
	}{
		{"enospc", "no space left on device"},
		{"erofs", "read-only file system"},
	} {
		t.Run(tc.fault, func(t *testing.T) {
			dir := t.TempDir()
			log, store := filepath.Join(dir, "data.json"), filepath.Join(dir, "store")
			gen := synth.New(21)
			evs := gen.Events(40)
			writeLog(t, log, evs)
			if r := mirrord(t, nil, "sync", "--eventlog", log, "--store", store); r.code != 0 {
				t.Fatalf("first sync: exit %d: %v", r.code, r.err)
			}
			before := dumpStore(t, store)
			writeLog(t, log, append(evs, gen.Events(10)...)) // something to write

			c := startChildEnv(t, []string{"MIRRORDTEST_STORE_FAULT=" + tc.fault}, "sync", "--eventlog", log, "--store", store, "--log-level", "error")
			if code := c.Wait(60 * time.Second); code != 1 {
				t.Fatalf("sync on a store that cannot be written: exit %d, want 1:\n%s", code, c.Output())
			}
			out := c.Output()
			var last string
			for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
				if strings.HasPrefix(l, "mirrord: ") {
					last = l
				}
			}
			if !strings.Contains(last, store) || !strings.Contains(last, tc.want) ||
				strings.Contains(last, "locked") || strings.Contains(last, "corrupt") || strings.Contains(out, "goroutine ") {
				t.Fatalf("the error does not say the store cannot be written (%q), or says more:\n%s", tc.want, out)
			}
			if after := dumpStore(t, store); after != before {
				t.Fatal("a failed sync changed the store")
			}
			if r := mirrord(t, nil, "sync", "--eventlog", log, "--store", store); r.code != 0 {
				t.Fatalf("sync once the store can be written: exit %d: %v", r.code, r.err)
			}
			if r := mirrord(t, nil, "verify", "--eventlog", log, "--store", store); r.code != 0 {
				t.Fatalf("verify: exit %d: %v\n%s", r.code, r.err, r.stdout)
			}
		})
	}
}

// A real directory without write permission (skipped for root, whom
// chmod does not stop): the same clear error, in process.
func TestSyncOnAReadOnlyStoreDirectory(t *testing.T) {
	dir := t.TempDir()
	log, store := filepath.Join(dir, "data.json"), filepath.Join(dir, "store")
	writeLog(t, log, synth.New(22).Events(20))
	if r := mirrord(t, nil, "sync", "--eventlog", log, "--store", store); r.code != 0 {
		t.Fatalf("first sync: exit %d: %v", r.code, r.err)
	}
	if err := os.Chmod(store, 0o500); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Chmod(store, 0o755) })
	if probe := filepath.Join(store, "probe"); os.WriteFile(probe, nil, 0o644) == nil {
		os.Remove(probe)
		t.Skip("chmod 0500 does not stop this user writing (root); TestSyncOnAStoreThatCannotBeWritten/erofs covers a read-only store")
	}
	r := mirrord(t, nil, "sync", "--eventlog", log, "--store", store)
	if r.code != 1 || !strings.Contains(r.msg(), store) || !strings.Contains(r.msg(), "permission denied") ||
		strings.Contains(r.msg(), "locked") || strings.Contains(r.msg(), "corrupt") {
		t.Fatalf("sync on a read-only store directory: exit %d: %v", r.code, r.err)
	}
	if err := os.Chmod(store, 0o755); err != nil {
		t.Fatal(err)
	}
	if r := mirrord(t, nil, "verify", "--eventlog", log, "--store", store); r.code != 0 {
		t.Fatalf("verify: exit %d: %v", r.code, r.err)
	}
}

// dumpStore is the store's content as "mirrord dump" prints it.
func dumpStore(t *testing.T, store string) string {
	t.Helper()
	r := mirrord(t, nil, "dump", "--store", store)
	if r.code != 0 {
		t.Fatalf("dump: exit %d: %v", r.code, r.err)
	}
	return r.stdout
}
