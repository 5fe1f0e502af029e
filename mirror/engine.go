package mirror

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/mirrord/mirrord/eventlog"
	"github.com/mirrord/mirrord/internal/ctxtime"
	"github.com/mirrord/mirrord/internal/gitlog"
	"github.com/mirrord/mirrord/kv"
	"github.com/mirrord/mirrord/schema"
)

// Options configures an Engine. A nil *Options is invalid: EventLog is
// required; every other field has the default its comment states.
type Options struct {
	// EventLog is the path of the log to mirror. Required.
	EventLog string

	// GitRef, when set, mirrors the log as committed at this ref (a
	// branch, "master", or a full name, "refs/heads/master", or "HEAD")
	// of the git repository that holds EventLog (found as git finds it:
	// a .git directory, the .git file of a linked worktree, or a bare
	// repository), not the work tree's file (see the package doc's "Git
	// mode"). It needs the git program. Default: "", the file itself.
	GitRef string

	// TempDir is where git mode keeps its copy of the blob it reads.
	// Default: SpoolDir of the store.
	TempDir string

	// Settle is how long a log must stay unchanged (identity, size, mtime)
	// before a full reconcile reads it: a rewrite caught half written, or
	// git's file briefly missing, must not delete anything.
	// Default: 300ms.
	Settle time.Duration

	// Debounce is the shortest time between two applies while following:
	// a burst of writes becomes one apply. The first change after a quiet
	// spell applies at once. Default: 5ms.
	Debounce time.Duration

	// SafetyCheck is the period of the low-frequency check that catches
	// what inotify can miss (one stat and a fingerprint compare). Negative
	// turns it off. Default: 30s.
	SafetyCheck time.Duration

	// MaxValueSize bounds one value of the log; a larger one is an invalid
	// entry. Default: 16 MiB.
	MaxValueSize int

	// ChunkBytes bounds the event data of one applied batch, so that a
	// large catch-up never builds one huge batch. Default: 4 MiB.
	ChunkBytes int

	// Logger receives the engine's messages. Default: slog.Default().
	Logger *slog.Logger

	// OnApply, when set, is called after every committed batch, from the
	// goroutine that applied it. It must not block for long.
	OnApply func(Applied)

	// OnProgress, when set, is called while a long read of the log (a
	// first load, a resync, a reconcile, a large tail) makes progress,
	// about every 4 MiB, and once when it ends.
	OnProgress func(Progress)

	// Heartbeat and OnHeartbeat: while Run follows the log, OnHeartbeat is
	// called every Heartbeat from the follow loop itself, and on progress
	// within a long step; a loop that is stuck calls it no more (systemd's
	// watchdog relies on that). Default: no heartbeat.
	Heartbeat   time.Duration
	OnHeartbeat func()

	// BulkMemory, when set, is called as a bulk load (a first load or a
	// resync) starts, and the function it returns as the load ends: the
	// place for process-wide memory settings, which a library must not
	// make itself (the collector's target while the load's buffers are
	// most of the heap; returning them to the system once it is done).
	// Default: none.
	BulkMemory func() (done func())

	// LoadFeed, when set, is called as a bulk load starts, before it
	// reads the log, for a feed of the events it stores (see LoadFeed):
	// what the generators rebuild from beside the load, instead of
	// reading the store again after it. It may return nil; a feed the
	// load does not get as far as starting (the log changed under it, a
	// read failed) is dropped unstarted. Default: none.
	LoadFeed func() LoadFeed

	// Now is the clock. Default: time.Now.
	Now func() time.Time

	// Resync tells Open that the caller rebuilds the store (Resync) before
	// anything else. A store written by a newer mirrord, or holding data
	// without a schema, is then accepted, because the rebuild replaces it:
	// --resync is the way out those errors name. Until the rebuild starts,
	// Sync still refuses such a store.
	Resync bool
}

