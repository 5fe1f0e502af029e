package kv

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
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

	// OnFatal is called when the store meets a failure it cannot go on
	// from: a failed write, sync, creation or close of Pebble's
	// write-ahead log or manifest (a full disk, an I/O error), a failed
	// sync of the store's directory, a failed memtable flush, or an error
	// Pebble itself reports as fatal. Pebble would panic there, in the
	// middle of a commit or in a goroutine of its own, leaving a handle
	// that can neither be used nor closed; so the process ends instead.
	// err is a *Error naming the store, what failed and the cause, and
	// matches ErrFailed. OnFatal must not return (if it does, kv exits
	// with status 1 itself); it is called once, with Pebble's locks held.
	// The store's files hold a consistent prefix of the batches: reopening
	// it resumes from its last durable batch.
	// Default: log err in one line through Logger, then os.Exit(1).
	OnFatal func(err error)
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

	lock    *pebble.Lock // the directory's lock, taken before Pebble opens
	fatal   *fatal       // the way out of a failure Pebble cannot go on from
	release func()       // forgets the store in this process's registry

	// The gate: every operation enters while the store is open and leaves
	// when done; Close waits for the operations in flight, so Pebble is
	// never used after (or while) it closes. A plain RWMutex would deadlock
	// when a Scan callback reads again while Close waits. Entering and
	// leaving take no lock (one atomic add each, on the path of every
	// read): an operation counts itself in active, then checks closed;
	// Close sets closed, then waits for active to reach zero. One of the
	// two always sees the other.
	active atomic.Int64
	closed atomic.Bool
	mu     sync.Mutex // guards snaps and Close's wait
	idle   *sync.Cond // signalled when the last operation leaves a closed store
	snaps  map[*Snapshot]struct{}
}

// Open opens the store in directory path, creating the directory (and its
// parents) and an empty store when needed.
//
// It fails with ErrInitialization when the directory cannot be created, is
// locked by another process or is already open in this process, through
// whatever path (ErrLocked), holds other files but no store (ErrNotStore),
// or holds a store Pebble cannot read. A failure Pebble cannot go on from
// while it opens the store (a full disk while it writes its manifest or
// flushes its recovered WAL) is fatal: see Options.OnFatal.
func Open(path string, opts *Options) (*DB, error) {
	o := opts.withDefaults()
	if o.FS == vfs.Default {
		o.FS = privateFS{o.FS}
	}
	if path == "" {
		return nil, initError(path, errors.New("no store path given"))
	}
	if err := o.FS.MkdirAll(path, 0o755); err != nil {
		return nil, initError(path, err)
	}
	id, err := identify(o.FS, path)
	if err != nil {
		return nil, initError(path, err)
	}
	release, err := claim(id, path)
	if err != nil {
		return nil, initError(path, err)
	}
	db, err := open(path, o)
	if err != nil {
		release()
		return nil, err
	}
	db.release = release
	return db, nil
}

// open is Open once this process has claimed the store.
func open(path string, o Options) (*DB, error) {
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
	fatal := newFatal(path, &o)
	sched := newScheduler()
	popts := pebbleOptions(&o, lock, fatal, sched)
	defer popts.Cache.Unref()
	pdb, err := pebble.Open(path, popts)
	if err != nil {
		sched.Unregister() // Pebble's failed Open leaves it registered
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
		fatal: fatal,
		snaps: map[*Snapshot]struct{}{},
	}
	db.idle = sync.NewCond(&db.mu)
	return db, nil
}

// pebbleOptions are the options Pebble opens the store with; the caller
// releases their Cache once Pebble has opened (or failed to).
func pebbleOptions(o *Options, lock *pebble.Lock, fatal *fatal, sched *scheduler) *pebble.Options {
	plog := pebbleLogger{l: o.Logger.With("component", "pebble"), f: fatal}
	popts := &pebble.Options{
		FS:     fatalFS{FS: o.FS, f: fatal},
		Lock:   lock,
		Logger: plog,
		EventListener: &pebble.EventListener{
			// Pebble's default reaction to on-disk corruption is
			// Logger.Fatalf, from whatever goroutine met it, even a
			// background one collecting table statistics. The read that
			// met it fails with a corruption error anyway (ErrCorrupt),
			// which the caller reports; here it is only logged.
			DataCorruption: func(info pebble.DataCorruptionInfo) {
				msg, _, _ := strings.Cut(info.Details.Error(), "\n")
				plog.l.Error("store corrupt", "path", info.Path, "details", msg)
			},
			FlushEnd: fatal.flushEnd,
		},
		Cache:              pebble.NewCache(o.CacheSize),
		MemTableSize:       o.MemTableSize,
		FormatMajorVersion: pebble.FormatNewest,
	}
	// MinLZ, Pebble's fastest block compression on amd64: JSON compresses
	// well, and the disk is written less.
	popts.ApplyCompressionSettings(func() pebble.DBCompressionSettings { return pebble.DBCompressionFastest })
	popts.Experimental.CompactionScheduler = sched
	popts.EnsureDefaults()
	return popts
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
	db.active.Add(1)
	if db.closed.Load() {
		db.leave()
		return false
	}
	return true
}

func (db *DB) leave() {
	if db.active.Add(-1) == 0 && db.closed.Load() {
		db.mu.Lock() // Close holds it until it waits: no wakeup is lost
		db.idle.Broadcast()
		db.mu.Unlock()
	}
}

// closedError is the error of a call made after Close.
func (db *DB) closedError(query string) error {
	return queryError(db.path, query, ErrClosed)
}

// write runs fn, a write into Pebble, as query, once the store is open.
// An error fn returns comes back as the query's error.
func (db *DB) write(query string, fn func() error) error {
	if !db.enter() {
		return db.closedError(query)
	}
	defer db.leave()
	if err := fn(); err != nil {
		return queryError(db.path, query, err)
	}
	return nil
}

// Close closes the store. It waits for operations in flight, closes any
// snapshot still open, and is safe to call more than once: later calls
// return nil. It must not be called from inside a Scan callback.
func (db *DB) Close() error {
	db.mu.Lock()
	if db.closed.Load() {
		db.mu.Unlock()
		return nil
	}
	db.closed.Store(true)
	for db.active.Load() > 0 {
		db.idle.Wait()
	}
	snaps := db.snaps
	db.snaps = nil
	db.mu.Unlock()
	defer db.release()

	var errs []error
	for s := range snaps {
		if err := s.snap.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	db.fatal.closing.Store(true) // see fatal
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
		_ = b.Close()
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

// DeleteRange deletes every key in [start, end) with one range tombstone
// (the change feed's pruning: many keys, one write).
func (db *DB) DeleteRange(start, end []byte) error {
	query := fmt.Sprintf("DELRANGE %s..%s", start, end)
	if len(start) == 0 || string(end) <= string(start) {
		return queryError(db.path, query, errors.New("empty range"))
	}
	return db.write(query, func() error { return db.pdb.DeleteRange(start, end, db.wo) })
}
