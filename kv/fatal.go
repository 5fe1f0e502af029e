package kv

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Pebble cannot go on after some failures: a failed write, sync, creation
// or close of its write-ahead log, or of its manifest and the marker that
// names it. It panics then, or calls Logger.Fatalf, in the middle of a
// commit or in one of its own goroutines, and sometimes after releasing
// the mutex its deferred calls unlock again (rotateWAL), so that even
// unwinding through it is a fatal runtime error that no recover catches.
// A memtable flush that fails is retried at once and without end: writers
// that meet the memtable limit, and Open, then wait inside Pebble forever.
//
// So kv never lets Pebble see such a failure: the file system Pebble
// writes through (fatalFS) and the flush listener hand it to the store's
// fatal, which calls Options.OnFatal, which ends the process. The files
// hold a consistent prefix of the batches (Pebble recovers its WAL up to
// the last whole record), so reopening the store resumes from its last
// durable batch. Failures Pebble handles stay its own: a failed sstable
// write of a compaction (retried later) or of an ingest (its error), a
// failed link of an ingested file (the ingest's error).

// fatal is a store's way out. fail is called with Pebble's own locks
// held, from any goroutine, and never returns.
type fatal struct {
	path    string
	onFatal func(error)
	// closing is set while Close closes Pebble: what fails then (the last
	// write and sync of the WAL, the close of the manifest) is an error
	// Pebble's Close returns, and a flush that fails is not retried.
	closing atomic.Bool
	mu      sync.Mutex // held by the first failure until the process ends
}

func newFatal(path string, o *Options) *fatal {
	f := &fatal{path: path, onFatal: o.OnFatal}
	if f.onFatal == nil {
		log := o.Logger
		f.onFatal = func(err error) {
			log.Error("store failed, exiting", "err", err) // err names the store
			os.Exit(1)
		}
	}
	return f
}

// fail reports a failure the store cannot go on from, as query (what
// failed: "WRITE WAL 000004.log"), and ends the process. A second failure,
// from another goroutine, waits for the first to end it.
func (f *fatal) fail(query string, cause error) {
	f.mu.Lock() // never unlocked
	f.onFatal(&Error{Path: f.path, Query: query, Err: fmt.Errorf("%w: %w", ErrFailed, oneLine{cause}), kind: ErrQuery})
	os.Exit(1) // OnFatal returned, which it must not: the store cannot go on
}

// oneLine is an error whose message is the first line of its cause's:
// Pebble's fatal messages may carry a stack or a listing.
type oneLine struct{ cause error }

func (e oneLine) Error() string {
	msg, _, _ := strings.Cut(e.cause.Error(), "\n")
	return msg
}

func (e oneLine) Unwrap() error { return e.cause }

// critical reports whether Pebble cannot go on from a failed write of
// the file base names: its WAL (NNNNNN.log), its manifest, and the marker
// files that name the current manifest and format. Others (tables,
// blobs, OPTIONS, the bulk load's files) are Pebble's or kv's to handle.
func critical(base string) bool {
	return strings.HasSuffix(base, ".log") || strings.HasPrefix(base, "MANIFEST-") ||
		strings.HasPrefix(base, "marker.") || base == "CURRENT"
}

// fatalFS is the store's file system as Pebble sees it: a failed
// creation, write, sync or close of a critical file (its WAL, manifest
// and markers) or a failed sync of a directory (which makes the names of
// new files durable) goes to the store's fatal instead of back to Pebble.
// kv itself uses the store's file system directly.
type fatalFS struct {
	vfs.FS
	f *fatal
}

func (fs fatalFS) wrap(op, name string, file vfs.File, err error) (vfs.File, error) {
	base := fs.FS.PathBase(name)
	if !critical(base) {
		return file, err
	}
	if strings.HasSuffix(base, ".log") {
		base = "WAL " + base // a name the reader of the error knows
	}
	if err != nil {
		fs.f.check(op+" "+base, err)
		return nil, err
	}
	return &fatalFile{File: file, f: fs.f, name: base}, nil
}

