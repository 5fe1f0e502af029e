package kv

import (
	"encoding/json"
	"errors"
	"fmt"
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

	tmpSeq atomic.Uint64 // names of temporary files (sorted runs, sstables to ingest)

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
	// Temporary files of a bulk load a crash interrupted.
	_ = o.FS.RemoveAll(o.FS.PathJoin(path, "bulk-tmp"))
	cache := pebble.NewCache(o.CacheSize)
	defer cache.Unref()
	popts := &pebble.Options{
		FS:                 o.FS,
		Logger:             pebbleLogger{o.Logger.With("component", "pebble")},
		Cache:              cache,
		MemTableSize:       o.MemTableSize,
		FormatMajorVersion: pebble.FormatNewest,
	}
	// MinLZ, Pebble's fastest block compression on amd64: JSON compresses
	// well, and the disk is written less.
	popts.ApplyCompressionSettings(func() pebble.DBCompressionSettings { return pebble.DBCompressionFastest })
	popts.EnsureDefaults()
	pdb, err := pebble.Open(path, popts)
	if err != nil {
		if isLockError(err) {
			return nil, initError(path, fmt.Errorf("%w: %v", ErrLocked, err))
		}
		return nil, initError(path, fmt.Errorf("cannot read the store (corrupt, or not a store): %w", err))
	}
	db := &DB{
		path:  path,
		opts:  o,
		pdb:   pdb,
		popts: popts,
		wo:    &pebble.WriteOptions{Sync: o.Sync},
		snaps: map[*Snapshot]struct{}{},
	}
	db.idle = sync.NewCond(&db.mu)
	return db, nil
}

// looksLikeStore reports whether a directory listing contains Pebble's
// files, so that Open never creates a store among unrelated files.
func looksLikeStore(names []string) bool {
	for _, n := range names {
		if n == "LOCK" || n == "CURRENT" || n == "bulk-tmp" || strings.HasPrefix(n, "MANIFEST-") ||
			strings.HasPrefix(n, "OPTIONS-") || strings.HasPrefix(n, "marker.") {
			return true
		}
	}
	return false
}

// isLockError recognises Pebble's lock failures: a bare EAGAIN or EACCES
// from fcntl for another process, and a plain message for another handle of
// this process.
func isLockError(err error) bool {
	return errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EACCES) ||
		strings.Contains(err.Error(), "lock held by current process")
}

// Path returns the store directory.
func (db *DB) Path() string { return db.path }

// enter admits an operation while the store is open.
func (db *DB) enter() bool {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.closed {
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

func (db *DB) closedError(query string) error { return queryError(db.path, query, ErrClosed) }

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
	for db.active > 0 {
		db.idle.Wait()
	}
	snaps := db.snaps
	db.snaps = nil
	db.mu.Unlock()

	var errs []error
	for s := range snaps {
		if err := s.snap.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := db.pdb.Close(); err != nil {
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
	if !db.enter() {
		return db.closedError("PUT " + key)
	}
	defer db.leave()
	if err := db.pdb.Set([]byte(key), b, db.wo); err != nil {
		return queryError(db.path, "PUT "+key, err)
	}
	return nil
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
	if !db.enter() {
		return db.closedError("DEL " + key)
	}
	defer db.leave()
	if err := db.pdb.Delete([]byte(key), db.wo); err != nil {
		return queryError(db.path, "DEL "+key, err)
	}
	return nil
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
	if !db.enter() {
		return db.closedError(query)
	}
	defer db.leave()
	b := db.pdb.NewBatch()
	defer b.Close()
	for _, op := range ops {
		var err error
		if op.del {
			err = b.Delete([]byte(op.key), nil)
		} else {
			err = b.Set([]byte(op.key), op.value, nil)
		}
		if err != nil {
			return queryError(db.path, query, err)
		}
	}
	if err := b.Commit(db.wo); err != nil {
		return queryError(db.path, query, err)
	}
	return nil
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
type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) { p.l.Debug(fmt.Sprintf(format, args...)) }

func (p pebbleLogger) Errorf(format string, args ...any) { p.l.Error(fmt.Sprintf(format, args...)) }

func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.l.Error(msg)
	panic("pebble: " + msg)
}
