package generators

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/mirrord/mirrord/internal/extsort"
	"github.com/mirrord/mirrord/internal/hugemem"
	"github.com/mirrord/mirrord/kv"
	"github.com/mirrord/mirrord/schema"
)

// streamBudget bounds the writes a generator holds in memory in a
// streamed rebuild (keys and values; their index takes a quarter as much
// again) before they are spilt to a sorted run. With 8 MiB a log of 10M
// small events made 225 runs a generator, and a merge as deep.
var streamBudget = 16 << 20

// spillRuns is what a streamed rebuild's scope keeps beside its pending
// writes: an append log of the values it wrote without reading them first
// (most of a rebuild's writes: an index entry, a tag's key, each written
// once), which costs an append, not a map entry; and the sorted runs
// written out so far, oldest first. A key is in the log or in the pending
// map, never both: a Get of a key the log may hold writes the log out as
// a run first, and the key then goes to the map.
type spillRuns struct {
	fs     vfs.FS
	dir    string
	budget int
	runs   []*spillRun
	buf    []byte // a lookup's block

	log  []byte   // the records' keys and values, one after the other
	mem  []byte   // the memory the log was given (hugemem), until closeRuns
	recs []logRec // the log's records, in the order written
	tmp  []logRec // the radix sort's scratch space
	// sorted: recs are in key order (sortLog's, until the next append):
	// a rebuild's output sorts them once for its splits and its merge.
	sorted bool

	// filter holds every key of the runs and the log, from the first Get
	// that has to look past the pending writes on (nil before): a key it
	// has never seen is in neither. It is made only when needed, from
	// what was spilt so far: the built-in generators never read back what
	// they spilt, and adding each key as it was written (a cache miss in
	// a filter of megabytes) was a tenth of their rebuild of 10M events.
	filter *spilledKeys
}

type logRec struct {
	off, klen, end uint32 // the key at log[off:off+klen], the value up to end
	pfx            uint64 // sort key: 8 bytes of the key (see sortLog)
}

// runSeq names the runs of the process's rebuilds apart.
var runSeq atomic.Uint64

// newStreamScope is the scope of a generator's streamed rebuild: it starts
// empty, reads nothing from the store, and keeps what the generator
// writes in memory and in sorted runs in dir of fs, for writeOutput.
func newStreamScope(name string, fs vfs.FS, dir string) *Scope {
	s := newScope(name, nil, true)
	s.w.stream = &spillRuns{fs: fs, dir: dir, budget: streamBudget}
	s.w.spilled = nil // the stream's filter stands for it
	return s
}

// appendRec adds a value to the log, under a key held as a string or as
// bytes.
func appendRec[K string | []byte](st *spillRuns, key K, value []byte) {
	off := len(st.log)
	st.log = append(st.log, key...)
	st.log = append(st.log, value...)
	st.recs = append(st.recs, logRec{off: uint32(off), klen: uint32(len(key)), end: uint32(len(st.log))})
	st.sorted = false
	if st.filter != nil {
		st.filter.addBytes(st.log[off : off+len(key)])
	}
}

// putJSON stores raw, JSON the caller encoded (a built-in generator's
// own, trusted; copied), under the relative key: Put without the
// encoding, and in a streamed rebuild without a string or a map entry
// for the key.
func (s *Scope) putJSON(key string, raw []byte) error { return putJSON(s, key, raw) }

