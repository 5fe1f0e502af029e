package generators

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mirrord/mirrord/eventlog"
	"github.com/mirrord/mirrord/internal/synth"
	"github.com/mirrord/mirrord/internal/testkit"
	"github.com/mirrord/mirrord/kv"
	"github.com/mirrord/mirrord/schema"
)

// Test generators, controlled by the tests through these variables.
var (
	failOn   atomic.Value // string: the id "test-fail" errors on
	panicOn  atomic.Value // string: the id "test-panic" panics on
	slowGate = make(chan struct{})
	slowIn   = make(chan struct{}, 100)
	evilKeys = []string{"../event:x", "a:b", "%3A", ":", "\x00", "event:evil", ".", "x/../../mirrord:checkpoint"}
)

// counter counts events per id: generated:{name}:{id} = 1.
type counter struct{}

func (counter) Update(_ context.Context, in *Input, out *Scope) error {
	return in.Events(func(id string, ev *eventlog.Event) error {
		if ev == nil {
			return out.Delete(id)
		}
		return out.Put(id, 1)
	})
}

type failing struct{}

func (f failing) Update(ctx context.Context, in *Input, out *Scope) error {
	bad, _ := failOn.Load().(string)
	return in.Events(func(id string, ev *eventlog.Event) error {
		if id == bad {
			return errors.New("cannot digest this one")
		}
		return out.Put(id, 1)
	})
}

type panicking struct{}

func (panicking) Update(_ context.Context, in *Input, out *Scope) error {
	bad, _ := panicOn.Load().(string)
	return in.Events(func(id string, ev *eventlog.Event) error {
		if id == bad {
			m := uninitialised()
			m["boom"]++ // a nil-map panic, as a buggy generator would
		}
		return out.Put(id, 1)
	})
}

func uninitialised() map[string]int { return nil }

type slow struct{ counter }

func (s slow) Update(ctx context.Context, in *Input, out *Scope) error {
	slowIn <- struct{}{}
	select {
	case <-slowGate:
	case <-ctx.Done():
		return ctx.Err()
	}
	return s.counter.Update(ctx, in, out)
}

// meeting is a generator that runs only beside its partner: each says it
// has started and waits for the other, so that run one after the other
// the first waits until its context ends.
type meeting struct {
	arrived, partner chan struct{}
}

var meetA, meetB = make(chan struct{}, 1), make(chan struct{}, 1)

func (m meeting) Update(ctx context.Context, in *Input, out *Scope) error {
	m.arrived <- struct{}{}
	select {
	case <-m.partner:
	case <-ctx.Done():
		return ctx.Err()
	}
	return counter{}.Update(ctx, in, out)
}

type evil struct{}

func (evil) Update(_ context.Context, in *Input, out *Scope) error {
	for _, k := range evilKeys {
		if err := out.Put(k, "owned"); err != nil {
			return err
		}
	}
	return nil
}

func init() {
	failOn.Store("")
	panicOn.Store("")
	Register("test-counter", func() Generator { return counter{} })
	Register("test-fail", func() Generator { return failing{} })
	Register("test-panic", func() Generator { return panicking{} })
	Register("test-slow", func() Generator { return slow{} })
	Register("test-evil", func() Generator { return evil{} })
	Register("test-meet-a", func() Generator { return meeting{arrived: meetA, partner: meetB} })
	Register("test-meet-b", func() Generator { return meeting{arrived: meetB, partner: meetA} })
}

