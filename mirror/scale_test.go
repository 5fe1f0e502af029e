package mirror

import (
	"bufio"
	"os"
	"testing"
	"time"

	"github.com/mirrord/mirrord/eventlog"
	"github.com/mirrord/mirrord/internal/synth"
)

// Rewriting a large log to delete one event writes on the order of ten
// keys, not one per event: the reconcile writes only the difference. The
// default run uses 5,000 events; -mirrord.big (or MIRRORD_BIG_TESTS=1)
// uses the 1,000,000 of the contract.
func TestDeleteOneOfManyWritesAHandfulOfKeys(t *testing.T) {
	n := 5_000
	if *bigTests {
		n = 1_000_000
	}
	h := newHarness(t, func(o *Options) { o.ChunkBytes = 16 << 20 })
	h.opts.Logger = nil
	gen := synth.New(42)
	f, err := os.Create(h.path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	enc := eventlog.NewEncoder(w)
	var victim *eventlog.Event
	evs := make([]*eventlog.Event, 0, n)
	for i := 0; i < n; i++ {
		ev := gen.Event()
		if i == n/2 {
			victim = ev
		}
		if err := enc.Encode(ev); err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	h.evs = evs
	start := time.Now()
	h.sync()
	t.Logf("first load of %d events: %v", n, time.Since(start))

	h.takeApplied()
	h.rewrite(without(evs, n/2))
	start = time.Now()
	h.sync()
	t.Logf("reconcile after deleting one: %v", time.Since(start))
	applied := h.takeApplied()
	keys := 0
	for _, a := range applied {
		keys += a.Puts + a.Deletes
	}
	// The event, its digest, its modifiers; the checkpoint and the feed
	// entry.
	want := 2 + len(victim.Modifiers) + 2
	if keys != want {
		t.Fatalf("deleting one event of %d wrote %d keys in %d batches, want %d", n, keys, len(applied), want)
	}
	if got := h.e.Checkpoint().Events; got != int64(n-1) {
		t.Fatalf("store holds %d events, want %d", got, n-1)
	}
	if !*bigTests {
		h.verify()
	}
}
