package generators

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/mirrord/mirrord/kv"
)

// A streamed rebuild keeps a generator's writes in memory up to a budget,
// then writes them out, sorted, as a run: a file in the store's temporary
// directory, read back by the final merge that streams the output into
// sstables. Unlike an external sort's runs these can be read by key: a
// generator's Get or Scan of a value it wrote long ago in the same rebuild
// finds it in a run (the runs' first keys per block stay in memory: one
// block read a lookup). The built-in generators never read back what they
// spilt; a generator that does is correct, only slower.

// runBlockSize is where a run starts a new block: the unit a lookup reads.
const runBlockSize = 16 << 10

// spillRun is one sorted run of a rebuild's writes: records of key, and a
// value or a deletion (a later run's deletion hides an earlier run's key).
type spillRun struct {
	f     vfs.File
	path  string
	size  int64
	index []runBlock
}

type runBlock struct {
	first string // the block's first key
	off   int64
}

// record encoding: uvarint the bytes the key shares with the record's
// before (0 for a block's first record, so that a block reads on its
// own), uvarint the length of the rest, the rest of the key, uvarint
// (value length + 1, or 0 for a deletion), value. A generator's keys share
// long prefixes (mirrord:state:summary:2026-07/ and the instant's first
// digits): spelt whole, they were more than half of what a rebuild of
// 10M events wrote to its runs and read back, and the kernel's copies of
// those bytes were a tenth of its time.

// writeSpillRun writes the records of m (deletions too, those keepDelete
// wants: a deletion of a key no earlier run holds hides nothing) as a run.
func writeSpillRun(fs vfs.FS, path string, m *merged, keepDelete func(string) bool) (*spillRun, error) {
	f, err := kv.CreateTemp(fs, path)
	if err != nil {
		return nil, err
	}
	r := &spillRun{f: f, path: path}
	w := bufio.NewWriterSize(f, 256<<10)
	var (
		rec       []byte // the record being encoded
		prev      []byte // the key before, in this block
		blockFrom int64  = -runBlockSize
	)
	err = m.eachAll(func(k, v []byte, del bool) error {
		if del && !keepDelete(string(k)) {
			return nil // nothing earlier to hide
		}
		shared := 0
		if r.size-blockFrom >= runBlockSize {
			blockFrom = r.size
			r.index = append(r.index, runBlock{first: string(k), off: r.size})
		} else {
			n := min(len(prev), len(k))
			for shared < n && prev[shared] == k[shared] {
				shared++
			}
		}
		prev = append(prev[:0], k...)
		vl := uint64(0)
		if !del {
			vl = uint64(len(v)) + 1
		}
		rec = binary.AppendUvarint(rec[:0], uint64(shared))
		rec = binary.AppendUvarint(rec, uint64(len(k)-shared))
		rec = append(rec, k[shared:]...)
		rec = binary.AppendUvarint(rec, vl)
		rec = append(rec, v...)
		r.size += int64(len(rec))
		_, err := w.Write(rec)
		return err
	})
	if err == nil {
		err = w.Flush()
	}
	if err != nil {
		r.close(fs)
		return nil, err
	}
	return r, nil
}

// close closes and removes the run's file.
func (r *spillRun) close(fs vfs.FS) {
	_ = r.f.Close()
	_ = fs.Remove(r.path)
}

// block reads block i into buf.
func (r *spillRun) block(i int, buf []byte) ([]byte, error) {
	end := r.size
	if i+1 < len(r.index) {
		end = r.index[i+1].off
	}
	n := int(end - r.index[i].off)
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := r.f.ReadAt(buf, r.index[i].off); err != nil && err != io.EOF {
		return nil, fmt.Errorf("reading a rebuild's spilt run %s: %w", r.path, err)
	}
	return buf, nil
}

