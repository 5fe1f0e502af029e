package mirror

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mirrord/mirrord/internal/testkit"
	"github.com/mirrord/mirrord/schema"
)

// Hostile input at the engine's level (issue 7, item 4). The decoder's
// own handling of each shape is tested in package eventlog; here the
// question is what reaches the store: every valid event under its own
// key (no two events, and no two modifiers, ever share one), every
// invalid one counted and skipped, through each of the three ways a log
// gets into the store (the first load, a tail, a reconcile).

// hostileEvent is one event of a hostile log, written by hand so that it
// can hold what no well-behaved writer produces.
type hostileEvent struct {
	name string
	// id and mods are JSON texts, written into the event as they are.
	id, mods string
	// extra is more members, ",\"x\":…", or "".
	extra string
	// wantID and wantMods are the decoded id and modifier names when the
	// event is valid; valid=false: it is an invalid entry.
	valid    bool
	wantID   string
	wantMods []string
}

func (h hostileEvent) text() string {
	mods := h.mods
	if mods == "" {
		mods = "{}"
	}
	return `{"id":` + h.id + `,"date":"2025-05-22T15:30:00+0200","original":"o","input":"i","type":"t",` +
		`"description":"d","creator":{"name":"n","uuid":"u","version":"v"},"modifiers":` + mods + h.extra + "}"
}

const hostileMaxValue = 256 << 10 // Options.MaxValueSize of these tests

func hostileEvents() []hostileEvent {
	long := strings.Repeat("ö:%", 64<<10/4) // a 64 KiB id (2 bytes + 2 for each repetition)
	return []hostileEvent{
		// The example of docs/design.md, Keys and values: without
		// escaping, these two share a key.
		{name: "colon in id", id: `"a:b"`, mods: `{"c":"1"}`, valid: true, wantID: "a:b", wantMods: []string{"c"}},
		{name: "colon in name", id: `"a"`, mods: `{"b:c":"2"}`, valid: true, wantID: "a", wantMods: []string{"b:c"}},
		{name: "trailing colon", id: `"a:"`, mods: `{"b":"3"}`, valid: true, wantID: "a:", wantMods: []string{"b"}},
		{name: "leading colon in name", id: `"a%3A"`, mods: `{":b":"4"}`, valid: true, wantID: "a%3A", wantMods: []string{":b"}},
		// An escape's own spelling must not meet the escaped character.
		{name: "percent", id: `"%"`, mods: `{"%25":"5","%":"6"}`, valid: true, wantID: "%", wantMods: []string{"%", "%25"}},
		{name: "escaped percent", id: `"%25"`, valid: true, wantID: "%25"},
		{name: "escape spelling", id: `"%3A"`, valid: true, wantID: "%3A"},
		{name: "colon", id: `":"`, valid: true, wantID: ":"},
		// Control characters and NUL, written as JSON escapes (valid).
		{name: "controls", id: `"\t\n\r\u0001\u001f\u007f"`, mods: `{"\n":"7","\u001b[31m":"8"}`, valid: true,
			wantID: "\t\n\r\x01\x1f\x7f", wantMods: []string{"\n", "\x1b[31m"}},
		{name: "NUL escape", id: `"x\u0000y"`, mods: `{"\u0000":"9"}`, valid: true, wantID: "x\x00y", wantMods: []string{"\x00"}},
		{name: "x then NUL", id: `"x\u0000"`, valid: true, wantID: "x\x00"},
		{name: "x", id: `"x"`, valid: true, wantID: "x"},
		{name: "unicode", id: `"я😀"`, mods: `{"ключ":"v"}`, valid: true, wantID: "я😀", wantMods: []string{"ключ"}},
		// A 64 KiB id, and the same as a modifier name.
		{name: "64 KiB id", id: `"` + long + `"`, mods: `{"` + long + `":"v"}`, valid: true, wantID: long, wantMods: []string{long}},
		// Unknown fields are kept whatever they hold: a nesting as deep as
		// JSON parsers allow (10,000 levels, counting the event itself)…
		{name: "deep nesting", id: `"deep"`, extra: `,"x":` + strings.Repeat("[", 9999) + strings.Repeat("]", 9999),
			valid: true, wantID: "deep"},
		// Invalid entries: counted, skipped, and the log goes on.
		{name: "raw NUL byte", id: "\"nul\x00raw\""},
		{name: "raw control byte", id: "\"tab\x01raw\""},
		{name: "invalid UTF-8 id", id: "\"bad\xff\xfe\""},
		{name: "invalid UTF-8 name", id: `"badname"`, mods: "{\"n\xc3\":\"v\"}"},
		{name: "lone surrogate id", id: `"\ud800"`},
		{name: "lone surrogate name", id: `"surrogate-name"`, mods: `{"\udfff":"v"}`},
		{name: "empty id", id: `""`},
		{name: "number id", id: `7`},
		// …but one level deeper is not JSON (encoding/json's limit too);
		{name: "nesting bomb", id: `"bomb"`, extra: `,"x":` + strings.Repeat("[", 200000) + strings.Repeat("]", 200000)},
		// and a value larger than the bound is skipped whole.
		{name: "over the size bound", id: `"huge"`, extra: `,"pad":"` + strings.Repeat("p", hostileMaxValue) + `"`},
		{name: "after all that", id: `"last"`, valid: true, wantID: "last"},
	}
}

