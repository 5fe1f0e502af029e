package schema

import (
	"encoding/json"
	"io"
	"log/slog"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/mirrord/mirrord/kv"
)

// The feed as the engine writes it and the generators read it: before-
// images (null for a new id) survive the round trip through a real store,
// an entry of an older release reads as having none, and pruning takes
// exactly the entries up to the one named.
func TestFeedRoundTrip(t *testing.T) {
	db, err := kv.Open("/s", &kv.Options{FS: vfs.NewMem(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	old := `{"id":"a","date":"2025-01-01T00:00:00Z","input":"#x"}`
	wb := db.NewWriteBatch()
	wb.Put(ChangeKey(1), Change{IDs: []string{"a", "b"}, Before: []json.RawMessage{json.RawMessage(old), nil}})
	wb.PutRaw([]byte(ChangeKey(2)), []byte(`{"ids":["c"]}`)) // an older release's entry
	wb.Put(ChangeKey(3), Change{Reset: true})
	if err := wb.Commit(); err != nil {
		t.Fatal(err)
	}
	var got []Change
	if err := Changes(db, 0, func(c Change) error { got = append(got, c); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].Seq != 1 || got[1].Seq != 2 || got[2].Seq != 3 || !got[2].Reset {
		t.Fatalf("entries: %+v", got)
	}
	if !got[0].HasBefore() || string(got[0].BeforeOf(0)) != old || got[0].BeforeOf(1) != nil {
		t.Fatalf("before-images: has %v, %q, %q", got[0].HasBefore(), got[0].BeforeOf(0), got[0].BeforeOf(1))
	}
	if got[1].HasBefore() || got[1].BeforeOf(0) != nil {
		t.Fatal("an entry without before-images claims some")
	}
	if err := PruneChanges(db, 2); err != nil {
		t.Fatal(err)
	}
	got = got[:0]
	if err := Changes(db, 0, func(c Change) error { got = append(got, c); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Seq != 3 {
		t.Fatalf("after pruning up to 2: %+v", got)
	}
	// A backlog longer than the point deletions goes with one range.
	wb = db.NewWriteBatch()
	for seq := uint64(4); seq < 4+3*pruneByKey; seq++ {
		wb.Put(ChangeKey(seq), Change{Reset: true})
	}
	if err := wb.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := PruneChanges(db, 3+2*pruneByKey); err != nil {
		t.Fatal(err)
	}
	got = got[:0]
	if err := Changes(db, 0, func(c Change) error { got = append(got, c); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != pruneByKey || got[0].Seq != 4+2*pruneByKey {
		t.Fatalf("after pruning a backlog: %d entries from %d, want %d from %d", len(got), got[0].Seq, pruneByKey, 4+2*pruneByKey)
	}
	if err := PruneChanges(db, ^uint64(0)); err != nil {
		t.Fatal(err)
	}
	if keys, _ := db.Keys(PrefixChanges); len(keys) != 0 {
		t.Fatalf("pruning everything left %d entries", len(keys))
	}
}
