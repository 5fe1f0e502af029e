package generators

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"github.com/mirrord/mirrord/internal/synth"
	"github.com/mirrord/mirrord/internal/testkit"
	"github.com/mirrord/mirrord/schema"
)

// Generators under power loss and storage faults: a generator's output and
// its position are one batch, so whatever a restart finds, catching up
// leaves exactly what a rebuild from scratch computes.

var genCrashPoints = flag.Int("mirrord.crashpoints", 5, "power cuts per scenario in the power-loss tests")

// cutFS is a crashable in-memory disk that clones itself, as a power cut
// would leave it, before every n-th write.
type cutFS struct {
	mem    *vfs.MemFS
	fs     vfs.FS
	count  atomic.Bool
	writes atomic.Int64
	every  int64
	mu     sync.Mutex
	images []*vfs.MemFS
	rng    *rand.Rand
	// linking: Pebble's MemFS.Link takes its clone lock for reading twice,
	// so a CrashClone that waits for it between the two deadlocks them
	// both (generators ingest side by side); a Link and a clone never
	// overlap.
	linking sync.Mutex
}

// linkGuard is the MemFS with each Link under cutFS.linking.
type linkGuard struct {
	vfs.FS
	mu *sync.Mutex
}

func (l linkGuard) Link(oldname, newname string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.FS.Link(oldname, newname)
}

func newCutFS() *cutFS {
	c := &cutFS{mem: vfs.NewCrashableMem(), rng: rand.New(rand.NewPCG(3, 3))}
	c.fs = errorfs.Wrap(linkGuard{c.mem, &c.linking}, errorfs.InjectorFunc(func(op errorfs.Op) error {
		write := op.Kind == errorfs.OpFileWrite || op.Kind == errorfs.OpFileWriteAt || op.Kind == errorfs.OpCreate ||
			op.Kind == errorfs.OpFileSync || op.Kind == errorfs.OpLink || op.Kind == errorfs.OpRename
		if c.count.Load() && write {
			if n := c.writes.Add(1); c.every > 0 && n%c.every == 0 {
				c.mu.Lock()
				pct := []int{0, 40, 100}[len(c.images)%3]
				c.linking.Lock() // the injector runs before the op: a Link of its own is not under way
				c.images = append(c.images, c.mem.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: pct, RNG: c.rng}))
				c.linking.Unlock()
				c.mu.Unlock()
			}
		}
		return nil
	}))
	return c
}

func newEnvOn(t *testing.T, fsys vfs.FS, path string) *env {
	t.Helper()
	e := &env{t: t, path: path, fs: fsys, opts: Options{Enabled: []string{"summary", "hashtags"}, MaxIDs: 7,
		Logger: testkit.QuietLogger(), RetryMin: time.Millisecond, RetryMax: 10 * time.Millisecond}}
	e.open()
	t.Cleanup(func() { e.db.Close() })
	return e
}

// fromScratch is every generator's keys (values and index) as a fresh
// store computes them from the log at path.
func fromScratch(t *testing.T, path string) map[string]map[string]string {
	t.Helper()
	e := newEnvOn(t, vfs.NewMem(), path)
	e.sync()
	return map[string]map[string]string{"summary": e.all("summary"), "hashtags": e.all("hashtags")}
}

func checkLikeScratch(t *testing.T, e *env, want map[string]map[string]string, what string) {
	t.Helper()
	for name, w := range want {
		if got := e.all(name); !equalMaps(w, got) {
			t.Fatalf("%s: %s holds %d keys, a rebuild from scratch %d", what, name, len(got), len(w))
		}
	}
}