// hostileLog is the log of evs, one per line, and how many are invalid.
func hostileLog(evs []hostileEvent) ([]byte, int) {
	var b bytes.Buffer
	invalid := 0
	for _, e := range evs {
		b.WriteString(e.text())
		b.WriteString("\n")
		if !e.valid {
			invalid++
		}
	}
	return b.Bytes(), invalid
}

// checkHostileStore checks the store against the events of the log: the
// keys are exactly the escaped ids and names, each parses back to what it
// was built from, and the counts agree.
func checkHostileStore(t *testing.T, h *harness, evs []hostileEvent, invalid int) {
	t.Helper()
	r, err := Verify(h.ctx(), h.db, h.path, hostileMaxValue) // the store equals what the log says
	if err != nil || !r.OK() {
		t.Fatalf("verify: %v\n%s\nmissing %.80q\nextra %.80q\ndiffer %.80q", err, r.Summary(), r.MissingKeys, r.ExtraKeys, r.DifferKeys)
	}
	wantEvents := map[string]bool{}
	wantMods := map[string]bool{}
	for _, e := range evs {
		if !e.valid {
			continue
		}
		wantEvents[schema.EventKey(e.wantID)] = true
		for _, m := range e.wantMods {
			wantMods[schema.ModifierKey(e.wantID, m)] = true
		}
	}
	if r.Invalid != invalid {
		t.Errorf("verify counts %d invalid entries, want %d", r.Invalid, invalid)
	}
	if got := h.e.Checkpoint().Invalid; got != int64(invalid) {
		t.Errorf("checkpoint counts %d invalid entries, want %d", got, invalid)
	}
	evKeys, err := h.db.Keys(schema.PrefixEvent)
	if err != nil {
		t.Fatal(err)
	}
	// One key per distinct valid id: no two share one, none is lost.
	if len(evKeys) != len(wantEvents) {
		t.Errorf("store holds %d events, the log %d distinct valid ids", len(evKeys), len(wantEvents))
	}
	for _, k := range evKeys {
		p, err := schema.ParseKey(k)
		if err != nil || !wantEvents[k] || schema.EventKey(p.ID) != k {
			t.Errorf("event key %.80q: parsed %.80q, %v; expected %v", k, p.ID, err, wantEvents[k])
			continue
		}
		var stored struct{ ID string }
		if _, err := h.db.Get(k, &stored); err != nil || stored.ID != p.ID {
			t.Errorf("event key %.80q holds the event %.80q (%v)", k, stored.ID, err)
		}
	}
	modKeys, err := h.db.Keys(schema.PrefixModifier)
	if err != nil {
		t.Fatal(err)
	}
	if len(modKeys) != len(wantMods) {
		t.Errorf("store holds %d modifiers, want %d", len(modKeys), len(wantMods))
	}
	for _, k := range modKeys {
		p, err := schema.ParseKey(k)
		if err != nil || !wantMods[k] || schema.ModifierKey(p.ID, p.Name) != k {
			t.Errorf("modifier key %.80q: parsed (%.40q, %.40q), %v", k, p.ID, p.Name, err)
		}
	}
}

// Each hostile shape through the first load, a tail and a reconcile.
func TestHostileEventsGetTheirOwnKeys(t *testing.T) {
	evs := hostileEvents()
	all, invalid := hostileLog(evs)
	half := len(evs) / 2
	first, _ := hostileLog(evs[:half])
	for _, path := range []struct {
		name string
		run  func(h *harness)
	}{
		{"first load", func(h *harness) {
			h.writeRaw(all)
			h.sync()
			h.takeApplied()
		}},
		{"tail", func(h *harness) {
			// Half by the first load, the rest appended.
			h.writeRaw(first)
			h.sync()
			h.appendRaw(all[len(first):])
			h.sync()
			if a := h.takeApplied(); a[len(a)-1].Kind != "tail" {
				t.Fatalf("the append was applied by a %q", a[len(a)-1].Kind)
			}
		}},
		{"reconcile", func(h *harness) {
			// A log without them, then a rewrite that brings them in.
			h.writeRaw([]byte(hostileEvent{id: `"z"`}.text() + "\n" + hostileEvent{id: `"y"`}.text() + "\n"))
			h.sync()
			h.writeRaw(all)
			h.sync()
			if a := h.takeApplied(); a[len(a)-1].Kind != "reconcile" {
				t.Fatalf("the rewrite was applied by a %q", a[len(a)-1].Kind)
			}
		}},
	} {
		t.Run(path.name, func(t *testing.T) {
			h := newHarness(t, func(o *Options) { o.MaxValueSize = hostileMaxValue; o.Logger = testkit.QuietLogger() })
			path.run(h)
			checkHostileStore(t, h, evs, invalid)
			// A restart changes nothing (the checkpoint is exact).
			h.open()
			h.sync()
			if a := h.takeApplied(); len(a) != 0 {
				t.Fatalf("a restart applied %+v", a)
			}
			checkHostileStore(t, h, evs, invalid)
		})
	}
}

