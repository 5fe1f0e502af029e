package kv

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Options configures Open. A nil *Options means every default below.
type Options struct {
	// FS is the file system the store lives on.
	// Default: the operating system's (vfs.Default). Tests pass vfs.NewMem().
	FS vfs.FS

	// Logger receives Pebble's own messages (info at Debug level, errors at
	// Error level) so that nothing is printed to stderr behind the
	// program's back. Default: slog.Default().
	Logger *slog.Logger

	// CacheSize is the size of Pebble's block cache in bytes.
	// Default: 32 MiB.
	CacheSize int64

	// MemTableSize is the size of one Pebble memtable in bytes.
	// Default: 8 MiB.
	MemTableSize uint64

	// Sync makes every write wait until it is durable on disk. Default:
	// false, as in LevelDB: a write is atomic and ordered, and after a
	// crash the store holds a consistent prefix of the writes; the most
	// recent ones may be lost. mirrord's data can always be re-derived from
	// its log, so it takes the speed (see the README).
	Sync bool
}

func (o *Options) withDefaults() Options {
	var c Options
	if o != nil {
		c = *o
	}
	if c.FS == nil {
		c.FS = vfs.Default
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.CacheSize <= 0 {
		c.CacheSize = 32 << 20
	}
	if c.MemTableSize == 0 {
		c.MemTableSize = 8 << 20
	}
	return c
}

// DB is an open store. Its methods are safe for concurrent use.
type DB struct {
	path  string
	opts  Options
	pdb   *pebble.DB
	popts *pebble.Options // with Pebble's defaults filled in
	wo    *pebble.WriteOptions

	tmpSeq atomic.Uint64 // names of the sstables to ingest

	lock *pebble.Lock // the directory's lock, taken before Pebble opens
	fail *failure     // set once Pebble has failed a write: see failure
	wmu  sync.Mutex   // one write into Pebble at a time: see writing

	// The gate: every operation enters while the store is open and leaves
	// when done; Close waits for the operations in flight, so Pebble is
	// never used after (or while) it closes. A plain RWMutex would deadlock
	// when a Scan callback reads again while Close waits.
	mu     sync.Mutex
	idle   *sync.Cond
	closed bool
	active int
	snaps  map[*Snapshot]struct{}
}

// Open opens the store in directory path, creating the directory (and its
// parents) and an empty store when needed.
//
// It fails with ErrInitialization when the directory cannot be created, is
// locked by another process or another handle of this process (ErrLocked),
// holds other files but no store (ErrNotStore), or holds a store Pebble
// cannot read.
func Open(path string, opts *Options) (*DB, error) {
	o := opts.withDefaults()
	if path == "" {
		return nil, initError(path, errors.New("no store path given"))
	}
	if err := o.FS.MkdirAll(path, 0o755); err != nil {
		return nil, initError(path, err)
	}
	names, err := o.FS.List(path)
	if err != nil {
		return nil, initError(path, err)
	}
	if len(names) > 0 && !looksLikeStore(names) {
		return nil, initError(path, ErrNotStore)
	}
	// The lock first, then anything that changes the directory: a second
	// Open (a "mirrord sync" while the daemon loads) must not remove the
	// temporary files of the load in progress. Taking the lock here also
	// tells a lock held elsewhere from a directory that cannot be written.
	lock, err := pebble.LockDirectory(path, o.FS)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) { // creating the LOCK file failed: not a lock conflict
			return nil, initError(path, fmt.Errorf("cannot create the store's lock file: %w", err))
		}
		return nil, initError(path, fmt.Errorf("%w: %v", ErrLocked, err))
	}
	// Temporary files of a bulk load a crash interrupted.
	_ = o.FS.RemoveAll(o.FS.PathJoin(path, tempDirName))
	cache := pebble.NewCache(o.CacheSize)
	defer cache.Unref()
	fail := &failure{ch: make(chan struct{})}
	plog := pebbleLogger{l: o.Logger.With("component", "pebble"), fail: fail}
	popts := &pebble.Options{
		FS:     o.FS,
		Lock:   lock,
		Logger: plog,
		// Pebble's default reaction to on-disk corruption is Logger.Fatalf,
		// which would crash mirrord (with a long stack trace) from whatever
		// goroutine met it, even a background one collecting table
		// statistics. The read that met it fails with a corruption error
		// anyway (ErrCorrupt), which the caller reports; here it is only
		// logged.
		EventListener: &pebble.EventListener{
			DataCorruption: func(info pebble.DataCorruptionInfo) {
				msg, _, _ := strings.Cut(info.Details.Error(), "\n")
				plog.l.Error("store corrupt", "path", info.Path, "details", msg)
			},
		},
		Cache:              cache,
		MemTableSize:       o.MemTableSize,
		FormatMajorVersion: pebble.FormatNewest,
	}
	// A flush that fails (a full disk) is retried by Pebble at once and
	// without end: a hot loop that floods the log, stalls writes once the
	// memtables fill, and keeps Open (which flushes the replayed WAL) from
	// ever returning. The first failed flush fails the store instead (see
	// failure): Open returns the error, and a running daemon exits to be
	// restarted, which retries the flush after a pause.
	popts.EventListener.FlushEnd = func(info pebble.FlushInfo) {
		if info.Err != nil && info.Err.Error() != "pebble: empty table" { // an empty flush is not a failure
			fail.set(fmt.Errorf("flushing the store's memtable: %w", info.Err))
		}
	}
	// MinLZ, Pebble's fastest block compression on amd64: JSON compresses
	// well, and the disk is written less.
	popts.ApplyCompressionSettings(func() pebble.DBCompressionSettings { return pebble.DBCompressionFastest })
	popts.Experimental.CompactionScheduler = newScheduler()
	popts.EnsureDefaults()
	pdb, err := openPebble(path, popts, fail, lock)
	if fail.get() != nil {
		return nil, initError(path, fail.get())
	}
	if err != nil {
		_ = lock.Close()
		if errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EROFS) {
			return nil, initError(path, fmt.Errorf("cannot open the store: %w", err))
		}
		// Anything else means the files are not what Pebble wrote: a
		// malformed manifest, a table truncated or missing. Pebble tags
		// only some of these as corruption; they all are.
		return nil, initError(path, corruptError{err})
	}
	db := &DB{
		path:  path,
		opts:  o,
		pdb:   pdb,
		popts: popts,
		wo:    &pebble.WriteOptions{Sync: o.Sync},
		lock:  lock,
		fail:  fail,
		snaps: map[*Snapshot]struct{}{},
	}
	db.idle = sync.NewCond(&db.mu)
	return db, nil
}

