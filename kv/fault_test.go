package kv

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"github.com/mirrord/mirrord/internal/faultfs"
)

// Storage faults at the kv level, through Pebble's own vfs: errorfs over a
// crashable in-memory file system (or the real one). Pebble treats a failed
// write of its WAL or manifest as fatal (it panics with its commit pipeline
// locked); these tests hold kv to turning that into an error, keeping the
// handle from hanging, and leaving files that reopen consistently.

var errInjected = errors.New("injected I/O error")

func walOnly(fn func(errorfs.Op) error) func(errorfs.Op) error {
	return func(op errorfs.Op) error {
		if strings.HasSuffix(op.Path, ".log") {
			return fn(op)
		}
		return nil
	}
}

// faultyFS is a crashable in-memory file system behind a switchable fault.
type faultyFS struct {
	mem *vfs.MemFS
	on  atomic.Bool
	inj func(errorfs.Op) error
	fs  vfs.FS
}

func newFaultyFS(inj func(errorfs.Op) error) *faultyFS {
	f := &faultyFS{mem: vfs.NewCrashableMem(), inj: inj}
	f.fs = errorfs.Wrap(f.mem, errorfs.InjectorFunc(func(op errorfs.Op) error {
		if f.on.Load() {
			return f.inj(op)
		}
		return nil
	}))
	return f
}

// restart is what the disk holds when the process dies now (all that was
// written: the page cache survives) or the power fails now (only what was
// synced, with a random part of the rest).
func (f *faultyFS) restart(powerLoss bool, seed uint64) *vfs.MemFS {
	rng := rand.New(rand.NewPCG(seed, 1))
	if !powerLoss {
		return f.mem.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 100, RNG: rng})
	}
	return f.mem.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: []int{0, 30, 70}[seed%3], RNG: rng})
}

// closeWithin closes db, failing the test if Close does not return in time
// (a store whose failed commit left Pebble's pipeline locked would hang it).
func closeWithin(t *testing.T, db *DB, d time.Duration) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- db.Close() }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		t.Fatalf("Close of the store did not return within %v", d)
		return nil
	}
}

