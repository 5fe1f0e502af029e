package extsort

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/minio/minlz"
	"github.com/mirrord/mirrord/internal/hugemem"
)

// sorterSeq distinguishes the run files of the sorters of one process.
var sorterSeq atomic.Uint64

// Sorter sorts records (key, value, seq) by key, then by seq, within a
// memory budget: records fill a buffer; a full buffer is sorted and written
// to a run file in the store's directory (in the background, while the
// next one fills); the runs are merged when read. A load of any size thus
// holds about two buffers in memory. Keys and values are copied.
type Sorter struct {
	fs     vfs.FS
	dir    string
	budget int

	cur       *sortBuf
	free      chan *sortBuf // the buffer not being filled, once spilt
	spilling  sync.WaitGroup
	mu        sync.Mutex
	runs      []*run
	finished  sync.Once
	err       error
	nextRun   int
	closed    bool
	id        uint64 // distinguishes this sorter's run files (sorterSeq)
	spilt     bool   // a run was written: the first fill is over
	firstFill int    // the first fill's budget (see Expect)
	skip      int
	prefix    []byte // the first key's first skip bytes
	// tmp is the radix sort's scratch space, kept for the next sort: one
	// sort runs at a time (a spill waits for the one before it; finish
	// for them all).
	tmp []sortRec
}

// keyPrefix returns the 8 bytes of key after skip, big-endian (zero
// padded), which orders like the key's bytes there.
func keyPrefix(key []byte, skip int) uint64 {
	var b [8]byte
	if skip < len(key) {
		copy(b[:], key[skip:])
	}
	return binary.BigEndian.Uint64(b[:])
}

// sortBuf holds records in memory: their keys and values in chunks,
// filled in order and kept for the next fill once the buffer is spilt.
// Chunks, not one arena that grows: growing by doubling copied each
// buffer's bytes again and left the old arenas to the collector, about
// 50 ms of a 100k-event resync's decoding (on its critical path). A
// record's bytes are copied into place, not appended: appending stores a
// slice header, and its write barrier cost a 1M-event load 5% of its CPU
// while the collector ran.
//
// The chunks are cut from larger slabs (hugemem): touching a fresh buffer's
// pages was a sixth of a 100k-event load's CPU on the benchmark's machine,
// and huge pages take that to almost nothing; a chunk alone is too small
// to hold one.
type sortBuf struct {
	chunks [][]byte // whole chunks; chunks[:fill+1] hold this fill's records
	slabs  [][]byte // the memory the chunks are cut from, in order
	slab   []byte   // what is left of the last slab
	held   int      // the bytes of slabs
	expect int      // the bytes a fill is expected to take (0: unknown)
	limit  int      // the bytes a fill may take: the budget, or twice it (Expect)
	fill   int
	pos    int // where the next record goes in chunks[fill]
	before int // the bytes of chunks[:fill]
	size   int // of a chunk (a larger record gets one of its own size)
	recs   []sortRec
	skip   int // the sorter's
}

// maxChunk is the largest chunk: a sixteenth of the budget, at most this.
const maxChunk = 1 << 20

func newSortBuf(budget, skip int) *sortBuf {
	// A sixteenth of the budget, at least 4 KiB but never more than the
	// budget (a larger chunk would spill every record: a small budget's
	// runs would be one a record), and large enough that a fill of twice
	// the budget cannot count past sortRec's 16-bit chunk index (records
	// just over half a chunk take one chunk each).
	size := min(maxChunk, max(budget/16, min(4<<10, budget)))
	size = max(size, 1, 4*budget/math.MaxUint16+1)
	return &sortBuf{size: size, skip: skip, limit: budget}
}

// holdsAfter returns the bytes of chunks the buffer holds once it has
// taken a record of n bytes: what the budget bounds.
func (b *sortBuf) holdsAfter(n int) int {
	if len(b.chunks) == 0 {
		return max(b.size, n)
	}
	held := b.before + len(b.chunks[b.fill])
	if len(b.chunks[b.fill])-b.pos >= n {
		return held
	}
	return held + max(b.size, n)
}

