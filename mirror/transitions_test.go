package mirror

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/mirrord/mirrord/eventlog"
	"github.com/mirrord/mirrord/schema"
)

func TestFirstLoadAndAppends(t *testing.T) {
	h := newHarness(t, nil)
	h.appendEvents(h.newEvents(50)...)
	h.sync()
	h.verify()
	h.wantIDs(h.modelIDs()...)

	// One more, then many.
	h.appendEvents(h.newEvents(1)...)
	h.sync()
	h.verify()
	h.appendEvents(h.newEvents(200)...)
	h.sync()
	h.verify()
	h.wantIDs(h.modelIDs()...)

	// Nothing changed: a sync writes nothing.
	h.takeApplied()
	h.sync()
	if a := h.takeApplied(); len(a) != 0 {
		t.Fatalf("a sync with nothing new applied %d batches", len(a))
	}
}

func TestSeveralChunks(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.ChunkBytes = 4096 })
	h.appendEvents(h.newEvents(300)...)
	h.sync()
	h.verify()
	if a := h.takeApplied(); len(a) != 1 || a[0].Kind != "bulk" {
		t.Fatalf("the first load took %+v, want one bulk load", a)
	}
	// A tail spans chunks.
	h.appendEvents(h.newEvents(100)...)
	h.sync()
	h.verify()
	if n := len(h.takeApplied()); n < 10 {
		t.Fatalf("100 appended events took %d batches", n)
	}
}

// A writer caught mid-append: the partial value is not applied and not an
// error; it is picked up when complete.
func TestPartialWriteThenCompletion(t *testing.T) {
	h := newHarness(t, nil)
	h.appendEvents(h.newEvents(10)...)
	h.sync()
	ev := h.newEvents(1)[0]
	full := append(ev.AppendJS(nil), '\n')
	for _, cut := range []int{1, 30, len(full) / 2, len(full) - 2} {
		h.writeRaw(append(eventlog.Format(h.evs), full[:cut]...))
		h.sync()
		h.wantIDs(h.modelIDs()...)
		st := h.e.Status()
		if st.Pending == nil || st.Pending.Bytes != int64(cut) {
			t.Fatalf("cut at %d: pending %+v", cut, st.Pending)
		}
	}
	h.appendRaw(full[len(full)-2:])
	h.evs = append(h.evs, ev)
	h.sync()
	h.verify()
	h.wantIDs(h.modelIDs()...)
	if st := h.e.Status(); st.Pending != nil || st.Lag != 0 {
		t.Fatalf("after completion: pending %+v lag %d", st.Pending, st.Lag)
	}
}

func TestRewriteDeletes(t *testing.T) {
	for _, tc := range []struct {
		name string
		at   func(n int) int
	}{
		{"first", func(int) int { return 0 }},
		{"middle", func(n int) int { return n / 2 }},
		{"last", func(n int) int { return n - 1 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, nil)
			h.appendEvents(h.newEvents(100)...)
			h.sync()
			gone := h.evs[tc.at(len(h.evs))]
			h.takeApplied()
			h.rewrite(without(h.evs, tc.at(len(h.evs))))
			h.sync()
			h.verify()
			h.wantIDs(h.modelIDs()...)
			if found, _ := h.db.Get(schema.EventKey(gone.ID), nil); found {
				t.Fatalf("deleted event %s still stored", gone.ID)
			}
			if keys, _ := h.db.Keys(schema.ModifiersOf(gone.ID)); len(keys) != 0 {
				t.Fatalf("modifiers of the deleted event remain: %q", keys)
			}
			// Only the difference was written.
			a := h.takeApplied()
			if len(a) != 1 || a[0].Kind != "reconcile" || a[0].Changed != 1 {
				t.Fatalf("applied %+v, want one reconcile batch changing one event", a)
			}
			if a[0].Puts+a[0].Deletes > 2+2+len(gone.Modifiers) {
				t.Fatalf("deleting one event wrote %d puts and %d deletes", a[0].Puts, a[0].Deletes)
			}
		})
	}
}

