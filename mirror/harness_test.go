package mirror

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/mirrord/mirrord/eventlog"
	"github.com/mirrord/mirrord/internal/synth"
	"github.com/mirrord/mirrord/kv"
	"github.com/mirrord/mirrord/schema"
)

var bigTests = flag.Bool("mirrord.big", os.Getenv("MIRRORD_BIG_TESTS") != "", "run the tests on full-size logs (a 1,000,000-event log); slow")

// harness is one log file, one in-memory store and one engine on them,
// with the log's intended content kept as a list of events.
type harness struct {
	t     *testing.T
	dir   string
	path  string
	fs    vfs.FS
	db    *kv.DB
	e     *Engine
	gen   *synth.Generator
	evs   []*eventlog.Event
	opts  Options
	clock *fakeClock

	mu      sync.Mutex
	applied []Applied
}

// fakeClock is far ahead of real time by default, so that every file looks
// settled; tests of settling move it.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

func newHarness(t *testing.T, mod func(*Options)) *harness {
	t.Helper()
	h := &harness{t: t, dir: t.TempDir(), fs: vfs.NewMem(), gen: synth.New(uint64(len(t.Name()))),
		clock: &fakeClock{now: time.Now().Add(24 * time.Hour)}}
	h.path = filepath.Join(h.dir, "data.json")
	h.opts = Options{EventLog: h.path, Now: h.clock.Now, Logger: testLogger(t),
		OnApply: func(a Applied) { h.mu.Lock(); h.applied = append(h.applied, a); h.mu.Unlock() }}
	if mod != nil {
		mod(&h.opts)
	}
	h.open()
	t.Cleanup(func() { closeDB(t, h.db) })
	return h
}

// open (re)opens the store and the engine, as a restarted daemon does.
func (h *harness) open() {
	h.t.Helper()
	closeDB(h.t, h.db)
	db, err := kv.Open("/store", &kv.Options{FS: h.fs, Logger: h.opts.Logger})
	if err != nil {
		h.t.Fatal(err)
	}
	h.db = db
	if h.e, err = Open(db, &h.opts); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	h.t.Cleanup(cancel)
	return ctx
}

// sync runs Sync and fails the test on error.
func (h *harness) sync() {
	h.t.Helper()
	if err := h.e.Sync(h.ctx()); err != nil {
		h.t.Fatalf("Sync: %v", err)
	}
}

// verify checks the store against the log with Verify, and against the
// harness's own model of the log: the ids it holds.
func (h *harness) verify() *Report {
	h.t.Helper()
	r, err := Verify(h.ctx(), h.db, h.path, 0)
	if err != nil {
		h.t.Fatalf("Verify: %v", err)
	}
	if !r.OK() {
		h.t.Fatalf("%s\nmissing %q\nextra %q\ndiffer %q\nbookkeeping %q", r.Summary(), r.MissingKeys, r.ExtraKeys, r.DifferKeys, r.BookkeepingKeys)
	}
	cp := h.e.Checkpoint()
	if cp.Events != int64(r.Events) || cp.Modifiers != int64(r.Modifiers) || cp.Invalid != int64(r.Invalid) {
		h.t.Fatalf("checkpoint counts %d events %d modifiers %d invalid; log has %d, %d, %d",
			cp.Events, cp.Modifiers, cp.Invalid, r.Events, r.Modifiers, r.Invalid)
	}
	return r
}

// wantIDs checks that the store holds exactly these event ids.
func (h *harness) wantIDs(ids ...string) {
	h.t.Helper()
	keys, err := h.db.Keys(schema.PrefixEvent)
	if err != nil {
		h.t.Fatal(err)
	}
	var got []string
	for _, k := range keys {
		p, err := schema.ParseKey(k)
		if err != nil {
			h.t.Fatal(err)
		}
		got = append(got, p.ID)
	}
	slices.Sort(ids)
	if !slices.Equal(got, ids) {
		h.t.Fatalf("store holds %d events %q, want %d %q", len(got), got, len(ids), ids)
	}
}

func (h *harness) modelIDs() []string {
	seen := map[string]bool{}
	var ids []string
	for _, e := range h.evs {
		if !seen[e.ID] {
			seen[e.ID] = true
			ids = append(ids, e.ID)
		}
	}
	return ids
}

func (h *harness) newEvents(n int) []*eventlog.Event { return h.gen.Events(n) }

// appendEvents appends as the application does (one write per event).
func (h *harness) appendEvents(evs ...*eventlog.Event) {
	h.t.Helper()
	if err := eventlog.AppendFile(h.path, evs...); err != nil {
		h.t.Fatal(err)
	}
	h.evs = append(h.evs, evs...)
}

// rewrite rewrites the log in place with evs (the application's delete).
func (h *harness) rewrite(evs []*eventlog.Event) {
	h.t.Helper()
	if err := eventlog.RewriteFile(h.path, evs); err != nil {
		h.t.Fatal(err)
	}
	h.evs = slices.Clone(evs)
}

// replace replaces the log by renaming a new file onto it (git checkout).
func (h *harness) replace(evs []*eventlog.Event) {
	h.t.Helper()
	tmp := filepath.Join(h.dir, ".data.json.tmp")
	if err := os.WriteFile(tmp, eventlog.Format(evs), 0o644); err != nil {
		h.t.Fatal(err)
	}
	if err := os.Rename(tmp, h.path); err != nil {
		h.t.Fatal(err)
	}
	h.evs = slices.Clone(evs)
}

func (h *harness) writeRaw(b []byte) {
	h.t.Helper()
	if err := os.WriteFile(h.path, b, 0o644); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) appendRaw(b []byte) {
	h.t.Helper()
	f, err := os.OpenFile(h.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		h.t.Fatal(err)
	}
	if _, err := f.Write(b); err != nil {
		h.t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		h.t.Fatal(err)
	}
}

// lastApplies returns the batches applied since the last call.
func (h *harness) takeApplied() []Applied {
	h.mu.Lock()
	defer h.mu.Unlock()
	a := h.applied
	h.applied = nil
	return a
}

func without(evs []*eventlog.Event, i int) []*eventlog.Event {
	out := slices.Clone(evs[:i])
	return append(out, evs[i+1:]...)
}

func modifier(name, value string) eventlog.Modifier {
	return eventlog.Modifier{Name: name, Value: value}
}
