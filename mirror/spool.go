package mirror

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/cespare/xxhash/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/mirrord/mirrord/internal/gitlog"
	"github.com/mirrord/mirrord/kv"
	"golang.org/x/sys/unix"
)

// A spool is git mode's copy of the blob the engine reads: a private
// file, unlinked from the moment it exists (a crash leaves nothing
// behind), that holds the content of the blob last read. The engine reads
// the log by offset (a tail from the checkpoint, a reconcile's re-reads,
// the bulk load's parts, verify), which a stream from git cannot give; the
// spool is a regular file like the work tree's log, so every path
// downstream is file mode's. It lives on disk: a 700 MB blob costs page
// cache, not memory.
//
// It is updated in place: a new blob is streamed through a bounded buffer
// and compared with what the spool holds at the same offsets, and only
// from the first difference on is anything written. An append writes only
// what was appended; a rewrite, from its first changed byte.
type spool struct {
	f *os.File
	// blob is the object the spool holds whole, "" when none is known to
	// be (a new spool, or an update that failed midway: its bytes are
	// still compared, never trusted).
	blob gitlog.ID
	size int64
	buf  []byte // what the blob's stream gives
	cmp  []byte // what the spool holds at the same offsets
}

// spoolChunk is the bounded buffer of a spool update, twice (the stream's
// bytes, and the spool's to compare them with).
const spoolChunk = 1 << 20

// SpoolDir is where git mode keeps its copy of the blob it reads for the
// store db: the store's temporary directory when the store is on the
// operating system's file system (on the store's disk, and cleared by
// the store's next open), else (an in-memory store) the system's.
func SpoolDir(db *kv.DB) string {
	if fs, dir := db.TempDir(); fs == vfs.Default {
		return dir
	}
	return os.TempDir()
}

// newSpool makes an empty spool in dir ("" is the system's temporary
// directory), creating dir if need be.
func newSpool(dir string) (*spool, error) {
	if dir == "" {
		dir = os.TempDir()
	}
	// The store's temporary directory is removed when a bulk load ends
	// (and is empty): one removed between the two calls is made again.
	var err error
	for range 3 {
		if err = os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("git mode's copy of the log: %w", err)
		}
		var f *os.File
		if f, err = openUnlinked(dir); err == nil {
			return &spool{f: f}, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			break
		}
	}
	return nil, fmt.Errorf("git mode's copy of the log in %s: %w", dir, err)
}

// openUnlinked opens a new file in dir that has no name: O_TMPFILE where
// the file system has it, else a file removed as soon as it is made.
func openUnlinked(dir string) (*os.File, error) {
	fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err == nil {
		return os.NewFile(uintptr(fd), dir+"/(spool)"), nil
	}
	f, err := os.CreateTemp(dir, ".mirrord-spool-")
	if err != nil {
		return nil, err
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func (s *spool) close() error {
	if s == nil || s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}

// fillResult is what an update of the spool found on the way.
type fillResult struct {
	// prefixLen and prefixSum: the xxhash of the blob's first prefixLen
	// bytes (the length asked for, or less when the blob is shorter).
	prefixLen int64
	prefixSum uint64
	// written is how many bytes were written to the spool.
	written int64
	// held is the blob the spool held before ("" when unknown), and same
	// how many of its first bytes the new blob shares with it.
	held gitlog.ID
	same int64
}

// fill makes the spool hold the blob r streams (id, of size bytes),
// writing only from the first byte that differs from what the spool held,
// and hashes the blob's first prefix bytes on the way (the engine's check
// that the blob continues the checkpoint, without another pass). On error
// the spool holds no known blob.
func (s *spool) fill(ctx context.Context, r io.Reader, id gitlog.ID, size, prefix int64) (fillResult, error) {
	res := fillResult{held: s.blob}
	s.blob = ""
	if s.buf == nil {
		s.buf, s.cmp = make([]byte, spoolChunk), make([]byte, spoolChunk)
	}
	old := s.size
	if fi, err := s.f.Stat(); err == nil {
		old = fi.Size()
	}
	var (
		h      = xxhash.New()
		off    int64
		differ bool // from here on, every byte is written
	)
	for off < size {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		n, err := io.ReadFull(r, s.buf[:min(int64(len(s.buf)), size-off)])
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return res, fmt.Errorf("reading blob %s at %d of %d bytes: %w", id, off, size, err)
		}
		chunk := s.buf[:n]
		if off < prefix {
			_, _ = h.Write(chunk[:min(int64(n), prefix-off)])
		}
		from := 0 // the first byte of chunk to write
		if !differ && off < old {
			m := int(min(int64(n), old-off))
			if _, err := s.f.ReadAt(s.cmp[:m], off); err != nil && !errors.Is(err, io.EOF) {
				return res, fmt.Errorf("reading git mode's copy of the log: %w", err)
			}
			from = firstDiff(chunk[:m], s.cmp[:m])
			res.same += int64(from)
			if from < n {
				differ = true
			}
		}
		if from < n {
			if _, err := s.f.WriteAt(chunk[from:], off+int64(from)); err != nil {
				return res, fmt.Errorf("writing git mode's copy of the log: %w", err)
			}
			res.written += int64(n - from)
		}
		off += int64(n)
	}
	if size < old {
		if err := s.f.Truncate(size); err != nil {
			return res, fmt.Errorf("truncating git mode's copy of the log: %w", err)
		}
	}
	// The stream must end where the blob does.
	if n, err := r.Read(s.buf[:1]); n > 0 || !errors.Is(err, io.EOF) {
		if err == nil {
			err = fmt.Errorf("blob %s is longer than its %d bytes", id, size)
		}
		return res, err
	}
	res.prefixLen, res.prefixSum = min(prefix, size), h.Sum64()
	s.blob, s.size = id, size
	return res, nil
}

// firstDiff returns the index of the first byte where a and b (of equal
// length) differ, len(a) when they do not.
func firstDiff(a, b []byte) int {
	if bytes.Equal(a, b) {
		return len(a)
	}
	// Halve the range that holds the first difference: each bytes.Equal
	// runs at memory speed, where a byte loop would not.
	lo, hi := 0, len(a)
	for hi-lo > 64 {
		mid := lo + (hi-lo)/2
		if bytes.Equal(a[lo:mid], b[lo:mid]) {
			lo = mid
		} else {
			hi = mid
		}
	}
	for lo < hi && a[lo] == b[lo] {
		lo++
	}
	return lo
}
