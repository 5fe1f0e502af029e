package mirror

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/mirrord/mirrord/schema"
)

// running is an engine following its log in a goroutine.
type running struct {
	cancel  context.CancelFunc
	done    chan error
	stopped bool
}

func (h *harness) run() *running {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan error, 1)}
	ready := make(chan struct{})
	go func() { r.done <- h.e.Run(ctx, func() { close(ready) }) }()
	select {
	case <-ready:
	case err := <-r.done:
		h.t.Fatalf("Run ended before it was ready: %v", err)
	case <-time.After(30 * time.Second):
		h.t.Fatal("Run not ready after 30s")
	}
	h.t.Cleanup(func() { r.stop(h.t) })
	return r
}

func (r *running) stop(t *testing.T) {
	t.Helper()
	if r.stopped {
		return
	}
	r.stopped = true
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return within 30s of cancellation")
	}
}

func (h *harness) storedIDs() []string {
	snap, err := h.db.Snapshot()
	if err != nil {
		h.t.Fatal(err)
	}
	defer snap.Close()
	keys, err := snap.Keys(schema.PrefixEvent)
	if err != nil {
		h.t.Fatal(err)
	}
	ids := make([]string, len(keys))
	for i, k := range keys {
		p, _ := schema.ParseKey(k)
		ids[i] = p.ID
	}
	return ids
}

func TestFollow(t *testing.T) {
	h := newHarness(t, func(o *Options) { realClock(o); o.Settle = 30 * time.Millisecond })
	h.appendEvents(h.newEvents(20)...)
	h.age()
	r := h.run()
	h.eventually("initial catch-up")

	for i := 0; i < 5; i++ {
		h.appendEvents(h.newEvents(1)...)
		h.eventually("single append")
	}
	h.appendEvents(h.newEvents(50)...)
	h.eventually("burst of appends")
	h.rewrite(without(h.evs, 7))
	h.eventually("in-place rewrite deleting one")
	h.replace(append(without(h.evs, 0), h.newEvents(2)...))
	h.eventually("rename-replace")
	if err := os.Remove(h.path); err != nil {
		t.Fatal(err)
	}
	h.rewrite(h.evs[5:])
	h.eventually("remove and recreate")

	r.stop(t)
	h.verify()
}

// What inotify cannot see (a write through a hard link in another
// directory) is caught by the safety check.
func TestSafetyCheckCatchesUnseenChanges(t *testing.T) {
	h := newHarness(t, func(o *Options) { realClock(o); o.SafetyCheck = 40 * time.Millisecond })
	h.appendEvents(h.newEvents(10)...)
	h.age()
	other := filepath.Join(t.TempDir(), "link.json")
	if err := os.Link(h.path, other); err != nil {
		t.Skipf("hard links not supported here: %v", err)
	}
	h.run()
	h.eventually("initial catch-up")
	more := h.newEvents(3)
	savedPath := h.path
	h.path = other // append through the other name: no event in the watched directory
	h.appendEvents(more...)
	h.path = savedPath
	h.eventually("change made through a hard link elsewhere")
}

// A symlinked log is followed where it points, and re-pointing the link
// is a replacement.
func TestSymlinkedLog(t *testing.T) {
	h := newHarness(t, func(o *Options) { realClock(o); o.Settle = 30 * time.Millisecond })
	targets := t.TempDir()
	a, b := filepath.Join(targets, "a.json"), filepath.Join(targets, "b.json")
	evsA, evsB := h.newEvents(5), h.newEvents(7)
	real := h.path
	h.path = a
	h.appendEvents(evsA...)
	h.path = b
	h.evs = nil
	h.appendEvents(evsB...)
	h.path = real
	if err := os.Symlink(a, real); err != nil {
		t.Fatal(err)
	}
	h.evs = evsA
	h.run()
	h.eventually("through the symlink")
	// A write to the target, in its own directory.
	h.path = a
	h.appendEvents(h.newEvents(2)...)
	h.path = real
	h.eventually("append to the symlink's target")
	// Re-point the link (atomically, as a deploy would).
	tmp := filepath.Join(h.dir, "link.tmp")
	if err := os.Symlink(b, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, real); err != nil {
		t.Fatal(err)
	}
	h.evs = evsB
	h.eventually("re-pointed symlink")
}

