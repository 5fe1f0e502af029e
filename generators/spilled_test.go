package generators

import (
	"fmt"
	"testing"

	"github.com/mirrord/mirrord/kv"
	"github.com/mirrord/mirrord/schema"
)

// Every key added is reported, across several parts of the chain, and
// keys never added are rarely reported.
func TestSpilledKeysNoFalseNegatives(t *testing.T) {
	var f spilledKeys
	const n = 500_000 // fills parts of 1, 2 and 4 Mbit (105k, 210k, 419k keys)
	for i := range n {
		f.add(fmt.Sprintf("generated:summary:.event:%016x", i))
		f.add(fmt.Sprintf("generated:summary:.event:%016x", i)) // committed again: counted once
	}
	if len(f.parts) != 3 {
		t.Fatalf("%d parts for %d keys, want 3", len(f.parts), n)
	}
	for i := range n {
		if k := fmt.Sprintf("generated:summary:.event:%016x", i); !f.mayHave(k) {
			t.Fatalf("added key %q not reported", k)
		}
	}
	const absent = 100_000
	fp := 0
	for i := range absent {
		if f.mayHave(fmt.Sprintf("generated:summary:.month:%016x", i)) {
			fp++
		}
	}
	rate := float64(fp) / absent
	t.Logf("false-positive rate %.4f", rate)
	if rate > 0.03 {
		t.Fatalf("false-positive rate %.3f, want under 0.03", rate)
	}
}

// countingReader counts the Gets that reach the store.
type countingReader struct {
	kv.Reader
	gets int
}

func (c *countingReader) Get(key string, dst any) (bool, error) {
	c.gets++
	return c.Reader.Get(key, dst)
}

// After a rebuild has committed part of its writes, reading and deleting
// keys it never wrote (what a rebuild does for each event's index entry)
// does not ask the store; keys it did write are read back from the store.
func TestRebuildDoesNotAskTheStoreForKeysItNeverWrote(t *testing.T) {
	e := newEnv(t, Options{Enabled: []string{}})
	// A value from before the rebuild, which the rebuild deletes.
	if err := e.db.Put(schema.GeneratedKey("count", "old"), 1); err != nil {
		t.Fatal(err)
	}
	live := &countingReader{Reader: e.db}
	s := newScope("count", live, true)
	const n = 1000
	for i := range n {
		if err := s.Put(fmt.Sprintf("w%04d", i), i); err != nil {
			t.Fatal(err)
		}
	}
	w := e.db.NewWriteBatch()
	s.commitTo(w)
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	s.committed()

	for i := range n {
		var v int
		if found, err := s.Get(fmt.Sprintf("w%04d", i), &v); err != nil || !found || v != i {
			t.Fatalf("Get(w%04d) = %d, %v, %v after the commit", i, v, found, err)
		}
	}
	if live.gets != n {
		t.Fatalf("%d Gets of committed keys reached the store, want %d", live.gets, n)
	}
	live.gets = 0
	for i := range n {
		k := fmt.Sprintf("u%04d", i)
		if found, err := s.Get(k, nil); err != nil || found {
			t.Fatalf("Get(%s) = %v, %v: never written", k, found, err)
		}
		if err := s.Delete(k); err != nil {
			t.Fatal(err)
		}
	}
	if found, err := s.Get("old", nil); err != nil || found {
		t.Fatalf("Get(old) = %v, %v: the rebuild deleted it", found, err)
	}
	if live.gets > n/20 {
		t.Fatalf("%d of %d Gets of keys the rebuild never wrote reached the store", live.gets, n+1)
	}
	// None of those deletes needs a tombstone.
	w = e.db.NewWriteBatch()
	s.commitTo(w)
	if w.Len() != 0 {
		t.Fatalf("%d writes for deletes of keys never stored", w.Len())
	}
	w.Close()
}
