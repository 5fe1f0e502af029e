package mirror

import (
	"encoding/json"
	"testing"

	"github.com/mirrord/mirrord/eventlog"
	"github.com/mirrord/mirrord/schema"
)

// Each change-feed entry records, for every id its batch put or deleted,
// what the store held for it before the batch: nothing for a new id, the
// stored event for an edit (by an append or a rewrite) and a deletion. A
// bulk load records none: its one entry is a reset.
func TestFeedRecordsBeforeImages(t *testing.T) {
	h := newHarness(t, nil)
	evs := h.newEvents(4)
	h.appendEvents(evs...)
	h.sync() // a first load: one reset
	stored := func(id string) string {
		var raw json.RawMessage
		if found, err := h.db.Get(schema.EventKey(id), &raw); err != nil || !found {
			t.Fatalf("event %s not stored (%v)", id, err)
		}
		return string(raw)
	}
	last := func() schema.Change {
		var c schema.Change
		if err := schema.Changes(h.db, 0, func(ch schema.Change) error { c = ch; return nil }); err != nil {
			t.Fatal(err)
		}
		return c
	}
	if c := last(); !c.Reset || len(c.IDs) != 0 {
		t.Fatalf("after the first load: %+v, want one reset", c)
	}

	// An append of a new event and of a new version of evs[1].
	was1 := stored(evs[1].ID)
	fresh := h.newEvents(1)[0]
	edit := *evs[1]
	edit.Input = "edited"
	h.appendEvents(fresh, &edit)
	h.sync()
	c := last()
	if len(c.IDs) != 2 || !c.HasBefore() {
		t.Fatalf("entry of the append: %+v", c)
	}
	for i, id := range c.IDs {
		switch id {
		case fresh.ID:
			if c.BeforeOf(i) != nil {
				t.Errorf("a new id has the before-image %s", c.BeforeOf(i))
			}
		case evs[1].ID:
			if string(c.BeforeOf(i)) != was1 {
				t.Errorf("before-image of the edited event %s, want %s", c.BeforeOf(i), was1)
			}
		default:
			t.Errorf("unexpected id %s", id)
		}
	}

	// A rewrite (a reconcile) that deletes evs[2] and changes evs[3].
	was2, was3 := stored(evs[2].ID), stored(evs[3].ID)
	changed := *evs[3]
	changed.Type = "other"
	h.rewrite([]*eventlog.Event{evs[0], &edit, &changed, fresh})
	h.sync()
	c = last()
	want := map[string]string{evs[2].ID: was2, evs[3].ID: was3}
	if len(c.IDs) != 2 || !c.HasBefore() {
		t.Fatalf("entry of the rewrite: %+v", c)
	}
	for i, id := range c.IDs {
		if w, ok := want[id]; !ok || string(c.BeforeOf(i)) != w {
			t.Errorf("before-image of %s: %s, want %s", id, c.BeforeOf(i), w)
		}
	}
	h.verify()
}
