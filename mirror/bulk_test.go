package mirror

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/mirrord/mirrord/eventlog"
	"github.com/mirrord/mirrord/kv"
	"github.com/mirrord/mirrord/schema"
)

// smallSortBudgets makes the bulk load spill many sorted runs to disk.
func smallSortBudgets(t *testing.T) {
	e, m := eventSortBudget, modifierSortBudget
	eventSortBudget, modifierSortBudget = 8<<10, 2<<10
	t.Cleanup(func() { eventSortBudget, modifierSortBudget = e, m })
}

// A first load through sorted runs: repeated ids anywhere in the log keep
// their last occurrence, with that occurrence's modifiers only.
func TestBulkLoadRepeatedIDsAcrossRuns(t *testing.T) {
	smallSortBudgets(t)
	h := newHarness(t, nil)
	evs := h.newEvents(200)
	first := *evs[10]
	first.Modifiers = []eventlog.Modifier{{Name: "a", Value: "1"}, {Name: "b", Value: "2"}}
	evs[10] = &first
	second := first
	second.Modifiers = []eventlog.Modifier{{Name: "b", Value: "changed"}, {Name: "c", Value: "3"}}
	second.Description = "second"
	third := first
	third.Modifiers = nil
	third.Description = "third"
	other := *evs[20]
	other.Description = "other, again"
	evs = append(evs[:100], append([]*eventlog.Event{&second, &other}, evs[100:]...)...)
	evs = append(evs, &third)
	h.appendEvents(evs...)
	h.sync()
	h.verify()
	assertModifiers(t, h, first.ID, map[string]string{})
	var got eventlog.Event
	if _, err := h.db.Get(schema.EventKey(first.ID), &got); err != nil || got.Description != "third" {
		t.Fatalf("repeated id: %q %v", got.Description, err)
	}
	// And the same id's second version as the last one (with modifiers).
	h.appendEvents(&second)
	h.sync()
	h.verify()
	assertModifiers(t, h, first.ID, map[string]string{"b": "changed", "c": "3"})
	if err := h.e.Resync(h.ctx()); err != nil {
		t.Fatal(err)
	}
	h.verify()
	assertModifiers(t, h, first.ID, map[string]string{"b": "changed", "c": "3"})
}

// Resync replaces everything in the mirror's key range, and nothing
// outside it.
func TestResyncReplacesOnlyTheMirrorsRange(t *testing.T) {
	h := newHarness(t, nil)
	h.appendEvents(h.newEvents(30)...)
	h.sync()
	if err := h.db.Batch([]kv.Op{
		kv.PutOp("aaa:not-ours", 1), kv.PutOp("zzz:not-ours", 2),
		kv.PutOp(schema.GeneratedKey("g", "x"), 3), kv.PutOp(schema.EventKey("stray"), map[string]string{"id": "stray"}),
	}); err != nil {
		t.Fatal(err)
	}
	if err := h.e.Resync(h.ctx()); err != nil {
		t.Fatal(err)
	}
	h.verify()
	for _, k := range []string{"aaa:not-ours", "zzz:not-ours"} {
		if found, _ := h.db.Get(k, nil); !found {
			t.Fatalf("resync removed %s, outside the mirror's range", k)
		}
	}
	if found, _ := h.db.Get(schema.GeneratedKey("g", "x"), nil); found {
		t.Fatal("resync kept a generated value")
	}
	if found, _ := h.db.Get(schema.SchemaKey, nil); !found {
		t.Fatal("resync lost the schema")
	}
}

// A log whose modifiers take more than their expected share (see
// bulkRecords) overflows the first fill its sorters expected to be the
// only one: that fill is written out in the decoder's goroutine and the
// load goes on, losing nothing.
func TestBulkLoadMoreModifiersThanExpected(t *testing.T) {
	e, m := eventSortBudget, modifierSortBudget
	eventSortBudget, modifierSortBudget = 1<<20, 16<<10
	t.Cleanup(func() { eventSortBudget, modifierSortBudget = e, m })
	h := newHarness(t, nil)
	evs := h.newEvents(60)
	long := strings.Repeat("m", 200)
	for i, ev := range evs {
		ev.Modifiers = []eventlog.Modifier{{Name: "a", Value: long}, {Name: "b", Value: long}, {Name: fmt.Sprint("c", i), Value: long}}
	}
	h.appendEvents(evs...)
	st, err := os.Stat(h.path)
	if err != nil {
		t.Fatal(err)
	}
	mods := 0
	for _, ev := range evs {
		for _, m := range ev.Modifiers {
			mods += len(schema.ModifierKey(ev.ID, m.Name)) + len(`{"value":""}`) + len(m.Value)
		}
	}
	if expect := float64(st.Size()) * bulkRecords.mods; expect > float64(2*modifierSortBudget) || mods <= 2*modifierSortBudget {
		t.Fatalf("the log's %d bytes of modifiers, %.0f expected: the test wants an expected first fill that overflows", mods, expect)
	}
	h.sync()
	h.verify()
	assertModifiers(t, h, evs[7].ID, map[string]string{"a": long, "b": long, "c7": long})
}

