package mirror

import (
	"errors"
	"io/fs"
	"strings"
	"syscall"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"github.com/mirrord/mirrord/internal/faultfs"
)

var errInjected = errors.New("injected I/O error")

// Storage faults (errorfs under Pebble) in each kind of write the engine
// makes: the error is reported (never a panic), the checkpoint on disk
// never runs ahead of the data written with it, and once the fault clears
// the engine resumes on the same handle and the store verifies. (A fault
// Pebble cannot go on from, in its WAL or manifest, a full disk when it
// flushes, ends the process: kv's fault tests run that in a child, and
// the power-loss tests here cover what a restart after it finds.)
func TestStorageFaults(t *testing.T) {
	tmpFiles := func(op errorfs.Op) error { // the bulk load's sorted runs and sstables
		if strings.Contains(op.Path, "bulk-tmp") && faultfs.IsWriteOp(op.Kind) && op.Kind != errorfs.OpMkdirAll {
			return &fs.PathError{Op: "write", Path: op.Path, Err: errInjected}
		}
		return nil
	}
	ops := []struct {
		name  string
		setup func(h *harness)
		act   func(h *harness) error
	}{
		{"tail apply", func(h *harness) {
			h.appendEvents(h.newEvents(30)...)
			h.sync()
		}, func(h *harness) error {
			h.appendEvents(h.newEvents(20)...)
			return h.e.Sync(h.ctx())
		}},
		{"reconcile", func(h *harness) {
			h.appendEvents(h.newEvents(60)...)
			h.sync()
		}, func(h *harness) error {
			evs := without(h.evs, 7)
			for _, ev := range evs[20:40] {
				ev.Description += " (edited)"
			}
			h.rewrite(evs)
			return h.e.Sync(h.ctx())
		}},
		{"resync", func(h *harness) {
			h.appendEvents(h.newEvents(60)...)
			h.sync()
			h.appendEvents(h.newEvents(5)...)
		}, func(h *harness) error { return h.e.Resync(h.ctx()) }},
		{"first load", func(h *harness) {
			h.appendEvents(h.newEvents(80)...)
		}, func(h *harness) error { return h.e.Sync(h.ctx()) }},
	}
	faults := []struct {
		name  string
		inj   func(errorfs.Op) error
		cause error
		bulk  bool // only the bulk load meets this fault
	}{
		{"temporary files fail", tmpFiles, errInjected, true},
	}
	for _, op := range ops {
		for _, fault := range faults {
			if fault.bulk && op.name != "resync" && op.name != "first load" {
				continue
			}
			t.Run(op.name+"/"+fault.name, func(t *testing.T) {
				tfs := newTestFS()
				h := newHarnessOn(t, tfs.fs, func(o *Options) { o.ChunkBytes = 2048 })
				op.setup(h)
				v0 := h.saveVersion("v0")
				tfs.setFault(fault.inj)
				err := op.act(h)
				// Without synced writes a failed WAL write surfaces when
				// Pebble next flushes its WAL buffer: keep appending (a
				// bounded number of times) until it does.
				for i := 0; err == nil && i < 40; i++ {
					h.appendEvents(h.newEvents(5)...)
					err = h.e.Sync(h.ctx())
				}
				if err == nil {
					t.Fatal("the fault was never reported")
				}
				if !errors.Is(err, fault.cause) || !strings.Contains(err.Error(), "/store") {
					t.Fatalf("the error %q names neither the store nor the cause %v", err, fault.cause)
				}
				inMemory := h.e.Checkpoint()
				tfs.setFault(nil)

				// What a restart finds now, after the process died or the
				// power failed: consistent, and no further than the engine
				// got.
				for _, powerLoss := range []bool{false, true} {
					r := &harness{t: t, dir: h.dir, path: h.path, fs: tfs.restart(powerLoss), clock: h.clock,
						opts: Options{EventLog: h.path, Now: h.clock.Now, Logger: testLogger(t)}}
					r.open()
					t.Cleanup(func() { closeDB(t, r.db) })
					checkConsistent(t, r.db, h.path, v0)
					if cp := r.e.Checkpoint(); cp != nil && inMemory != nil && cp.Seq > inMemory.Seq {
						t.Fatalf("the checkpoint on disk (seq %d) is ahead of the engine's (seq %d)", cp.Seq, inMemory.Seq)
					}
					r.sync()
					r.verify()
				}

				// The same engine resumes.
				if err := h.e.Sync(h.ctx()); err != nil {
					t.Fatalf("Sync once the fault cleared: %v", err)
				}
				h.verify()
				h.wantIDs(h.modelIDs()...)
			})
		}
	}
}

// A sorted run of a bulk load that cannot be written (a full disk while a
// large first load or resync spills to bulk-tmp) must be an error like any
// other (and, under -race, not a data race between the spill and Add).
func TestSortedRunWriteFault(t *testing.T) {
	tfs := newTestFS()
	h := newHarnessOn(t, tfs.fs, nil)
	smallSortBudgets(t)
	h.appendEvents(h.newEvents(80)...)
	tfs.setFault(func(op errorfs.Op) error {
		if strings.Contains(op.Path, "sort-") && faultfs.IsWriteOp(op.Kind) {
			return faultfs.DiskFull(op)
		}
		return nil
	})
	if err := h.e.Sync(h.ctx()); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("a first load whose sorted runs cannot be written: %v", err)
	}
	tfs.setFault(nil)
	h.sync()
	h.verify()
}