type sortRec struct {
	pfx   uint64 // 8 key bytes after the sorter's common prefix, big-endian
	off   uint32 // of the key in its chunk; the value follows it
	klen  uint32
	vlen  uint32
	chunk uint16
	in    bool // the key starts with the common prefix, so pfx orders it
	seq   uint64
}

func (b *sortBuf) key(r sortRec) []byte { return b.chunks[r.chunk][r.off : r.off+r.klen] }
func (b *sortBuf) val(r sortRec) []byte {
	return b.chunks[r.chunk][r.off+r.klen : r.off+r.klen+r.vlen]
}

// add copies key and value into the buffer's chunks and returns where
// they are.
func (b *sortBuf) add(key, value []byte) (chunk uint16, off uint32) {
	n := len(key) + len(value)
	if len(b.chunks) == 0 {
		b.chunks = append(b.chunks, b.newChunk(n))
	}
	if len(b.chunks[b.fill])-b.pos < n {
		b.before += len(b.chunks[b.fill])
		b.fill, b.pos = b.fill+1, 0
		switch {
		case b.fill == len(b.chunks):
			b.chunks = append(b.chunks, b.newChunk(n))
		case len(b.chunks[b.fill]) < n:
			// A kept chunk too small for this record: it gets one of
			// its own, which reset drops.
			b.chunks[b.fill] = make([]byte, n)
		}
	}
	c := b.chunks[b.fill]
	off = uint32(b.pos)
	b.pos += copy(c[b.pos:], key)
	b.pos += copy(c[b.pos:], value)
	return uint16(b.fill), off
}

// newChunk returns a chunk for a record of n bytes: cut from the last slab,
// or from a new one when it has no room left. A record larger than a chunk
// gets one of its own.
func (b *sortBuf) newChunk(n int) []byte {
	if n > b.size {
		return make([]byte, n)
	}
	if len(b.slab) < b.size {
		b.slab = hugemem.Alloc(b.slabSize())
		b.slabs = append(b.slabs, b.slab)
		b.held += len(b.slab)
	}
	c := b.slab[:b.size:b.size]
	b.slab = b.slab[b.size:]
	return c
}

// slabSize is the size of the buffer's next slab, a whole number of
// chunks. The first is one chunk: a small log, or one whose bytes are
// mostly not records (invalid entries), never costs more. Once that is
// full, the next takes the rest of what the fill is expected to take
// (Expect) when that is known, else as much as the buffer holds so far,
// at least hugemem.Min; never more than the fill may take.
func (b *sortBuf) slabSize() int {
	var n int
	switch {
	case b.held == 0:
		n = b.size
	case b.expect > 0:
		n = b.expect - b.held
	default:
		n = max(b.held, hugemem.Min)
	}
	n = max(min(n, b.limit-b.held), b.size)
	return (n + b.size - 1) / b.size * b.size
}

// reset empties the buffer for the next fill, keeping up to keep bytes of
// its chunks but for those of single large records (kept, they could add
// up past the budget over many fills).
func (b *sortBuf) reset(keep int) {
	b.chunks = slices.DeleteFunc(b.chunks, func(c []byte) bool { return len(c) > b.size })
	if n := keep / max(b.size, 1); len(b.chunks) > n {
		clear(b.chunks[n:])
		b.chunks = b.chunks[:n]
		b.recs = nil // sized for the larger fill
		b.dropSlabs()
	}
	b.fill, b.pos, b.before, b.recs = 0, 0, 0, b.recs[:0]
}