// The change feed carries hostile ids unharmed, so generators are handed
// the very events that changed.
func TestHostileIDsInTheChangeFeed(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.MaxValueSize = hostileMaxValue; o.Logger = testkit.QuietLogger() })
	h.writeRaw([]byte(hostileEvent{id: `"seed"`}.text() + "\n"))
	h.sync()
	seq := h.e.Checkpoint().Seq
	evs := hostileEvents()
	all, _ := hostileLog(evs)
	h.appendRaw(all)
	h.sync()
	var got []string
	if err := schema.Changes(h.db, seq, func(c schema.Change) error { got = append(got, c.IDs...); return nil }); err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, e := range evs {
		if e.valid {
			want = append(want, e.wantID)
		}
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("feed ids differ from the appended valid ids: %d vs %d", len(got), len(want))
	}
}

// peakHeap runs fn and returns how far the heap in use rose above what it
// was before, sampled every few milliseconds while fn runs.
func peakHeap(fn func()) (rise uint64) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	var peak uint64
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
			select {
			case <-done:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	fn()
	close(done)
	<-stopped
	if peak < base {
		return 0
	}
	return peak - base
}

// Memory stays bounded while the engine reads hostile shapes: values over
// the size bound, and a log of one endless line, whether it comes by the
// first load or by a tail. Holding the log, or one such value whole,
// would raise the heap by its size.
func TestHostileShapesMemoryIsBounded(t *testing.T) {
	const size = 24 << 20
	ev := func(id string) string { return hostileEvent{id: `"` + id + `"`}.text() + "\n" }
	baseline := map[string]uint64{}
	for _, tc := range []struct {
		name string
		log  func(w *bufio.Writer)
		// events and invalid the store counts afterwards.
		events, invalid int
	}{
		{"many values over the bound", func(w *bufio.Writer) {
			for i := 0; i < size/(1<<20); i++ {
				fmt.Fprintf(w, `{"id":"big%d","pad":"%s"}`+"\n", i, strings.Repeat("p", 1<<20))
				w.WriteString(ev(fmt.Sprintf("small%d", i)))
			}
		}, size / (1 << 20), size / (1 << 20)},
		{"one endless line", func(w *bufio.Writer) {
			w.WriteString(ev("before"))
			for i := 0; i < size/(64<<10); i++ {
				w.WriteString(strings.Repeat("x", 64<<10))
			}
		}, 1, 0}, // an incomplete tail: not (yet) an invalid entry
		{"one endless string", func(w *bufio.Writer) {
			w.WriteString(ev("before"))
			w.WriteString(`{"id":"`)
			for i := 0; i < size/(64<<10); i++ {
				w.WriteString(strings.Repeat("s", 64<<10))
			}
		}, 1, 0},
	} {
		for _, by := range []string{"first load", "tail"} {
			if _, ok := baseline[by]; !ok {
				baseline[by] = heapOfTinyLog(t, by == "tail")
			}
			t.Run(tc.name+"/"+by, func(t *testing.T) {
				h := newHarness(t, func(o *Options) { o.MaxValueSize = hostileMaxValue; o.Logger = testkit.QuietLogger() })
				if by == "tail" {
					h.writeRaw([]byte(ev("seed")))
					h.sync()
				}
				f, err := os.OpenFile(h.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
				if err != nil {
					t.Fatal(err)
				}
				w := bufio.NewWriterSize(f, 1<<20) // streamed: the test holds no copy either
				tc.log(w)
				if err := w.Flush(); err != nil {
					t.Fatal(err)
				}
				f.Close()
				rise := peakHeap(h.sync)
				// A first load sets aside its sorters' fixed budget (about
				// 96 MiB) whatever the log: compare with a one-event log
				// read the same way.
				base := baseline[by]
				if rise > base+12<<20 {
					t.Errorf("reading a %d MiB log raised the heap by %d MiB; a one-event log by %d MiB", size>>20, rise>>20, base>>20)
				}
				t.Logf("heap rose by %.1f MiB (one-event log: %.1f MiB)", float64(rise)/(1<<20), float64(base)/(1<<20))
				cp := h.e.Checkpoint()
				extra := 0
				if by == "tail" {
					extra = 1
				}
				if cp.Events != int64(tc.events+extra) || cp.Invalid != int64(tc.invalid) {
					t.Fatalf("%d events, %d invalid; want %d and %d", cp.Events, cp.Invalid, tc.events+extra, tc.invalid)
				}
			})
		}
	}
}

// heapOfTinyLog is how far reading a one-event log raises the heap, by a
// first load or by a tail.
func heapOfTinyLog(t *testing.T, tail bool) uint64 {
	h := newHarness(t, func(o *Options) { o.MaxValueSize = hostileMaxValue; o.Logger = testkit.QuietLogger() })
	one := []byte(hostileEvent{id: `"one"`}.text() + "\n")
	if tail {
		h.writeRaw(one)
		h.sync()
	}
	h.appendRaw(one)
	return peakHeap(h.sync)
}