// The samples written by the application: appended, then rewritten in
// place without three events. The mirror must lose exactly those three.
func TestApplicationSamples(t *testing.T) {
	h := newHarness(t, nil)
	appended, err := os.ReadFile("../eventlog/testdata/samples/appended.json")
	if err != nil {
		t.Fatal(err)
	}
	after, err := os.ReadFile("../eventlog/testdata/samples/after-delete.json")
	if err != nil {
		t.Fatal(err)
	}
	idsText, err := os.ReadFile("../eventlog/testdata/samples/deleted-ids.txt")
	if err != nil {
		t.Fatal(err)
	}
	h.writeRaw(appended)
	h.sync()
	before := h.verify()
	keysBefore, _ := h.db.Keys(schema.PrefixEvent)

	h.writeRaw(after)
	h.sync()
	r := h.verify()
	deleted := strings.Fields(string(idsText))
	if before.Events-r.Events != len(deleted) {
		t.Fatalf("lost %d events, want %d", before.Events-r.Events, len(deleted))
	}
	keysAfter, _ := h.db.Keys(schema.PrefixEvent)
	var lost []string
	for _, k := range keysBefore {
		if !slices.Contains(keysAfter, k) {
			lost = append(lost, strings.TrimPrefix(k, schema.PrefixEvent))
		}
	}
	slices.Sort(lost)
	slices.Sort(deleted)
	if !slices.Equal(lost, deleted) {
		t.Fatalf("lost %q, want %q", lost, deleted)
	}
	// The stored event is the object as it stands in the log.
	var stored json.RawMessage
	if _, err := h.db.Get(schema.EventKey("xcjs1jsautxz43i4"), &stored); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(stored), `said \"hello\" to \\ everyone`) {
		t.Fatalf("stored event %s", stored)
	}
}

func TestReplaceByRename(t *testing.T) {
	h := newHarness(t, nil)
	h.appendEvents(h.newEvents(60)...)
	h.sync()
	// git checkout: a new file renamed over the log, with one event
	// deleted, one changed and two added.
	next := without(h.evs, 5)
	changed := *next[10]
	changed.Description += " (edited)"
	next[10] = &changed
	next = append(next, h.newEvents(2)...)
	h.replace(next)
	h.sync()
	h.verify()
	h.wantIDs(h.modelIDs()...)
	var got eventlog.Event
	if _, err := h.db.Get(schema.EventKey(changed.ID), &got); err != nil || got.Description != changed.Description {
		t.Fatalf("changed event: %+v %v", got, err)
	}
	// Identical content under a new inode: nothing but the checkpoint.
	h.takeApplied()
	h.replace(h.evs)
	h.sync()
	h.verify()
	for _, a := range h.takeApplied() {
		if a.Changed != 0 {
			t.Fatalf("an identical replacement changed %d events", a.Changed)
		}
	}
}

func TestGitRemoveAndRecreate(t *testing.T) {
	h := newHarness(t, nil)
	h.appendEvents(h.newEvents(40)...)
	h.sync()
	evs := slices.Clone(h.evs)
	if err := os.Remove(h.path); err != nil {
		t.Fatal(err)
	}
	// Missing: the store is kept as it is.
	if err := h.e.Sync(h.ctx()); !errors.Is(err, ErrLogMissing) {
		t.Fatalf("Sync of a missing log: %v", err)
	}
	h.wantIDs(h.modelIDs()...)
	if !h.e.Status().LogMissing {
		t.Fatal("status does not say the log is missing")
	}
	// Recreated with different content.
	h.rewrite(append(without(evs, 3), h.newEvents(3)...))
	h.sync()
	h.verify()
	h.wantIDs(h.modelIDs()...)
}

func TestTruncateToEmptyAndRegrow(t *testing.T) {
	h := newHarness(t, nil)
	h.appendEvents(h.newEvents(30)...)
	h.sync()
	// An empty log is a valid log: once settled, it empties the mirror.
	h.rewrite(nil) // the application's format for no events: "\n"
	h.sync()
	h.verify()
	h.wantIDs()
	h.writeRaw(nil) // and a zero-byte file
	h.sync()
	h.verify()
	h.appendEvents(h.newEvents(5)...)
	h.sync()
	h.verify()
	h.wantIDs(h.modelIDs()...)
}