// After an inotify overflow (or any watcher error) events may have been
// lost, so the next decision checks the whole prefix: an in-place edit
// before the checkpoint, which the tail's fingerprint cannot see, is then
// found.
func TestOverflowChecksTheWholePrefix(t *testing.T) {
	h := newHarness(t, func(o *Options) { realClock(o); o.SafetyCheck = -1 })
	evs := h.newEvents(30)
	evs[2].Description = "aaaa"
	h.appendEvents(evs...)
	h.age()
	h.e.testWatchErrors = make(chan error, 1)
	h.run()
	h.eventuallyVerified("initial catch-up")

	// Same length, same inode, far before the tail window.
	b, err := os.ReadFile(h.path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(h.path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(bytes.Replace(b, []byte(`"aaaa"`), []byte(`"bbbb"`), 1), 0); err != nil {
		t.Fatal(err)
	}
	f.Close()
	h.evs[2].Description = "bbbb"
	// The write's own event leads to a cheap check that passes; only the
	// overflow makes the engine look at everything.
	h.e.testWatchErrors <- fsnotify.ErrEventOverflow
	h.eventuallyVerified("after an overflow")
}

// A burst of appends is coalesced into a few applies.
func TestDebounceCoalescesBursts(t *testing.T) {
	h := newHarness(t, func(o *Options) { realClock(o); o.Debounce = 200 * time.Millisecond })
	h.appendEvents(h.newEvents(5)...)
	h.age()
	h.run()
	h.eventually("initial catch-up")
	h.takeApplied()
	for i := 0; i < 20; i++ {
		h.appendEvents(h.newEvents(1)...) // twenty writes
	}
	h.eventually("burst")
	if n := len(h.takeApplied()); n > 3 {
		t.Fatalf("20 appends in a burst took %d applies with a 200ms debounce", n)
	}
}

// The heartbeat (systemd's watchdog) comes from the follow loop itself:
// while a step is stuck, it stops; once the loop moves again, it resumes.
func TestHeartbeatStopsWhileTheLoopIsStuck(t *testing.T) {
	beats := make(chan struct{}, 1000)
	h := newHarness(t, func(o *Options) {
		realClock(o)
		o.Heartbeat = 10 * time.Millisecond
		o.OnHeartbeat = func() { beats <- struct{}{} }
	})
	h.appendEvents(h.newEvents(5)...)
	h.age()
	h.run()
	waitBeats := func(n int) {
		t.Helper()
		for i := 0; i < n; i++ {
			select {
			case <-beats:
			case <-time.After(10 * time.Second):
				t.Fatal("no heartbeat")
			}
		}
	}
	waitBeats(3)
	stuck, release := make(chan struct{}), make(chan struct{})
	testHookBeforeTailRead = func() {
		testHookBeforeTailRead = nil
		close(stuck)
		<-release
	}
	defer func() { testHookBeforeTailRead = nil }()
	h.appendEvents(h.newEvents(1)...)
	<-stuck
	// Drain what was sent before the loop got stuck, then: silence.
	for len(beats) > 0 {
		<-beats
	}
	select {
	case <-beats:
		t.Fatal("a heartbeat while the loop is stuck")
	case <-time.After(200 * time.Millisecond): // twenty heartbeat periods
	}
	close(release)
	waitBeats(3)
	h.eventually("after the loop moved again")
}

// A FIFO put in the log's place is refused without blocking the loop.
func TestNonRegularLogIsRefusedWithoutBlocking(t *testing.T) {
	h := newHarness(t, nil)
	h.appendEvents(h.newEvents(3)...)
	h.sync()
	fifo := h.path + ".fifo"
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(fifo, h.path); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- h.e.Sync(h.ctx()) }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Fatalf("Sync on a FIFO: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Sync blocked on a FIFO")
	}
	h.wantIDs(h.modelIDs()...)
}