// CatchUp (what "sync" runs) brings the generators up to date side by
// side, not one after the other: two generators that each wait for the
// other to start both finish.
func TestCatchUpRunsGeneratorsSideBySide(t *testing.T) {
	e := newEnv(t, Options{Enabled: []string{"test-meet-a", "test-meet-b"}})
	e.appendEvents(synth.New(3).Events(5)...)
	if err := e.eng.Sync(e.ctx()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.run.CatchUp(ctx, 1); err != nil {
		t.Fatalf("CatchUp: %v (one generator waited for the other in vain: they ran one after the other)", err)
	}
	for _, st := range e.run.Statuses() {
		if st.Lag != 0 || st.State != "idle" {
			t.Fatalf("%s after CatchUp: %+v", st.Name, st)
		}
	}
}

func TestRegistry(t *testing.T) {
	names := Names()
	for _, n := range []string{"summary", "hashtags"} {
		if !strings.Contains(strings.Join(names, ","), n) {
			t.Fatalf("built-in %s not registered: %v", n, names)
		}
	}
	if err := CheckNames([]string{"summary", "sumary"}); !errors.Is(err, ErrUnknown) || !strings.Contains(err.Error(), `"sumary"`) {
		t.Fatalf("CheckNames of an unknown name: %v", err)
	}
	if _, err := NewRunner(newEnv(t, Options{Enabled: []string{}}).db, &Options{Enabled: []string{"nope"}}); !errors.Is(err, ErrUnknown) {
		t.Fatalf("NewRunner with an unknown name: %v", err)
	}
	for _, bad := range []string{"", "Upper", "a:b", "-x"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Register(%q) did not panic", bad)
				}
			}()
			Register(bad, func() Generator { return counter{} })
		}()
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("a duplicate Register did not panic")
			}
		}()
		Register("summary", func() Generator { return counter{} })
	}()
}

// A generator can write nothing but generated:{its name}:*, whatever key
// it makes up.
func TestScopeCannotEscape(t *testing.T) {
	e := newEnv(t, Options{Enabled: []string{"test-evil"}})
	e.appendEvents(synth.New(1).Events(3)...)
	if err := e.eng.Sync(e.ctx()); err != nil {
		t.Fatal(err)
	}
	before := map[string]bool{}
	keys, _ := e.db.Keys("")
	for _, k := range keys {
		before[k] = true
	}
	if err := e.run.CatchUp(e.ctx(), 1); err != nil {
		t.Fatal(err)
	}
	after, _ := e.db.Keys("")
	var written []string
	for _, k := range after {
		if !before[k] {
			written = append(written, k)
		}
	}
	wantOwn := len(evilKeys)
	own := 0
	for _, k := range written {
		switch {
		case strings.HasPrefix(k, schema.GeneratorPrefix("test-evil")):
			p, err := schema.ParseKey(k)
			if err != nil || p.Kind != schema.KeyGenerated || p.Generator != "test-evil" {
				t.Errorf("key %q parses as %+v, %v", k, p, err)
			}
			own++
		case k == schema.GeneratorStateKey("test-evil"):
		default:
			t.Errorf("the generator wrote %q, outside its scope", k)
		}
	}
	if own != wantOwn {
		t.Fatalf("wrote %d keys in its scope, want %d: %q", own, wantOwn, written)
	}
	var v string
	if found, _ := e.db.Get(schema.CheckpointKey, nil); !found {
		t.Fatal("the checkpoint is gone")
	}
	if found, _ := e.db.Get(schema.GeneratedKey("test-evil", "../event:x"), &v); !found || v != "owned" {
		t.Fatalf("the escaped key was not stored as a generated value: %q %v", v, found)
	}
}

func TestScopeReadsItsOwnWrites(t *testing.T) {
	e := newEnv(t, Options{Enabled: []string{}})
	if err := e.db.Batch([]kv.Op{
		kv.PutOp(schema.GeneratedKey("g", "a"), 1),
		kv.PutOp(schema.GeneratedKey("g", "b"), 2),
		kv.PutOp(schema.GeneratedKey("g", "d"), 4),
		kv.PutOp(schema.GeneratedKey("other", "a"), 9),
	}); err != nil {
		t.Fatal(err)
	}
	s := newScope("g", e.db, false)
	_ = s.Put("c", 3)
	_ = s.Delete("b")
	_ = s.Put("d", 40)
	var n int
	if found, _ := s.Get("b", &n); found {
		t.Fatal("a pending delete is still visible")
	}
	if found, _ := s.Get("c", &n); !found || n != 3 {
		t.Fatalf("a pending put is not visible: %d %v", n, found)
	}
	var seen []string
	_ = s.Scan("", func(k string, v json.RawMessage) error { seen = append(seen, k+"="+string(v)); return nil })
	if got := strings.Join(seen, " "); got != "a=1 c=3 d=40" {
		t.Fatalf("Scan with pending writes: %s", got)
	}
	// A cleared scope (a rebuild) sees only its pending writes.
	c := newScope("g", e.db, true)
	_ = c.Put("z", 26)
	seen = nil
	_ = c.Scan("", func(k string, v json.RawMessage) error { seen = append(seen, k); return nil })
	if strings.Join(seen, " ") != "z" {
		t.Fatalf("cleared Scan: %v", seen)
	}
	if found, _ := c.Get("a", nil); found {
		t.Fatal("a cleared scope still sees old values")
	}
}