func TestGarbageBetweenEntries(t *testing.T) {
	h := newHarness(t, nil)
	evs := h.newEvents(6)
	var b bytes.Buffer
	b.Write(eventlog.Format(evs[:2]))
	b.WriteString("<<<<<<< HEAD\n")
	b.Write(eventlog.Format(evs[2:4]))
	b.WriteString("=======\nnot json at all {\n")
	b.Write(eventlog.Format(evs[4:]))
	b.WriteString(">>>>>>> branch\n")
	b.WriteString(`{"id": "no-date", "original": "", "input": "", "type": "", "description": "", "creator": {"name": "", "uuid": "", "version": ""}}` + "\n")
	h.writeRaw(b.Bytes())
	h.evs = evs
	if err := h.e.Sync(h.ctx()); err != nil {
		t.Fatal(err)
	}
	r := h.verify()
	h.wantIDs(h.modelIDs()...)
	if r.Invalid != 4 {
		t.Fatalf("invalid entries %d, want 4 (three conflict markers, one event without a date)", r.Invalid)
	}
	// Garbage at the very end may yet be followed by a value: pending.
	if h.e.Status().Pending != nil {
		t.Fatalf("a log ending in a complete value reports pending %+v", h.e.Status().Pending)
	}
	h.appendRaw([]byte("trailing garbage"))
	h.sync()
	if p := h.e.Status().Pending; p == nil || !strings.Contains(p.Reason, "not JSON") {
		t.Fatalf("trailing garbage: pending %+v", p)
	}
	more := h.newEvents(1)
	h.appendRaw(append([]byte("\n"), eventlog.Format(more)...))
	h.evs = append(h.evs, more...)
	h.sync()
	r = h.verify()
	h.wantIDs(h.modelIDs()...)
	if r.Invalid != 5 {
		t.Fatalf("invalid entries %d, want 5", r.Invalid)
	}
}

func TestDuplicateIDsLastValidWins(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.ChunkBytes = 2048 })
	evs := h.newEvents(20)
	h.appendEvents(evs...)
	h.sync()
	// A later occurrence replaces the earlier one: a modifier added,
	// changed, removed.
	edit := *evs[3]
	edit.Modifiers = []eventlog.Modifier{{Name: "location", Value: "moved"}, {Name: "new", Value: "added"}}
	edit.Description = "second version"
	h.appendEvents(&edit)
	h.sync()
	h.verify()
	assertModifiers(t, h, edit.ID, map[string]string{"location": "moved", "new": "added"})

	// Within one chunk, and across chunks.
	third := edit
	third.Modifiers = nil
	third.Description = "third version"
	h.appendEvents(h.newEvents(10)...)
	h.appendEvents(&third)
	h.sync()
	h.verify()
	assertModifiers(t, h, edit.ID, map[string]string{})

	// A later occurrence that is invalid does not count.
	h.appendRaw([]byte(`{"id": "` + edit.ID + `", "date": "not a date"}` + "\n"))
	h.sync()
	var got eventlog.Event
	if _, err := h.db.Get(schema.EventKey(edit.ID), &got); err != nil || got.Description != "third version" {
		t.Fatalf("after an invalid duplicate: %q %v", got.Description, err)
	}
	// The same through a reconcile: rewrite with all occurrences.
	h.replace(h.evs)
	h.sync()
	h.verify()
	assertModifiers(t, h, edit.ID, map[string]string{})
}

