package generators

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// A spill's log sorts as a stable sort by key would: by key, and equal
// keys in the order written. The keys are built to hit every path of the
// sort: long shared prefixes (a month's index keys), groups that tie on
// 8 bytes and more, keys that end inside the 8 bytes compared (and keys
// that differ from them only by zero bytes), repeated keys, and groups
// both above and below the size sorted by radix.
func TestSortLogIsAStableSortByKey(t *testing.T) {
	for _, tc := range []struct {
		name string
		n    int
		key  func(r *rand.Rand, i int) string
	}{
		{"index keys of one month", 5000, func(r *rand.Rand, i int) string {
			return fmt.Sprintf("mirrord:state:summary:2026-03/80000000%08x%08x/%d", r.IntN(1<<20), r.IntN(3), r.IntN(50))
		}},
		{"short and zero-padded", 3000, func(r *rand.Rand, i int) string {
			k := []byte("p:")
			for range r.IntN(12) {
				k = append(k, []byte{0, 0, 'a', 'b'}[r.IntN(4)])
			}
			return string(k)
		}},
		{"tags and ids", 4000, func(r *rand.Rand, i int) string {
			return fmt.Sprintf("generated:hashtags:t%d:%016x", r.IntN(3), r.IntN(600))
		}},
		{"one key", 700, func(*rand.Rand, int) string { return "generated:x:same" }},
		{"few", 5, func(r *rand.Rand, i int) string { return fmt.Sprint(r.IntN(3)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(uint64(tc.n), 1))
			st := &spillRuns{budget: 1 << 20}
			type rec struct {
				key string
				seq int
			}
			var want []rec
			for i := range tc.n {
				k := tc.key(r, i)
				appendRec(st, k, []byte(fmt.Sprint(i)))
				want = append(want, rec{k, i})
			}
			slices.SortStableFunc(want, func(a, b rec) int { return bytes.Compare([]byte(a.key), []byte(b.key)) })
			st.sortLog()
			for i, r := range st.recs {
				if got := string(st.key(r)); got != want[i].key || string(st.value(r)) != fmt.Sprint(want[i].seq) {
					t.Fatalf("record %d: %q (written %s), want %q (written %d)", i, got, st.value(r), want[i].key, want[i].seq)
				}
			}
			// Walked by a logIter (gathered in chunks), from the start
			// and from keys inside: each key once, its last write.
			var last []rec
			for i, w := range want {
				if i+1 == len(want) || want[i+1].key != w.key {
					last = append(last, w)
				}
			}
			for _, from := range []int{0, len(last) / 3, len(last) - 1} {
				it := &logIter{st: st}
				n := from
				for ok := it.seek(last[from].key); ok; ok = it.next() {
					k, v, _ := it.current()
					if n >= len(last) || string(k) != last[n].key || string(v) != fmt.Sprint(last[n].seq) {
						t.Fatalf("logIter from %d, record %d: %q=%s", from, n, k, v)
					}
					n++
				}
				if n != len(last) {
					t.Fatalf("logIter from %d: %d records, want %d", from, n-from, len(last)-from)
				}
			}
		})
	}
}
