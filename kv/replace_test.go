package kv

import (
	"context"
	"fmt"
	"slices"
	"testing"
)

// A replacement puts several ranges that lie apart in place at once: each
// holds exactly what its stream added (nothing, for an empty stream), and
// every key outside them stays; a stream of several sstables deletes its
// whole range without its sstables overlapping.
func TestReplacementReplacesSeveralRanges(t *testing.T) {
	db := openMem(t)
	for _, k := range []string{"a:keep", "g:1", "g:2", "m:keep", "s:1", "s:old", "t:1", "z:keep"} {
		mustPut(t, db, k, 1)
	}
	defer func(n uint64) { sstSize = n }(sstSize)
	sstSize = 4 << 10 // a stream of many sstables
	in := db.NewReplacement()
	g := in.Replace([]byte("g:"), PrefixEnd([]byte("g:")))
	var want []string
	for i := range 2000 {
		k := fmt.Sprintf("g:%05d", i)
		if err := g.Add([]byte(k), []byte(`"some value to fill the sstables"`)); err != nil {
			t.Fatal(err)
		}
		want = append(want, k)
	}
	if len(g.paths) < 3 {
		t.Fatalf("the stream wrote %d sstables: the test misses the deletions between them", len(g.paths))
	}
	s := in.Replace([]byte("s:"), PrefixEnd([]byte("s:")))
	if err := s.Add([]byte("s:1"), []byte(`2`)); err != nil {
		t.Fatal(err)
	}
	if err := s.Add([]byte("t:1"), []byte(`2`)); err == nil {
		t.Fatal("a key outside the stream's range was accepted")
	}
	in.Abort()

	in = db.NewReplacement()
	g = in.Replace([]byte("g:"), PrefixEnd([]byte("g:")))
	for _, k := range want {
		if err := g.Add([]byte(k), []byte(`"some value to fill the sstables"`)); err != nil {
			t.Fatal(err)
		}
	}
	s = in.Replace([]byte("s:"), PrefixEnd([]byte("s:")))
	if err := s.Add([]byte("s:1"), []byte(`2`)); err != nil {
		t.Fatal(err)
	}
	in.Replace([]byte("t:"), PrefixEnd([]byte("t:"))) // empty: the range goes
	if err := in.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	want = append(append(append([]string{"a:keep"}, want...), "m:keep", "s:1"), "z:keep")
	got, err := db.Keys("")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("after the replacement %d keys (%q … %q), want %d", len(got), got[:min(3, len(got))], got[max(0, len(got)-3):], len(want))
	}
	var v int
	if _, err := db.Get("s:1", &v); err != nil || v != 2 {
		t.Fatalf("s:1 = %d (%v), want the new value", v, err)
	}
	// The next write to a replaced range lands on top, as usual.
	mustPut(t, db, "t:2", 3)
	if got, _ := db.Keys("t:"); !slices.Equal(got, []string{"t:2"}) {
		t.Fatalf("t: after a put: %q", got)
	}
}
