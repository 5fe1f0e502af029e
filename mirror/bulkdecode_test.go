package mirror

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mirrord/mirrord/eventlog"
	"github.com/mirrord/mirrord/internal/synth"
	"github.com/mirrord/mirrord/internal/testkit"
	"github.com/mirrord/mirrord/schema"
)

// splitInto makes bulk loads split any log into n parts.
func splitInto(t *testing.T, n int) {
	pm, d := parallelMin, decoders
	parallelMin, decoders = 1, func() int { return n }
	t.Cleanup(func() { parallelMin, decoders = pm, d })
}

// lineRecorder keeps the line of every invalid entry the engine reports.
type lineRecorder struct {
	mu     sync.Mutex
	lines  []int64
	msgs   []string
	parts  int64 // of the last bulk load
	ranges int64
}

func (r *lineRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *lineRecorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *lineRecorder) WithGroup(string) slog.Handler            { return r }
func (r *lineRecorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, rec.Message)
	if rec.Message == "bulk load phases" {
		rec.Attrs(func(a slog.Attr) bool {
			switch a.Key {
			case "parts":
				r.parts = a.Value.Int64()
			case "ranges":
				r.ranges = a.Value.Int64()
			}
			return true
		})
	}
	if rec.Message == "skipping an invalid entry of the log" {
		rec.Attrs(func(a slog.Attr) bool {
			if a.Key == "line" {
				r.lines = append(r.lines, a.Value.Int64())
			}
			return true
		})
	}
	return nil
}