func TestPositionsAndPruning(t *testing.T) {
	e := newEnv(t, Options{Enabled: []string{"test-counter", "summary"}})
	gen := synth.New(2)
	e.appendEvents(gen.Events(20)...)
	e.sync()
	for i := 0; i < 5; i++ {
		e.appendEvents(gen.Events(2)...)
		e.sync()
	}
	for _, s := range e.run.Statuses() {
		if s.Lag != 0 || s.Position != e.eng.Checkpoint().Seq || s.State != "idle" {
			t.Fatalf("status after catch-up: %+v (feed head %d)", s, e.eng.Checkpoint().Seq)
		}
	}
	if n := e.feedLen(); n != 0 {
		t.Fatalf("%d feed entries remain after every generator passed them", n)
	}
	if got := len(e.generated("test-counter")); got != len(e.winners()) {
		t.Fatalf("counter holds %d values, want %d", got, len(e.winners()))
	}
}

// A failing or panicking generator is reported with the event's id and
// retried; the mirror and the other generators go on.
func TestFailingGeneratorIsIsolatedAndRetried(t *testing.T) {
	for _, bad := range []string{"test-fail", "test-panic"} {
		t.Run(bad, func(t *testing.T) {
			e := newEnv(t, Options{Enabled: []string{"test-counter", bad}})
			evs := synth.New(3).Events(10)
			poison := evs[4].ID
			failOn.Store(poison)
			panicOn.Store(poison)
			defer failOn.Store("")
			defer panicOn.Store("")
			e.appendEvents(evs...)
			if err := e.eng.Sync(e.ctx()); err != nil {
				t.Fatal(err)
			}
			err := e.run.CatchUp(e.ctx(), 3)
			if err == nil || !strings.Contains(err.Error(), bad) {
				t.Fatalf("CatchUp with a poison event: %v", err)
			}
			s := e.status(bad)
			if s.State != "failing" || s.LastEvent != poison || s.LastError == "" {
				t.Fatalf("status of the failing generator: %+v", s)
			}
			if bad == "test-panic" && !strings.Contains(s.LastError, "panic") {
				t.Fatalf("a panic is not reported as one: %q", s.LastError)
			}
			if c := e.status("test-counter"); c.Lag != 0 || len(e.generated("test-counter")) != 10 {
				t.Fatalf("the healthy generator was held back: %+v", c)
			}
			if s.Position != 0 {
				t.Fatalf("the failing generator advanced to %d", s.Position)
			}
			// The feed is kept for the failing generator.
			if e.feedLen() == 0 {
				t.Fatal("feed pruned past a generator that has not processed it")
			}
			// Fixed: it catches up.
			failOn.Store("")
			panicOn.Store("")
			if err := e.run.CatchUp(e.ctx(), 1); err != nil {
				t.Fatal(err)
			}
			if got := len(e.generated(bad)); got != 10 {
				t.Fatalf("after the fix the generator holds %d values", got)
			}
		})
	}
}

// While following, a failing generator retries with growing delays and
// the others stay current; a slow one delays nobody.
func TestRunIsolatesSlowAndFailingGenerators(t *testing.T) {
	e := newEnv(t, Options{Enabled: []string{"test-counter", "test-slow", "test-fail"}})
	evs := synth.New(4).Events(5)
	failOn.Store(evs[0].ID)
	defer failOn.Store("")
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); e.run.Run(ctx) }()
	defer func() {
		cancel()
		close(slowGate)
		wg.Wait()
		slowGate = make(chan struct{})
	}()

	e.appendEvents(evs...)
	if err := e.eng.Sync(e.ctx()); err != nil {
		t.Fatal(err)
	}
	e.run.Notify()
	select {
	case <-slowIn:
	case <-time.After(10 * time.Second):
		t.Fatal("the slow generator never started")
	}
	testkit.Eventually(t, "the counter caught up and the failing generator retried thrice, past the slow one", func() error {
		if c, f := e.status("test-counter"), e.status("test-fail"); c.Lag != 0 || c.Position == 0 || f.Retries < 3 {
			return fmt.Errorf("counter %+v, failing %+v", c, f)
		}
		return nil
	})
	if s := e.status("test-slow"); (s.State != "running" && s.State != "rebuilding") || s.Position != 0 {
		t.Fatalf("slow generator: %+v", s)
	}
	if f := e.status("test-fail"); f.NextRetry.IsZero() || f.LastEvent != evs[0].ID {
		t.Fatalf("failing generator: %+v", f)
	}
}