// openPebble is pebble.Open, except that a write failure while opening (a
// full disk, an I/O error) is an error instead of a panic (a failed
// manifest write) or an endless wait (a failed flush of the replayed WAL,
// which Pebble retries forever). The abandoned open is left to finish in
// the background, keeping the directory locked until it has; what it
// opened is then closed.
func openPebble(path string, popts *pebble.Options, fail *failure, lock *pebble.Lock) (*pebble.DB, error) {
	type result struct {
		db  *pebble.DB
		err error
	}
	done := make(chan result, 1)
	go func() {
		var r result
		defer func() {
			if p := recover(); p != nil {
				r.err = fail.set(panicCause(p))
			}
			done <- r
		}()
		r.db, r.err = pebble.Open(path, popts)
	}()
	var r result
	select {
	case r = <-done:
		if fail.get() == nil {
			return r.db, r.err
		}
	case <-fail.ch:
	}
	go func() {
		if r.db == nil && r.err == nil {
			r = <-done
		}
		if r.db != nil {
			_ = r.db.Close()
		}
		_ = lock.Close()
	}()
	return nil, fail.get()
}

// looksLikeStore reports whether a directory listing contains Pebble's
// files, so that Open never creates a store among unrelated files.
func looksLikeStore(names []string) bool {
	for _, n := range names {
		if n == "LOCK" || n == "CURRENT" || n == tempDirName || strings.HasPrefix(n, "MANIFEST-") ||
			strings.HasPrefix(n, "OPTIONS-") || strings.HasPrefix(n, "marker.") {
			return true
		}
	}
	return false
}

// Path returns the store directory.
func (db *DB) Path() string { return db.path }

