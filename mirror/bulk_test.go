package mirror

import (
	"testing"

	"github.com/mirrord/mirrord/eventlog"
	"github.com/mirrord/mirrord/kv"
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
	if _, err := h.db.Get(kv.EventKey(first.ID), &got); err != nil || got.Description != "third" {
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
		kv.PutOp(kv.GeneratedKey("g", "x"), 3), kv.PutOp(kv.EventKey("stray"), map[string]string{"id": "stray"}),
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
	if found, _ := h.db.Get(kv.GeneratedKey("g", "x"), nil); found {
		t.Fatal("resync kept a generated value")
	}
	if found, _ := h.db.Get(kv.SchemaKey, nil); !found {
		t.Fatal("resync lost the schema")
	}
}