// dropSlabs lets go of the slabs no chunk is cut from any more (the next
// chunk comes from a new slab).
func (b *sortBuf) dropSlabs() {
	kept := b.slabs[:0]
	for _, s := range b.slabs {
		if slices.ContainsFunc(b.chunks, func(c []byte) bool { return within(c, s) }) {
			kept = append(kept, s)
			continue
		}
		hugemem.Release(s)
		b.held -= len(s)
	}
	clear(b.slabs[len(kept):])
	b.slabs, b.slab = kept, nil
}

// within reports whether chunk c was cut from slab s.
func within(c, s []byte) bool {
	at := uintptr(unsafe.Pointer(unsafe.SliceData(c)))
	from := uintptr(unsafe.Pointer(unsafe.SliceData(s)))
	return at >= from && at < from+uintptr(len(s))
}

// release takes back the slabs' huge page advice (hugemem.Release): the
// buffer is done with. Its chunks stay readable.
func (b *sortBuf) release() {
	for _, s := range b.slabs {
		hugemem.Release(s)
	}
	b.slabs, b.slab, b.held = nil, nil, 0
}

// sort orders the records by key, then by seq. When every key starts with
// the common prefix (the usual case: a sorter per key kind), the 8 bytes
// after it settle almost every comparison, so the records are radix
// sorted on them and only the runs that tie there are compared whole.
// Against a comparison sort this took a resync of 100k events' final
// in-memory sorts (a quarter million modifier records) from about 100 to
// 10 ms of CPU, and they are on the load's critical path.
func (b *sortBuf) sort(tmp *[]sortRec) {
	for _, r := range b.recs {
		if !r.in {
			slices.SortFunc(b.recs, b.compare)
			return
		}
	}
	*tmp = RadixSort(b.recs, *tmp, recPfx)
	recs := b.recs
	for i := 0; i < len(recs); {
		j := i + 1
		for j < len(recs) && recs[j].pfx == recs[i].pfx {
			j++
		}
		if j-i > 1 {
			slices.SortFunc(recs[i:j], b.compare)
		}
		i = j
	}
}

// compare orders two records by key, then by seq.
func (b *sortBuf) compare(x, y sortRec) int {
	// Keys that share the common prefix are mostly told apart by the 8
	// bytes after it, compared as two integers.
	kx, ky := b.key(x), b.key(y)
	if x.in && y.in {
		if x.pfx != y.pfx {
			if x.pfx < y.pfx {
				return -1
			}
			return 1
		}
		// Equal up to skip+8 bytes when both are that long: compare the
		// rest only (the same id's modifiers, say).
		if n := b.skip + 8; len(kx) >= n && len(ky) >= n {
			kx, ky = kx[n:], ky[n:]
		}
	}
	if c := bytes.Compare(kx, ky); c != 0 {
		return c
	}
	switch {
	case x.seq < y.seq:
		return -1
	case x.seq > y.seq:
		return 1
	}
	return 0
}

// RadixSort sorts recs by the uint64 that key returns for each, stably: a
// least-significant-digit radix sort, a byte a pass, that skips the bytes
// every record shares. It returns the scratch space it used (tmp, grown to
// len(recs)), for the next sort to reuse.
//
// It is the sort behind the Sorter's buffers, exported for callers that
// order their own records by an 8-byte key prefix (the generators' spills):
// a comparison sort of such records cost several times as much. key is
// called once a record and pass, so it should only read a field.
func RadixSort[T any](recs, tmp []T, key func(*T) uint64) []T {
	n := len(recs)
	if n < 2 {
		return tmp
	}
	if cap(tmp) < n {
		tmp = make([]T, n)
	}
	tmp = tmp[:n]
	var counts [8][256]int
	for i := range recs {
		k := key(&recs[i])
		for d := range 8 {
			counts[d][byte(k>>(8*d))]++
		}
	}
	src, dst := recs, tmp
	for d := range 8 {
		c := &counts[d]
		shift := 8 * d
		if c[byte(key(&src[0])>>shift)] == n {
			continue // every record has this byte
		}
		at := 0
		for v, k := range c {
			c[v] = at
			at += k
		}
		for i := range src {
			v := byte(key(&src[i]) >> shift)
			dst[c[v]] = src[i]
			c[v]++
		}
		src, dst = dst, src
	}
	if &src[0] != &recs[0] {
		copy(recs, src)
	}
	return tmp
}

