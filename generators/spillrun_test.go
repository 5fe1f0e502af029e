package generators

import (
	"bytes"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// sliceSource is a mergeSource over records in memory, sorted by key. It
// hands each record out in buffers of its own that the next record
// overwrites, as a run's reader does.
type sliceSource struct {
	recs       []runRecord
	i          int
	key, value []byte
}

type runRecord struct {
	key, value string
	del        bool
}

func (s *sliceSource) seek(key string) bool {
	s.i, _ = slices.BinarySearchFunc(s.recs, key, func(r runRecord, k string) int { return cmpStrings(r.key, k) })
	return s.i < len(s.recs)
}
func (s *sliceSource) next() bool { s.i++; return s.i < len(s.recs) }
func (s *sliceSource) current() ([]byte, []byte, bool) {
	r := s.recs[s.i]
	s.key, s.value = append(s.key[:0], r.key...), append(s.value[:0], r.value...)
	return s.key, s.value, r.del
}
func (s *sliceSource) error() error { return nil }

func cmpStrings(a, b string) int { return bytes.Compare([]byte(a), []byte(b)) }

// A run of many blocks, its keys sharing long prefixes (each block's first
// spelt whole, the others after the bytes they share with the one before),
// reads back every record by key, from any key on, and in order; keys it
// does not hold are not found.
func TestSpillRunReadsBackByKey(t *testing.T) {
	var recs []runRecord
	for i := range 12000 {
		r := runRecord{key: fmt.Sprintf("mirrord:state:x:%04d/%08x/id%d", i/700, (i*2654435761)%(1<<20)+i<<12, i)}
		if i%7 == 0 {
			r.del = true
		} else {
			r.value = fmt.Sprintf(`"v%d"`, i*i)
		}
		recs = append(recs, r)
	}
	slices.SortFunc(recs, func(a, b runRecord) int { return cmpStrings(a.key, b.key) })
	fs := vfs.NewMem()
	run, err := writeSpillRun(fs, "/run", newMerged([]mergeSource{&sliceSource{recs: recs}}, ""), func(string) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	defer run.close(fs)
	if len(run.index) < 10 {
		t.Fatalf("%d blocks: the test misses keys spelt across block starts", len(run.index))
	}
	var buf []byte
	for _, r := range recs {
		v, del, found, err := run.lookup(r.key, &buf)
		if err != nil || !found || del != r.del || string(v) != r.value {
			t.Fatalf("lookup(%q) = %q, del %v, found %v, %v; want %q, del %v", r.key, v, del, found, err, r.value, r.del)
		}
		if _, _, found, err := run.lookup(r.key+"!", &buf); err != nil || found {
			t.Fatalf("lookup(%q) found a key the run does not hold (%v)", r.key+"!", err)
		}
	}
	for _, from := range []int{0, 1, 699, 700, 2500, 11999} {
		it := &runIter{r: run}
		n := from
		for ok := it.seek(recs[from].key); ok; ok = it.next() {
			k, v, del := it.current()
			if r := recs[n]; string(k) != r.key || string(v) != r.value || del != r.del {
				t.Fatalf("from %d, record %d: %q=%q del %v, want %+v", from, n, k, v, del, r)
			}
			n++
		}
		if it.error() != nil || n != len(recs) {
			t.Fatalf("from %d: read up to %d of %d (%v)", from, n, len(recs), it.error())
		}
	}
}

// Any bytes read as a run's block are records or errBadRun, never a panic.
func FuzzNextRecord(f *testing.F) {
	f.Add([]byte{0, 3, 'a', 'b', 'c', 2, '1'}, []byte("ab"))
	f.Add([]byte{2, 1, 'x', 0}, []byte("ab"))
	f.Add([]byte{5, 1, 'x', 0}, []byte("ab"))
	f.Fuzz(func(t *testing.T, b, prev []byte) {
		for len(b) > 0 {
			k, _, _, rest, err := nextRecord(b, prev)
			if err != nil {
				return
			}
			if len(rest) >= len(b) {
				t.Fatalf("no progress on %q", b)
			}
			b, prev = rest, k
		}
	})
}

// A merge of any number of sources gives each key once, in order, with
// the record of the latest source that holds it (deletions included by
// eachAll), from any key on.
func TestMergeTakesTheLatestSourcesRecord(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for k := range 10 {
		want := map[string]runRecord{}
		srcs := make([]mergeSource, k)
		for i := range k {
			seen := map[string]bool{}
			var recs []runRecord
			for range rng.IntN(300) {
				r := runRecord{key: fmt.Sprintf("k%03d", rng.IntN(400)), value: fmt.Sprintf("%d", i), del: rng.IntN(5) == 0}
				if !seen[r.key] {
					seen[r.key] = true
					recs = append(recs, r)
					want[r.key] = r // later sources win
				}
			}
			slices.SortFunc(recs, func(a, b runRecord) int { return cmpStrings(a.key, b.key) })
			srcs[i] = &sliceSource{recs: recs}
		}
		keys := slices.Sorted(maps.Keys(want))
		for _, from := range []string{"", "k100", "k399", "l"} {
			for _, s := range srcs {
				s.(*sliceSource).i = 0
			}
			var got []runRecord
			err := newMerged(srcs, from).eachAll(func(k, v []byte, del bool) error {
				got = append(got, runRecord{string(k), string(v), del})
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			var exp []runRecord
			for _, key := range keys {
				if key >= from {
					r := want[key]
					if r.del {
						r.value = ""
					}
					exp = append(exp, r)
				}
			}
			for i := range got {
				if got[i].del {
					got[i].value = ""
				}
			}
			if !slices.Equal(got, exp) {
				t.Fatalf("%d sources from %q: %d records, want %d\n got %v\nwant %v", k, from, len(got), len(exp), got, exp)
			}
		}
	}
}
