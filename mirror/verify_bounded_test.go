package mirror

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mirrord/mirrord/eventlog"
	"github.com/mirrord/mirrord/internal/testkit"
	"github.com/mirrord/mirrord/kv"
	"github.com/mirrord/mirrord/schema"
)

// Ids with a byte below ':' order their modifier groups differently from
// their events ("modifier:a-:" sorts before "modifier:a:", "event:a"
// before "event:a-"): verify's merge must follow each range's own order.
func TestVerifyIDsOrderedUnlikeModifierGroups(t *testing.T) {
	h := newHarness(t, nil)
	evs := h.newEvents(6)
	for i, id := range []string{"a", "a-", "a b", "a!x", "a-", "a/"} { // "a-" repeated: the last wins
		evs[i].ID = id
		evs[i].Modifiers = []eventlog.Modifier{modifier("n", strings.Repeat("v", i+1))}
	}
	h.appendEvents(evs...)
	h.sync()
	r := h.verify()
	if r.Events != 5 || r.Modifiers != 5 {
		t.Fatalf("verify counted %d events, %d modifiers; want 5 and 5", r.Events, r.Modifiers)
	}
	for _, damage := range []struct {
		op   kv.Op
		want func(r *Report) bool
	}{
		{kv.PutOp(schema.ModifierKey("a-", "n"), map[string]string{"value": "other"}), func(r *Report) bool { return r.Differ == 1 }},
		{kv.DelOp(schema.ModifierKey("a", "n")), func(r *Report) bool { return r.Missing == 1 }},
		{kv.PutOp(schema.ModifierKey("a", "zz"), map[string]string{"value": "x"}), func(r *Report) bool { return r.Extra == 1 }},
	} {
		if err := h.db.Batch([]kv.Op{damage.op}); err != nil {
			t.Fatal(err)
		}
		r, err := Verify(h.ctx(), h.db, h.path, 0)
		if err != nil {
			t.Fatal(err)
		}
		if !damage.want(r) {
			t.Errorf("after %v: %s (missing %q, extra %q, differ %q)", damage.op, r.Summary(), r.MissingKeys, r.ExtraKeys, r.DifferKeys)
		}
		h.sync() // the engine does not know: resync by hand
		if err := h.e.Resync(h.ctx()); err != nil {
			t.Fatal(err)
		}
	}
}

// A log whose ids do not fit in verify's sort budget is sorted through
// run files, compared just the same, and leaves no file behind.
func TestVerifySpillsToDisk(t *testing.T) {
	old := verifySortBudget
	verifySortBudget = 4 << 10
	t.Cleanup(func() { verifySortBudget = old })
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	h := newHarness(t, nil)
	h.appendEvents(h.newEvents(3000)...)
	h.sync()
	r := h.verify()
	if r.Events != 3000 {
		t.Fatalf("verify counted %d events, want 3000", r.Events)
	}
	victim := h.modelIDs()[1234]
	if err := h.db.Batch([]kv.Op{kv.DelOp(schema.EventKey(victim))}); err != nil {
		t.Fatal(err)
	}
	r, err := Verify(h.ctx(), h.db, h.path, 0)
	if err != nil {
		t.Fatal(err)
	}
	if r.Missing != 1 || r.MissingKeys[0] != schema.EventKey(victim) {
		t.Errorf("verify after deleting %s: %s, missing %q", victim, r.Summary(), r.MissingKeys)
	}
	left, _ := os.ReadDir(tmp)
	if len(left) != 0 {
		t.Errorf("verify left %d entries in its temporary directory", len(left))
	}
}

// Verify ends soon after its context is cancelled (a client gone).
func TestVerifyCancelled(t *testing.T) {
	h := newHarness(t, nil)
	h.appendEvents(h.newEvents(2000)...)
	h.sync()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Verify(ctx, h.db, h.path, 0); err != context.Canceled {
		t.Fatalf("Verify with a cancelled context: %v, want context.Canceled", err)
	}
}

// BenchmarkVerifyMemory reports verify's peak heap over logs of growing
// size: bounded by the sort budget, not by the number of events (a map
// of every id took 1.66 GB at 10M events).
func BenchmarkVerifyMemory(b *testing.B) {
	for _, n := range []int{10_000, 100_000, 400_000, 1_000_000} {
		b.Run(fmt.Sprintf("%dk", n/1000), func(b *testing.B) {
			dir := b.TempDir()
			logPath := filepath.Join(dir, "data.json")
			size := writeSynthLog(b, logPath, n)
			db, err := kv.Open(filepath.Join(dir, "store"), nil)
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			e, err := Open(db, &Options{EventLog: logPath, Logger: testkit.QuietLogger()})
			if err != nil {
				b.Fatal(err)
			}
			if err := e.Sync(context.Background()); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(size)
			var peak, peakLive uint64
			for b.Loop() {
				runtime.GC()
				base, baseLive := heapBytes()
				var stop atomic.Bool
				done := make(chan uint64)
				go func() {
					var hi, hiLive uint64
					for !stop.Load() {
						h, l := heapBytes()
						hi, hiLive = max(hi, h), max(hiLive, l)
						time.Sleep(time.Millisecond)
					}
					done <- hi
					done <- hiLive
				}()
				r, err := Verify(context.Background(), db, logPath, 0)
				stop.Store(true)
				m, ml := <-done, <-done
				if err != nil || !r.OK() {
					b.Fatalf("verify: %v %+v", err, r)
				}
				if m > base {
					peak = max(peak, m-base)
				}
				if ml > baseLive {
					peakLive = max(peakLive, ml-baseLive)
				}
			}
			// The heap with its garbage, and what the last GC found live.
			b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
			b.ReportMetric(float64(peakLive)/(1<<20), "peak-live-MiB")
		})
	}
}

func heapBytes() (heap, live uint64) {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64(), s[1].Value.Uint64()
}