// Power cuts while the generators run (their first rebuild, in several
// commits, then incremental runs over appends and a deleting rewrite).
func TestGeneratorsPowerLoss(t *testing.T) {
	gen := synth.New(5)
	path := filepath.Join(t.TempDir(), "data.json")
	act := func(e *env, c *cutFS) {
		// Cuts land anywhere from the generators' first run on, also in
		// the mirror's batches between their runs: Pebble writes its WAL
		// behind the commits, so the generators' writes reach the disk
		// during what follows them.
		c.count.Store(true)
		defer c.count.Store(false)
		if err := e.run.CatchUp(e.ctx(), 1); err != nil {
			t.Fatal(err)
		}
		for range 3 {
			e.appendEvents(gen.Events(10)...)
			if err := e.eng.Sync(e.ctx()); err != nil {
				t.Fatal(err)
			}
			if err := e.run.CatchUp(e.ctx(), 1); err != nil {
				t.Fatal(err)
			}
		}
		e.write(e.evs[3:])
		if err := e.eng.Sync(e.ctx()); err != nil {
			t.Fatal(err)
		}
		if err := e.run.CatchUp(e.ctx(), 1); err != nil {
			t.Fatal(err)
		}
		if err := e.db.Close(); err != nil { // writes what the WAL buffer holds
			t.Fatal(err)
		}
	}
	setup := func(c *cutFS) *env {
		e := newEnvOn(t, c.fs, path)
		e.write(gen.Events(60))
		if err := e.eng.Sync(e.ctx()); err != nil {
			t.Fatal(err)
		}
		return e
	}
	gen = synth.New(5)
	dry := newCutFS()
	act(setup(dry), dry)
	gen = synth.New(5)
	rec := newCutFS()
	rec.every = max(1, dry.writes.Load()/int64(*genCrashPoints+1))
	e := setup(rec)
	act(e, rec)
	want := fromScratch(t, path)
	e.open()
	checkLikeScratch(t, e, want, "without a cut")
	rec.mu.Lock()
	images := rec.images
	rec.mu.Unlock()
	// Pebble writes its WAL behind the commits, coalescing them: a busy
	// machine sees fewer writes (two, once, in CI) and a cut can only fall
	// on one, so the count of cuts varies; there must be some.
	t.Logf("%d cuts over %d writes (%d in the dry run)", len(images), rec.writes.Load(), dry.writes.Load())
	if len(images) == 0 {
		t.Fatalf("no power cut over %d writes", rec.writes.Load())
	}
	for i, img := range images {
		r := newEnvOn(t, img, path)
		r.sync()
		checkLikeScratch(t, r, want, fmt.Sprintf("cut %d of %d", i+1, len(rec.images)))
	}
}

// genState is what a reader sees of a generator: its values, its state
// and its position (without the time it was written).
func genState(t *testing.T, e *env, name string) map[string]string {
	t.Helper()
	st := e.all(name)
	var p position
	found, err := e.db.Get(schema.GeneratorStateKey(name), &p)
	if err != nil {
		t.Fatal(err)
	}
	st["position"] = fmt.Sprintf("%v seq=%d rebuild=%v version=%d", found, p.Seq, p.Rebuild, p.Version)
	return st
}