// putJSON is Scope.putJSON of a key held as a string or as bytes.
func putJSON[K string | []byte](s *Scope, key K, raw []byte) error {
	if len(key) == 0 || (s.family && s.prefix == "") {
		if err := s.check(string(key)); err != nil {
			return err
		}
	}
	w := s.w
	if w.stream == nil {
		return w.set(s.Key(string(key)), op{value: bytes.Clone(raw)})
	}
	w.scratch = schema.AppendSegment(append(w.scratch[:0], s.prefix...), key)
	if _, ok := w.pending[string(w.scratch)]; ok {
		return w.set(string(w.scratch), op{value: bytes.Clone(raw)})
	}
	if w.stream.log == nil {
		// The whole budget at once: grown by doubling, the log was
		// copied again and again on its way to it. (Only here: a
		// generator that writes through Put alone may write little.)
		// Huge pages: faulting in its 4 KiB pages one by one was a
		// fifth of the generators' CPU in a 100k-event default sync.
		w.stream.mem = hugemem.Alloc(w.stream.budget + w.stream.budget/8)
		w.stream.log = w.stream.mem[:0]
		w.stream.recs = make([]logRec, 0, w.stream.budget/64)
	}
	appendRec(w.stream, w.scratch, raw)
	w.size += len(w.scratch) + len(raw)
	return w.maybeSpillUnlessScanning()
}

func (st *spillRuns) key(r logRec) []byte   { return st.log[r.off : r.off+r.klen] }
func (st *spillRuns) value(r logRec) []byte { return st.log[r.off+r.klen : r.end] }

// sortLog sorts the log's records by key, the later of equal keys last.
// Keys of one generator share a long prefix (mirrord:state:summary:2025-05/
// and the instant's first digits), and then often 8 bytes more (a month's
// index keys differ only in the instant's last digits): the records are
// sorted by the 8 bytes after the prefix they all share, as integers, and
// each group that ties is sorted the same way by the next bytes.
func (st *spillRuns) sortLog() {
	if !st.sorted {
		st.sortFrom(st.recs, 0)
		st.sorted = true
	}
}

// radixMin is the smallest group sortFrom sorts by radix: below it a
// comparison sort is cheaper than the radix sort's counts.
const radixMin = 256

// sortFrom sorts recs, whose keys all begin with the same from bytes, by
// key, stably.
func (st *spillRuns) sortFrom(recs []logRec, from int) {
	if len(recs) < 2 {
		return
	}
	first := st.key(recs[0])
	common := len(first)
	for _, r := range recs[1:] {
		k := st.key(r)
		n := min(common, len(k))
		i := from
		for i < n && k[i] == first[i] {
			i++
		}
		common = i
	}
	for i := range recs {
		var b [8]byte
		k := st.key(recs[i])
		if common < len(k) {
			copy(b[:], k[common:])
		}
		recs[i].pfx = binary.BigEndian.Uint64(b[:])
	}
	if len(recs) < radixMin {
		// Zero-padded, the prefixes order as the keys do when they differ.
		slices.SortStableFunc(recs, func(a, b logRec) int {
			if a.pfx != b.pfx {
				return cmp.Compare(a.pfx, b.pfx)
			}
			return bytes.Compare(st.key(a)[common:], st.key(b)[common:])
		})
		return
	}
	st.tmp = extsort.RadixSort(recs, st.tmp, logPfx)
	// Records of equal prefixes, in the order written (the radix sort is
	// stable), are put in key order by what follows; of equal keys the
	// later stays last.
	for i := 0; i < len(recs); {
		j, short := i+1, len(st.key(recs[i])) < common+8
		for j < len(recs) && recs[j].pfx == recs[i].pfx {
			short = short || len(st.key(recs[j])) < common+8
			j++
		}
		switch {
		case j-i < 2:
		case short:
			// A key that ends within the 8 bytes was padded with zeros:
			// its group is compared byte by byte.
			slices.SortStableFunc(recs[i:j], func(a, b logRec) int { return bytes.Compare(st.key(a)[common:], st.key(b)[common:]) })
		default:
			st.sortFrom(recs[i:j], common+8)
		}
		i = j
	}
}

// logPfx is the radix sort's key for a log record. A comparison sort of a
// spill's records took a generator's rebuild a tenth of its time.
func logPfx(r *logRec) uint64 { return r.pfx }

