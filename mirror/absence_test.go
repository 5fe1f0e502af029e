package mirror

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/mirrord/mirrord/eventlog"
	"github.com/mirrord/mirrord/internal/testkit"
)

// logRecords keeps what the engine logged, for tests of what it says.
type logRecords struct {
	mu   sync.Mutex
	recs []slog.Record
}

// count returns how many records have this level and message.
func (r *logRecords) count(level slog.Level, msg string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, rec := range r.recs {
		if rec.Level == level && rec.Message == msg {
			n++
		}
	}
	return n
}

// atLeast returns how many records have at least this level.
func (r *logRecords) atLeast(level slog.Level) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var msgs []string
	for _, rec := range r.recs {
		if rec.Level >= level {
			msgs = append(msgs, rec.Message)
		}
	}
	return msgs
}

// waitCount waits until a message has been logged n times at level.
func (r *logRecords) waitCount(t *testing.T, level slog.Level, msg string, n int) {
	t.Helper()
	testkit.Eventually(t, fmt.Sprintf("%s %q logged %d times", level, msg, n), func() error {
		if got := r.count(level, msg); got != n {
			return fmt.Errorf("logged %d times", got)
		}
		return nil
	})
}

// recordHandler records every message, and passes it on to the test log.
type recordHandler struct {
	r    *logRecords
	next slog.Handler
}

func (h recordHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h recordHandler) Handle(ctx context.Context, rec slog.Record) error {
	h.r.mu.Lock()
	h.r.recs = append(h.r.recs, rec.Clone())
	h.r.mu.Unlock()
	return h.next.Handle(ctx, rec)
}

func (h recordHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return recordHandler{h.r, h.next.WithAttrs(as)}
}

func (h recordHandler) WithGroup(name string) slog.Handler {
	return recordHandler{h.r, h.next.WithGroup(name)}
}

// recordLogs makes the engine's logger record what it says.
func recordLogs(t *testing.T, o *Options) *logRecords {
	r := &logRecords{}
	o.Logger = slog.New(recordHandler{r: r, next: testLogger(t).Handler()})
	return r
}

const (
	msgMissing = "event log is missing"
	msgWarn    = "event log is missing; keeping the store as it is until it returns"
	msgBack    = "event log is back"
)

// putBack renames a settled copy of the model's log into place, as git
// does.
func (h *harness) putBack() {
	h.t.Helper()
	tmp := filepath.Join(h.dir, ".data.json.tmp")
	mustDo(h.t, os.WriteFile(tmp, eventlog.Format(h.evs), 0o644))
	old := time.Now().Add(-time.Hour)
	mustDo(h.t, os.Chtimes(tmp, old, old))
	mustDo(h.t, os.Rename(tmp, h.path))
}

// A routine git update removes the log for a moment before renaming the
// new one into place: the engine sees it missing, but says so only at
// debug level.
func TestShortAbsenceIsNotAWarning(t *testing.T) {
	var logs *logRecords
	h := newFollowHarness(t, ".", func(o *Options) {
		logs = recordLogs(t, o)
		// Far longer than the absence below takes, even on a loaded
		// machine; the files are settled by their mtime, so nothing
		// waits for it.
		o.Settle = 10 * time.Second
	})
	h.appendEvents(h.newEvents(20)...)
	h.age()
	h.run()
	h.eventually("initial catch-up")

	mustDo(t, os.Remove(h.path))
	h.waitStatus("the engine saw the log missing", func(s Status) bool { return s.LogMissing })
	h.evs = append(h.evs[1:], h.newEvents(2)...)
	h.putBack()
	h.eventuallyVerified("the new log")
	h.waitStatus("the engine saw the log back", func(s Status) bool { return !s.LogMissing })

	if got := logs.count(slog.LevelDebug, msgMissing); got != 1 {
		t.Fatalf("the absence was logged %d times at debug level, want 1", got)
	}
	if got := logs.count(slog.LevelDebug, msgBack); got != 1 {
		t.Fatalf("the return was logged %d times at debug level, want 1", got)
	}
	if w := logs.atLeast(slog.LevelWarn); len(w) > 0 {
		t.Fatalf("a short absence logged %q", w)
	}
	if got := logs.count(slog.LevelInfo, msgBack); got != 0 {
		t.Fatalf("the end of a short absence was an info line")
	}
}

// An absence that outlasts the settle interval is a warning, once, and
// its end an info line, once.
func TestLongAbsenceWarnsOnce(t *testing.T) {
	var logs *logRecords
	h := newFollowHarness(t, ".", func(o *Options) {
		logs = recordLogs(t, o)
		o.Settle = 100 * time.Millisecond
		// Decisions while the log is missing, which must say nothing
		// more.
		o.SafetyCheck = 10 * time.Millisecond
	})
	h.appendEvents(h.newEvents(20)...)
	h.age()
	h.run()
	h.eventually("initial catch-up")

	mustDo(t, os.Remove(h.path))
	logs.waitCount(t, slog.LevelWarn, msgWarn, 1)
	h.putBack()
	logs.waitCount(t, slog.LevelInfo, msgBack, 1)
	h.eventuallyVerified("the log is back")

	if w := logs.atLeast(slog.LevelWarn); len(w) != 1 {
		t.Fatalf("a long absence logged %d warnings, want 1: %q", len(w), w)
	}
	if got := logs.count(slog.LevelInfo, msgBack); got != 1 {
		t.Fatalf("the end of the absence was logged %d times at info level, want 1", got)
	}
}

// A log missing when Run starts (not yet created) is a warning once it
// outlasts the settle interval, naming the directory waited for.
func TestMissingAtStartWarnsOnce(t *testing.T) {
	var logs *logRecords
	h := newFollowHarness(t, "repo", func(o *Options) {
		logs = recordLogs(t, o)
		o.Settle = 50 * time.Millisecond
	})
	h.run()
	logs.waitCount(t, slog.LevelWarn, msgWarn, 1)
	mustDo(t, os.Mkdir(filepath.Dir(h.path), 0o755))
	h.appendEvents(h.newEvents(5)...)
	logs.waitCount(t, slog.LevelInfo, msgBack, 1)
	h.eventually("the log appeared")
	if w := logs.atLeast(slog.LevelWarn); len(w) != 1 {
		t.Fatalf("logged %d warnings, want 1: %q", len(w), w)
	}
}
