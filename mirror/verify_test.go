package mirror

import (
	"testing"

	"github.com/mirrord/mirrord/kv"
	"github.com/mirrord/mirrord/schema"
)

// Verify must fail on every kind of divergence, and only on those.
func TestVerifyFindsEveryDivergence(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(h *harness) []kv.Op
		check  func(r *Report) bool
	}{
		{"missing event", func(h *harness) []kv.Op { return []kv.Op{kv.DelOp(schema.EventKey(h.evs[2].ID))} },
			func(r *Report) bool { return r.Missing == 1 && r.MissingKeys[0] == schema.EventKey(r2id) }},
		{"extra event", func(h *harness) []kv.Op {
			return []kv.Op{kv.PutOp(schema.EventKey("zzz"), map[string]string{"id": "zzz"})}
		},
			func(r *Report) bool { return r.Extra == 1 && r.ExtraKeys[0] == "event:zzz" }},
		{"different event", func(h *harness) []kv.Op {
			return []kv.Op{kv.PutOp(schema.EventKey(h.evs[2].ID), map[string]string{"id": h.evs[2].ID})}
		}, func(r *Report) bool { return r.Differ == 1 }},
		{"extra modifier", func(h *harness) []kv.Op {
			return []kv.Op{kv.PutOp(schema.ModifierKey(h.evs[2].ID, "zzz"), map[string]string{"value": "x"})}
		}, func(r *Report) bool { return r.Extra == 1 && r.ExtraKeys[0] == schema.ModifierKey(r2id, "zzz") }},
		{"orphan modifier", func(h *harness) []kv.Op {
			return []kv.Op{kv.PutOp(schema.ModifierKey("nobody", "a"), map[string]string{"value": "x"})}
		}, func(r *Report) bool { return r.Extra == 1 }},
		{"different modifier", func(h *harness) []kv.Op {
			return []kv.Op{kv.PutOp(schema.ModifierKey(h.evs[2].ID, "location"), map[string]string{"value": "elsewhere"})}
		}, func(r *Report) bool { return r.Differ == 1 }},
		{"missing modifier", func(h *harness) []kv.Op { return []kv.Op{kv.DelOp(schema.ModifierKey(h.evs[2].ID, "with"))} },
			func(r *Report) bool { return r.Missing == 1 }},
		{"stale digest", func(h *harness) []kv.Op { return []kv.Op{kv.PutOp(schema.DigestKey(h.evs[2].ID), "0000000000000000")} },
			func(r *Report) bool { return r.Bookkeeping == 1 }},
		{"same JSON, other spelling", func(h *harness) []kv.Op {
			return []kv.Op{kv.PutOp(schema.ModifierKey(h.evs[2].ID, "location"), map[string]any{"value": "here"})}
		}, func(r *Report) bool { return r.OK() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, nil)
			evs := h.newEvents(5)
			evs[2].ID = r2id
			evs[2].Modifiers = nil
			evs[2].Modifiers = append(evs[2].Modifiers, modifier("location", "here"), modifier("with", "Ann"))
			h.appendEvents(evs...)
			h.sync()
			h.verify()
			if err := h.db.Batch(tc.damage(h)); err != nil {
				t.Fatal(err)
			}
			r, err := Verify(h.ctx(), h.db, h.path, 0)
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(r) {
				t.Fatalf("report %+v", r)
			}
			if tc.name != "same JSON, other spelling" && r.OK() {
				t.Fatal("Verify passed a damaged store")
			}
		})
	}
}

const r2id = "event-two"