func assertModifiers(t *testing.T, h *harness, id string, want map[string]string) {
	t.Helper()
	got := map[string]string{}
	err := h.db.Scan(schema.ModifiersOf(id), func(k string, v json.RawMessage) error {
		p, err := schema.ParseKey(k)
		if err != nil {
			return err
		}
		var mv struct{ Value string }
		if err := json.Unmarshal(v, &mv); err != nil {
			return err
		}
		got[p.Name] = mv.Value
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("modifiers of %s: %v, want %v", id, got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("modifiers of %s: %v, want %v", id, got, want)
		}
	}
}

func TestModifierChangesThroughRewrite(t *testing.T) {
	h := newHarness(t, nil)
	evs := h.newEvents(10)
	evs[2].Modifiers = []eventlog.Modifier{{Name: "a", Value: "1"}, {Name: "b", Value: "2"}}
	h.appendEvents(evs...)
	h.sync()
	next := slices.Clone(h.evs)
	e2 := *next[2]
	e2.Modifiers = []eventlog.Modifier{{Name: "a", Value: "changed"}, {Name: "c", Value: "3"}}
	next[2] = &e2
	h.rewrite(next)
	h.sync()
	h.verify()
	assertModifiers(t, h, e2.ID, map[string]string{"a": "changed", "c": "3"})
}

// An edit made while no daemon ran, before the checkpoint's offset and
// keeping the file's size, identity and last 4 KiB: only the whole-prefix
// fingerprint, checked at start, can see it.
func TestEditBeforeOffsetWhileStopped(t *testing.T) {
	h := newHarness(t, nil)
	evs := h.newEvents(40)
	evs[1].Description = "aaaa"
	h.appendEvents(evs...)
	h.sync()
	h.db.Close()

	b, err := os.ReadFile(h.path)
	if err != nil {
		t.Fatal(err)
	}
	b = bytes.Replace(b, []byte(`"aaaa"`), []byte(`"bbbb"`), 1)
	f, err := os.OpenFile(h.path, os.O_WRONLY, 0) // in place: same inode
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(b, 0); err != nil {
		t.Fatal(err)
	}
	f.Close()
	h.evs[1].Description = "bbbb"

	h.db = nil
	h.open()
	h.sync()
	h.verify()
	var got eventlog.Event
	if _, err := h.db.Get(schema.EventKey(evs[1].ID), &got); err != nil || got.Description != "bbbb" {
		t.Fatalf("edit while stopped not mirrored: %q %v", got.Description, err)
	}
}

// Restarting on an unchanged log resumes exactly at the checkpoint:
// nothing is applied twice.
func TestRestartResumesExactlyOnce(t *testing.T) {
	h := newHarness(t, nil)
	h.appendEvents(h.newEvents(25)...)
	h.sync()
	seq := h.e.Checkpoint().Seq
	h.db.Close()
	h.db = nil
	h.open()
	h.takeApplied()
	h.sync()
	if a := h.takeApplied(); len(a) != 0 {
		t.Fatalf("a restart on an unchanged log applied %+v", a)
	}
	h.appendEvents(h.newEvents(3)...)
	h.sync()
	h.verify()
	a := h.takeApplied()
	if len(a) != 1 || a[0].Changed != 3 || a[0].Seq != seq+1 {
		t.Fatalf("after restart and 3 appends: %+v (seq before %d)", a, seq)
	}
}

// Hostile ids and modifier names never share a key.
func TestEscapedIDsNeverCollide(t *testing.T) {
	h := newHarness(t, nil)
	base := h.newEvents(4)
	ids := []string{"a:b", "a", "a%3Ab", "x\x00y"}
	names := [][]eventlog.Modifier{
		{{Name: "c", Value: "1"}},
		{{Name: "b:c", Value: "2"}},
		{{Name: "%", Value: "3"}},
		{{Name: "\n", Value: "4"}},
	}
	for i := range base {
		base[i].ID = ids[i]
		base[i].Modifiers = names[i]
	}
	h.appendEvents(base...)
	h.sync()
	h.verify()
	h.wantIDs(ids...)
	keys, _ := h.db.Keys(schema.PrefixModifier)
	if len(keys) != 4 {
		t.Fatalf("modifier keys %q, want 4 distinct", keys)
	}
	assertModifiers(t, h, "a:b", map[string]string{"c": "1"})
	assertModifiers(t, h, "a", map[string]string{"b:c": "2"})
}
