package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mirrord/mirrord/eventlog"
	"github.com/mirrord/mirrord/internal/synth"
	"github.com/mirrord/mirrord/internal/testkit"
)

// Every fatal path of "mirrord run" ends the process: exit status 1 and
// one line naming the cause, within shutdown-timeout, whatever else runs.

// errorLines are the lines of mirrord's stderr (text log format) that
// report an error: the final "mirrord: " line and any ERR log line.
func errorLines(out string) []string {
	var errs []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "mirrord: ") || strings.Contains(l, " ERR ") {
			errs = append(errs, l)
		}
	}
	return errs
}

// wantOneErrorLine checks that out reports exactly one error, on one line
// holding every one of subs, and no stack trace.
func wantOneErrorLine(t *testing.T, out string, subs ...string) {
	t.Helper()
	errs := errorLines(out)
	if len(errs) != 1 || !testkit.ContainsAll(errs[0], subs...) || strings.Contains(out, "goroutine ") {
		t.Fatalf("want one error line with %q, got %d:\n%s", subs, len(errs), out)
	}
}

// A fatal setup: the log or the store as the case makes them, and what
// the one error line must name.
type fatalCase struct {
	name    string
	prepare func(t *testing.T, dir string) (log, store string)
	want    func(log, store string) []string
	fault   string // the store's file system fails so (see faultFS)
}

func fatalCases() []fatalCase {
	logIn := func(t *testing.T, dir string, make func(path string) error) (string, string) {
		t.Helper()
		log := filepath.Join(dir, "data.json")
		if err := make(log); err != nil {
			t.Fatal(err)
		}
		return log, filepath.Join(dir, "store")
	}
	storeIn := func(t *testing.T, dir string, store string) (string, string) {
		t.Helper()
		log := filepath.Join(dir, "data.json")
		writeLog(t, log, synth.New(61).Events(5))
		return log, store
	}
	return []fatalCase{{
		name: "the log is a directory",
		prepare: func(t *testing.T, dir string) (string, string) {
			return logIn(t, dir, func(p string) error { return os.Mkdir(p, 0o755) })
		},
		want: func(log, _ string) []string { return []string{log, "not a regular file"} },
	}, {
		name: "the log is a FIFO",
		prepare: func(t *testing.T, dir string) (string, string) {
			return logIn(t, dir, func(p string) error { return syscall.Mkfifo(p, 0o644) })
		},
		want: func(log, _ string) []string { return []string{log, "not a regular file"} },
	}, {
		name: "the store's path runs through a file",
		prepare: func(t *testing.T, dir string) (string, string) {
			file := filepath.Join(dir, "file")
			writeFile(t, file, "")
			return storeIn(t, dir, filepath.Join(file, "store"))
		},
		want: func(_, store string) []string { return []string{store, "not a directory"} },
	}, {
		name:  "the store's file system is read-only",
		fault: "erofs",
		prepare: func(t *testing.T, dir string) (string, string) {
			log, store := storeIn(t, dir, filepath.Join(dir, "store"))
			if r := mirrord(t, nil, "sync", "--eventlog", log, "--store", store); r.code != 0 {
				t.Fatalf("first sync: exit %d: %v", r.code, r.err)
			}
			return log, store
		},
		want: func(_, store string) []string { return []string{store, "read-only file system"} },
	}, {
		name: "the store's parent is not writable",
		prepare: func(t *testing.T, dir string) (string, string) {
			ro := filepath.Join(dir, "ro")
			if err := os.Mkdir(ro, 0o500); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = os.Chmod(ro, 0o755) })
			if probe := filepath.Join(ro, "probe"); os.WriteFile(probe, nil, 0o644) == nil {
				t.Skip("chmod 0500 does not stop this user writing (root); a read-only file system covers an unwritable store")
			}
			return storeIn(t, dir, filepath.Join(ro, "store"))
		},
		want: func(_, store string) []string { return []string{store, "permission denied"} },
	}}
}

// The real daemon, for each fatal setup: exit 1 and one line.
func TestRunExitsOnAFatalError(t *testing.T) {
	for _, tc := range fatalCases() {
		t.Run(tc.name, func(t *testing.T) {
			log, store := tc.prepare(t, shortDir(t))
			var env []string
			if tc.fault != "" {
				env = []string{"MIRRORDTEST_STORE_FAULT=" + tc.fault}
			}
			c := startChildEnv(t, env, "run", "--eventlog", log, "--store", store, "--log-format", "text", "--shutdown-timeout", "20s")
			if code := c.Wait(60 * time.Second); code != 1 {
				t.Fatalf("exit %d, want 1:\n%s", code, c.Output())
			}
			wantOneErrorLine(t, c.Output(), append([]string{"mirrord: "}, tc.want(log, store)...)...)
		})
	}
}

