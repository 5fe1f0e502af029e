package mirror

import (
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"github.com/mirrord/mirrord/internal/faultfs"
	"github.com/mirrord/mirrord/internal/synth"
	"github.com/mirrord/mirrord/kv"
	"github.com/mirrord/mirrord/schema"
)

// Power loss: the store lives on Pebble's crashable in-memory file system,
// and at many points of an operation (every n-th write the store makes)
// the disk is cloned as a power cut would leave it: what was synced, and
// a random part (none, some, all) of what was not. Each image must reopen
// as a consistent store (its data equal to the log prefix its checkpoint
// names, or marked as a rebuild or reconcile in progress) that catches up
// with the log and then verifies.

var crashPoints = flag.Int("mirrord.crashpoints", 5, "power cuts per scenario in the power-loss tests")

// testFS is a crashable in-memory file system behind errorfs: a switchable
// fault, and a recorder that clones the disk before chosen write ops.
type testFS struct {
	mem *vfs.MemFS
	fs  vfs.FS

	fault atomic.Pointer[func(errorfs.Op) error]

	writes   atomic.Int64 // write ops seen while counting
	applies  atomic.Int64 // batches committed while counting
	counting atomic.Bool
	every    int64 // clone before every n-th write (0: never)
	everyApp int64 // clone after every n-th committed batch (0: never)
	mu       sync.Mutex
	images   []crashImage
	rng      *rand.Rand
}

// crashImage is the disk after a power cut.
type crashImage struct {
	fs       *vfs.MemFS
	at       string
	unsynced int // percent of the unsynced data kept
}

func newTestFS() *testFS {
	f := &testFS{mem: vfs.NewCrashableMem(), rng: rand.New(rand.NewPCG(7, 7))}
	f.fs = errorfs.Wrap(f.mem, errorfs.InjectorFunc(f.inject))
	return f
}

func (f *testFS) cut(at string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	pct := []int{0, 40, 100}[len(f.images)%3]
	f.images = append(f.images, crashImage{at: at, unsynced: pct,
		fs: f.mem.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: pct, RNG: f.rng})})
}

// applied is the engine's OnApply: a power cut right after a commit
// returned (a batch Pebble holds in its WAL buffer, or wrote unsynced).
func (f *testFS) applied(Applied) {
	if f.counting.Load() {
		if n := f.applies.Add(1); f.everyApp > 0 && n%f.everyApp == 0 {
			f.cut(fmt.Sprintf("after batch %d", n))
		}
	}
}

func (f *testFS) inject(op errorfs.Op) error {
	if f.counting.Load() && faultfs.IsWriteOp(op.Kind) {
		if n := f.writes.Add(1); f.every > 0 && n%f.every == 0 {
			f.cut(fmt.Sprintf("before write %d", n))
		}
	}
	if fn := f.fault.Load(); fn != nil {
		return (*fn)(op)
	}
	return nil
}

func (f *testFS) setFault(fn func(errorfs.Op) error) {
	if fn == nil {
		f.fault.Store(nil)
		return
	}
	f.fault.Store(&fn)
}

// restart is the disk as a restart finds it: after the process died
// (everything written) or after a power cut (synced data only).
func (f *testFS) restart(powerLoss bool) *vfs.MemFS {
	pct := 100
	if powerLoss {
		pct = 0
	}
	return f.mem.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: pct, RNG: rand.New(rand.NewPCG(1, 2))})
}

// newHarnessOn is newHarness with the store on the given file system.
func newHarnessOn(t *testing.T, fsys vfs.FS, mod func(*Options)) *harness {
	t.Helper()
	h := &harness{t: t, dir: t.TempDir(), fs: fsys, gen: synth.New(uint64(len(t.Name()))),
		clock: &fakeClock{now: time.Now().Add(24 * time.Hour)}}
	h.path = filepath.Join(h.dir, "data.json")
	h.opts = Options{EventLog: h.path, Now: h.clock.Now, Logger: testLogger(t)}
	if mod != nil {
		mod(&h.opts)
	}
	h.open()
	t.Cleanup(func() { closeDB(t, h.db) })
	return h
}

// reopenOn restarts h's engine on another disk (a crash image); the old
// handle is closed, or, when it failed, abandoned (see closeDB).
func (h *harness) reopenOn(fsys vfs.FS) {
	h.t.Helper()
	closeDB(h.t, h.db)
	h.fs, h.db = fsys, nil
	h.open()
}