// A power cut at any point of a streamed rebuild leaves each generator as
// it was before it or as the rebuild made it, never a mix: what a rebuild
// writes reaches the store in one ingest, values, state and position
// together. (The images are opened as they are, before any catching up.)
func TestStreamedRebuildPowerLoss(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data.json")
	c := newCutFS()
	e := newEnvOn(t, c.fs, path)
	gen := synth.New(11)
	e.write(gen.Events(300))
	e.sync()
	// The log changes behind the generators' back, and a rebuild is asked
	// for: the old state is what the generators computed before.
	e.appendEvents(gen.Events(200)...)
	if err := e.eng.Sync(e.ctx()); err != nil {
		t.Fatal(err)
	}
	names := []string{"summary", "hashtags"}
	for _, n := range names {
		if err := MarkRebuild(e.db, n); err != nil {
			t.Fatal(err)
		}
	}
	old := map[string]map[string]string{}
	for _, n := range names {
		old[n] = genState(t, e, n)
	}
	e.open() // closed first: everything so far on disk
	c.every = 1
	c.count.Store(true)
	if err := e.run.CatchUp(e.ctx(), 1); err != nil {
		t.Fatal(err)
	}
	c.count.Store(false)
	e.open()
	rebuilt := map[string]map[string]string{}
	for _, n := range names {
		rebuilt[n] = genState(t, e, n)
		if equalMaps(rebuilt[n], old[n]) {
			t.Fatalf("%s: the rebuild changed nothing: the test proves nothing", n)
		}
	}
	c.mu.Lock()
	images := c.images
	c.mu.Unlock()
	if len(images) < 10 {
		t.Fatalf("%d power cuts: too few to fall inside the rebuild's ingest", len(images))
	}
	var sawOld, sawNew int
	for i, img := range images {
		r := newEnvOn(t, img, path)
		for _, n := range names {
			got := genState(t, r, n)
			switch {
			case equalMaps(got, old[n]):
				sawOld++
			case equalMaps(got, rebuilt[n]):
				sawNew++
			default:
				t.Fatalf("cut %d of %d: %s is neither as it was (%d keys) nor as rebuilt (%d keys): %d keys, %s",
					i+1, len(images), n, len(old[n]), len(rebuilt[n]), len(got), got["position"])
			}
		}
		r.db.Close()
	}
	t.Logf("%d cuts: %d generator states as they were, %d as rebuilt", len(images), sawOld, sawNew)
	if sawOld == 0 || sawNew == 0 {
		t.Fatalf("the cuts saw %d old and %d new states: they missed one side of the ingest", sawOld, sawNew)
	}
}

// A power cut at any point of a resync that rebuilds the generators
// beside it leaves the mirror and the generators together as they were,
// or together as the resync made them: one ingest puts both in place.
func TestRebuildBesideTheLoadPowerLoss(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data.json")
	c := newCutFS()
	e := newEnvOn(t, c.fs, path)
	e.feed = true
	gen := synth.New(12)
	e.write(gen.Events(400))
	e.open() // with the feed
	e.sync()
	e.write(append(e.evs[50:], gen.Events(100)...))
	names := []string{"summary", "hashtags"}
	state := func(e *env) map[string]map[string]string {
		out := map[string]map[string]string{}
		for _, n := range names {
			out[n] = genState(t, e, n)
		}
		var cp struct{ Seq uint64 }
		if _, err := e.db.Get(schema.CheckpointKey, &cp); err != nil {
			t.Fatal(err)
		}
		out["checkpoint"] = map[string]string{"seq": fmt.Sprint(cp.Seq)}
		return out
	}
	old := state(e)
	e.open()
	c.every = 1
	c.count.Store(true)
	if err := e.eng.Resync(e.ctx()); err != nil {
		t.Fatal(err)
	}
	c.count.Store(false)
	e.open()
	resynced := state(e)
	c.mu.Lock()
	images := c.images
	c.mu.Unlock()
	var sawOld, sawNew int
	for i, img := range images {
		r := newEnvOn(t, img, path)
		got := state(r)
		r.db.Close()
		// Before the ingest the resync marker may be set, the rest old.
		like := func(want map[string]map[string]string) bool {
			for k, w := range want {
				if !equalMaps(got[k], w) {
					return false
				}
			}
			return true
		}
		switch {
		case like(old):
			sawOld++
		case like(resynced):
			sawNew++
		default:
			t.Fatalf("cut %d of %d: the generators and the mirror are neither as they were nor as resynced: checkpoint %v, summary %s, hashtags %s",
				i+1, len(images), got["checkpoint"], got["summary"]["position"], got["hashtags"]["position"])
		}
	}
	t.Logf("%d cuts: %d as they were, %d as resynced", len(images), sawOld, sawNew)
	if sawOld == 0 || sawNew == 0 {
		t.Fatalf("the cuts saw %d old and %d new states: they missed one side of the ingest", sawOld, sawNew)
	}
}
