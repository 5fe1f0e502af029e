package extsort

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/mirrord/mirrord/internal/hugemem"
)

// TestSlabSizes sizes a buffer's slabs: the first is a chunk; then a fill
// expected to be full gets the rest of its memory in one slab, a fill of
// unknown size grows by doubling from hugemem.Min; no slab takes a fill
// past its limit or is less than a chunk.
func TestSlabSizes(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		name                      string
		size, limit, expect, held int
		want                      int
	}{
		{"unknown, first", mib, 16 * mib, 0, 0, mib},
		{"unknown, second", mib, 16 * mib, 0, mib, hugemem.Min},
		{"unknown, doubling", mib, 16 * mib, 0, 5 * mib, 5 * mib},
		{"unknown, up to the limit", mib, 16 * mib, 0, 10 * mib, 6 * mib},
		{"unknown, past the limit: a chunk", mib, 16 * mib, 0, 16 * mib, mib},
		{"unknown, small budget", 4 << 10, 64 << 10, 0, 8 << 10, 56 << 10},
		{"expected, first", mib, 16 * mib, 16 * mib, 0, mib},
		{"expected full, the rest", mib, 16 * mib, 16 * mib, mib, 15 * mib},
		{"expected twice the budget, the rest", mib, 32 * mib, 32 * mib, mib, 31 * mib},
		{"expected, rounded up to chunks", mib, 32 * mib, 5*mib + 1, mib, 5 * mib},
		{"expected, more than it said", mib, 32 * mib, 5 * mib, 6 * mib, mib},
		{"expected, past the limit", mib, 16 * mib, 32 * mib, 4 * mib, 12 * mib},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := &sortBuf{size: tc.size, limit: tc.limit, expect: tc.expect, held: tc.held}
			if got := b.slabSize(); got != tc.want {
				t.Fatalf("slabSize() = %d, want %d", got, tc.want)
			}
		})
	}
}

// TestSorterSlabsHoldItsChunks fills sorters past many runs, with and
// without Expect (too little, then right), and checks after every record
// that each chunk is cut from a slab the buffer still holds, and that the
// slabs hold no more than the fill's limit and a chunk: the memory the
// budget bounds.
func TestSorterSlabsHoldItsChunks(t *testing.T) {
	const budget = 8 << 20
	val := bytes.Repeat([]byte("v"), 2000)
	for _, expect := range []int64{0, budget, 20 * budget} {
		t.Run(fmt.Sprint("expect ", expect), func(t *testing.T) {
			dir := newTmpDir(t)
			s := dir.sorter(budget, len("event:"))
			t.Cleanup(func() { s.Close() })
			if expect > 0 {
				s.Expect(expect)
			}
			n := 6 * budget / len(val)
			for i := range n {
				if err := s.Add(fmt.Appendf(nil, "event:%08d", i*7919%n), val, uint64(i)); err != nil {
					t.Fatal(err)
				}
				checkSlabs(t, s.cur, max(s.cur.limit, budget))
			}
			if len(s.runs) < 2 {
				t.Fatalf("%d runs: the test wants several fills", len(s.runs))
			}
			got := 0
			if err := s.Each(func(k, v []byte, _ uint64) error {
				if !bytes.Equal(v, val) {
					return fmt.Errorf("%s: value changed", k)
				}
				got++
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if got != n {
				t.Fatalf("%d records back, %d added", got, n)
			}
			s.Close()
			if s.cur.slabs != nil || s.cur.held != 0 {
				t.Fatalf("closed, the buffer still holds %d slabs (%d bytes)", len(s.cur.slabs), s.cur.held)
			}
		})
	}
}

func checkSlabs(t *testing.T, b *sortBuf, limit int) {
	t.Helper()
	held := 0
	for _, s := range b.slabs {
		held += len(s)
	}
	if held != b.held {
		t.Fatalf("slabs of %d bytes, counted %d", held, b.held)
	}
	if held > limit+b.size {
		t.Fatalf("slabs of %d bytes, fill limit %d", held, limit)
	}
	for i, c := range b.chunks {
		if len(c) > b.size {
			continue // a large record's own
		}
		found := false
		for _, s := range b.slabs {
			found = found || within(c, s)
		}
		if !found {
			t.Fatalf("chunk %d is cut from no slab the buffer holds", i)
		}
	}
}