// nextRecord decodes the record at the start of b, whose key shares its
// first bytes with prev (the key before it in the block; its buffer is
// reused for the key): key, value, deletion, and the rest of b.
func nextRecord(b, prev []byte) (key, value []byte, del bool, rest []byte, err error) {
	shared, n := binary.Uvarint(b)
	if n <= 0 || shared > uint64(len(prev)) {
		return nil, nil, false, nil, errBadRun
	}
	b = b[n:]
	kl, n := binary.Uvarint(b)
	if n <= 0 || uint64(len(b)-n) < kl {
		return nil, nil, false, nil, errBadRun
	}
	key, b = append(prev[:shared], b[n:n+int(kl)]...), b[n+int(kl):]
	vl, n := binary.Uvarint(b)
	if n <= 0 || (vl > 0 && uint64(len(b)-n) < vl-1) {
		return nil, nil, false, nil, errBadRun
	}
	b = b[n:]
	if vl == 0 {
		return key, nil, true, b, nil
	}
	return key, b[:vl-1], false, b[vl-1:], nil
}

var errBadRun = errors.New("a rebuild's spilt run is corrupt")

// blockOf returns the block that would hold key (-1: before the first).
func (r *spillRun) blockOf(key string) int {
	return sort.Search(len(r.index), func(i int) bool { return r.index[i].first > key }) - 1
}

// lookup finds key in the run: its value or deletion.
func (r *spillRun) lookup(key string, buf *[]byte) (value []byte, del, found bool, err error) {
	i := r.blockOf(key)
	if i < 0 {
		return nil, false, false, nil
	}
	b, err := r.block(i, *buf)
	if err != nil {
		return nil, false, false, err
	}
	*buf = b
	var k []byte
	for len(b) > 0 {
		if k, value, del, b, err = nextRecord(b, k); err != nil {
			return nil, false, false, err
		}
		if c := bytes.Compare(k, []byte(key)); c == 0 {
			return value, del, true, nil
		} else if c > 0 {
			break
		}
	}
	return nil, false, false, nil
}

// runIter walks a run in key order from a key on.
type runIter struct {
	r     *spillRun
	blk   int
	buf   []byte
	rest  []byte
	key   []byte
	value []byte
	del   bool
	err   error
}

// seek positions the iterator at the first record at or after key ("":
// the first), and reports whether there is one.
func (it *runIter) seek(key string) bool {
	it.blk = max(it.r.blockOf(key), 0)
	if !it.load() {
		return false
	}
	for it.next() {
		if string(it.key) >= key {
			return true
		}
	}
	return false
}

func (it *runIter) load() bool {
	if it.blk >= len(it.r.index) {
		it.rest = nil
		return false
	}
	it.buf, it.err = it.r.block(it.blk, it.buf)
	it.rest = it.buf
	return it.err == nil
}

// next advances to the next record.
func (it *runIter) next() bool {
	for len(it.rest) == 0 {
		it.blk++
		if !it.load() {
			return false
		}
	}
	it.key, it.value, it.del, it.rest, it.err = nextRecord(it.rest, it.key)
	return it.err == nil
}

// mergeSource is one sorted source of a merge: a run, or the pending
// writes. Later sources win ties.
type mergeSource interface {
	seek(key string) bool
	next() bool
	current() (key, value []byte, del bool)
	error() error
}

func (it *runIter) current() ([]byte, []byte, bool) { return it.key, it.value, it.del }
func (it *runIter) error() error                    { return it.err }

// pendingIter walks sorted pending keys.
type pendingIter struct {
	keys    []string
	pending map[string]op
	i       int
	key     []byte
}

func (p *pendingIter) seek(key string) bool {
	p.i = sort.SearchStrings(p.keys, key) - 1
	return p.next()
}

func (p *pendingIter) next() bool {
	p.i++
	if p.i >= len(p.keys) {
		return false
	}
	p.key = []byte(p.keys[p.i])
	return true
}

func (p *pendingIter) current() ([]byte, []byte, bool) {
	o := p.pending[p.keys[p.i]]
	return p.key, o.value, o.del
}
func (p *pendingIter) error() error { return nil }

// merged walks several sources as one, in key order: of equal keys the
// latest source's record, deletions dropped. It is a tournament of losers:
// each record handed out costs one comparison for each level of the tree
// (a binary heap's sift-down made two), with each source's current record
// kept beside it, not asked of the source for each comparison (the final
// merge of a rebuild of 10M events, 55 runs a generator, spent a quarter
// of its time in the heap's comparisons).
type merged struct {
	srcs []mergeItem
	tree []int // tree[n], n ≥ 1: the loser at node n; tree[0]: the winner
	live int   // the sources not exhausted
	err  error
}