// A write fault during commits is an error of the call that meets it, not
// a panic; from then on every call fails at once with the same error, and
// Close returns. What is on disk reopens, after a process death or a power
// loss, as a prefix of the batches (never a torn one), holding, with Sync,
// every acknowledged batch.
func TestWriteFaultIsAnErrorAndTheFilesStayAPrefix(t *testing.T) {
	for _, tc := range []struct {
		name  string
		sync  bool
		inj   func(errorfs.Op) error
		cause error
	}{
		// Without Sync a failed WAL write surfaces a little later: when
		// Pebble's WAL writer next hands it a full block.
		{"WAL write fails", false, walOnly(func(op errorfs.Op) error {
			if op.Kind == errorfs.OpFileWrite || op.Kind == errorfs.OpFileWriteAt {
				return errInjected
			}
			return nil
		}), errInjected},
		{"WAL write fails, synced writes", true, walOnly(func(op errorfs.Op) error {
			if op.Kind == errorfs.OpFileWrite || op.Kind == errorfs.OpFileWriteAt {
				return errInjected
			}
			return nil
		}), errInjected},
		{"WAL sync fails, synced writes", true, walOnly(func(op errorfs.Op) error {
			if faultfs.IsSyncOp(op.Kind) {
				return errInjected
			}
			return nil
		}), errInjected},
		{"disk full", false, faultfs.DiskFull, syscall.ENOSPC},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ffs := newFaultyFS(tc.inj)
			db, err := Open("/store", &Options{FS: ffs.fs, Sync: tc.sync, Logger: quietLogger()})
			if err != nil {
				t.Fatal(err)
			}
			val := strings.Repeat("v", 1000)
			put := func(i int) error {
				return db.Batch([]Op{PutOp(fmt.Sprintf("k:%04d", i), val), PutOp("last", i)})
			}
			const before = 10
			for i := range before {
				if err := put(i); err != nil {
					t.Fatal(err)
				}
			}
			ffs.on.Store(true)
			// Without Sync the fault is met by Pebble's WAL flusher, a
			// goroutine of its own: the writes go on until it has run,
			// which takes a few batches or, on a busy machine, many more.
			// Yielding lets it run; the bound is on data, not on time.
			const most = 20000
			acked := before
			for ; acked < before+most; acked++ {
				if err = put(acked); err != nil {
					break
				}
				runtime.Gosched()
			}
			if err == nil {
				t.Fatalf("%d batches of 1 KiB after the fault and none failed", most)
			}
			var ke *Error
			if !errors.As(err, &ke) || ke.Path != "/store" || !errors.Is(err, ErrQuery) ||
				!errors.Is(err, ErrFailed) || !errors.Is(err, tc.cause) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("the failed write's error %q (%T) does not name the store, ErrFailed and the cause %v on one line", err, err, tc.cause)
			}
			if tc.sync && acked != before {
				t.Fatalf("with Sync, %d batches were acknowledged after the fault", acked-before)
			}
			ffs.on.Store(false)
			// The handle stays failed (Pebble cannot go on), and says so at
			// once, also for reads; Close returns instead of hanging.
			if _, err := db.Get("last", nil); !errors.Is(err, ErrFailed) {
				t.Fatalf("Get after the failure: %v", err)
			}
			if err := db.Put("x", 1); !errors.Is(err, ErrFailed) {
				t.Fatalf("Put after the failure: %v", err)
			}
			select {
			case <-db.Failed():
			default:
				t.Fatal("Failed() is not closed after the failure")
			}
			if err := closeWithin(t, db, 10*time.Second); !errors.Is(err, ErrFailed) {
				t.Fatalf("Close of a failed store: %v", err)
			}

			for _, powerLoss := range []bool{false, true} {
				for seed := uint64(1); seed <= 3; seed++ {
					db2, err := Open("/store", &Options{FS: ffs.restart(powerLoss, seed), Logger: quietLogger()})
					if err != nil {
						t.Fatalf("reopen (power loss %v): %v", powerLoss, err)
					}
					// At most the acknowledged batches and the one whose
					// commit failed (its WAL write may have landed, only
					// its sync failed); with Sync, at least every
					// acknowledged one, even after a power loss. Without
					// Sync an acknowledged batch may still be in Pebble's
					// WAL buffer: a process death can lose it too.
					n := checkPrefix(t, db2, acked+1)
					if tc.sync && n < acked {
						t.Fatalf("with Sync, a restart (power loss %v) lost acknowledged batches: %d of %d", powerLoss, n, acked)
					}
					// And it works again.
					if err := db2.Put("again", 1); err != nil {
						t.Fatal(err)
					}
					if err := closeWithin(t, db2, 10*time.Second); err != nil {
						t.Fatal(err)
					}
				}
			}
		})
	}
}

// checkPrefix checks that the store holds batches 0..n-1 of put and none
// after, and returns n.
func checkPrefix(t *testing.T, db *DB, max int) int {
	t.Helper()
	keys, err := db.Keys("k:")
	if err != nil {
		t.Fatal(err)
	}
	for i, k := range keys {
		if k != fmt.Sprintf("k:%04d", i) {
			t.Fatalf("the store holds %q at position %d: not a prefix of the batches", k, i)
		}
	}
	var last int
	found, err := db.Get("last", &last)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) > 0 && (!found || last != len(keys)-1) || len(keys) == 0 && found || len(keys) > max {
		t.Fatalf("%d batches stored but last = %d (found %v): a torn batch", len(keys), last, found)
	}
	return len(keys)
}