func TestBackoffIsCappedExponential(t *testing.T) {
	g := &genRunner{r: &Runner{opts: Options{RetryMin: time.Second, RetryMax: time.Minute}}}
	want := []time.Duration{time.Second, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second}
	for i, w := range want {
		if d := g.backoff(i); d != w {
			t.Fatalf("backoff(%d) = %v, want %v", i, d, w)
		}
	}
	if d := g.backoff(100); d != time.Minute {
		t.Fatalf("backoff(100) = %v, want the cap", d)
	}
}

func TestDisabledGeneratorIsDroppedAndRebuiltWhenEnabledAgain(t *testing.T) {
	e := newEnv(t, Options{Enabled: []string{"test-counter", "summary"}})
	gen := synth.New(5)
	e.appendEvents(gen.Events(10)...)
	e.sync()
	if len(e.all("summary")) == 0 {
		t.Fatal("summary wrote nothing")
	}
	// Disable summary.
	e.opts.Enabled = []string{"test-counter"}
	e.open()
	if found, _ := e.db.Get(schema.GeneratorStateKey("summary"), nil); found {
		t.Fatal("the disabled generator's position was kept")
	}
	if n := len(e.all("summary")); n != 0 {
		t.Fatalf("the disabled generator's %d values were kept", n)
	}
	e.appendEvents(gen.Events(3)...)
	e.sync()
	if n := e.feedLen(); n != 0 {
		t.Fatalf("a disabled generator held %d feed entries", n)
	}
	// Enable it again: it rebuilds from the whole mirror.
	e.opts.Enabled = []string{"test-counter", "summary"}
	e.open()
	e.sync()
	checkSummary(t, e)
}