// recPfx is RadixSort's key for the sorter's own records.
func recPfx(r *sortRec) uint64 { return r.pfx }

// New returns a sorter holding at most about 2 × budget bytes of
// keys and values in memory (budget must exceed the largest record), plus
// 32 bytes a record held for its index entry and as much again for the
// radix sort's scratch space, which the budget does not count: for the
// modifiers' small records (about 50 bytes) that index is larger than the
// records themselves. The bulk load's budgets (mirror's eventSortBudget
// and modifierSortBudget) were set by the peak RSS measured with it.
//
// skip is the length of a prefix most keys share (such as "event:"):
// comparing the 8 bytes after it as integers settles most comparisons.
//
// Its run files go to directory dir of fs (created when the first run is
// written); Close removes them.
func New(fs vfs.FS, dir string, budget, skip int) *Sorter {
	s := &Sorter{fs: fs, dir: dir, budget: budget, free: make(chan *sortBuf, 1),
		id: sorterSeq.Add(1), skip: skip, firstFill: budget}
	// The buffers grow as records come: a small log never costs the
	// whole budget.
	s.cur = newSortBuf(budget, skip)
	s.free <- newSortBuf(budget, skip)
	return s
}

// Add adds a record.
func (s *Sorter) Add(key, value []byte, seq uint64) error {
	if err := s.firstErr(); err != nil {
		return err
	}
	n := len(key) + len(value)
	limit := s.budget
	if !s.spilt {
		limit = s.firstFill // see Expect
	}
	if s.cur.holdsAfter(n) > limit && len(s.cur.recs) > 0 {
		if err := s.spill(); err != nil {
			return err
		}
	}
	if s.prefix == nil && len(key) >= s.skip {
		s.prefix = append([]byte{}, key[:s.skip]...)
	}
	chunk, off := s.cur.add(key, value)
	s.cur.recs = append(s.cur.recs, sortRec{pfx: keyPrefix(key, s.skip), chunk: chunk, off: off, klen: uint32(len(key)), vlen: uint32(len(value)),
		in: len(key) >= s.skip && string(key[:s.skip]) == string(s.prefix), seq: seq})
	return nil
}

// Expect tells the sorter about how many bytes of keys and values it will
// be given. When they fit in twice the budget, its first fill takes them
// all, in one buffer (the second one is then never needed), and they are
// sorted in memory without a run: spilling half of a 100k-event log's
// records cost its load 50 ms of CPU while decoding, and reading the run
// back more while writing. If more come after all, the first fill is
// written out before the next starts (in the caller's goroutine: there is
// no room for a second buffer beside it), and the sorter goes on as
// usual. Without Expect, or for more, every fill takes the budget.
//
// It also sizes the buffers' memory: a fill expected to be full gets it
// in one slab (see sortBuf).
func (s *Sorter) Expect(n int64) {
	if s.spilt || len(s.cur.recs) != 0 {
		return
	}
	if n <= 2*int64(s.budget) {
		s.firstFill = 2 * s.budget
		s.cur.limit, s.cur.expect = s.firstFill, int(n)
		return
	}
	s.cur.expect = s.budget
	spare := <-s.free
	spare.expect = s.budget
	s.free <- spare
}