// spillRun writes the log and the pending writes out as a run and forgets
// them.
func (w *writes) spillRun() error {
	st := w.stream
	path := st.fs.PathJoin(st.dir, fmt.Sprintf("gen-%d-run", runSeq.Add(1)))
	st.sortLog()
	srcs := []mergeSource{&logIter{st: st}, &pendingIter{keys: w.pendingUnder(""), pending: w.pending}}
	// A deletion is kept when an earlier run may hold the key it hides.
	earlier := func(key string) bool { return len(st.runs) > 0 && (st.filter == nil || st.filter.mayHave(key)) }
	r, err := writeSpillRun(st.fs, path, newMerged(srcs, ""), earlier)
	if err != nil {
		return fmt.Errorf("%s: spilling a rebuild's writes: %w", w.name, err)
	}
	if st.filter != nil {
		for k, o := range w.pending {
			if !o.del {
				st.filter.add(k)
			}
		}
	}
	st.runs = append(st.runs, r)
	st.log, st.recs = st.log[:0], st.recs[:0]
	clear(w.pending)
	w.sorted, w.fresh = nil, nil
	w.size = 0
	return nil
}

// streamGet looks a key that is not pending up in the log and the runs,
// newest first. A key that was looked up is pending from then on (as a
// deletion when it was not found), so that the next Put of it, and the
// next Get, are the map's.
func (w *writes) streamGet(full string, dst any) (bool, error) {
	st := w.stream
	if len(st.runs) == 0 && len(st.recs) == 0 {
		return false, w.set(full, op{del: true}) // nothing was spilt
	}
	if st.filter == nil {
		if err := st.makeFilter(); err != nil {
			return false, fmt.Errorf("%s: %w", w.name, err)
		}
	}
	if !st.filter.mayHave(full) {
		return false, w.set(full, op{del: true})
	}
	if len(st.recs) > 0 {
		// The log is not sorted: written out, it is a run like the others.
		if err := w.spillRun(); err != nil {
			return false, err
		}
	}
	for i := len(st.runs) - 1; i >= 0; i-- {
		v, del, found, err := st.runs[i].lookup(full, &st.buf)
		if err != nil {
			return false, err
		}
		if !found {
			continue
		}
		if del {
			break
		}
		v = bytes.Clone(v)
		if err := w.set(full, op{value: v}); err != nil {
			return false, err
		}
		if dst == nil {
			return true, nil
		}
		return true, json.Unmarshal(v, dst)
	}
	return false, w.set(full, op{del: true})
}

// makeFilter makes the filter of the keys spilt so far: one read of the
// runs, and the log's keys.
func (st *spillRuns) makeFilter() error {
	f := &spilledKeys{}
	for _, r := range st.runs {
		it := &runIter{r: r}
		for ok := it.seek(""); ok; ok = it.next() {
			f.addBytes(it.key)
		}
		if it.err != nil {
			return it.err
		}
	}
	for _, r := range st.recs {
		f.addBytes(st.key(r))
	}
	st.filter = f
	return nil
}

// sources are the runs and the pending writes under prefix, as sources
// of a merge (the pending writes last: they are the newest).
func (w *writes) sources(prefix string) []mergeSource {
	return w.sourcesOf(w.pendingUnder(prefix))
}

// sourcesOf is sources with the pending keys given (sorted): merges of
// several parts side by side share them, read-only.
func (w *writes) sourcesOf(pendingKeys []string) []mergeSource {
	var srcs []mergeSource
	for _, r := range w.stream.runs {
		srcs = append(srcs, &runIter{r: r})
	}
	return append(srcs, &logIter{st: w.stream}, &pendingIter{keys: pendingKeys, pending: w.pending})
}

// streamScan is scan over the runs, the log and the pending writes.
func (w *writes) streamScan(full, from string, emit func(key string, value json.RawMessage) error) error {
	w.stream.sortLog()
	start := max(full, from)
	err := newMerged(w.sources(full), start).each(func(k, v []byte) error {
		if !strings.HasPrefix(string(k), full) {
			return errFound
		}
		return emit(string(k), v)
	})
	if errors.Is(err, errFound) {
		err = nil
	}
	return err
}

// writeOutput streams everything the rebuild wrote, in key order, to the
// ingest streams of its values and of its state; and removes the runs.
func (w *writes) writeOutput(values, state *kv.IngestFile) error {
	return w.writeOutputParts([]outputFiles{{values, state}}, nil)
}