// mirrorState is everything a load wrote that must not depend on how the
// log was split: every key and value of the mirror's range, and the
// checkpoint without its wall-clock time.
func mirrorState(t *testing.T, h *harness) string {
	t.Helper()
	var b strings.Builder
	for _, prefix := range []string{schema.PrefixEvent, schema.PrefixModifier, schema.PrefixInternal + "digest:"} {
		err := h.db.ScanRaw([]byte(prefix), func(k, v []byte) error {
			fmt.Fprintf(&b, "%s=%s\n", k, v)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	cp := *h.e.Checkpoint()
	cp.AppliedAt, cp.MTime, cp.Dev, cp.Ino = time.Time{}, 0, 0, 0 // the file's, not the load's
	fmt.Fprintf(&b, "checkpoint %+v\n", cp)
	return b.String()
}

// parallelLogs are logs whose parallel load must equal a load by one
// decoder: repeated ids, invalid entries and an incomplete value in every
// part, and logs whose split points land inside values.
func parallelLogs() map[string][]byte {
	g := synth.New(5)
	evs := g.Events(400)
	var normal bytes.Buffer
	for i, ev := range evs {
		switch {
		case i%97 == 13:
			normal.WriteString("garbage that is not JSON\n")
		case i%89 == 7:
			normal.WriteString("{\n\t\"id\": \"\",\n\t\"date\": \"nope\"\n}\n")
		}
		if i%50 == 49 {
			again := *evs[i-40] // a repeat, later in the log: it wins
			again.Description = fmt.Sprintf("again %d", i)
			again.Modifiers = []eventlog.Modifier{{Name: "with", Value: fmt.Sprint(i)}}
			normal.Write(append(again.AppendJS(nil), '\n'))
		}
		normal.Write(append(ev.AppendJS(nil), '\n'))
	}
	complete := bytes.Clone(normal.Bytes())
	normal.WriteString("{\n\t\"id\": \"cut")

	// Every line of these events starts with '{' (compact nested objects,
	// one per line), so most split points fall inside a value.
	var nested bytes.Buffer
	for i, ev := range g.Events(200) {
		raw := ev.AppendJS(nil)
		fmt.Fprintf(&nested, "{\"x\":\n{\"n\":%d},\n\"y\":\n{\"m\":\n{}},\n%s\n", i, raw[1:])
	}
	return map[string][]byte{
		"mixed, cut at the end": normal.Bytes(),
		"mixed, complete":       complete,
		"splits inside values":  nested.Bytes(),
	}
}

func TestParallelLoadEqualsOneDecoder(t *testing.T) {
	smallSortBudgets(t) // many runs: the events are written in key ranges too
	for name, log := range parallelLogs() {
		t.Run(name, func(t *testing.T) {
			load := func(parts int) (string, []int64, *PendingTail, *lineRecorder) {
				if parts > 1 {
					splitInto(t, parts)
				}
				rec := &lineRecorder{}
				h := newHarness(t, func(o *Options) { o.Logger = slog.New(rec) })
				h.writeRaw(log)
				h.sync()
				h.verify()
				st := h.e.Status()
				return mirrorState(t, h), rec.lines, st.Pending, rec
			}
			want, wantLines, wantPending, _ := load(1)
			for _, parts := range []int{2, 3, 7} {
				got, gotLines, gotPending, rec := load(parts)
				again := slices.ContainsFunc(rec.msgs, func(m string) bool { return strings.Contains(m, "do not meet") })
				// A log in the application's format splits at value
				// boundaries; the nested one, with most of its lines
				// starting with '{' inside values, cannot be split in
				// seven without one point falling inside a value.
				switch inside := name == "splits inside values"; {
				case !inside && again:
					t.Fatalf("%d parts: decoded again in one piece", parts)
				case inside && parts == 7 && !again:
					t.Fatalf("%d parts: all split points fell between values; the test does not test the fallback", parts)
				}
				if !again && rec.parts != int64(parts) {
					t.Fatalf("%d parts asked for, the load used %d", parts, rec.parts)
				}
				if parts == 2 && rec.ranges != 2 {
					t.Fatalf("%d parts: the events were written in %d key range(s)", parts, rec.ranges)
				}
				if got != want {
					gl, wl := strings.Split(got, "\n"), strings.Split(want, "\n")
					for i := range min(len(gl), len(wl)) {
						if gl[i] != wl[i] {
							t.Fatalf("%d parts: the store differs from one decoder's load at line %d:\n got %s\nwant %s", parts, i, gl[i], wl[i])
						}
					}
					t.Fatalf("%d parts: the store differs from one decoder's load: %d lines, want %d", parts, len(gl), len(wl))
				}
				if fmt.Sprint(gotLines) != fmt.Sprint(wantLines) {
					t.Fatalf("%d parts: invalid entries reported at lines %v, one decoder at %v", parts, gotLines, wantLines)
				}
				if fmt.Sprint(gotPending) != fmt.Sprint(wantPending) {
					t.Fatalf("%d parts: pending %+v, one decoder %+v", parts, gotPending, wantPending)
				}
			}
			if name == "mixed, cut at the end" && (wantPending == nil || len(wantLines) == 0) {
				t.Fatalf("the log was meant to end cut, with invalid entries: pending %v, lines %v", wantPending, wantLines)
			}
		})
	}
}

// The split points of a log in the application's format are all value
// boundaries: the parts agree and no part is decoded twice.
func TestSplitLogFindsEventStarts(t *testing.T) {
	splitInto(t, 3)
	rec := &lineRecorder{}
	h := newHarness(t, func(o *Options) { o.Logger = slog.New(rec); o.MaxValueSize = 1 << 20 })
	h.appendEvents(h.newEvents(300)...)
	h.sync()
	h.verify()
	for _, m := range rec.msgs {
		if strings.Contains(m, "do not meet") {
			t.Fatalf("a log in the application's format was decoded again in one piece: %q", m)
		}
	}
}

// A reconcile decodes in parts too; its diff must not depend on them.
func TestParallelReconcileEqualsOneDecoder(t *testing.T) {
	smallSortBudgets(t) // the reconcile's records spill to runs too
	before := parallelLogs()["mixed, complete"]
	// After: every 7th event dropped, every 11th changed, the rest kept;
	// the same invalid entries and repeats.
	g := synth.New(5)
	var after bytes.Buffer
	evs := g.Events(400)
	for i, ev := range evs {
		if i%50 == 49 {
			again := *evs[i-40] // a repeat in another part of the log: the last one wins
			again.Description = fmt.Sprintf("again after %d", i)
			after.Write(append(again.AppendJS(nil), '\n'))
		}
		switch {
		case i%7 == 3:
			continue
		case i%11 == 5:
			ev.Description = fmt.Sprintf("changed %d", i)
			ev.Modifiers = append(ev.Modifiers, eventlog.Modifier{Name: "new", Value: "yes"})
		case i%97 == 13:
			after.WriteString("garbage that is not JSON\n")
		}
		after.Write(append(ev.AppendJS(nil), '\n'))
	}
	load := func(parts int) (string, []Applied) {
		if parts > 1 {
			splitInto(t, parts)
		}
		h := newHarness(t, func(o *Options) { o.Logger = testkit.QuietLogger() })
		h.writeRaw(before)
		h.sync()
		h.takeApplied()
		h.writeRaw(after.Bytes())
		h.sync()
		h.verify()
		return mirrorState(t, h), h.takeApplied()
	}
	want, wantApplied := load(1)
	if len(wantApplied) == 0 || wantApplied[len(wantApplied)-1].Kind != "reconcile" {
		t.Fatalf("the rewrite was applied as %+v, not by a reconcile", wantApplied)
	}
	for _, parts := range []int{2, 3, 7} {
		got, applied := load(parts)
		if got != want {
			t.Fatalf("%d parts: the reconciled store differs from one decoder's", parts)
		}
		if fmt.Sprint(keyCounts(applied)) != fmt.Sprint(keyCounts(wantApplied)) {
			t.Fatalf("%d parts: wrote %v keys, one decoder %v", parts, keyCounts(applied), keyCounts(wantApplied))
		}
	}
}

func keyCounts(as []Applied) [2]int {
	var n [2]int
	for _, a := range as {
		n[0] += a.Puts
		n[1] += a.Deletes
	}
	return n
}