// enter admits an operation while the store is open.
func (db *DB) enter() bool {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.closed || db.fail.get() != nil {
		return false
	}
	db.active++
	return true
}

func (db *DB) leave() {
	db.mu.Lock()
	db.active--
	if db.active == 0 && db.closed {
		db.idle.Broadcast()
	}
	db.mu.Unlock()
}

// closedError is the error of a call made after Close, or after the store
// failed (then the failure, which says more).
func (db *DB) closedError(query string) error {
	if err := db.fail.get(); err != nil {
		return queryError(db.path, query, err)
	}
	return queryError(db.path, query, ErrClosed)
}

// write runs fn, a write into Pebble, as query: once the store is open
// and has not failed, alone (see writing), and with a panic Pebble raises
// in it (see failure) turned into the store's failure. An error fn
// returns comes back as the query's error. A panic leaves whatever fn was
// committing (a batch) with Pebble's failed commit pipeline: fn releases
// it only on its normal path.
func (db *DB) write(query string, fn func() error) (err error) {
	if !db.enter() {
		return db.closedError(query)
	}
	defer db.leave()
	release, err := db.writing(query)
	if err != nil {
		return err
	}
	defer release() // after the recover below records the failure
	defer func() {
		if r := recover(); r != nil {
			err = db.fatal(query, r)
		}
	}()
	if err := fn(); err != nil {
		return queryError(db.path, query, err)
	}
	return nil
}

// writing admits one write into Pebble at a time, and none once the store
// has failed (write calls it; the release runs after the recover that
// records a failure). A write that fails leaves Pebble's commit pipeline
// locked (see failure): a second write already waiting inside Pebble
// would wait for it forever (two generators committing side
// by side did, about once in ten test runs). Waiting here instead, the
// second write sees the failure. Pebble serialises commits itself; this
// costs nothing measurable.
func (db *DB) writing(query string) (release func(), err error) {
	db.wmu.Lock()
	if ferr := db.fail.get(); ferr != nil {
		db.wmu.Unlock()
		return nil, queryError(db.path, query, ferr)
	}
	return db.wmu.Unlock, nil
}

// failure is the first fatal write failure of a store. Pebble treats a
// failed write or sync of its write-ahead log or manifest as fatal: it
// panics (or calls Logger.Fatalf) in the middle of the commit, with its
// commit pipeline locked, so that the handle can neither be used nor even
// closed afterwards (Close would wait for that lock forever). The call
// that meets such a panic returns it as an error matching ErrFailed and
// the cause (syscall.ENOSPC, ...); every later call returns the same error
// at once, and Close returns without touching Pebble. What was written
// before is intact: the files hold a consistent prefix of the batches, so
// reopening the store (the daemon exits non-zero for its service manager
// to restart it) resumes from its last durable checkpoint.
type failure struct {
	mu  sync.Mutex // serialises set
	err atomic.Pointer[error]
	ch  chan struct{} // closed when err is set
}

func (f *failure) set(cause error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if e := f.err.Load(); e != nil {
		return *e
	}
	err := fmt.Errorf("%w: %w", ErrFailed, cause)
	f.err.Store(&err)
	close(f.ch)
	return err
}

// get is on the path of every call (DB.enter): a load, no lock.
func (f *failure) get() error {
	if e := f.err.Load(); e != nil {
		return *e
	}
	return nil
}

// fatalError is what Fatalf panics with: Pebble's message, and the error
// among its arguments (so that errors.Is finds syscall.ENOSPC in it).
type fatalError struct {
	msg   string
	cause error
}

func (e fatalError) Error() string { return e.msg }
func (e fatalError) Unwrap() error { return e.cause }

// panicCause turns what Pebble panicked with into an error.
func panicCause(r any) error {
	if err, ok := r.(error); ok {
		return err
	}
	return fmt.Errorf("pebble: %v", r)
}

// fatal records a panic that Pebble raised during query as the store's
// failure, and returns the query's error. The caller has recovered it.
func (db *DB) fatal(query string, r any) error {
	cause := panicCause(r)
	db.opts.Logger.Error("the store failed a write; nothing more is written until it is reopened",
		"path", db.path, "query", query, "err", cause)
	ferr := db.fail.set(cause)
	db.mu.Lock()
	db.idle.Broadcast() // a Close waiting for operations in flight stops waiting
	db.mu.Unlock()
	return queryError(db.path, query, ferr)
}