func (o *Options) withDefaults() (Options, error) {
	if o == nil || o.EventLog == "" {
		return Options{}, errors.New("mirror: Options.EventLog is required")
	}
	c := *o
	if c.GitRef != "" {
		if _, err := gitlog.RefName(c.GitRef); err != nil {
			return Options{}, fmt.Errorf("mirror: Options.GitRef: %w", err)
		}
	}
	if c.Settle <= 0 {
		c.Settle = 300 * time.Millisecond
	}
	if c.Debounce <= 0 {
		c.Debounce = 5 * time.Millisecond
	}
	if c.SafetyCheck == 0 {
		c.SafetyCheck = 30 * time.Second
	}
	if c.MaxValueSize <= 0 {
		c.MaxValueSize = eventlog.DefaultMaxValueSize
	}
	if c.ChunkBytes <= 0 {
		c.ChunkBytes = 4 << 20
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c, nil
}

// Applied describes one committed batch.
type Applied struct {
	// Kind is "tail", "reconcile" or "bulk".
	Kind string `json:"kind"`
	// Seq is the change-feed sequence number of the batch (0 when the
	// batch recorded no change).
	Seq uint64 `json:"seq"`
	// Changed is the number of events put or deleted.
	Changed int `json:"changed"`
	// Puts and Deletes count the keys the batch wrote.
	Puts    int `json:"puts"`
	Deletes int `json:"deletes"`
	// Offset is the checkpoint after the batch; Size the log's size.
	Offset int64 `json:"offset"`
	Size   int64 `json:"log_size"`
	// Events and Modifiers are the store's counts after the batch.
	Events    int64 `json:"events"`
	Modifiers int64 `json:"modifiers"`
	// Invalid counts the invalid entries met by this batch.
	Invalid int `json:"invalid"`
	// Duration is how long the batch took to build and commit; in JSON,
	// duration_seconds.
	Duration time.Duration `json:"-"`
}

// appliedJSON is Applied as JSON: the duration in seconds, as every
// duration the API reports.
type appliedJSON struct {
	applied
	DurationSeconds float64 `json:"duration_seconds"`
}

type applied Applied // Applied without its methods

// MarshalJSON writes the duration as duration_seconds.
func (a Applied) MarshalJSON() ([]byte, error) {
	return json.Marshal(appliedJSON{applied(a), a.Duration.Seconds()})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (a *Applied) UnmarshalJSON(b []byte) error {
	var j appliedJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*a = Applied(j.applied)
	a.Duration = time.Duration(j.DurationSeconds * float64(time.Second))
	return nil
}

// Progress describes a long read of the log.
type Progress struct {
	// Kind is "load" (a first load or resync), "reconcile" or "tail".
	Kind string
	// Done and Total are bytes of the log.
	Done, Total int64
	// Events counts the events read so far.
	Events int64
	// Finished is set on the last report of the read.
	Finished bool
}

// Errors the engine returns, matched with errors.Is.
var (
	// ErrNewerStore: the store was written by a newer mirrord.
	ErrNewerStore = errors.New("store was written by a newer mirrord")
	// ErrForeignStore: the store holds data but no mirrord schema.
	ErrForeignStore = errors.New("store holds data that mirrord did not write")
	// ErrLogMissing: the log does not exist (sync --once reports it;
	// the daemon waits for it).
	ErrLogMissing = errors.New("event log does not exist")
	// ErrHeld: a reconcile would delete events but the log ends in an
	// incomplete value, so the deletions are held until it is complete.
	ErrHeld = errors.New("deletions held: the log ends in an incomplete value")
	// ErrNotRegular: the log's path names something other than a regular
	// file (a directory, a FIFO): a misconfiguration, which Run does not
	// wait out.
	ErrNotRegular = errors.New("event log is not a regular file")
	// ErrReftable: in git mode, the repository keeps its refs in a
	// reftable, which this mirrord cannot read; Run does not wait it out.
	ErrReftable = gitlog.ErrReftable
)

// Engine mirrors one log into one store. Its methods other than Status
// must be called from one goroutine at a time.
type Engine struct {
	db   *kv.DB
	opts Options
	path string
	log  *slog.Logger

	cp          *Checkpoint // nil: nothing mirrored yet
	bulk        bool        // a resync or first load is in progress
	reconciling bool        // a multi-batch reconcile is in progress

	// doubt asks the next decision to verify the whole consumed prefix,
	// not only its tail: set at start and after an overflow or a watcher
	// error.
	doubt bool
	// verified is the file's stat when its whole prefix was last checked;
	// the safety check verifies again once the file has changed since.
	verified fileStat

	// seen and seenAt: the log's stat as last observed, and when it was
	// first observed so, for settling when mtimes cannot be trusted.
	seen   fileStat
	seenAt time.Time

	// refused is why the store's schema was not accepted when Open let it
	// through for a rebuild (Options.Resync); Sync refuses to run until
	// Resync starts the rebuild.
	refused error

	// known is the log's stat when the store last caught up with it: a
	// later change that keeps its identity and size but moves its mtime
	// or ctime is an edit in place (see writtenInPlace).
	known fileStat

	absence absence  // the log is missing: since when, and whether that was told
	git     *gitMode // nil in file mode
	hinted  bool     // the work tree's staleness was looked at (file mode)
	held    *heldInfo
	pending *pendingScan // where the last tail stopped inside an incomplete value

	mu     sync.Mutex
	status Status

	retime chan Timings // live changes of the timings, for Run

	// testWatchErrors lets a test inject a watcher error (an inotify
	// overflow) into Run; nil otherwise.
	testWatchErrors chan error
}

// Timings are the engine's settings that can change while it runs.
type Timings struct {
	Settle, Debounce, SafetyCheck time.Duration
}

// SetTimings changes the settle, debounce and safety-check intervals of a
// running engine (zero keeps a value; a negative SafetyCheck turns the
// check off). It is safe to call from any goroutine; a running Run picks
// the change up at once.
func (e *Engine) SetTimings(t Timings) {
	select {
	case e.retime <- t:
	default:
		// Run is not listening (not running, or busy): replace any
		// pending change with this one.
		select {
		case <-e.retime:
		default:
		}
		select {
		case e.retime <- t:
		default:
		}
	}
}

func (e *Engine) applyTimings(t Timings) {
	if t.Settle > 0 {
		e.opts.Settle = t.Settle
	}
	if t.Debounce > 0 {
		e.opts.Debounce = t.Debounce
	}
	if t.SafetyCheck != 0 {
		e.opts.SafetyCheck = t.SafetyCheck
	}
}

func (e *Engine) alive() {
	if e.opts.OnHeartbeat != nil {
		e.opts.OnHeartbeat()
	}
}

// progress reports a long read, at most every 4 MiB.
type progress struct {
	e      *Engine
	kind   string
	total  int64
	events int64
	next   int64
}

const progressStep = 4 << 20

func (e *Engine) newProgress(kind string, from, total int64) *progress {
	return &progress{e: e, kind: kind, total: total, next: from + progressStep}
}

func (p *progress) event() { p.events++ }

func (p *progress) at(done int64) {
	if done < p.next {
		return
	}
	p.next = done + progressStep
	p.e.alive()
	if p.e.opts.OnProgress != nil {
		p.e.opts.OnProgress(Progress{Kind: p.kind, Done: done, Total: p.total, Events: p.events})
	}
}

func (p *progress) finish(done int64) {
	if p.e.opts.OnProgress != nil && p.total >= progressStep {
		p.e.opts.OnProgress(Progress{Kind: p.kind, Done: done, Total: p.total, Events: p.events, Finished: true})
	}
}

// Open prepares an engine on an open store: it checks the store's schema
// (writing it into an empty store) and loads the checkpoint.
func Open(db *kv.DB, opts *Options) (*Engine, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(o.EventLog)
	if err != nil {
		return nil, err
	}
	e := &Engine{db: db, opts: o, path: abs, log: o.Logger, doubt: true, retime: make(chan Timings, 1)}
	if o.GitRef != "" {
		e.git = &gitMode{ref: o.GitRef, dir: o.TempDir}
		if e.git.dir == "" {
			e.git.dir = SpoolDir(db)
		}
	}
	if err := e.checkSchema(); err != nil {
		if !o.Resync || !(errors.Is(err, ErrNewerStore) || errors.Is(err, ErrForeignStore)) {
			return nil, err
		}
		// The rebuild replaces the whole store, bookkeeping included; what
		// the newer (or foreign) checkpoint says is not read, as it may not
		// even decode.
		e.log.Warn("the store will be rebuilt from the log (--resync)", "reason", err)
		e.refused = err
		e.updateStatus(func(s *Status) {})
		return e, nil
	}
	if e.cp, err = loadCheckpoint(db); err != nil {
		return nil, err
	}
	if e.bulk, err = db.Get(schema.ResyncMarkerKey, nil); err != nil {
		return nil, err
	}
	if e.reconciling, err = db.Get(schema.ReconcileMarkerKey, nil); err != nil {
		return nil, err
	}
	e.updateStatus(func(s *Status) {})
	return e, nil
}

// checkSchema refuses a store written by a newer mirrord, or one holding
// data without a schema (not ours), and stamps an empty store.
func (e *Engine) checkSchema() error {
	var rec schemaRecord
	found, err := e.db.Get(schema.SchemaKey, &rec)
	if err != nil {
		return err
	}
	if found {
		if rec.Version > SchemaVersion {
			return fmt.Errorf("%w (schema %d; this mirrord reads schema %d): upgrade mirrord, or rebuild the store with --resync: %s",
				ErrNewerStore, rec.Version, SchemaVersion, e.db.Path())
		}
		return nil
	}
	var any bool
	err = e.db.ScanKeys(nil, func([]byte) error { any = true; return errStop })
	if err != nil && !errors.Is(err, errStop) {
		return err
	}
	if any {
		return fmt.Errorf("%w (no %s key): move %s aside, or rebuild it with --resync", ErrForeignStore, schema.SchemaKey, e.db.Path())
	}
	return e.db.Put(schema.SchemaKey, schemaRecord{Version: SchemaVersion})
}

var errStop = errors.New("stop")

// Path returns the absolute path of the log.
func (e *Engine) Path() string { return e.path }

// Log returns where the engine reads the log, for VerifyLog and
// ReadLogStatus. It is safe to call from any goroutine.
func (e *Engine) Log() Log {
	l := Log{Path: e.path}
	if e.git != nil {
		l.GitRef, l.TempDir = e.git.ref, e.git.dir
	}
	return l
}

// Checkpoint returns a copy of the current checkpoint (nil when nothing
// has been mirrored yet).
func (e *Engine) Checkpoint() *Checkpoint {
	if e.cp == nil {
		return nil
	}
	c := *e.cp
	return &c
}

// Sync brings the store up to date with the log as it stands once the log
// stops changing, then returns: the engine of "mirrord sync --once". It
// waits for a rewrite to settle, returns ErrLogMissing when the log does
// not exist (keeping the store), and ErrHeld when deletions must wait for
// the log to end in a complete value.
func (e *Engine) Sync(ctx context.Context) error {
	if err := e.checkRefused(); err != nil {
		return err
	}
	detach, err := e.attach()
	if err != nil {
		return err
	}
	defer detach()
	e.checkWorkTree(ctx)
	for {
		res, err := e.step(ctx)
		if err != nil {
			return err
		}
		switch res.action {
		case actMissing:
			if e.git != nil {
				return fmt.Errorf("%w: %s at %s: %s (the store is kept as it is)", ErrLogMissing, e.path, e.git.ref, e.Status().Missing)
			}
			return fmt.Errorf("%w: %s (the store is kept as it is)", ErrLogMissing, e.path)
		case actHeld:
			return fmt.Errorf("%w at offset %d (line %d) of %s; %d deletions wait until it is complete",
				ErrHeld, e.held.offset, e.held.line, e.path, e.held.deletes)
		case actSettle, actAgain:
			if err := ctxtime.Sleep(ctx, res.wait); err != nil {
				return err
			}
			continue
		}
		if res.caughtUp {
			return nil
		}
	}
}

// checkRefused returns the schema error Open let through for a rebuild
// until the rebuild has begun (Resync has set its marker: from then on the
// marker, not the schema, keeps an unfinished store from looking finished).
func (e *Engine) checkRefused() error {
	if e.refused != nil && !e.bulk {
		return e.refused
	}
	e.refused = nil
	return nil
}

// isNotExist reports whether err says a path does not exist, including
// because something on its way is not a directory (ENOTDIR): either way
// there is no log yet.
func isNotExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}