// outputFiles are the ingest streams of one part of a rebuild's output.
type outputFiles struct{ values, state *kv.IngestFile }

// outputPartBytes is the least output, in bytes of keys and values, of
// each part writeOutputParts is split into. A part is a merge and two
// sstable streams of its own, written beside the others: the last
// generator to finish a rebuild beside a load (summary: an index entry
// for each event) no longer writes alone while the other core idles. (A
// variable so that tests can make parts of a small output.)
var outputPartBytes int64 = 8 << 20

// outputParts is how many parts a rebuild beside a load writes its
// output in, at most: one per core. (A variable so that tests can ask
// for parts on a machine of one core.)
var outputParts = func() int { return runtime.GOMAXPROCS(0) }

// outputSplits returns the keys that cut what the rebuild wrote into at
// most n parts of about outputPartBytes or more each, for
// writeOutputParts (none: one part). The runs' block index and a sample
// of the log, a key every runBlockSize of it, stand for the keys.
func (w *writes) outputSplits(n int) []string {
	st := w.stream
	if st == nil {
		return nil
	}
	st.sortLog()
	size := int64(len(st.log))
	var keys []string
	for _, r := range st.runs {
		size += r.size
		for _, b := range r.index {
			keys = append(keys, b.first)
		}
	}
	if len(st.recs) > 0 {
		step := max(1, len(st.recs)*runBlockSize/max(1, len(st.log)))
		for i := 0; i < len(st.recs); i += step {
			keys = append(keys, string(st.key(st.recs[i])))
		}
	}
	n = min(n, int(size/outputPartBytes), len(keys))
	if n < 2 {
		return nil
	}
	slices.Sort(keys)
	var splits []string
	for i := 1; i < n; i++ {
		k := keys[i*len(keys)/n]
		if k != "" && (len(splits) == 0 || k > splits[len(splits)-1]) {
			splits = append(splits, k)
		}
	}
	return splits
}

// writeOutputParts is writeOutput in parts written side by side: part i,
// to files[i], holds the keys from splits[i-1] (from the first, for i =
// 0) up to splits[i] (to the last, for the last part); len(files) is
// len(splits)+1.
func (w *writes) writeOutputParts(files []outputFiles, splits []string) error {
	defer w.closeRuns()
	if w.stream == nil {
		return fmt.Errorf("%s: not a streamed rebuild", w.name)
	}
	if len(files) != len(splits)+1 {
		return fmt.Errorf("%s: %d output parts for %d splits", w.name, len(files), len(splits))
	}
	w.stream.sortLog()
	keys := w.pendingUnder("")
	written := make([]int64, len(files))
	errs := make([]error, len(files))
	var wg sync.WaitGroup
	for i := range files {
		from, to := "", ""
		if i > 0 {
			from = splits[i-1]
		}
		if i < len(splits) {
			to = splits[i]
		}
		part := func() { written[i], errs[i] = w.writeRange(files[i], keys, from, to) }
		if i == len(files)-1 {
			part() // the last in this goroutine
		} else {
			wg.Go(part)
		}
	}
	wg.Wait()
	for _, n := range written {
		w.written += n
	}
	return errors.Join(errs...)
}

// writeRange writes the output's keys from from up to to ("": to the
// last) to f, and returns how many it wrote.
func (w *writes) writeRange(f outputFiles, pendingKeys []string, from, to string) (int64, error) {
	vp, sp := w.prefixes[0], w.prefixes[1]
	var n int64
	err := newMerged(w.sourcesOf(pendingKeys), from).each(func(k, v []byte) error {
		if to != "" && string(k) >= to {
			return errFound
		}
		n++
		switch {
		case bytes.HasPrefix(k, []byte(vp)):
			return f.values.Add(k, v)
		case bytes.HasPrefix(k, []byte(sp)):
			return f.state.Add(k, v)
		}
		return fmt.Errorf("%s: key %q outside the generator's prefixes", w.name, k)
	})
	if errors.Is(err, errFound) {
		err = nil
	}
	return n, err
}