// A disk that fills up at any step of opening a store (a new one, or one
// holding data) makes Open fail, or a later write; it never panics,
// never says "locked" or "corrupt", and once there is room again the store
// opens with its data intact.
func TestDiskFullAtEveryStepOfOpen(t *testing.T) {
	for _, existing := range []bool{false, true} {
		t.Run(fmt.Sprintf("existing=%v", existing), func(t *testing.T) {
			// Count the write operations of one open-write-close.
			var ops atomic.Int64
			counting := newFaultyFS(func(errorfs.Op) error { return nil })
			counting.inj = func(op errorfs.Op) error {
				if faultfs.IsWriteOp(op.Kind) {
					ops.Add(1)
				}
				return nil
			}
			seed := func(f *faultyFS) {
				if !existing {
					return
				}
				db, err := Open("/store", &Options{FS: f.fs, Logger: quietLogger()})
				if err != nil {
					t.Fatal(err)
				}
				if err := db.Put("kept", "yes"); err != nil {
					t.Fatal(err)
				}
				if err := db.Close(); err != nil {
					t.Fatal(err)
				}
			}
			seed(counting)
			counting.on.Store(true)
			openWriteClose(t, counting.fs)
			n := int(ops.Load())
			if n < 5 {
				t.Fatalf("only %d write operations counted", n)
			}
			for k := 0; k < n; k++ {
				ffs := newFaultyFS(nil)
				seed(ffs)
				var seen atomic.Int64
				ffs.inj = func(op errorfs.Op) error {
					if faultfs.IsWriteOp(op.Kind) && seen.Add(1) > int64(k) {
						return faultfs.DiskFull(op)
					}
					return nil
				}
				ffs.on.Store(true)
				if err := openWriteClose(t, ffs.fs); err != nil {
					if !errors.Is(err, syscall.ENOSPC) || errors.Is(err, ErrLocked) ||
						strings.Contains(err.Error(), "locked") || strings.Contains(err.Error(), "corrupt") {
						t.Fatalf("disk full at write %d of %d: %v", k+1, n, err)
					}
				}
				ffs.on.Store(false)
				db, err := Open("/store", &Options{FS: ffs.restart(false, 0), Logger: quietLogger()})
				if err != nil {
					t.Fatalf("disk full at write %d of %d, then room again: %v", k+1, n, err)
				}
				var v string
				if found, err := db.Get("kept", &v); err != nil || existing && (!found || v != "yes") {
					t.Fatalf("disk full at write %d: the data is gone (%v %v)", k+1, found, err)
				}
				if err := db.Put("new", 1); err != nil {
					t.Fatal(err)
				}
				if err := db.Close(); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func openWriteClose(t *testing.T, fs vfs.FS) error {
	t.Helper()
	db, err := Open("/store", &Options{FS: fs, Logger: quietLogger()})
	if err != nil {
		return err
	}
	err = db.Put("new", 1)
	if cerr := closeWithin(t, db, 10*time.Second); err == nil {
		err = cerr
	}
	return err
}

// A second Open of a store in use fails on the lock before it touches
// anything: the temporary files of a bulk load in progress stay.
func TestSecondOpenLeavesALoadInProgressAlone(t *testing.T) {
	mem := vfs.NewMem()
	db, err := Open("/store", &Options{FS: mem})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tmp := mem.PathJoin("/store", "bulk-tmp")
	if err := mem.MkdirAll(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := mem.Create(mem.PathJoin(tmp, "ingest-1.sst"), vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := Open("/store", &Options{FS: mem}); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v", err)
	}
	if _, err := mem.Stat(mem.PathJoin(tmp, "ingest-1.sst")); err != nil {
		t.Fatalf("a refused Open removed the running load's files: %v", err)
	}
}

// A store directory that cannot be written is a clear error that says so:
// not "locked" (the lock file cannot even be created) and not "corrupt".
func TestOpenOfAnUnwritableStore(t *testing.T) {
	t.Run("read-only file system", func(t *testing.T) {
		dir := keptStore(t)
		for _, fresh := range []bool{false, true} {
			d := dir
			if fresh {
				d = filepath.Join(t.TempDir(), "new")
			}
			erofs := errorfs.Wrap(vfs.Default, errorfs.InjectorFunc(faultfs.ReadOnly))
			_, err := Open(d, &Options{FS: erofs, Logger: quietLogger()})
			if !errors.Is(err, ErrInitialization) || !errors.Is(err, syscall.EROFS) || errors.Is(err, ErrLocked) ||
				strings.Contains(err.Error(), "corrupt") || !strings.Contains(err.Error(), d) {
				t.Fatalf("Open on a read-only file system (fresh %v): %v", fresh, err)
			}
		}
		checkKept(t, dir)
	})
	t.Run("directory mode 0500", func(t *testing.T) {
		dir := keptStore(t)
		if err := os.Chmod(dir, 0o500); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.Chmod(dir, 0o755) })
		if probe := filepath.Join(dir, "probe"); os.WriteFile(probe, nil, 0o644) == nil {
			os.Remove(probe)
			t.Skip("chmod does not stop this user writing (root): TestOpenOfAnUnwritableStore/read-only_file_system covers it")
		}
		_, err := Open(dir, &Options{Logger: quietLogger()})
		if !errors.Is(err, ErrInitialization) || !errors.Is(err, fs.ErrPermission) || errors.Is(err, ErrLocked) ||
			strings.Contains(err.Error(), "corrupt") {
			t.Fatalf("Open of a read-only directory: %v", err)
		}
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		checkKept(t, dir)
	})
}

// keptStore makes a closed store on disk holding the key checkKept looks
// for.
func keptStore(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "store")
	db, err := Open(dir, &Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Put("kept", 1); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

func checkKept(t *testing.T, dir string) {
	t.Helper()
	db, err := Open(dir, &Options{Logger: quietLogger()})
	if err != nil {
		t.Fatalf("the store does not open once writable again: %v", err)
	}
	defer db.Close()
	if found, err := db.Get("kept", nil); err != nil || !found {
		t.Fatalf("the store lost its data: %v %v", found, err)
	}
}

// quietLogger drops the store's messages: the faults make Pebble log
// errors on purpose.
func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// Writes from several goroutines when a WAL write fails: each returns
// (the failure, or success before it), none waits forever behind the
// commit pipeline the failed write left locked.
func TestConcurrentWritesMeetAFaultAndReturn(t *testing.T) {
	for round := range 20 {
		ffs := newFaultyFS(walOnly(func(op errorfs.Op) error {
			if op.Kind == errorfs.OpFileWrite || op.Kind == errorfs.OpFileWriteAt || faultfs.IsSyncOp(op.Kind) {
				return errInjected
			}
			return nil
		}))
		db, err := Open("/store", &Options{FS: ffs.fs, Logger: quietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		const writers = 4
		done := make(chan error, writers)
		var started sync.WaitGroup
		started.Add(writers)
		for w := range writers {
			go func() {
				started.Done()
				val := strings.Repeat("v", 500)
				for i := 0; ; i++ {
					var err error
					switch i % 3 {
					case 0:
						err = db.Batch([]Op{PutOp(fmt.Sprintf("w%d:%d", w, i), val)})
					case 1:
						err = db.Put(fmt.Sprintf("w%d:%d", w, i), val)
					default:
						wb := db.NewWriteBatch()
						wb.Put(fmt.Sprintf("w%d:%d", w, i), val)
						err = wb.Commit()
					}
					if err != nil {
						done <- err
						return
					}
					runtime.Gosched() // let Pebble's WAL flusher meet the fault
				}
			}()
		}
		started.Wait()
		ffs.on.Store(true)
		for range writers {
			select {
			case err := <-done:
				if !errors.Is(err, ErrFailed) {
					t.Fatalf("round %d: a write failed with %v, not the store's failure", round, err)
				}
			case <-time.After(30 * time.Second):
				t.Fatalf("round %d: a write is stuck after the store failed", round)
			}
		}
		if err := closeWithin(t, db, 10*time.Second); !errors.Is(err, ErrFailed) {
			t.Fatalf("Close of a failed store: %v", err)
		}
	}
}
