package mirror

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"slices"
	"testing"

	"github.com/mirrord/mirrord/kv"
	"github.com/mirrord/mirrord/schema"
)

func feed(t *testing.T, db *kv.DB) []schema.Change {
	t.Helper()
	var cs []schema.Change
	if err := schema.Changes(db, 0, func(c schema.Change) error { cs = append(cs, c); return nil }); err != nil {
		t.Fatal(err)
	}
	return cs
}

func TestResyncRebuildsFromScratch(t *testing.T) {
	h := newHarness(t, nil)
	h.appendEvents(h.newEvents(30)...)
	h.sync()
	// Damage: an extra event, a wrong value, a generated value.
	if err := h.db.Batch([]kv.Op{
		kv.PutOp(schema.EventKey("stray"), map[string]string{"id": "stray"}),
		kv.PutOp(schema.EventKey(h.evs[0].ID), map[string]string{"id": "wrong"}),
		kv.PutOp(schema.GeneratedKey("summary", "2025-01"), 1),
		kv.PutOp(schema.GeneratorStateKey("summary"), 1),
	}); err != nil {
		t.Fatal(err)
	}
	if err := h.e.Resync(h.ctx()); err != nil {
		t.Fatal(err)
	}
	h.verify()
	h.wantIDs(h.modelIDs()...)
	for _, p := range []string{schema.PrefixGenerated, schema.PrefixGeneratorState} {
		if keys, _ := h.db.Keys(p); len(keys) != 0 {
			t.Fatalf("resync left %q", keys)
		}
	}
	if found, _ := h.db.Get(schema.ResyncMarkerKey, nil); found {
		t.Fatal("the resync marker remains after a complete resync")
	}
	cs := feed(t, h.db)
	if len(cs) != 1 || !cs[0].Reset {
		t.Fatalf("feed after resync: %+v, want one reset entry", cs)
	}
}

// A resync interrupted before its load is in place leaves its marker and
// the old state (never a half-built one), so the store never looks
// finished; the next start completes it.
func TestInterruptedResyncIsCompletedOnNextStart(t *testing.T) {
	h := newHarness(t, nil)
	h.appendEvents(h.newEvents(100)...)
	h.sync()
	before, _ := h.db.Keys(schema.PrefixEvent)
	h.rewrite(without(h.evs, 5)) // the resync will have something to change
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // interrupted right after the marker is written
	if err := h.e.Resync(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted Resync: %v", err)
	}
	if found, _ := h.db.Get(schema.ResyncMarkerKey, nil); !found {
		t.Fatal("an interrupted resync removed its marker")
	}
	st, err := ReadStatus(h.db, h.path)
	if err != nil || !st.Resyncing {
		t.Fatalf("status of an interrupted resync: %+v %v", st, err)
	}
	if keys, _ := h.db.Keys(schema.PrefixEvent); !slices.Equal(keys, before) {
		t.Fatalf("an interrupted resync changed the events: %d before, %d after", len(before), len(keys))
	}

	h.db.Close()
	h.db = nil
	h.open()
	h.sync()
	h.verify()
	if found, _ := h.db.Get(schema.ResyncMarkerKey, nil); found {
		t.Fatal("marker remains after the resync was completed")
	}
	cs := feed(t, h.db)
	if len(cs) != 1 || !cs[0].Reset {
		t.Fatalf("the completed resync left the feed %+v, want one reset entry", cs)
	}
}

func TestChangeFeedRecordsChangedIDs(t *testing.T) {
	h := newHarness(t, nil)
	h.appendEvents(h.newEvents(5)...)
	h.sync()
	first := h.e.Checkpoint().Seq
	more := h.newEvents(2)
	h.appendEvents(more...)
	h.sync()
	gone := h.evs[1]
	h.rewrite(without(h.evs, 1))
	h.sync()
	var got []schema.Change
	if err := schema.Changes(h.db, first, func(c schema.Change) error { got = append(got, c); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("feed entries after seq %d: %+v", first, got)
	}
	if len(got[0].IDs) != 2 || got[0].IDs[0] != more[0].ID || got[0].IDs[1] != more[1].ID {
		t.Fatalf("append entry %+v", got[0])
	}
	if len(got[1].IDs) != 1 || got[1].IDs[0] != gone.ID || got[1].Seq != got[0].Seq+1 {
		t.Fatalf("delete entry %+v", got[1])
	}
}

func TestSchemaChecks(t *testing.T) {
	h := newHarness(t, nil)
	h.appendEvents(h.newEvents(2)...)
	h.sync()
	if err := h.db.Put(schema.SchemaKey, schemaRecord{Version: SchemaVersion + 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(h.db, &h.opts); !errors.Is(err, ErrNewerStore) {
		t.Fatalf("Open on a newer store: %v", err)
	}
	if err := h.db.Del(schema.SchemaKey); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(h.db, &h.opts); !errors.Is(err, ErrForeignStore) {
		t.Fatalf("Open on a store without schema: %v", err)
	}
	// An empty store is stamped.
	h2 := newHarness(t, nil)
	var rec json.RawMessage
	if found, _ := h2.db.Get(schema.SchemaKey, &rec); !found || string(rec) != `{"version":1}` {
		t.Fatalf("schema of a new store: %s", rec)
	}
}

// A missing (or unreadable) log never empties the mirror, not even on
// --resync.
func TestResyncOfAMissingLogKeepsTheStore(t *testing.T) {
	h := newHarness(t, nil)
	h.appendEvents(h.newEvents(10)...)
	h.sync()
	if err := os.Rename(h.path, h.path+".away"); err != nil {
		t.Fatal(err)
	}
	if err := h.e.Resync(h.ctx()); !errors.Is(err, ErrLogMissing) {
		t.Fatalf("Resync of a missing log: %v", err)
	}
	h.wantIDs(h.modelIDs()...)
	if found, _ := h.db.Get(schema.ResyncMarkerKey, nil); found {
		t.Fatal("a refused resync left its marker")
	}
	if err := os.Chmod(h.path+".away", 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(h.path+".away", h.path); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() != 0 { // root reads a mode-0 file anyway
		if err := h.e.Resync(h.ctx()); err == nil {
			t.Fatal("Resync of an unreadable log succeeded")
		}
		h.wantIDs(h.modelIDs()...)
	}
}

// ReadStatus (mirrord status without a daemon) tells a log that no longer
// continues the checkpoint from one that merely grew.
func TestReadStatusSeesDivergence(t *testing.T) {
	h := newHarness(t, nil)
	h.appendEvents(h.newEvents(20)...)
	h.sync()
	st, err := ReadStatus(h.db, h.path)
	if err != nil || st.Diverged != "" || st.Lag != 0 {
		t.Fatalf("up to date: %+v %v", st, err)
	}
	h.appendEvents(h.newEvents(1)...)
	if st, _ = ReadStatus(h.db, h.path); st.Diverged != "" || st.Lag == 0 {
		t.Fatalf("grown: %+v", st)
	}
	h.rewrite(without(h.evs, 2))
	if st, _ = ReadStatus(h.db, h.path); st.Diverged == "" {
		t.Fatalf("rewritten in place: %+v", st)
	}
	h.replace(h.evs)
	if st, _ = ReadStatus(h.db, h.path); st.Diverged == "" {
		t.Fatalf("replaced: %+v", st)
	}
	h.writeRaw([]byte("\n"))
	if st, _ = ReadStatus(h.db, h.path); st.Diverged == "" {
		t.Fatalf("truncated: %+v", st)
	}
}