// spill hands the full buffer to a background sort-and-write and takes the
// other buffer (waiting for its previous spill, so that at most two
// buffers exist). A first fill that took both buffers' budget (Expect) is
// written out at once instead.
func (s *Sorter) spill() error {
	first := !s.spilt
	s.spilt = true
	if first && s.firstFill > s.budget {
		err := writeRun(s.fs, s.dir, s.newRun(), s.cur, &s.tmp)
		// Its memory goes: the first fill's slab holds twice the
		// budget, and the fills to come take the budget each.
		s.cur.reset(0)
		s.cur.limit, s.cur.expect = s.budget, s.budget
		s.tmp = nil // sized for the larger fill
		s.setErr(err)
		return err
	}
	full := s.cur
	next := <-s.free
	if err := s.firstErr(); err != nil {
		s.free <- next
		return err
	}
	s.cur = next
	r := s.newRun()
	s.spilling.Add(1)
	go func() {
		defer s.spilling.Done()
		err := writeRun(s.fs, s.dir, r, full, &s.tmp)
		full.reset(s.budget)
		s.setErr(err)
		s.free <- full
	}()
	return nil
}

// newRun names the next run file and records it.
func (s *Sorter) newRun() *run {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := &run{path: s.fs.PathJoin(s.dir, fmt.Sprintf("sort-%d-run-%06d", s.id, s.nextRun))}
	s.nextRun++
	s.runs = append(s.runs, r)
	return r
}

// setErr records the sorter's first error.
func (s *Sorter) setErr(err error) {
	if err == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		s.err = err
	}
}

func (s *Sorter) firstErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// runBlock is how many bytes of records a run compresses at a time.
var runBlock = 64 << 10 // a variable so that tests can make many blocks