// The same in process: Run returns the error (main prints it), nothing
// was printed as an error before, and every goroutine the daemon started
// has stopped (TestMain's goleak checks that none outlives the tests).
func TestRunReturnsAFatalErrorInProcess(t *testing.T) {
	for _, tc := range fatalCases() {
		t.Run(tc.name, func(t *testing.T) {
			log, store := tc.prepare(t, shortDir(t))
			m, _, errb := newMain(t, nil)
			m.Exit = func(code int) { t.Errorf("the daemon exited (%d) instead of returning", code) }
			testStoreFS = faultFS(tc.fault, "")
			t.Cleanup(func() { testStoreFS = nil })
			err := runMain(m, "run", "--eventlog", log, "--store", store, "--log-format", "text", "--shutdown-timeout", "20s")
			if ExitCode(err) != 1 {
				t.Fatalf("exit %d (%v), want 1:\n%s", ExitCode(err), err, errb)
			}
			wantOneErrorLine(t, errb.String()+"mirrord: "+err.Error(), tc.want(log, store)...)
		})
	}
}

// A disk that fills while the daemon follows the log: the failed write
// ends the daemon (exit 1, one line naming the store and the cause), and
// once there is room again the store resumes where it was.
func TestRunExitsWhenTheDiskFills(t *testing.T) {
	dir := shortDir(t)
	log, store, full := filepath.Join(dir, "data.json"), filepath.Join(dir, "store"), filepath.Join(dir, "full")
	gen := synth.New(62)
	writeLog(t, log, gen.Events(50))
	if r := mirrord(t, nil, "sync", "--eventlog", log, "--store", store); r.code != 0 {
		t.Fatalf("first sync: exit %d: %v", r.code, r.err)
	}
	c := startChildEnv(t, []string{"MIRRORDTEST_STORE_FAULT=enospc", "MIRRORDTEST_STORE_FAULT_ARM=" + full},
		"run", "--eventlog", log, "--store", store, "--log-format", "text", "--settle", "20ms")
	c.WaitLine(60*time.Second, "caught up; following the log")
	writeFile(t, full, "") // the disk is full from now on
	// More than a block of the store's write-ahead log (32 KiB): its
	// writes are not synced, and a failed one is met at the next block.
	if err := eventlog.AppendFile(log, gen.Events(200)...); err != nil {
		t.Fatal(err)
	}
	if code := c.Wait(60 * time.Second); code != 1 {
		t.Fatalf("exit %d, want 1:\n%s", code, c.Output())
	}
	wantOneErrorLine(t, c.Output(), "mirrord: ", store, "no space left on device")
	if r := mirrord(t, nil, "sync", "--eventlog", log, "--store", store); r.code != 0 {
		t.Fatalf("sync once the disk has room: exit %d: %v", r.code, r.err)
	}
	verifyStore(t, store, log)
}

// A store corrupted under the running daemon: the first read that meets
// the damage ends the daemon, with one line saying what to do.
func TestRunExitsOnACorruptStore(t *testing.T) {
	dir := shortDir(t)
	log, store := filepath.Join(dir, "data.json"), filepath.Join(dir, "store")
	writeLog(t, log, synth.New(63).Events(3000))
	if r := mirrord(t, nil, "sync", "--eventlog", log, "--store", store, "--generators="); r.code != 0 {
		t.Fatalf("first sync: exit %d: %v", r.code, r.err)
	}
	c := startChild(t, "run", "--eventlog", log, "--store", store, "--log-format", "text", "--generators=")
	c.WaitLine(60*time.Second, "caught up; following the log")
	corruptLargestTable(t, store)
	if r := mirrord(t, nil, "dump", "--store", store); r.code != 1 || !strings.Contains(r.msg(), "corrupt") {
		t.Fatalf("dump through the daemon of a corrupt store: exit %d: %v", r.code, r.err)
	}
	if code := c.Wait(60 * time.Second); code != 1 {
		t.Fatalf("exit %d, want 1:\n%s", code, c.Output())
	}
	// kv logs the damage where Pebble meets it, which may be a background
	// job with no caller to tell: that record names the file, and is not
	// the line the daemon ends with.
	out := dropLines(c.Output(), "ERR store corrupt component=pebble")
	wantOneErrorLine(t, out, "mirrord: ", store, "corrupt", "move "+store+" aside")
}

// dropLines returns out without the lines that contain sub.
func dropLines(out, sub string) string {
	lines := strings.Split(out, "\n")
	return strings.Join(slices.DeleteFunc(lines, func(l string) bool { return strings.Contains(l, sub) }), "\n")
}

// corruptLargestTable overwrites the middle half of the store's largest
// sstable in place (a failing disk), keeping its size, so that the open
// daemon reads the damage through the file it holds.
func corruptLargestTable(t *testing.T, store string) {
	t.Helper()
	tables, _ := filepath.Glob(filepath.Join(store, "*.sst"))
	if len(tables) == 0 {
		t.Fatalf("no sstable in %s", store)
	}
	size := func(p string) int64 { return fileSize(t, p) }
	largest := slices.MaxFunc(tables, func(a, b string) int { return int(size(a) - size(b)) })
	f, err := os.OpenFile(largest, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := size(largest)
	if _, err := f.WriteAt([]byte(strings.Repeat("\xa5", int(n/2))), n/4); err != nil {
		t.Fatal(err)
	}
}