// mergeItem is a source in the merge, and its current record.
type mergeItem struct {
	src        mergeSource
	rank       int // its place among the sources given: the later wins ties
	key, value []byte
	del, done  bool
}

// newMerged starts a merge of srcs (the last wins ties) from key on.
func newMerged(srcs []mergeSource, from string) *merged {
	m := &merged{}
	for rank, s := range srcs {
		if s.seek(from) {
			it := mergeItem{src: s, rank: rank}
			it.key, it.value, it.del = s.current()
			m.srcs = append(m.srcs, it)
		} else if err := s.error(); err != nil {
			m.err = err
		}
	}
	m.live = len(m.srcs)
	k := len(m.srcs)
	if k == 0 {
		return m
	}
	// Leaves k..2k-1 are the sources; each node plays its children's
	// winners, keeps the loser and passes the winner up.
	m.tree = make([]int, k)
	win := make([]int, 2*k)
	for i := range k {
		win[k+i] = i
	}
	for n := k - 1; n >= 1; n-- {
		a, b := win[2*n], win[2*n+1]
		if m.before(b, a) {
			a, b = b, a
		}
		win[n], m.tree[n] = a, b
	}
	m.tree[0] = win[1] // one source: win[1] is its leaf
	return m
}

// before reports whether source a's record goes before source b's: a
// smaller key, or the same key from a later source; an exhausted source
// goes after every other.
func (m *merged) before(a, b int) bool {
	sa, sb := &m.srcs[a], &m.srcs[b]
	if sa.done || sb.done {
		return !sa.done
	}
	if c := bytes.Compare(sa.key, sb.key); c != 0 {
		return c < 0
	}
	return sa.rank > sb.rank
}

// advance moves the winner to its next record and replays its path up
// the tree.
func (m *merged) advance() error {
	w := m.tree[0]
	s := &m.srcs[w]
	if s.src.next() {
		s.key, s.value, s.del = s.src.current()
	} else {
		if err := s.src.error(); err != nil {
			return err
		}
		s.done = true
		m.live--
	}
	for n := (w + len(m.srcs)) / 2; n >= 1; n /= 2 {
		if m.before(m.tree[n], w) {
			m.tree[n], w = w, m.tree[n]
		}
	}
	m.tree[0] = w
	return nil
}

// each calls fn with every live key and value from the merge's start.
// fn's slices are valid until it returns; an error of fn stops the merge
// and is returned.
func (m *merged) each(fn func(key, value []byte) error) error {
	return m.eachAll(func(k, v []byte, del bool) error {
		if del {
			return nil
		}
		return fn(k, v)
	})
}

// eachAll is each with the deletions: of each key, the newest record.
func (m *merged) eachAll(fn func(key, value []byte, del bool) error) error {
	var last []byte
	first := true
	for m.err == nil && m.live > 0 {
		if m.live == 1 {
			return m.eachOfOne(fn, last, first)
		}
		top := &m.srcs[m.tree[0]]
		if first || string(top.key) != string(last) {
			first = false
			last = append(last[:0], top.key...)
			if err := fn(top.key, top.value, top.del); err != nil {
				return err
			}
		}
		if err := m.advance(); err != nil {
			return err
		}
	}
	return m.err
}

// eachOfOne is eachAll once a single source is left: its keys are
// distinct, and need no tree nor comparison with the one before (a
// spill of the log alone, the commonest, is such a merge), except its
// first with the last key another source gave.
func (m *merged) eachOfOne(fn func(key, value []byte, del bool) error, last []byte, first bool) error {
	var s *mergeItem
	for i := range m.srcs {
		if !m.srcs[i].done {
			s = &m.srcs[i]
		}
	}
	m.live = 0
	if first || string(s.key) != string(last) {
		if err := fn(s.key, s.value, s.del); err != nil {
			return err
		}
	}
	for s.src.next() {
		k, v, del := s.src.current()
		if err := fn(k, v, del); err != nil {
			return err
		}
	}
	return s.src.error()
}
