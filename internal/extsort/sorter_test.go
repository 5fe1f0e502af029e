package extsort

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"github.com/mirrord/mirrord/internal/faultfs"
)

// tmpDir is where a test's sorters write their runs.
type tmpDir struct {
	fs  vfs.FS
	dir string
}

func newTmpDir(testing.TB) tmpDir { return tmpDir{vfs.NewMem(), "/bulk-tmp"} }

func (d tmpDir) sorter(budget, skip int) *Sorter { return New(d.fs, d.dir, budget, skip) }

type sortedRec struct {
	k, v string
	seq  uint64
}

// fillSorters adds the same random records (with repeated keys) to n
// sorters with a small budget, so that each spills many runs of many
// blocks, and returns all the records in merge order.
func fillSorters(t *testing.T, dir tmpDir, n, records, budget int) ([]*Sorter, []sortedRec) {
	t.Helper()
	rng := rand.New(rand.NewPCG(3, 4))
	var ss []*Sorter
	for range n {
		s := dir.sorter(budget, len("event:"))
		t.Cleanup(func() { s.Close() })
		ss = append(ss, s)
	}
	var want []sortedRec
	for i := range records {
		k := fmt.Sprintf("event:%x", rng.Uint64()%uint64(records/2)) // about two records a key
		if i%50 == 0 {
			k = "other:" + k // outside the common prefix
		}
		r := sortedRec{k, fmt.Sprintf("%s-%d-%s", k, i, bytes.Repeat([]byte("v"), rng.IntN(300))), uint64(i)}
		want = append(want, r)
		if err := ss[i%n].Add([]byte(r.k), []byte(r.v), r.seq); err != nil {
			t.Fatal(err)
		}
	}
	slices.SortFunc(want, func(a, b sortedRec) int {
		if a.k != b.k {
			return bytes.Compare([]byte(a.k), []byte(b.k))
		}
		return int(a.seq) - int(b.seq)
	})
	return ss, want
}

