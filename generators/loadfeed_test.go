package generators

import (
	"errors"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/mirrord/mirrord/eventlog"
	"github.com/mirrord/mirrord/internal/synth"
	"github.com/mirrord/mirrord/internal/testkit"
	"github.com/mirrord/mirrord/schema"
)

// newFedEnv is an env whose engine rebuilds the generators beside its
// bulk loads, as sync --once does.
func newFedEnv(t *testing.T, enabled ...string) *env {
	t.Helper()
	e := &env{t: t, path: t.TempDir() + "/data.json", opts: Options{Enabled: enabled, Logger: testkit.QuietLogger(),
		RetryMin: time.Millisecond, RetryMax: 20 * time.Millisecond}, feed: true}
	e.fs = vfs.NewMem()
	e.open()
	t.Cleanup(func() { e.db.Close() })
	return e
}

// positionOf reads a generator's position.
func positionOf(t *testing.T, e *env, name string) position {
	t.Helper()
	var p position
	if _, err := e.db.Get(schema.GeneratorStateKey(name), &p); err != nil {
		t.Fatal(err)
	}
	return p
}

// A first load and a resync rebuild the built-in generators beside them:
// once the load is in place, so are their values, state and positions (at
// the load's reset entry), equal to a rebuild from the store; a generator
// that cannot be fed rebuilds from the store after, as before. The same
// with their writes spilt to runs and written out in parts side by side.
func TestRebuildBesideTheLoad(t *testing.T) {
	t.Run("whole", testRebuildBesideTheLoad)
	t.Run("spilt, in parts", func(t *testing.T) {
		defer func(n int, p int64, parts func() int) {
			streamBudget, outputPartBytes, outputParts = n, p, parts
		}(streamBudget, outputPartBytes, outputParts)
		streamBudget, outputPartBytes, outputParts = 64<<10, 16<<10, func() int { return 3 }
		testRebuildBesideTheLoad(t)
	})
}

func testRebuildBesideTheLoad(t *testing.T) {
	e := newFedEnv(t, "summary", "hashtags", "test-counter")
	e.appendEvents(synth.New(21).Events(3000)...)
	if err := e.eng.Sync(e.ctx()); err != nil {
		t.Fatal(err)
	}
	seq := e.eng.Checkpoint().Seq
	for _, name := range []string{"summary", "hashtags"} {
		if p := positionOf(t, e, name); p.Seq != seq || p.Rebuild || p.Version != registeredVersionOf(t, name) {
			t.Fatalf("%s after the load, before any catching up: %+v, want position %d", name, p, seq)
		}
	}
	checkSummary(t, e)
	checkHashtags(t, e)
	if n := len(e.generated("test-counter")); n != 0 {
		t.Fatalf("a generator that cannot be fed holds %d values after the load", n)
	}
	fed := map[string]map[string]string{"summary": e.all("summary"), "hashtags": e.all("hashtags")}
	if err := e.run.CatchUp(e.ctx(), 1); err != nil {
		t.Fatal(err)
	}
	if n := len(e.generated("test-counter")); n != 3000 {
		t.Fatalf("the generator not fed holds %d values after catching up, want 3000", n)
	}
	for name, want := range fed {
		if got := e.all(name); !equalMaps(got, want) {
			t.Fatalf("%s changed when the runner caught up after the load", name)
		}
		if err := MarkRebuild(e.db, name); err != nil {
			t.Fatal(err)
		}
	}
	e.sync()
	for name, want := range fed {
		if got := e.all(name); !equalMaps(got, want) {
			t.Fatalf("%s: a rebuild from the store differs from the one beside the load (%d keys vs %d)", name, len(got), len(want))
		}
	}

	// A resync, with the log changed meanwhile.
	e.appendEvents(synth.New(22).Events(500)...)
	e.write(e.evs[100:])
	if err := e.eng.Resync(e.ctx()); err != nil {
		t.Fatal(err)
	}
	seq = e.eng.Checkpoint().Seq
	for _, name := range []string{"summary", "hashtags"} {
		if p := positionOf(t, e, name); p.Seq != seq {
			t.Fatalf("%s after the resync: position %d, want %d", name, p.Seq, seq)
		}
	}
	checkSummary(t, e)
	checkHashtags(t, e)
}

// A load that does not complete leaves the generators as they were, with
// nothing of theirs left running or on disk.
func TestLoadFeedAbandoned(t *testing.T) {
	defer func(n int) { streamBudget = n }(streamBudget)
	streamBudget = 64 << 10 // runs on disk
	e := newFedEnv(t, "summary", "hashtags")
	before := runtime.NumGoroutine()
	f := e.run.LoadFeed()
	if f == nil {
		t.Fatal("no feed for the built-in generators")
	}
	sinks := f.Start(2)
	for i, ev := range synth.New(5).Events(2000) {
		raw, err := ev.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		sinks[i%2]([]byte(schema.EventKey(ev.ID)), raw, eventlog.FieldOffsets{}) // no offsets: each is parsed
	}
	// The generators read the events in goroutines of their own: await
	// their first run on disk (without one the test would miss the runs'
	// removal).
	fs, dir := e.db.TempDir()
	testkit.Eventually(t, "the generators spilt a run", func() error {
		if names, _ := fs.List(dir); len(names) == 0 {
			return errors.New("no run on disk")
		}
		return nil
	})
	f.Done(false)
	if n := len(e.all("summary")) + len(e.all("hashtags")); n != 0 {
		t.Fatalf("an abandoned load left %d generator keys", n)
	}
	if names, _ := fs.List(dir); len(names) != 0 {
		t.Fatalf("an abandoned load left files: %v", names)
	}
	testkit.Eventually(t, "the abandoned feed's goroutines end", func() error {
		if n := runtime.NumGoroutine(); n > before {
			return fmt.Errorf("%d goroutines before the feed, %d after it was abandoned", before, n)
		}
		return nil
	})
}
