package mirror

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/mirrord/mirrord/eventlog"
)

// newFollowHarness is a harness for Run whose log is at dir/sub/data.json,
// on the real clock, with the safety check off: whatever the engine
// mirrors, inotify's events made it do.
func newFollowHarness(t *testing.T, sub string, mod func(*Options)) *harness {
	t.Helper()
	h := newHarness(t, func(o *Options) {
		realClock(o)
		o.SafetyCheck = -1
		o.EventLog = filepath.Join(filepath.Dir(o.EventLog), sub, "data.json")
		if mod != nil {
			mod(o)
		}
	})
	h.path = h.opts.EventLog
	return h
}

func mustDo(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// writeLog writes evs as a whole log at path (not the harness's model).
func writeLog(t testing.TB, path string, evs []*eventlog.Event) {
	t.Helper()
	mustDo(t, os.MkdirAll(filepath.Dir(path), 0o755))
	mustDo(t, os.WriteFile(path, eventlog.Format(evs), 0o644))
}

// A log whose directory does not exist yet (the application makes its
// working tree on its first sync) is waited for, not an error: Run watches
// the nearest existing ancestor, says in its status which directory it
// waits for, and mirrors the log once it appears, however the tree comes.
func TestLogDirectoryAppearsLater(t *testing.T) {
	for _, tc := range []struct {
		name   string
		create func(t *testing.T, h *harness) // makes dir/a/b/data.json
	}{
		{"one level at a time", func(t *testing.T, h *harness) {
			a, b := filepath.Join(h.dir, "a"), filepath.Join(h.dir, "a", "b")
			mustDo(t, os.Mkdir(a, 0o755))
			h.waitStatus("waiting for a/b", func(s Status) bool { return s.LogMissing && s.WaitingForDir == b })
			mustDo(t, os.Mkdir(b, 0o755))
			h.waitStatus("waiting for the log in a/b", func(s Status) bool { return s.LogMissing && s.WaitingForDir == "" })
			h.appendEvents(h.newEvents(20)...)
		}},
		{"all at once", func(t *testing.T, h *harness) {
			h.evs = h.newEvents(20)
			writeLog(t, h.path, h.evs)
		}},
		{"a clone renamed into place", func(t *testing.T, h *harness) {
			clone := filepath.Join(h.dir, "clone")
			h.evs = h.newEvents(20)
			writeLog(t, filepath.Join(clone, "b", "data.json"), h.evs)
			mustDo(t, os.Rename(clone, filepath.Join(h.dir, "a")))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newFollowHarness(t, "a/b", nil)
			r := h.run() // no error: a missing directory is a missing log
			h.waitStatus("waiting for a", func(s Status) bool {
				return s.LogMissing && s.WaitingForDir == filepath.Join(h.dir, "a")
			})
			tc.create(t, h)
			h.eventuallyVerified("the log appeared")
			h.eventually("the log appeared")
			// The log's new directory is watched itself now.
			h.appendEvents(h.newEvents(3)...)
			h.eventually("an append in the new directory")
			if s := h.e.Status(); s.LogMissing || s.WaitingForDir != "" || !s.MissingSince.IsZero() {
				t.Fatalf("the log is back but the status says %+v", s)
			}
			r.stop(t)
			h.verify()
		})
	}
}

// A directory deleted or replaced under a running engine (a user fixes a
// stuck device by re-cloning) is noticed from its own events: the watches
// are put in place again, on the new directory, and the log it holds is
// mirrored, with the safety check off. The same for the directory of a
// symlinked log's target.
func TestLogDirectoryReplaced(t *testing.T) {
	for _, how := range []struct {
		name    string
		replace func(t *testing.T, repo, clone string) // clone holds the new tree
	}{
		{"a fresh clone renamed into place", func(t *testing.T, repo, clone string) {
			mustDo(t, os.Rename(repo, repo+".old"))
			mustDo(t, os.Rename(clone, repo))
		}},
		{"rm -rf, then a clone renamed into place", func(t *testing.T, repo, clone string) {
			mustDo(t, os.RemoveAll(repo))
			mustDo(t, os.Rename(clone, repo))
		}},
		{"rm -rf, mkdir, write", func(t *testing.T, repo, clone string) {
			b, err := os.ReadFile(filepath.Join(clone, "data.json"))
			mustDo(t, err)
			mustDo(t, os.RemoveAll(repo))
			mustDo(t, os.Mkdir(repo, 0o755))
			mustDo(t, os.WriteFile(filepath.Join(repo, "data.json"), b, 0o644))
		}},
	} {
		for _, symlinked := range []bool{false, true} {
			name := how.name
			if symlinked {
				name += ", through a symlink"
			}
			t.Run(name, func(t *testing.T) {
				sub := "repo"
				if symlinked {
					sub = "."
				}
				h := newFollowHarness(t, sub, nil)
				repo := filepath.Dir(h.path)
				if symlinked {
					// The log is a symlink into a repository elsewhere.
					repo = filepath.Join(t.TempDir(), "repo")
					mustDo(t, os.Symlink(filepath.Join(repo, "data.json"), h.path))
				}
				h.evs = h.newEvents(30)
				writeLog(t, filepath.Join(repo, "data.json"), h.evs)
				r := h.run()
				h.eventuallyVerified("initial catch-up")

				next := append(without(without(h.evs, 3), 17), h.newEvents(4)...)
				clone := filepath.Join(filepath.Dir(repo), "clone")
				writeLog(t, filepath.Join(clone, "data.json"), next)
				mustDo(t, os.Mkdir(filepath.Join(clone, ".git"), 0o755))
				how.replace(t, repo, clone)
				h.evs = next
				h.eventuallyVerified("the directory replaced")
				h.eventually("the directory replaced")

				// The new directory is the one watched: an append to it
				// is seen.
				h.appendEvents(h.newEvents(2)...)
				h.eventually("an append in the new directory")
				r.stop(t)
				h.verify()
			})
		}
	}
}

// The directory is replaced again and again while the engine follows: it
// keeps up every time (a watch lost once would leave it behind for good,
// with the safety check off).
func TestLogDirectoryReplacedRepeatedly(t *testing.T) {
	h := newFollowHarness(t, "repo", nil)
	repo := filepath.Dir(h.path)
	h.evs = h.newEvents(10)
	writeLog(t, h.path, h.evs)
	r := h.run()
	h.eventually("initial catch-up")
	for i := range 5 {
		clone := filepath.Join(h.dir, "clone")
		next := append(slices.Clone(h.evs[1:]), h.newEvents(2)...)
		writeLog(t, filepath.Join(clone, "data.json"), next)
		if i%2 == 0 {
			mustDo(t, os.RemoveAll(repo))
		} else {
			mustDo(t, os.Rename(repo, filepath.Join(h.dir, "old")))
			mustDo(t, os.RemoveAll(filepath.Join(h.dir, "old")))
		}
		mustDo(t, os.Rename(clone, repo))
		h.evs = next
		h.eventually("re-clone")
	}
	r.stop(t)
	h.verify()
}

// Status and ReadStatus name the directory waited for.
func TestStatusNamesTheMissingDirectory(t *testing.T) {
	h := newFollowHarness(t, "a/b", nil)
	s, err := ReadStatus(h.db, h.path)
	mustDo(t, err)
	if !s.LogMissing || s.WaitingForDir != filepath.Join(h.dir, "a") {
		t.Fatalf("ReadStatus of a log two directories away: %+v", s)
	}
	start := time.Now()
	h.run()
	h.waitStatus("missing", func(s Status) bool { return s.LogMissing })
	if s := h.e.Status(); s.WaitingForDir != filepath.Join(h.dir, "a") || s.MissingSince.Before(start.Add(-time.Second)) {
		t.Fatalf("Status of a log two directories away: %+v", s)
	}
}
