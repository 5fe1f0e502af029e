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
}

func newCutFS() *cutFS {
	c := &cutFS{mem: vfs.NewCrashableMem(), rng: rand.New(rand.NewPCG(3, 3))}
	c.fs = errorfs.Wrap(c.mem, errorfs.InjectorFunc(func(op errorfs.Op) error {
		write := op.Kind == errorfs.OpFileWrite || op.Kind == errorfs.OpFileWriteAt || op.Kind == errorfs.OpCreate ||
			op.Kind == errorfs.OpFileSync || op.Kind == errorfs.OpLink || op.Kind == errorfs.OpRename
		if c.count.Load() && write {
			if n := c.writes.Add(1); c.every > 0 && n%c.every == 0 {
				c.mu.Lock()
				pct := []int{0, 40, 100}[len(c.images)%3]
				c.images = append(c.images, c.mem.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: pct, RNG: c.rng}))
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
		Logger: quietLogger(), RetryMin: time.Millisecond, RetryMax: 10 * time.Millisecond}}
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