// recordingFeed is a LoadFeed that keeps what a load hands it.
type recordingFeed struct {
	got [][]fedEvent // by range
}

type fedEvent struct {
	key, value []byte
	fields     eventlog.FieldOffsets
}

func (f *recordingFeed) Start(ranges int) []func(key, value []byte, fields eventlog.FieldOffsets) {
	f.got = make([][]fedEvent, ranges)
	sinks := make([]func(key, value []byte, fields eventlog.FieldOffsets), ranges)
	for i := range sinks {
		sinks[i] = func(key, value []byte, fields eventlog.FieldOffsets) {
			f.got[i] = append(f.got[i], fedEvent{bytes.Clone(key), bytes.Clone(value), fields})
		}
	}
	return sinks
}

func (f *recordingFeed) Finish(context.Context, uint64, func() *kv.IngestFile) error { return nil }
func (f *recordingFeed) Done(bool)                                                   {}

// A load that feeds generators stores what any load stores (the field
// offsets its sorted runs carry are not stored), and hands the feed each
// stored event once, as stored, with where its date, type and input are.
func TestFedLoadHandsEachEventWithItsFields(t *testing.T) {
	smallSortBudgets(t)
	feed := &recordingFeed{}
	h := newHarness(t, func(o *Options) { o.LoadFeed = func() LoadFeed { return feed } })
	evs := h.newEvents(300)
	again := *evs[7]
	again.Input, again.Type = `the "last" #one\wins`, "t\u00e9\t"
	h.appendEvents(append(evs, &again)...)
	h.sync()
	h.verify()
	n := 0
	for _, r := range feed.got {
		for _, fe := range r {
			n++
			stored, found, err := h.db.GetBytes(fe.key, nil)
			if err != nil || !found || !bytes.Equal(stored, fe.value) {
				t.Fatalf("%s handed as %s, stored as %s (%v)", fe.key, fe.value, stored, err)
			}
			ev, err := eventlog.ParseEvent(fe.value)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range []struct {
				at   int
				want string
			}{{fe.fields.Date, ev.Date}, {fe.fields.Type, ev.Type}, {fe.fields.Input, ev.Input}} {
				var got string
				if err := json.NewDecoder(bytes.NewReader(fe.value[f.at:])).Decode(&got); err != nil || got != f.want {
					t.Fatalf("%s: at %d %q (%v), want %q", fe.key, f.at, got, err, f.want)
				}
			}
		}
	}
	if n != 300 {
		t.Fatalf("%d events handed, want 300", n)
	}
}

// A fed record's header reads back as written, and a record without one,
// or with offsets past its value, is an error naming the record, not a
// wrong event handed on.
func TestCutFieldOffsets(t *testing.T) {
	raw := []byte(`{"id":"a","date":"2025-01-01T00:00:00Z","input":"x","type":"t"}`)
	want := eventlog.FieldOffsets{Date: 16, Type: 59, Input: 47}
	got, value, err := cutFieldOffsets(append(appendFieldOffsets(nil, want), raw...))
	if err != nil || got != want || !bytes.Equal(value, raw) {
		t.Fatalf("cutFieldOffsets = %+v, %s, %v; want %+v, %s", got, value, err, want, raw)
	}
	for _, bad := range [][]byte{
		nil,
		{0x80},    // a uvarint cut short
		{1, 2},    // two offsets of three
		{1, 2, 3}, // offsets, no value
		append(appendFieldOffsets(nil, eventlog.FieldOffsets{Date: 1, Type: 2, Input: len(raw)}), raw...),
	} {
		if _, _, err := cutFieldOffsets(bad); err == nil || !strings.Contains(err.Error(), "sorted record") {
			t.Errorf("cutFieldOffsets(%q): %v, want an error naming the record", bad, err)
		}
	}
}