func collect(t *testing.T, ss []*Sorter, lo, hi []byte) []sortedRec {
	t.Helper()
	var got []sortedRec
	err := MergeRange(ss, lo, hi, func(k, v []byte, seq uint64) error {
		got = append(got, sortedRec{string(k), string(v), seq})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// smallRunBlocks makes runs of many 4 KiB blocks (and SplitKeys sample
// the records in memory as finely).
func smallRunBlocks(t *testing.T) {
	b := runBlock
	runBlock = 4 << 10
	t.Cleanup(func() { runBlock = b })
}

// splitInFour cuts the records of ss with SplitKeys into four ranges and
// checks that each cut falls at about a quarter more of want (the records
// in merge order).
func splitInFour(t *testing.T, ss []*Sorter, want []sortedRec) [][]byte {
	t.Helper()
	splits, err := SplitKeys(ss, 4)
	if err != nil {
		t.Fatal(err)
	}
	if len(splits) != 3 {
		t.Fatalf("SplitKeys gave %d keys, want 3", len(splits))
	}
	for j, k := range splits {
		at, _ := slices.BinarySearchFunc(want, string(k), func(r sortedRec, k string) int { return strings.Compare(r.k, k) })
		if share := float64(at) / float64(len(want)); share < float64(j+1)/4-0.1 || share > float64(j+1)/4+0.1 {
			t.Fatalf("split %d falls at %.2f of the records", j, share)
		}
	}
	return splits
}

// Ranges cut at any keys (split keys, keys that are not there, keys with
// several records) together give exactly the whole merge, also when the
// ranges are merged at the same time.
func TestMergeRangePartitionsTheMerge(t *testing.T) {
	smallRunBlocks(t)
	dir := newTmpDir(t)
	ss, want := fillSorters(t, dir, 3, 20000, 64<<10)
	runs, blocks := 0, 0
	for _, s := range ss {
		runs += len(s.runs)
		for _, r := range s.runs {
			blocks += len(r.index)
		}
	}
	if runs < 30 || blocks <= runs {
		t.Fatalf("%d runs of %d blocks: too few to test seeking into runs", runs, blocks)
	}
	if got := collect(t, ss, nil, nil); !slices.Equal(got, want) {
		t.Fatalf("the whole merge: %d records, want %d (or out of order)", len(got), len(want))
	}
	splits := splitInFour(t, ss, want)
	for _, k := range splits {
		if !slices.ContainsFunc(want, func(r sortedRec) bool { return r.k == string(k) }) {
			t.Fatalf("split key %q is not a key of the records", k)
		}
	}
	cuts := [][][]byte{
		splits,
		{[]byte("event:"), []byte(want[len(want)/3].k), []byte(want[len(want)/3].k + "\x00"), []byte("event:zz")},
		{[]byte("a"), []byte("zzz")},
	}
	for i, cut := range cuts {
		bounds := append(append([][]byte{nil}, cut...), nil)
		parts := make([][]sortedRec, len(bounds)-1)
		var wg sync.WaitGroup
		for j := range parts {
			wg.Add(1)
			go func() {
				defer wg.Done()
				parts[j] = collect(t, ss, bounds[j], bounds[j+1])
			}()
		}
		wg.Wait()
		var got []sortedRec
		for j, p := range parts {
			for _, r := range p {
				if (bounds[j] != nil && r.k < string(bounds[j])) || (bounds[j+1] != nil && r.k >= string(bounds[j+1])) {
					t.Fatalf("cut %d: key %q outside its range [%q, %q)", i, r.k, bounds[j], bounds[j+1])
				}
			}
			got = append(got, p...)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("cut %d: the ranges hold %d records together, want %d (or out of order)", i, len(got), len(want))
		}
	}
}

// Too few blocks to estimate from: no split.
func TestSplitKeysOfASmallLoad(t *testing.T) {
	dir := newTmpDir(t)
	ss, _ := fillSorters(t, dir, 1, 100, 1<<20)
	splits, err := SplitKeys(ss, 2)
	if err != nil || splits != nil {
		t.Fatalf("SplitKeys = %q, %v; want none", splits, err)
	}
}

// A record larger than MinLZ's 8 MiB block limit (an event of 9 MiB, which
// the default 16 MiB value bound admits) spills and merges like any other.
func TestSorterSpillsARecordLargerThanABlock(t *testing.T) {
	dir := newTmpDir(t)
	s := dir.sorter(1<<20, len("event:"))
	defer s.Close()
	big := bytes.Repeat([]byte("x"), 9<<20)
	want := []sortedRec{}
	for i, k := range []string{"event:b", "event:a", "event:c", "event:d"} {
		v := fmt.Sprintf("small %d", i)
		if k == "event:a" {
			v = string(big)
		}
		want = append(want, sortedRec{k, v, uint64(i)})
		if err := s.Add([]byte(k), []byte(v), uint64(i)); err != nil {
			t.Fatal(err)
		}
	}
	if len(s.runs) == 0 {
		t.Fatal("nothing spilled: the test does not test a run")
	}
	slices.SortFunc(want, func(a, b sortedRec) int { return bytes.Compare([]byte(a.k), []byte(b.k)) })
	if got := collect(t, []*Sorter{s}, nil, nil); !slices.Equal(got, want) {
		t.Fatalf("merged %d records (or different ones), want %d", len(got), len(want))
	}
}

// The in-memory sort orders records by key bytes, then seq, whatever the
// keys: ids that share their first 8 bytes (and tie in the radix sort),
// keys that end inside those 8 bytes or hold zero bytes there (which the
// zero padding of the radix key must not confuse), repeated keys, and a
// buffer with one key outside the common prefix (the comparison sort).
func TestSortBufOrdersByKeyThenSeq(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	const skip = len("modifier:")
	alphabet := []byte("ab\x00\xff:")
	randKey := func() string {
		k := []byte("modifier:")
		for range rng.IntN(14) {
			k = append(k, alphabet[rng.IntN(len(alphabet))])
		}
		return string(k)
	}
	for _, tc := range []struct {
		name     string
		outsider bool
	}{{"radix", false}, {"comparison", true}} {
		t.Run(tc.name, func(t *testing.T) {
			for round := range 50 {
				b := newSortBuf(64<<10, skip)
				var want []sortedRec
				n := 1 + rng.IntN(400)
				for i := range n {
					k := randKey()
					if tc.outsider && i == n/2 {
						k = "event:" + k
					}
					// Few seqs a key, so that equal keys come in any order.
					r := sortedRec{k, fmt.Sprint(i), rng.Uint64N(8)<<32 | uint64(i)}
					want = append(want, r)
					chunk, off := b.add([]byte(r.k), []byte(r.v))
					b.recs = append(b.recs, sortRec{pfx: keyPrefix([]byte(k), skip), chunk: chunk, off: off, klen: uint32(len(r.k)),
						vlen: uint32(len(r.v)), in: len(k) >= skip && k[:skip] == "modifier:", seq: r.seq})
				}
				b.sort(new([]sortRec))
				slices.SortFunc(want, func(a, b sortedRec) int {
					if c := bytes.Compare([]byte(a.k), []byte(b.k)); c != 0 {
						return c
					}
					return cmp.Compare(a.seq, b.seq)
				})
				for i, r := range b.recs {
					if got := (sortedRec{string(b.key(r)), string(b.val(r)), r.seq}); got != want[i] {
						t.Fatalf("round %d, record %d of %d: got %+v, want %+v", round, i, n, got, want[i])
					}
				}
			}
		})
	}
}

// BenchmarkSortBuf sorts a buffer of modifier-like records, three an id:
// the final in-memory sort a bulk load waits for.
func BenchmarkSortBuf(b *testing.B) {
	rng := rand.New(rand.NewPCG(7, 8))
	src := newSortBuf(16<<20, len("modifier:"))
	var id uint64
	for i := range 200_000 {
		if i%3 == 0 { // an id's marker and two modifiers
			id = rng.Uint64()
		}
		k := fmt.Sprintf("modifier:%016x:%d", id, i%3)
		chunk, off := src.add([]byte(k), nil)
		src.recs = append(src.recs, sortRec{pfx: keyPrefix([]byte(k), src.skip), chunk: chunk, off: off, klen: uint32(len(k)), in: true, seq: uint64(i)})
	}
	buf := &sortBuf{skip: src.skip, chunks: src.chunks}
	var tmp []sortRec
	for b.Loop() {
		buf.recs = append(buf.recs[:0], src.recs...)
		buf.sort(&tmp)
	}
}

// Records of every size come back whole through many fills of a sorter's
// buffers: small ones packed into shared chunks, ones that do not fit what
// is left of a chunk, and ones larger than a chunk (in chunks of their
// own, dropped when the buffer is emptied, so that fills do not pile them
// up).
func TestSorterChunksHoldRecordsOfEverySize(t *testing.T) {
	dir := newTmpDir(t)
	const budget = 3 << 20
	s := dir.sorter(budget, len("event:"))
	t.Cleanup(func() { s.Close() })
	chunk := s.cur.size
	rng := rand.New(rand.NewPCG(9, 10))
	var want []sortedRec
	for i := range 1000 {
		size := rng.IntN(2000)
		switch i % 10 {
		case 3:
			size = chunk/2 + rng.IntN(chunk/2)
		case 7:
			size = chunk + rng.IntN(chunk)
		}
		pat := fmt.Sprintf("%d,", i)
		v := bytes.Repeat([]byte(pat), size/len(pat)+1)[:size]
		r := sortedRec{fmt.Sprintf("event:%08x", rng.Uint32()), string(v), uint64(i)}
		want = append(want, r)
		if err := s.Add([]byte(r.k), v, r.seq); err != nil {
			t.Fatal(err)
		}
		for _, b := range []*sortBuf{s.cur} {
			var held int
			for _, c := range b.chunks {
				held += len(c)
			}
			// The budget, and the chunk of one large record past it.
			if held > budget+2*chunk {
				t.Fatalf("after %d records the buffer holds %d bytes of chunks, budget %d", i+1, held, budget)
			}
		}
	}
	if len(s.runs) < 10 {
		t.Fatalf("%d runs: the test wants many fills", len(s.runs))
	}
	slices.SortFunc(want, func(a, b sortedRec) int {
		if a.k != b.k {
			return strings.Compare(a.k, b.k)
		}
		return cmp.Compare(a.seq, b.seq)
	})
	got := collect(t, []*Sorter{s}, nil, nil)
	if len(got) != len(want) {
		t.Fatalf("%d records back, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("record %d: got %q (%d bytes) seq %d, want %q (%d bytes) seq %d",
				i, got[i].k, len(got[i].v), got[i].seq, want[i].k, len(want[i].v), want[i].seq)
		}
	}
}

// BenchmarkMerge merges four sorters' records, some spilt to runs: the
// write phase of a bulk load reads every record this way.
func BenchmarkMerge(b *testing.B) {
	dir := newTmpDir(b)
	var ss []*Sorter
	rng := rand.New(rand.NewPCG(11, 12))
	val := bytes.Repeat([]byte("v"), 40)
	for range 4 {
		s := dir.sorter(2<<20, len("modifier:"))
		b.Cleanup(func() { s.Close() })
		for i := range 60_000 {
			if err := s.Add(fmt.Appendf(nil, "modifier:%016x:x", rng.Uint64()), val, uint64(i)); err != nil {
				b.Fatal(err)
			}
		}
		ss = append(ss, s)
	}
	for b.Loop() {
		n := 0
		if err := MergeEach(ss, func(k, v []byte, seq uint64) error { n++; return nil }); err != nil {
			b.Fatal(err)
		}
		if n != 240_000 {
			b.Fatalf("%d records", n)
		}
	}
}

// Sorters whose keys share different prefixes (or prefixes of different
// lengths) merge in whole-key order: their 8-byte prefixes do not compare.
func TestMergeOfSortersWithDifferentPrefixes(t *testing.T) {
	dir := newTmpDir(t)
	rng := rand.New(rand.NewPCG(13, 14))
	for _, prefixes := range [][2]string{{"event:", "other:"}, {"event:", "ev:"}, {"event:", "event:x"}} {
		var ss []*Sorter
		var want []sortedRec
		for k, p := range prefixes {
			s := dir.sorter(4<<10, len(p)) // small: runs on disk too
			t.Cleanup(func() { s.Close() })
			ss = append(ss, s)
			for i := range 300 {
				r := sortedRec{fmt.Sprintf("%s%x", p, rng.Uint32()), "v", uint64(k*1000 + i)}
				want = append(want, r)
				if err := s.Add([]byte(r.k), []byte(r.v), r.seq); err != nil {
					t.Fatal(err)
				}
			}
		}
		slices.SortFunc(want, func(a, b sortedRec) int {
			if a.k != b.k {
				return strings.Compare(a.k, b.k)
			}
			return cmp.Compare(a.seq, b.seq)
		})
		if got := collect(t, ss, nil, nil); !slices.Equal(got, want) {
			t.Errorf("prefixes %q: the merge is out of order", prefixes)
		}
	}
}

// A sorter told to expect records within twice its budget takes them all
// in its first fill, since the second buffer is not needed: they are
// sorted in memory and never written out. When more come after all, the
// first fill is written out and each fill after it takes the budget, two
// buffers at most. Told nothing, or to expect more, a sorter spills at
// its budget from the start.
func TestSorterExpectingLittleFillsOnce(t *testing.T) {
	dir := newTmpDir(t)
	const budget = 64 << 10
	val := bytes.Repeat([]byte("v"), 100)
	rec := len("event:00000000") + len(val)
	for _, expect := range []int64{0, 2*budget + 1} {
		s := dir.sorter(budget, len("event:"))
		t.Cleanup(func() { s.Close() })
		if expect > 0 {
			s.Expect(expect)
		}
		i := 0
		for ; len(s.runs) == 0; i++ {
			if err := s.Add(fmt.Appendf(nil, "event:%08d", i), val, uint64(i)); err != nil {
				t.Fatal(err)
			}
		}
		if i > budget/rec+1 {
			t.Fatalf("expecting %d bytes, the first run was written after %d records of %d bytes, budget %d", expect, i, rec, budget)
		}
	}
	s := dir.sorter(budget, len("event:"))
	t.Cleanup(func() { s.Close() })
	s.Expect(3 * budget / 2)
	add := func(i int) {
		t.Helper()
		if err := s.Add(fmt.Appendf(nil, "event:%08d", i*7919%100_000), val, uint64(i)); err != nil {
			t.Fatal(err)
		}
	}
	held := func(b *sortBuf) (n int) {
		for _, c := range b.chunks {
			n += len(c)
		}
		return n
	}
	i := 0
	for ; i < 3*budget/2/rec; i++ {
		add(i)
	}
	if len(s.runs) != 0 {
		t.Fatalf("%d runs written for records of 1.5 times the budget", len(s.runs))
	}
	for len(s.runs) == 0 {
		add(i)
		i++
	}
	if i < 2*budget/rec*9/10 {
		t.Fatalf("the first run was written after %d records of %d bytes, budget %d", i, rec, budget)
	}
	for range 10 * budget / rec {
		add(i)
		i++
		if h := held(s.cur); h > budget {
			t.Fatalf("after the first run the buffer holds %d bytes, budget %d", h, budget)
		}
	}
	if len(s.runs) < 8 {
		t.Fatalf("%d runs after ten budgets' worth of records", len(s.runs))
	}
	n := 0
	prev := ""
	if err := s.Each(func(k, v []byte, seq uint64) error {
		if string(k) < prev {
			t.Fatalf("%q after %q", k, prev)
		}
		prev = string(k)
		n++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n != i {
		t.Fatalf("%d records back, %d added", n, i)
	}
}

// Records that never left memory (a load within twice the budget) are cut
// into ranges of about equal size too, as the write phase's parallelism
// needs.
func TestSplitKeysOfRecordsInMemory(t *testing.T) {
	smallRunBlocks(t)
	dir := newTmpDir(t)
	ss, want := fillSorters(t, dir, 2, 20000, 64<<20)
	for _, s := range ss {
		if len(s.runs) != 0 {
			t.Fatalf("%d runs: the test wants the records in memory", len(s.runs))
		}
	}
	splitInFour(t, ss, want)
}

// A budget smaller than a chunk still holds many records a run: the chunk
// is never larger than the budget (a sorter that spilt every record would
// write thousands of runs, and its merge open them all at once).
func TestSorterSmallBudgetRuns(t *testing.T) {
	dir := newTmpDir(t)
	s := dir.sorter(2<<10, len("event:"))
	t.Cleanup(func() { s.Close() })
	const n = 3000
	for i := range n {
		if err := s.Add(fmt.Appendf(nil, "event:%08d", i*7919%n), make([]byte, 90), uint64(i)); err != nil {
			t.Fatal(err)
		}
	}
	// 104-byte records, 2 KiB a run: about 150 runs.
	if len(s.runs) > 2*n*104/(2<<10) {
		t.Fatalf("%d runs for %d records of 104 bytes, budget 2 KiB", len(s.runs), n)
	}
	got := 0
	if err := s.Each(func(k, v []byte, seq uint64) error { got++; return nil }); err != nil || got != n {
		t.Fatalf("%d records back, %v", got, err)
	}
}

// A first fill that overflows what the sorter was told to expect is
// written out at once; when that write fails (a full disk), Add returns
// the cause, every later Add does too, and Close leaves no run behind.
func TestSorterFirstFillWriteFails(t *testing.T) {
	var full atomic.Bool
	fs := errorfs.Wrap(vfs.NewMem(), errorfs.InjectorFunc(func(op errorfs.Op) error {
		if full.Load() {
			return faultfs.DiskFull(op)
		}
		return nil
	}))
	dir := tmpDir{fs, "/bulk-tmp"}
	const budget = 16 << 10
	s := dir.sorter(budget, len("event:"))
	s.Expect(budget) // fits, it says
	full.Store(true)
	var addErr error
	for i := 0; i < 3*budget/100 && addErr == nil; i++ {
		addErr = s.Add(fmt.Appendf(nil, "event:%08d", i), make([]byte, 90), uint64(i))
	}
	if !errors.Is(addErr, syscall.ENOSPC) {
		t.Fatalf("Add past twice the budget on a full disk: %v", addErr)
	}
	if err := s.Add([]byte("event:x"), nil, 0); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Add after the failure: %v", err)
	}
	full.Store(false)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if names, _ := fs.List("/bulk-tmp"); len(names) != 0 {
		t.Fatalf("run files left after Close: %q", names)
	}
}

func TestSorterSpillsAndMerges(t *testing.T) {
	fs := vfs.NewMem()
	s := New(fs, "/tmp", 1<<10, 1) // tiny: many runs
	defer s.Close()
	type rec struct {
		k   string
		seq uint64
	}
	var want []rec
	for i := 0; i < 3000; i++ {
		k := string(rune('a'+(i*7919)%26)) + string(rune('a'+(i*104729)%26)) + strings.Repeat("x", i%5)
		seq := uint64(i)
		want = append(want, rec{k, seq})
		if err := s.Add([]byte(k), []byte(k+"-value"), seq); err != nil {
			t.Fatal(err)
		}
	}
	if len(s.runs) < 10 {
		t.Fatalf("only %d runs with a 1 KiB budget", len(s.runs))
	}
	slices.SortFunc(want, func(a, b rec) int {
		if c := strings.Compare(a.k, b.k); c != 0 {
			return c
		}
		return int(a.seq) - int(b.seq)
	})
	var got []rec
	err := s.Each(func(k, v []byte, seq uint64) error {
		if string(v) != string(k)+"-value" {
			t.Fatalf("value %q for key %q", v, k)
		}
		got = append(got, rec{string(k), seq})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("merged %d records out of order or incomplete (want %d)", len(got), len(want))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if names, _ := fs.List("/tmp"); len(names) != 0 {
		t.Fatalf("run files left: %v", names)
	}
}

// BenchmarkRadixSort sorts 200,000 records by random 8-byte prefixes: the
// radix pass alone, which both the sorter and the generators' spills use.
func BenchmarkRadixSort(b *testing.B) {
	rng := rand.New(rand.NewPCG(11, 12))
	src := make([]sortRec, 200_000)
	for i := range src {
		src[i] = sortRec{pfx: rng.Uint64(), seq: uint64(i)}
	}
	recs := make([]sortRec, len(src))
	var tmp []sortRec
	for b.Loop() {
		copy(recs, src)
		tmp = RadixSort(recs, tmp, recPfx)
	}
}

// RadixSort orders records by their key and keeps equal keys in their
// first order, whatever bytes the keys share.
func TestRadixSort(t *testing.T) {
	type rec struct {
		key uint64
		at  int // position before sorting, to see stability
	}
	rng := rand.New(rand.NewPCG(13, 14))
	gen := func(n int, key func(i int) uint64) []rec {
		rs := make([]rec, n)
		for i := range rs {
			rs[i] = rec{key: key(i), at: i}
		}
		return rs
	}
	for _, tc := range []struct {
		name string
		recs []rec
	}{
		{"empty", nil},
		{"one", gen(1, func(int) uint64 { return 7 })},
		{"all equal", gen(100, func(int) uint64 { return 0xdead_beef })},
		{"reversed", gen(1000, func(i int) uint64 { return uint64(1000 - i) })},
		{"shared high bytes", gen(1000, func(int) uint64 { return 0xabcd_0000_0000_0000 | rng.Uint64N(1<<16) })},
		{"shared low bytes", gen(1000, func(int) uint64 { return rng.Uint64N(1<<16)<<48 | 0x42 })},
		{"random with repeats", gen(5000, func(int) uint64 { return rng.Uint64N(300) << (8 * rng.Uint64N(8)) })},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := slices.Clone(tc.recs)
			slices.SortStableFunc(want, func(a, b rec) int { return cmp.Compare(a.key, b.key) })
			got := slices.Clone(tc.recs)
			tmp := RadixSort(got, []rec{{key: 1}}, func(r *rec) uint64 { return r.key })
			if !slices.Equal(got, want) {
				t.Fatalf("not sorted stably by key")
			}
			if len(got) >= 2 && len(tmp) != len(got) {
				t.Fatalf("scratch space has %d records, want %d", len(tmp), len(got))
			}
		})
	}
}