// writeRun sorts a buffer and writes it as a run: blocks of records
// (uvarint key length, value length, seq; key; value), each compressed
// with MinLZ and preceded by its compressed length (shifted left by one;
// the low bit set for a block over MinLZ's 8 MiB limit, stored as it is). Compression trades a
// little CPU for less than half the bytes through the kernel: on the
// machine the benchmark ran on, copying a 1M-event load's runs into the
// page cache was a fifth of its time.
func writeRun(fs vfs.FS, dir string, r *run, b *sortBuf, tmp *[]sortRec) error {
	b.sort(tmp)
	if err := fs.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := fs.Create(r.path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	var (
		blk, enc []byte
		hdr      [binary.MaxVarintLen64]byte
		written  int64
	)
	flush := func() error {
		if len(blk) == 0 {
			return nil
		}
		// A block MinLZ cannot take (over its 8 MiB block limit: one
		// record of a very large event) is written as it is, flagged in
		// the low bit of its length.
		out, flag := blk, uint64(1)
		if len(blk) <= minlz.MaxBlockSize {
			var err error
			if enc, err = minlz.Encode(enc[:cap(enc)], blk, minlz.LevelFastest); err != nil {
				return err
			}
			out, flag = enc, 0
		}
		n := binary.PutUvarint(hdr[:], uint64(len(out))<<1|flag)
		if _, err := w.Write(hdr[:n]); err != nil {
			return err
		}
		_, err := w.Write(out)
		written += int64(n + len(out))
		blk = blk[:0]
		return err
	}
	for _, rec := range b.recs {
		// A block ends before a record that would take it past MinLZ's
		// limit, so that only a record that is that large by itself
		// goes uncompressed.
		if len(blk) > 0 && len(blk)+int(rec.klen+rec.vlen)+3*binary.MaxVarintLen64 > minlz.MaxBlockSize {
			if err := flush(); err != nil {
				f.Close()
				return err
			}
		}
		if len(blk) == 0 {
			r.index = append(r.index, blockStart{key: bytes.Clone(b.key(rec)), off: written})
		}
		blk = binary.AppendUvarint(blk, uint64(rec.klen))
		blk = binary.AppendUvarint(blk, uint64(rec.vlen))
		blk = binary.AppendUvarint(blk, rec.seq)
		blk = append(append(blk, b.key(rec)...), b.val(rec)...)
		if len(blk) >= runBlock {
			if err := flush(); err != nil {
				f.Close()
				return err
			}
		}
	}
	if err := flush(); err != nil {
		f.Close()
		return err
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// run is a sorted run file and the first key of each of its blocks.
type run struct {
	path  string
	index []blockStart
}

type blockStart struct {
	key []byte
	off int64 // of the block's length prefix
}

// finish waits for the background spills and sorts the buffer in memory:
// the sorter is read-only from then on.
func (s *Sorter) finish() error {
	s.finished.Do(func() {
		s.spilling.Wait()
		s.cur.sort(&s.tmp)
		s.tmp = nil
		// The spare buffer is not needed any more: its memory goes back
		// before the merge needs some.
		select {
		case b := <-s.free:
			b.release()
			b.chunks, b.recs = nil, nil
			s.free <- b
		default:
		}
	})
	return s.firstErr()
}

// Each calls fn with every record, sorted by key then seq. The slices are
// only valid until fn returns. Each may be called once, after the last Add.
func (s *Sorter) Each(fn func(key, value []byte, seq uint64) error) error {
	return MergeEach([]*Sorter{s}, fn)
}

// MergeEach is Each over the records of several sorters together (filled
// by goroutines of their own, say): fn sees every record of them all,
// sorted by key then seq. Call it after the last Add to any of them.
func MergeEach(sorters []*Sorter, fn func(key, value []byte, seq uint64) error) error {
	return MergeRange(sorters, nil, nil, fn)
}

// SplitKeys returns up to n-1 keys that cut the records of the sorters
// into n ranges of about equal size, estimated from the first keys of the
// runs' blocks and of as many bytes of the records in memory; fewer (or
// none) when there are too few blocks to tell. Call it after the last
// Add.
func SplitKeys(sorters []*Sorter, n int) ([][]byte, error) {
	var keys [][]byte
	for _, s := range sorters {
		if err := s.finish(); err != nil {
			return nil, err
		}
		for _, r := range s.runs {
			for _, b := range r.index {
				keys = append(keys, b.key)
			}
		}
		size := runBlock
		for _, r := range s.cur.recs {
			if size += int(r.klen + r.vlen); size >= runBlock {
				keys = append(keys, bytes.Clone(s.cur.key(r)))
				size = 0
			}
		}
	}
	if len(keys) < 4*n {
		return nil, nil
	}
	slices.SortFunc(keys, bytes.Compare)
	var out [][]byte
	for k := 1; k < n; k++ {
		key := keys[len(keys)*k/n]
		if len(out) == 0 || !bytes.Equal(out[len(out)-1], key) {
			out = append(out, key)
		}
	}
	return out, nil
}

// MergeRange is MergeEach over the records with lo <= key < hi (a nil lo
// or hi is unbounded). Calls for disjoint ranges may run at the same time:
// each reads the run files through handles of its own, starting at the
// block where its range starts.
func MergeRange(sorters []*Sorter, lo, hi []byte, fn func(key, value []byte, seq uint64) error) error {
	it, err := NewMergeIter(sorters, lo, hi)
	if err != nil {
		return err
	}
	defer it.Close()
	for it.Next() {
		if err := fn(it.Key(), it.Value(), it.Seq()); err != nil {
			return err
		}
	}
	return it.Err()
}

// MergeIter pulls the records of MergeRange one at a time, for a caller
// that walks another sorted stream beside them.
type MergeIter struct {
	h       runHeap
	hi      []byte
	files   []vfs.File
	cur     *runCursor
	started bool
	err     error
}

// NewMergeIter starts a merge of the records with lo <= key < hi. Close it.
func NewMergeIter(sorters []*Sorter, lo, hi []byte) (*MergeIter, error) {
	it := &MergeIter{hi: hi}
	// The cursors order keys by the 8 bytes after the sorters' common
	// prefix first, as the sorters' buffers do; when the sorters have
	// different prefixes, by whole keys only.
	skip, prefix := -1, []byte(nil)
	for _, s := range sorters {
		switch {
		case s.prefix == nil:
		case prefix == nil:
			skip, prefix = s.skip, s.prefix
		case s.skip != skip || !bytes.Equal(s.prefix, prefix):
			skip, prefix = -1, []byte{}
		}
	}
	var cursors []*runCursor
	for _, s := range sorters {
		if err := s.finish(); err != nil {
			it.Close()
			return nil, err
		}
		recs := s.cur.recs
		i, _ := slices.BinarySearchFunc(recs, lo, func(r sortRec, lo []byte) int { return bytes.Compare(s.cur.key(r), lo) })
		cursors = append(cursors, &runCursor{mem: s.cur, i: i, skip: skip, prefix: prefix})
		for _, r := range s.runs {
			// The last block that starts before lo holds lo's first
			// records (or the first after it).
			b := 0
			if lo != nil {
				b, _ = slices.BinarySearchFunc(r.index, lo, func(b blockStart, lo []byte) int {
					if bytes.Compare(b.key, lo) < 0 {
						return -1
					}
					return 1
				})
				b = max(b-1, 0)
			}
			if b >= len(r.index) {
				continue
			}
			f, err := s.fs.Open(r.path)
			if err != nil {
				it.Close()
				return nil, err
			}
			it.files = append(it.files, f)
			sr := io.NewSectionReader(f, r.index[b].off, 1<<62)
			cursors = append(cursors, &runCursor{r: bufio.NewReaderSize(sr, 64<<10), skip: skip, prefix: prefix})
		}
	}
	for _, c := range cursors {
		for {
			ok, err := c.next()
			if err != nil {
				it.Close()
				return nil, err
			}
			if !ok || hi != nil && bytes.Compare(c.key, hi) >= 0 {
				break
			}
			if lo == nil || bytes.Compare(c.key, lo) >= 0 {
				it.h = append(it.h, c)
				break
			}
		}
	}
	it.h.init()
	return it, nil
}

// Next moves to the next record; false at the end or on an error (Err).
func (it *MergeIter) Next() bool {
	if it.err != nil {
		return false
	}
	if it.started && it.cur != nil {
		ok, err := it.cur.next()
		if err != nil {
			it.err = err
			return false
		}
		if ok && (it.hi == nil || bytes.Compare(it.cur.key, it.hi) < 0) {
			it.h.down(0)
		} else {
			it.h.popTop()
		}
	}
	it.started = true
	if len(it.h) == 0 {
		it.cur = nil
		return false
	}
	it.cur = it.h[0]
	return true
}

// Key, Value and Seq are the current record's; the slices are valid until
// the next call to Next.
func (it *MergeIter) Key() []byte   { return it.cur.key }
func (it *MergeIter) Value() []byte { return it.cur.val }
func (it *MergeIter) Seq() uint64   { return it.cur.seq }

// Err is the error that stopped Next, if any.
func (it *MergeIter) Err() error { return it.err }

// Close closes the run files the merge reads.
func (it *MergeIter) Close() error {
	var errs []error
	for _, f := range it.files {
		errs = append(errs, f.Close())
	}
	it.files = nil
	return errors.Join(errs...)
}

// Close removes the run files. It is safe to call more than once.
func (s *Sorter) Close() error {
	s.spilling.Wait()
	if s.closed {
		return nil
	}
	s.closed = true
	// The buffers' memory is left to the collector, readable by a merge
	// still running; only its huge page advice goes now.
	s.cur.release()
	select {
	case b := <-s.free:
		b.release()
		s.free <- b
	default:
	}
	var errs []error
	for _, r := range s.runs {
		if err := s.fs.Remove(r.path); err != nil && !errors.Is(err, iofs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	_ = s.fs.Remove(s.dir) // only when empty
	return errors.Join(errs...)
}

// runCursor reads one sorted run: the in-memory buffer or a file.
type runCursor struct {
	mem      *sortBuf
	i        int
	r        *bufio.Reader
	comp     []byte
	blk      []byte // the decompressed block being read
	pos      int
	key, val []byte
	seq      uint64

	// The merge's common prefix and its length (-1: none), and the
	// current key's 8 bytes after it, as sortRec has them.
	skip   int
	prefix []byte
	pfx    uint64
	in     bool
}

var errBadRun = errors.New("sorter: malformed run file")

func (c *runCursor) next() (bool, error) {
	if c.mem != nil {
		if c.i >= len(c.mem.recs) {
			return false, nil
		}
		r := c.mem.recs[c.i]
		c.i++
		c.key, c.val, c.seq = c.mem.key(r), c.mem.val(r), r.seq
		// The record's own prefix fields are the merge's (when the merge
		// uses them at all: skip >= 0 only if every sorter agrees).
		c.pfx, c.in = r.pfx, r.in && c.skip >= 0
		return true, nil
	}
	if c.pos >= len(c.blk) {
		h, err := binary.ReadUvarint(c.r)
		if errors.Is(err, io.EOF) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		n, raw := h>>1, h&1 == 1
		if n > 1<<34 || (!raw && n > uint64(minlz.MaxEncodedLen(minlz.MaxBlockSize))) {
			return false, errBadRun
		}
		if raw {
			// Not into comp: comp and blk must not share memory.
			if cap(c.blk) < int(n) {
				c.blk = make([]byte, n)
			}
			c.blk = c.blk[:n]
			if _, err := io.ReadFull(c.r, c.blk); err != nil {
				return false, err
			}
		} else {
			if cap(c.comp) < int(n) {
				c.comp = make([]byte, n)
			}
			c.comp = c.comp[:n]
			if _, err := io.ReadFull(c.r, c.comp); err != nil {
				return false, err
			}
			if c.blk, err = minlz.Decode(c.blk[:cap(c.blk)], c.comp); err != nil {
				return false, fmt.Errorf("%w: %v", errBadRun, err)
			}
		}
		c.pos = 0
	}
	b := c.blk[c.pos:]
	klen, n1 := binary.Uvarint(b)
	vlen, n2 := binary.Uvarint(b[max(n1, 0):])
	seq, n3 := binary.Uvarint(b[max(n1+n2, 0):])
	if n1 <= 0 || n2 <= 0 || n3 <= 0 {
		return false, errBadRun
	}
	h := n1 + n2 + n3
	if uint64(len(b)-h) < klen+vlen {
		return false, errBadRun
	}
	c.key, c.val, c.seq = b[h:h+int(klen)], b[h+int(klen):h+int(klen+vlen)], seq
	c.pos += h + int(klen+vlen)
	if c.skip >= 0 {
		c.pfx = keyPrefix(c.key, c.skip)
		c.in = len(c.key) >= c.skip && string(c.key[:c.skip]) == string(c.prefix)
	}
	return true, nil
}

// runHeap is a min-heap of cursors by (key, seq). It is written out, not
// container/heap's interface: its calls through the interface were half
// of a merge's time.
type runHeap []*runCursor

func (h runHeap) less(i, j int) bool {
	a, b := h[i], h[j]
	if a.in && b.in && a.pfx != b.pfx {
		return a.pfx < b.pfx
	}
	if c := bytes.Compare(a.key, b.key); c != 0 {
		return c < 0
	}
	return a.seq < b.seq
}

func (h runHeap) init() {
	for i := len(h)/2 - 1; i >= 0; i-- {
		h.down(i)
	}
}

// down moves h[i] down to its place.
func (h runHeap) down(i int) {
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		m := l
		if r := l + 1; r < len(h) && h.less(r, l) {
			m = r
		}
		if !h.less(m, i) {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}

// popTop removes h[0].
func (h *runHeap) popTop() {
	old := *h
	n := len(old) - 1
	old[0] = old[n]
	old[n] = nil
	*h = old[:n]
	h.down(0)
}