// Failed returns a channel that is closed once the store has failed (see
// Failure); a daemon selects on it to stop instead of retrying a store
// that cannot write any more.
func (db *DB) Failed() <-chan struct{} { return db.fail.ch }

// Failure returns the store's fatal write failure (matching ErrFailed), or
// nil while it works.
func (db *DB) Failure() error { return db.fail.get() }

// Close closes the store. It waits for operations in flight, closes any
// snapshot still open, and is safe to call more than once: later calls
// return nil. It must not be called from inside a Scan callback.
func (db *DB) Close() error {
	db.mu.Lock()
	if db.closed {
		db.mu.Unlock()
		return nil
	}
	db.closed = true
	for db.active > 0 && db.fail.get() == nil {
		db.idle.Wait()
	}
	snaps := db.snaps
	db.snaps = nil
	db.mu.Unlock()
	if ferr := db.fail.get(); ferr != nil {
		// Pebble's Close would block forever on the commit pipeline the
		// failed write left locked. The handle is abandoned, with its lock
		// held (its goroutines may still touch the directory) until the
		// process exits.
		return queryError(db.path, "CLOSE", ferr)
	}

	var errs []error
	for s := range snaps {
		if err := s.snap.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := db.pdb.Close(); err != nil {
		errs = append(errs, err)
	}
	if err := db.lock.Close(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return queryError(db.path, "CLOSE", err)
	}
	return nil
}

// Put stores value, encoded as JSON, under key.
func (db *DB) Put(key string, value any) error {
	if err := checkKey(key); err != nil {
		return queryError(db.path, "PUT "+key, err)
	}
	b, err := json.Marshal(value)
	if err != nil {
		return queryError(db.path, "PUT "+key, fmt.Errorf("encoding value: %w", err))
	}
	return db.write("PUT "+key, func() error { return db.pdb.Set([]byte(key), b, db.wo) })
}

// Get decodes the value stored under key into dst (as json.Unmarshal does;
// a *json.RawMessage receives a copy of the stored bytes, and a nil dst
// only checks that the key exists). A missing key is found == false with a
// nil error.
func (db *DB) Get(key string, dst any) (found bool, err error) {
	if !db.enter() {
		return false, db.closedError("GET " + key)
	}
	defer db.leave()
	return get(db.pdb, db.path, key, dst)
}

// Del deletes key. Deleting a missing key is not an error.
func (db *DB) Del(key string) error {
	if err := checkKey(key); err != nil {
		return queryError(db.path, "DEL "+key, err)
	}
	return db.write("DEL "+key, func() error { return db.pdb.Delete([]byte(key), db.wo) })
}

// Keys returns every key that starts with prefix, sorted; "" means every
// key.
func (db *DB) Keys(prefix string) ([]string, error) {
	if !db.enter() {
		return nil, db.closedError("KEYS " + prefix + "*")
	}
	defer db.leave()
	return keys(db.pdb, db.path, prefix)
}

// GetAll returns the values of every key that starts with prefix, in key
// order.
func (db *DB) GetAll(prefix string) ([]json.RawMessage, error) {
	if !db.enter() {
		return nil, db.closedError("GETALL " + prefix + "*")
	}
	defer db.leave()
	return getAll(db.pdb, db.path, prefix)
}

// Scan calls fn for every key that starts with prefix, in key order,
// without loading the range into memory. value is only valid until fn
// returns: copy it to keep it. If fn returns an error, Scan stops and
// returns that error unchanged.
func (db *DB) Scan(prefix string, fn func(key string, value json.RawMessage) error) error {
	return db.ScanFrom(prefix, "", fn)
}

// ScanFrom is Scan starting at the first key >= start (a key from an
// earlier page, for example); keys before start are skipped.
func (db *DB) ScanFrom(prefix, start string, fn func(key string, value json.RawMessage) error) error {
	if !db.enter() {
		return db.closedError("SCAN " + prefix + "*")
	}
	defer db.leave()
	return scan(db.pdb, db.path, prefix, start, fn)
}

// Batch applies ops atomically: all of them or none. If any op cannot be
// encoded or has an empty key, nothing is applied.
func (db *DB) Batch(ops []Op) error {
	query := fmt.Sprintf("BATCH %d ops", len(ops))
	for i, op := range ops {
		if err := checkKey(op.key); err != nil {
			return queryError(db.path, query, fmt.Errorf("op %d: %w", i, err))
		}
		if op.err != nil {
			return queryError(db.path, query, fmt.Errorf("op %d (PUT %s): encoding value: %w", i, op.key, op.err))
		}
	}
	return db.write(query, func() error {
		b := db.pdb.NewBatch()
		for _, op := range ops {
			var err error
			if op.del {
				err = b.Delete([]byte(op.key), nil)
			} else {
				err = b.Set([]byte(op.key), op.value, nil)
			}
			if err != nil {
				_ = b.Close()
				return err
			}
		}
		err := b.Commit(db.wo)
		_ = b.Close() // not reached after a panic: see write
		return err
	})
}

// Op is one operation of a Batch; build it with PutOp or DelOp.
type Op struct {
	key   string
	value []byte
	del   bool
	err   error
}

// PutOp returns an operation that stores value, encoded as JSON, under key.
// An encoding failure is reported by Batch, which then applies nothing.
func PutOp(key string, value any) Op {
	b, err := json.Marshal(value)
	return Op{key: key, value: b, err: err}
}

// DelOp returns an operation that deletes key.
func DelOp(key string) Op { return Op{key: key, del: true} }

// Key returns the key the operation writes.
func (o Op) Key() string { return o.key }

// IsDelete reports whether the operation deletes its key.
func (o Op) IsDelete() bool { return o.del }

func checkKey(key string) error {
	if key == "" {
		return errors.New("empty key")
	}
	return nil
}

// pebbleLogger routes Pebble's messages to slog instead of stderr.
type pebbleLogger struct {
	l    *slog.Logger
	fail *failure
}

func (p pebbleLogger) Infof(format string, args ...any) { p.l.Debug(fmt.Sprintf(format, args...)) }

func (p pebbleLogger) Errorf(format string, args ...any) { p.l.Error(fmt.Sprintf(format, args...)) }

// Fatalf is how Pebble reports a failure it cannot go on from, above all
// a failed write or sync of its WAL or manifest. It must not return. The
// store is marked failed; then, inside a kv call, Fatalf panics and the
// call recovers the panic as its error (see failure). In one of Pebble's
// own goroutines (a flush that cannot record its result in the manifest
// of a full disk) a panic would end the process with a stack trace, so
// that goroutine stops here for good instead: kv never calls into the
// failed store again, and DB.Failed tells the daemon to exit.
func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.l.Error(msg)
	cause := fatalError{msg: msg}
	for _, a := range args {
		if err, ok := a.(error); ok {
			cause.cause = err
			break
		}
	}
	if p.fail != nil {
		p.fail.set(cause)
		if !inKVCall() {
			select {} // see above
		}
	}
	panic(cause)
}

// kvPrefix is this package's prefix in function names.
var kvPrefix = func() string {
	name := runtime.FuncForPC(reflect.ValueOf(Open).Pointer()).Name()
	return name[:strings.LastIndex(name, ".")+1]
}()

// inKVCall reports whether Fatalf's caller runs inside a call of this
// package (which recovers the panic), not in a goroutine of Pebble's own.
func inKVCall() bool {
	pcs := make([]uintptr, 256)
	frames := runtime.CallersFrames(pcs[:runtime.Callers(3, pcs)])
	for {
		f, more := frames.Next()
		if strings.HasPrefix(f.Function, kvPrefix) {
			return true
		}
		if !more {
			return false
		}
	}
}

// DeleteRange deletes every key in [start, end) with one range tombstone
// (the change feed's pruning: many keys, one write).
func (db *DB) DeleteRange(start, end []byte) error {
	query := fmt.Sprintf("DELRANGE %s..%s", start, end)
	if len(start) == 0 || string(end) <= string(start) {
		return queryError(db.path, query, errors.New("empty range"))
	}
	return db.write(query, func() error { return db.pdb.DeleteRange(start, end, db.wo) })
}
