package mirror

import (
	"testing"

	"github.com/mirrord/mirrord/eventlog"
)

// An in-place rewrite that lands after the decision to tail and before
// the read: the decoder sees new bytes at old offsets. Nothing of that may
// be committed; the next decision reconciles.
func TestRewriteDuringTailRead(t *testing.T) {
	for _, chunk := range []int{0, 1024} {
		h := newHarness(t, func(o *Options) { o.ChunkBytes = chunk })
		h.appendEvents(h.newEvents(30)...)
		h.sync()
		// The application appends more than 4 KiB (so the checkpoint's
		// window is intact), and the decision to tail is made...
		h.appendEvents(h.newEvents(12)...)
		rewritten := without(h.evs, 3)
		testHookBeforeTailRead = func() {
			testHookBeforeTailRead = nil
			// ...then it deletes an earlier event, rewriting in place.
			if err := eventlog.RewriteFile(h.path, rewritten); err != nil {
				t.Error(err)
			}
		}
		h.sync()
		h.evs = rewritten
		h.verify()
		h.wantIDs(h.modelIDs()...)
		testHookBeforeTailRead = nil
	}
}

// The same between two batches of a long tail: an event of the first
// batch is deleted by a rewrite while the second batch is being read.
func TestRewriteBetweenTailBatches(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.ChunkBytes = 2048 })
	h.appendEvents(h.newEvents(10)...)
	h.sync()
	h.appendEvents(h.newEvents(40)...)
	rewritten := without(h.evs, 12) // an event of the tail's first batch
	fired := false
	h.e.opts.OnApply = func(a Applied) {
		if !fired && a.Kind == "tail" {
			fired = true
			if err := eventlog.RewriteFile(h.path, rewritten); err != nil {
				t.Error(err)
			}
		}
	}
	h.sync()
	if !fired {
		t.Fatal("the tail applied no batch")
	}
	h.evs = rewritten
	h.verify()
	h.wantIDs(h.modelIDs()...)
}