// checkConsistent checks a store just reopened: either it is marked as a
// rebuild or multi-batch reconcile in progress, or its data equals the
// prefix of one of the log's versions that its checkpoint names (the
// checkpoint never runs ahead of, or behind, the data it was written
// with). versions are files holding the log as it stood at some time.
func checkConsistent(t *testing.T, db *kv.DB, versions ...string) string {
	t.Helper()
	for _, m := range []string{schema.ResyncMarkerKey, schema.ReconcileMarkerKey} {
		if found, err := db.Get(m, nil); err != nil {
			t.Fatal(err)
		} else if found {
			return "marked " + m
		}
	}
	var last error
	for _, v := range versions {
		r, err := VerifyCheckpoint(t.Context(), db, v, 0)
		if errors.Is(err, ErrLogChanged) {
			last = err
			continue
		}
		if err != nil {
			t.Fatalf("VerifyCheckpoint: %v", err)
		}
		if !r.OK() {
			t.Fatalf("the reopened store disagrees with its own checkpoint: %s\nmissing %q extra %q differ %q bookkeeping %q",
				r.Summary(), r.MissingKeys, r.ExtraKeys, r.DifferKeys, r.BookkeepingKeys)
		}
		return fmt.Sprintf("checkpoint at %d of %s", r.Covered, filepath.Base(v))
	}
	t.Fatalf("the reopened store's checkpoint matches no version of the log: %v", last)
	return ""
}

// saveVersion copies the log as it stands now (for checkConsistent).
func (h *harness) saveVersion(name string) string {
	h.t.Helper()
	b, err := os.ReadFile(h.path)
	if err != nil {
		h.t.Fatal(err)
	}
	p := filepath.Join(h.dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		h.t.Fatal(err)
	}
	return p
}

// A power cut at many points of each kind of write: the first load (a
// bulk ingest), tail applies, a reconcile spanning several batches, and a
// resync. Every image reopens consistent, catches up, and verifies.
func TestPowerLossAtManyPoints(t *testing.T) {
	small := func(o *Options) { o.ChunkBytes = 2048 } // many batches per apply
	for _, tc := range []struct {
		name  string
		setup func(h *harness) // before the cuts
		act   func(h *harness) // cut while this runs
	}{
		{"first load", func(h *harness) {
			smallSortBudgets(h.t) // sorted runs in bulk-tmp, several sstables
			h.appendEvents(h.newEvents(150)...)
			h.saveVersion("v0")
		}, func(h *harness) { h.sync() }},
		{"tail applies", func(h *harness) {
			h.appendEvents(h.newEvents(20)...)
			h.sync()
			h.saveVersion("v0")
		}, func(h *harness) {
			for range 3 {
				h.appendEvents(h.newEvents(15)...)
				h.sync()
			}
		}},
		{"reconcile", func(h *harness) {
			h.appendEvents(h.newEvents(60)...)
			h.sync()
			h.saveVersion("v0")
		}, func(h *harness) {
			evs := without(without(h.evs, 3), 40)
			for _, ev := range evs[10:30] {
				ev.Description += " (edited)"
			}
			h.rewrite(evs)
			h.sync()
		}},
		{"resync", func(h *harness) {
			smallSortBudgets(h.t)
			h.appendEvents(h.newEvents(100)...)
			h.sync()
			h.appendEvents(h.newEvents(10)...)
			h.saveVersion("v0")
		}, func(h *harness) {
			if err := h.e.Resync(h.ctx()); err != nil {
				h.t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A dry run counts the writes, so that the cuts spread over
			// the whole operation.
			dry := newTestFS()
			h := newHarnessOn(t, dry.fs, func(o *Options) { small(o); o.OnApply = dry.applied })
			tc.setup(h)
			dry.counting.Store(true)
			tc.act(h)
			total, applies := dry.writes.Load(), dry.applies.Load()

			rec := newTestFS()
			rec.every = max(1, total/int64(*crashPoints+1))
			rec.everyApp = max(1, applies/int64(*crashPoints+1))
			h = newHarnessOn(t, rec.fs, func(o *Options) { small(o); o.OnApply = rec.applied })
			tc.setup(h)
			rec.counting.Store(true)
			tc.act(h)
			rec.counting.Store(false)
			h.verify()
			// Pebble's WAL flusher may still be cutting (its write passed
			// the counting check before it was turned off): the images
			// are read under the recorder's lock.
			rec.mu.Lock()
			images := rec.images
			rec.mu.Unlock()
			// The cuts after batches are as many as asked (the batches do
			// not vary); those on writes vary with how Pebble coalesces
			// its WAL writes on a busy machine.
			if want := max(1, min(*crashPoints, int(applies))); len(images) < want {
				t.Fatalf("%d power cuts over %d writes and %d batches, want %d", len(images), total, applies, want)
			}
			versions := []string{h.path, filepath.Join(h.dir, "v0")}
			for _, img := range images {
				h.reopenOn(img.fs)
				state := checkConsistent(t, h.db, versions...)
				if _, err := img.fs.Stat("/store/bulk-tmp"); err == nil {
					t.Fatalf("cut %s: a reopened store keeps the temporary files of the interrupted load", img.at)
				}
				h.sync()
				h.verify()
				t.Logf("cut %s (of %d writes, %d batches; %d%% of unsynced data kept): %s; caught up and verified",
					img.at, total, applies, img.unsynced, state)
			}
		})
	}
}
