package kv

import (
	"bufio"
	"bytes"
	"container/heap"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"slices"
	"sync"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// Sorter sorts records (key, value, seq) by key, then by seq, within a
// memory budget: records fill a buffer; a full buffer is sorted and written
// to a run file in the store's directory (in the background, while the
// next one fills); the runs are merged when read. A load of any size thus
// holds about two buffers in memory. Keys and values are copied.
type Sorter struct {
	fs     vfs.FS
	dir    string
	budget int

	cur      *sortBuf
	free     chan *sortBuf // the buffer not being filled, once spilt
	spilling sync.WaitGroup
	mu       sync.Mutex
	runs     []string
	err      error
	nextRun  int
	closed   bool
	id       uint64 // distinguishes the run files of sorters of one store
	skip     int
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

type sortBuf struct {
	arena []byte
	recs  []sortRec
}

type sortRec struct {
	pfx  uint64 // 8 key bytes after the sorter's common prefix, big-endian
	off  uint32 // of the key in arena; the value follows it
	klen uint32
	vlen uint32
	seq  uint64
}

func (b *sortBuf) key(r sortRec) []byte { return b.arena[r.off : r.off+r.klen] }
func (b *sortBuf) val(r sortRec) []byte { return b.arena[r.off+r.klen : r.off+r.klen+r.vlen] }

func (b *sortBuf) sort(skip int) {
	slices.SortFunc(b.recs, func(x, y sortRec) int {
		kx, ky := b.key(x), b.key(y)
		// Keys that share the common prefix are mostly told apart by the
		// 8 bytes after it, compared as two integers.
		if x.pfx != y.pfx && len(kx) >= skip && len(ky) >= skip && string(kx[:skip]) == string(ky[:skip]) {
			if x.pfx < y.pfx {
				return -1
			}
			return 1
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
	})
}

// NewSorter returns a sorter holding at most about 2 × budget bytes of
// records in memory (budget must exceed the largest record). skip is the
// length of a prefix most keys share (such as "event:"): comparing the 8
// bytes after it as integers settles most comparisons.
func (db *DB) NewSorter(budget, skip int) *Sorter {
	s := &Sorter{fs: db.opts.FS, dir: db.opts.FS.PathJoin(db.path, "bulk-tmp"), budget: budget, free: make(chan *sortBuf, 1),
		id: db.tmpSeq.Add(1), skip: skip}
	s.cur = &sortBuf{arena: make([]byte, 0, budget)}
	s.free <- &sortBuf{arena: make([]byte, 0, budget)}
	return s
}

// Add adds a record.
func (s *Sorter) Add(key, value []byte, seq uint64) error {
	if s.err != nil {
		return s.err
	}
	n := len(key) + len(value)
	if len(s.cur.arena)+n > s.budget && len(s.cur.recs) > 0 {
		if err := s.spill(); err != nil {
			return err
		}
	}
	off := len(s.cur.arena)
	s.cur.arena = append(append(s.cur.arena, key...), value...)
	s.cur.recs = append(s.cur.recs, sortRec{pfx: keyPrefix(key, s.skip), off: uint32(off), klen: uint32(len(key)), vlen: uint32(len(value)), seq: seq})
	return nil
}

// spill hands the full buffer to a background sort-and-write and takes the
// other buffer (waiting for its previous spill, so that at most two
// buffers exist).
func (s *Sorter) spill() error {
	full := s.cur
	next := <-s.free
	if err := s.firstErr(); err != nil {
		s.free <- next
		return err
	}
	s.cur = next
	s.mu.Lock()
	path := s.fs.PathJoin(s.dir, fmt.Sprintf("sort-%d-run-%06d", s.id, s.nextRun))
	s.nextRun++
	s.runs = append(s.runs, path)
	s.mu.Unlock()
	s.spilling.Add(1)
	go func() {
		defer s.spilling.Done()
		err := writeRun(s.fs, s.dir, path, full, s.skip)
		full.arena, full.recs = full.arena[:0], full.recs[:0]
		if err != nil {
			s.mu.Lock()
			if s.err == nil {
				s.err = err
			}
			s.mu.Unlock()
		}
		s.free <- full
	}()
	return nil
}

func (s *Sorter) firstErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

func writeRun(fs vfs.FS, dir, path string, b *sortBuf, skip int) error {
	b.sort(skip)
	if err := fs.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := fs.Create(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	var hdr [3 * binary.MaxVarintLen64]byte
	for _, r := range b.recs {
		n := binary.PutUvarint(hdr[:], uint64(r.klen))
		n += binary.PutUvarint(hdr[n:], uint64(r.vlen))
		n += binary.PutUvarint(hdr[n:], r.seq)
		if _, err := w.Write(hdr[:n]); err != nil {
			f.Close()
			return err
		}
		if _, err := w.Write(b.arena[r.off : r.off+r.klen+r.vlen]); err != nil {
			f.Close()
			return err
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Each calls fn with every record, sorted by key then seq. The slices are
// only valid until fn returns. Each may be called once, after the last Add.
func (s *Sorter) Each(fn func(key, value []byte, seq uint64) error) error {
	s.spilling.Wait()
	if err := s.firstErr(); err != nil {
		return err
	}
	s.cur.sort(s.skip)
	cursors := []*runCursor{{mem: s.cur}}
	for _, path := range s.runs {
		f, err := s.fs.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		cursors = append(cursors, &runCursor{r: bufio.NewReaderSize(f, 1<<20)})
	}
	h := &runHeap{}
	for _, c := range cursors {
		ok, err := c.next()
		if err != nil {
			return err
		}
		if ok {
			*h = append(*h, c)
		}
	}
	heap.Init(h)
	for h.Len() > 0 {
		c := (*h)[0]
		if err := fn(c.key, c.val, c.seq); err != nil {
			return err
		}
		ok, err := c.next()
		if err != nil {
			return err
		}
		if ok {
			heap.Fix(h, 0)
		} else {
			heap.Pop(h)
		}
	}
	return nil
}

// Close removes the run files. It is safe to call more than once.
func (s *Sorter) Close() error {
	s.spilling.Wait()
	if s.closed {
		return nil
	}
	s.closed = true
	var errs []error
	for _, p := range s.runs {
		if err := s.fs.Remove(p); err != nil && !errors.Is(err, iofs.ErrNotExist) {
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
	buf      []byte
	key, val []byte
	seq      uint64
}

func (c *runCursor) next() (bool, error) {
	if c.mem != nil {
		if c.i >= len(c.mem.recs) {
			return false, nil
		}
		r := c.mem.recs[c.i]
		c.i++
		c.key, c.val, c.seq = c.mem.key(r), c.mem.val(r), r.seq
		return true, nil
	}
	klen, err := binary.ReadUvarint(c.r)
	if errors.Is(err, io.EOF) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	vlen, err := binary.ReadUvarint(c.r)
	if err != nil {
		return false, err
	}
	if c.seq, err = binary.ReadUvarint(c.r); err != nil {
		return false, err
	}
	n := int(klen + vlen)
	if cap(c.buf) < n {
		c.buf = make([]byte, n)
	}
	c.buf = c.buf[:n]
	if _, err := io.ReadFull(c.r, c.buf); err != nil {
		return false, err
	}
	c.key, c.val = c.buf[:klen], c.buf[klen:]
	return true, nil
}

type runHeap []*runCursor

func (h runHeap) Len() int { return len(h) }
func (h runHeap) Less(i, j int) bool {
	if c := bytes.Compare(h[i].key, h[j].key); c != 0 {
		return c < 0
	}
	return h[i].seq < h[j].seq
}
func (h runHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *runHeap) Push(x any)   { *h = append(*h, x.(*runCursor)) }
func (h *runHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