// closeRuns removes the runs' files.
func (w *writes) closeRuns() {
	if w.stream == nil {
		return
	}
	for _, r := range w.stream.runs {
		r.close(w.stream.fs)
	}
	w.stream.runs = nil
	hugemem.Release(w.stream.mem)
	w.stream.mem = nil
}

// sameKey reports whether two records of the sorted log hold the same
// key. Equal keys were sorted together to the end, so they have equal
// sort keys (pfx) and lengths: records that differ in either differ, and
// their keys, scattered in the log, are not read (a cache miss each).
func (st *spillRuns) sameKey(a, b *logRec) bool {
	if a.pfx != b.pfx || a.klen != b.klen {
		return false
	}
	return sameKey(st.key(*a), st.key(*b))
}

// sameKey is bytes.Equal for keys that share a long prefix and, when
// they differ, differ near their end (an id, an instant): the last bytes
// are compared first.
func sameKey(a, b []byte) bool {
	n := len(a)
	if n != len(b) {
		return false
	}
	if n >= 8 && binary.LittleEndian.Uint64(a[n-8:]) != binary.LittleEndian.Uint64(b[n-8:]) {
		return false
	}
	return bytes.Equal(a, b)
}

// logIter walks the sorted log, the last of equal keys only. It first
// copies the records it is about to hand out next to each other, a chunk
// at a time: in key order they lie scattered over the log, a cache miss
// each, and copied in a tight loop the misses overlap, where handed out
// one by one through a merge they came one after the other (a third of
// the time a rebuild of 10M events took to spill its runs).
type logIter struct {
	st    *spillRuns
	i     int      // the next record of the log to gather
	chunk []byte   // the gathered records, key then value
	ends  []uint32 // of each gathered record: where its key ends, where it ends
	at    int      // the current gathered record
	size  int      // the next chunk's size: growing, so that a short scan gathers little
}

// gatherMax bounds a chunk of gathered records.
const gatherMax = 256 << 10

func (it *logIter) seek(key string) bool {
	recs := it.st.recs
	it.i = sort.Search(len(recs), func(i int) bool { return string(it.st.key(recs[i])) >= key })
	it.size = 4 << 10
	return it.gather()
}

// gather copies the next chunk of records into it.chunk, and reports
// whether there was one. Of equal keys (sorted together, the latest
// last) only the last is taken.
func (it *logIter) gather() bool {
	st, recs := it.st, it.st.recs
	it.chunk, it.ends, it.at = it.chunk[:0], it.ends[:0], 0
	for it.i < len(recs) && len(it.chunk) < it.size {
		r := &recs[it.i]
		it.i++
		if it.i < len(recs) && st.sameKey(r, &recs[it.i]) {
			continue
		}
		it.chunk = append(it.chunk, st.log[r.off:r.end]...)
		end := uint32(len(it.chunk))
		it.ends = append(it.ends, end-(r.end-r.off-r.klen), end)
	}
	it.size = min(2*it.size, gatherMax)
	return len(it.ends) > 0
}

func (it *logIter) next() bool {
	it.at++
	if 2*it.at < len(it.ends) {
		return true
	}
	return it.gather()
}

func (it *logIter) current() ([]byte, []byte, bool) {
	start := uint32(0)
	if it.at > 0 {
		start = it.ends[2*it.at-1]
	}
	kEnd, end := it.ends[2*it.at], it.ends[2*it.at+1]
	return it.chunk[start:kEnd], it.chunk[kEnd:end], false
}

func (it *logIter) error() error { return nil }

// replaceRanges returns the ranges a rebuild of the generator replaces:
// its values and its state.
func replaceRanges(name string) (values, state [2][]byte) {
	vp, sp := []byte(schema.GeneratorPrefix(name)), []byte(schema.StatePrefix(name))
	return [2][]byte{vp, kv.PrefixEnd(vp)}, [2][]byte{sp, kv.PrefixEnd(sp)}
}
