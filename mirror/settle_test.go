package mirror

import (
	"errors"
	"os"
	"testing"
	"time"

	"github.com/mirrord/mirrord/eventlog"
)

// realClock makes the engine use the wall clock and file mtimes, with a
// short settle interval.
func realClock(o *Options) {
	o.Now = time.Now
	o.Settle = 80 * time.Millisecond
}

// age sets the log's mtime back, as if it had not changed for a while.
func (h *harness) age() {
	h.t.Helper()
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(h.path, old, old); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) step() stepResult {
	h.t.Helper()
	res, err := h.e.step(h.ctx())
	if err != nil {
		h.t.Fatalf("step: %v", err)
	}
	return res
}

// A reader that catches an in-place rewrite half written deletes nothing:
// first the file is too fresh to read, then (if the writer stalls) it ends
// in an incomplete value, so the deletions are held.
func TestHalfWrittenRewriteDeletesNothing(t *testing.T) {
	h := newHarness(t, realClock)
	h.appendEvents(h.newEvents(20)...)
	h.age()
	h.sync()
	all := h.modelIDs()

	next := without(h.evs, 15)
	full := eventlog.Format(next)
	half := full[:len(full)/2]
	h.writeRaw(half)
	if res := h.step(); res.action != actSettle {
		t.Fatalf("a freshly rewritten log: %v, want settle", res.action)
	}
	h.wantIDs(all...)

	h.age() // the writer stalled
	if res := h.step(); res.action != actHeld {
		t.Fatalf("a settled log ending mid-value: %v, want held", res.action)
	}
	h.wantIDs(all...)
	if err := h.e.Sync(h.ctx()); !errors.Is(err, ErrHeld) {
		t.Fatalf("Sync on a held reconcile: %v, want ErrHeld", err)
	}
	if st := h.e.Status(); st.Held == 0 {
		t.Fatalf("status does not report held deletions: %+v", st)
	}

	h.writeRaw(full)
	h.evs = next
	h.sync() // waits for the file to settle, then reconciles
	h.verify()
	h.wantIDs(h.modelIDs()...)
	if st := h.e.Status(); st.Held != 0 {
		t.Fatalf("held deletions remain in status: %d", st.Held)
	}
}

// git checkout can leave the file briefly empty: nothing is deleted while
// it is fresh, and the returning content needs no change.
func TestBrieflyEmptyDeletesNothing(t *testing.T) {
	h := newHarness(t, realClock)
	h.appendEvents(h.newEvents(20)...)
	h.age()
	h.sync()
	h.takeApplied()
	h.writeRaw(nil)
	if res := h.step(); res.action != actSettle {
		t.Fatalf("a freshly emptied log: %v, want settle", res.action)
	}
	h.wantIDs(h.modelIDs()...)
	h.writeRaw(eventlog.Format(h.evs))
	h.sync()
	h.verify()
	for _, a := range h.takeApplied() {
		if a.Changed != 0 {
			t.Fatalf("content that came back changed %d events", a.Changed)
		}
	}
}

func TestSyncWaitsForTheFileToSettle(t *testing.T) {
	h := newHarness(t, realClock)
	h.appendEvents(h.newEvents(10)...)
	h.age()
	h.sync()
	h.rewrite(without(h.evs, 0))
	start := time.Now()
	h.sync()
	if d := time.Since(start); d < h.opts.Settle/2 {
		t.Fatalf("Sync reconciled a fresh rewrite after %v; settle is %v", d, h.opts.Settle)
	}
	h.verify()
	h.wantIDs(h.modelIDs()...)
}

// When the mtime cannot be trusted (in the future), the engine settles by
// what it observes instead.
func TestSettleByObservation(t *testing.T) {
	h := newHarness(t, realClock)
	h.appendEvents(h.newEvents(10)...)
	h.age()
	h.sync()
	h.rewrite(without(h.evs, 3))
	future := time.Now().Add(time.Hour)
	if err := os.Chtimes(h.path, future, future); err != nil {
		t.Fatal(err)
	}
	if res := h.step(); res.action != actSettle {
		t.Fatalf("first look at a log with a future mtime: %v, want settle", res.action)
	}
	h.sync()
	h.verify()
	h.wantIDs(h.modelIDs()...)
}

// Appends need no settling: they apply at once.
func TestAppendsApplyAtOnce(t *testing.T) {
	h := newHarness(t, realClock)
	h.appendEvents(h.newEvents(5)...)
	h.age()
	h.sync()
	h.appendEvents(h.newEvents(1)...)
	if res := h.step(); res.action != actTail || !res.caughtUp {
		t.Fatalf("a fresh append: %+v, want an immediate tail", res)
	}
	h.wantIDs(h.modelIDs()...)
}