func TestRebuildAndResync(t *testing.T) {
	e := newEnv(t, Options{Enabled: []string{"summary", "hashtags"}})
	e.appendEvents(synth.New(6).Events(40)...)
	e.sync()
	before := e.all("summary")
	// Damage a value, then rebuild: it is recomputed from the mirror.
	if err := e.db.Put(schema.GeneratedKey("summary", "1999-01"), 1); err != nil {
		t.Fatal(err)
	}
	if err := MarkRebuild(e.db, "summary"); err != nil {
		t.Fatal(err)
	}
	if err := MarkRebuild(e.db, "nope"); !errors.Is(err, ErrUnknown) {
		t.Fatalf("MarkRebuild of an unknown generator: %v", err)
	}
	e.sync()
	if after := e.all("summary"); !equalMaps(before, after) {
		t.Fatalf("rebuild changed the values: %d keys before, %d after", len(before), len(after))
	}
	// A resync rebuilds every generator (through the feed's reset).
	if err := e.eng.Resync(e.ctx()); err != nil {
		t.Fatal(err)
	}
	if n := len(e.all("summary")); n != 0 {
		t.Fatalf("resync left %d generated keys", n)
	}
	if err := e.run.CatchUp(e.ctx(), 1); err != nil {
		t.Fatal(err)
	}
	checkSummary(t, e)
	checkHashtags(t, e)
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// A rebuild that meets a stored event that is not JSON (written around
// mirrord) fails naming it, and writes nothing; the store's other events
// are still there to be rebuilt from once it is gone.
func TestRebuildOverAnEventThatIsNotJSONNamesIt(t *testing.T) {
	e := newEnv(t, Options{Enabled: []string{"test-counter"}})
	evs := synth.New(5).Events(4)
	e.appendEvents(evs...)
	if err := e.eng.Sync(e.ctx()); err != nil {
		t.Fatal(err)
	}
	w := e.db.NewWriteBatch()
	w.PutRaw([]byte(schema.EventKey("zz-bad")), []byte(`{"id": "zz-bad", "date": `))
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	err := e.run.CatchUp(e.ctx(), 1)
	if err == nil {
		t.Fatal("a rebuild over an event that is not JSON succeeded")
	}
	s := e.status("test-counter")
	if s.State != "failing" || s.LastEvent != "zz-bad" || !strings.Contains(s.LastError, "not valid JSON") {
		t.Fatalf("status: %+v", s)
	}
	if got := len(e.generated("test-counter")); got != 0 {
		t.Fatalf("a failed rebuild left %d values", got)
	}
	if err := e.db.Del(schema.EventKey("zz-bad")); err != nil {
		t.Fatal(err)
	}
	if err := e.run.CatchUp(e.ctx(), 1); err != nil {
		t.Fatal(err)
	}
	if got := len(e.generated("test-counter")); got != len(evs) {
		t.Fatalf("after the bad event went the counter holds %d values, want %d", got, len(evs))
	}
}

// A generator whose values were computed by another version of it (an
// older definition of hashtags, say) is rebuilt at the next start,
// without being asked.
func TestAnotherVersionIsRebuilt(t *testing.T) {
	e := newEnv(t, Options{Enabled: []string{"hashtags"}})
	evs := synth.New(8).Events(30)
	evs[0].Input = "#Deep-work and #deep-work"
	e.appendEvents(evs...)
	e.sync()
	checkHashtags(t, e)
	// What an older release left: its position at version 0 and a value
	// by its definition (lower-cased).
	var p position
	if _, err := e.db.Get(schema.GeneratorStateKey("hashtags"), &p); err != nil || p.Version != (hashtags{}).Version() {
		t.Fatalf("position %+v (%v): want version %d", p, err, (hashtags{}).Version())
	}
	p.Version = 0
	if err := e.db.Batch([]kv.Op{
		kv.PutOp(schema.GeneratorStateKey("hashtags"), p),
		kv.PutOp(schema.GeneratedKey("hashtags", "stale"), []string{evs[0].ID}),
	}); err != nil {
		t.Fatal(err)
	}
	e.open()
	if pending, err := e.run.RebuildPending("hashtags"); err != nil || !pending {
		t.Fatalf("a position at another version is not due for a rebuild (%v)", err)
	}
	sts, err := ReadStatuses(e.db)
	if err != nil || len(sts) != 1 || sts[0].State != "rebuild pending" {
		t.Fatalf("ReadStatuses: %+v, %v; want hashtags pending a rebuild", sts, err)
	}
	e.sync()
	checkHashtags(t, e)
	if found, _ := e.db.Get(schema.GeneratedKey("hashtags", "stale"), nil); found {
		t.Fatal("the older version's value survived")
	}
}

// A rebuild is pending until its status says it is done: a caller that
// waits for RebuildPending to turn false (the API's rebuild does) then
// reads "idle", never "rebuilding" with the values already replaced. A
// reset asked while a rebuild runs is done by another rebuild after it.
func TestRebuildPendingUntilStatusSaysDone(t *testing.T) {
	e := newEnv(t, Options{Enabled: []string{"test-counter"}})
	e.appendEvents(synth.New(5).Events(20)...)
	e.sync()
	var rebuilds []string
	testAfterIngest = func(name string) {
		rebuilds = append(rebuilds, e.status(name).State)
		if pending, err := e.run.RebuildPending(name); err != nil || !pending {
			t.Errorf("rebuild %d of %s ingested, status %q: RebuildPending = %v, %v; want true until the status is set",
				len(rebuilds), name, e.status(name).State, pending, err)
		}
		if len(rebuilds) == 1 {
			// Asked again while the first rebuild is finishing.
			if err := e.run.Rebuild(name); err != nil {
				t.Error(err)
			}
		}
	}
	t.Cleanup(func() { testAfterIngest = nil })
	if err := e.run.Rebuild("test-counter"); err != nil {
		t.Fatal(err)
	}
	if err := e.run.CatchUp(e.ctx(), 1); err != nil {
		t.Fatal(err)
	}
	if len(rebuilds) != 2 {
		t.Fatalf("%d rebuilds (%v); want 2: the one asked, and the one asked during it", len(rebuilds), rebuilds)
	}
	if pending, err := e.run.RebuildPending("test-counter"); err != nil || pending {
		t.Errorf("after both rebuilds RebuildPending = %v, %v", pending, err)
	}
	if s := e.status("test-counter"); s.State != "idle" {
		t.Errorf("status %+v, want idle", s)
	}
}