func (fs fatalFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	file, err := fs.FS.Create(name, c)
	return fs.wrap("CREATE", name, file, err)
}

func (fs fatalFS) ReuseForWrite(oldname, newname string, c vfs.DiskWriteCategory) (vfs.File, error) {
	file, err := fs.FS.ReuseForWrite(oldname, newname, c)
	return fs.wrap("CREATE", newname, file, err)
}

func (fs fatalFS) OpenReadWrite(name string, c vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	file, err := fs.FS.OpenReadWrite(name, c, opts...)
	return fs.wrap("OPEN", name, file, err)
}

func (fs fatalFS) OpenDir(name string) (vfs.File, error) {
	file, err := fs.FS.OpenDir(name)
	if err != nil {
		return nil, err
	}
	return &fatalFile{File: file, f: fs.f, name: "DIR " + name, dir: true}, nil
}

func (fs fatalFS) Unwrap() vfs.FS { return fs.FS }

// check hands err, the failure of query, to fail unless the store is
// closing.
func (f *fatal) check(query string, err error) {
	if err != nil && !f.closing.Load() {
		f.fail(query, err)
	}
}

// fatalFile is a critical file, or a directory (only its Sync is
// critical).
type fatalFile struct {
	vfs.File
	f    *fatal
	name string
	dir  bool
}

func (w *fatalFile) Write(p []byte) (int, error) {
	n, err := w.File.Write(p)
	w.f.check("WRITE "+w.name, err)
	return n, err
}

func (w *fatalFile) WriteAt(p []byte, off int64) (int, error) {
	n, err := w.File.WriteAt(p, off)
	w.f.check("WRITE "+w.name, err)
	return n, err
}

func (w *fatalFile) Preallocate(off, n int64) error {
	err := w.File.Preallocate(off, n)
	w.f.check("PREALLOCATE "+w.name, err)
	return err
}

func (w *fatalFile) Sync() error {
	err := w.File.Sync()
	w.f.check("SYNC "+w.name, err)
	return err
}

func (w *fatalFile) SyncData() error {
	err := w.File.SyncData()
	w.f.check("SYNC "+w.name, err)
	return err
}

func (w *fatalFile) SyncTo(length int64) (bool, error) {
	full, err := w.File.SyncTo(length)
	w.f.check("SYNC "+w.name, err)
	return full, err
}

func (w *fatalFile) Close() error {
	err := w.File.Close()
	if !w.dir {
		w.f.check("CLOSE "+w.name, err)
	}
	return err
}

// flushEnd fails the store when a memtable flush fails (see above); an
// empty flush is no failure, and one that fails while the store closes is
// not retried (its data stays in the WAL).
func (f *fatal) flushEnd(info pebble.FlushInfo) {
	if info.Err != nil && info.Err.Error() != "pebble: empty table" {
		f.check("FLUSH", fmt.Errorf("flushing the memtable: %w", info.Err))
	}
}

// pebbleLogger routes Pebble's messages to slog instead of stderr, and
// its fatal errors to the store's fatal.
type pebbleLogger struct {
	l *slog.Logger
	f *fatal
}

func (p pebbleLogger) Infof(format string, args ...any) { p.l.Debug(fmt.Sprintf(format, args...)) }

func (p pebbleLogger) Errorf(format string, args ...any) { p.l.Error(fmt.Sprintf(format, args...)) }

// Fatalf is how Pebble reports what it cannot go on from (a manifest
// write kv did not see fail, a broken invariant). It must not return, and
// does not.
func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	cause := errors.New(msg)
	for _, a := range args {
		if err, ok := a.(error); ok { // keep the cause reachable: errors.Is(err, syscall.ENOSPC)
			cause = fatalError{msg: msg, cause: err}
			break
		}
	}
	p.f.fail("PEBBLE", cause)
}

// fatalError is a Fatalf message with the error among its arguments.
type fatalError struct {
	msg   string
	cause error
}

func (e fatalError) Error() string { return e.msg }
func (e fatalError) Unwrap() error { return e.cause }
