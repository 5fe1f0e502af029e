package generators

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mirrord/mirrord/internal/ctxtime"
	"github.com/mirrord/mirrord/kv"
	"github.com/mirrord/mirrord/schema"
)

// Options configures a Runner. A nil *Options means every default below.
type Options struct {
	// Enabled names the generators to run. Default (nil): every
	// registered generator. An unknown name is an error.
	Enabled []string
	// Logger receives the runner's messages. Default: slog.Default().
	Logger *slog.Logger
	// MaxIDs bounds the changed events handed to one run; more are split
	// over several runs, each committed with its position. Default: 5000.
	MaxIDs int
	// RetryMin and RetryMax bound the exponential backoff after a failed
	// run. Defaults: 1s and 5m.
	RetryMin, RetryMax time.Duration
	// Now is the clock. Default: time.Now.
	Now func() time.Time
}

// position is a generator's bookkeeping, mirrord:generator:{name}.
type position struct {
	// Seq is the last change-feed entry the generator's values reflect.
	Seq uint64 `json:"seq"`
	// Rebuild asks for a recomputation from the whole mirror (a new
	// generator, a reset, or a rebuild that has not completed).
	Rebuild bool `json:"rebuild,omitempty"`
	// Version is the generator's Version (see Versioned) its values were
	// computed with; another asks for a rebuild.
	Version int       `json:"version,omitempty"`
	Updated time.Time `json:"updated"`
	// The last failure, kept so that "mirrord status" shows it even when
	// no daemon runs; cleared by the next success.
	LastError string    `json:"last_error,omitempty"`
	LastEvent string    `json:"last_error_event,omitempty"`
	Retries   int       `json:"retries,omitempty"`
	FailedAt  time.Time `json:"failed_at,omitzero"`
}

// Status reports one generator.
type Status struct {
	Name string `json:"name"`
	// Position is the last change-feed entry reflected; Lag counts the
	// entries after it.
	Position uint64 `json:"position"`
	Lag      int    `json:"lag"`
	// State is "idle", "running", "rebuilding", "failing" or "stopped".
	State     string `json:"state"`
	LastError string `json:"last_error,omitempty"`
	LastEvent string `json:"last_error_event,omitempty"`
	Retries   int    `json:"retries"`
	// Failures counts the failed runs since the runner started.
	Failures int `json:"failures"`
	// Written counts the keys its runs wrote (values, state, position;
	// deletions too) since the runner started.
	Written   int64     `json:"written"`
	LastRun   time.Time `json:"last_run,omitzero"`
	NextRetry time.Time `json:"next_retry,omitzero"`
}

// Runner runs the enabled generators over the change feed: each in its own
// goroutine, with its own position, so that a slow or failing generator
// delays neither the mirror nor the others.
type Runner struct {
	db   *kv.DB
	opts Options
	log  *slog.Logger
	gens []*genRunner

	sessMu sync.Mutex
	sess   *session       // the rebuild session being formed, if any
	scans  sync.WaitGroup // the sessions' scans
}

type genRunner struct {
	name    string
	gen     Generator
	version int // the generator's Version
	wake    chan struct{}
	r       *Runner

	// asked counts the resets asked for (Rebuild); done is the count the
	// last committed rebuild started from. A reset asked while a rebuild
	// runs leaves asked above done, so the next run rebuilds again,
	// whatever that run's commit wrote; and done moves only once the
	// rebuild is committed and its status says so, so RebuildPending is
	// never false while the status still says "rebuilding".
	asked, done atomic.Uint64

	mu     sync.Mutex
	status Status
}

// NewRunner prepares the enabled generators on the store. Positions of
// generators that are no longer enabled are dropped, with their values,
// so that they never hold the change feed back; enabling one again
// rebuilds it.
//
// A store has one Runner at a time, and nothing else writes under a
// generator's prefixes: a generator's runs read its own values as its
// last commit left them.
func NewRunner(db *kv.DB, opts *Options) (*Runner, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Enabled == nil {
		o.Enabled = Names()
	}
	if err := CheckNames(o.Enabled); err != nil {
		return nil, err
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.MaxIDs <= 0 {
		o.MaxIDs = 5000
	}
	if o.RetryMin <= 0 {
		o.RetryMin = time.Second
	}
	if o.RetryMax <= 0 {
		o.RetryMax = 5 * time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	r := &Runner{db: db, opts: o, log: o.Logger.With("component", "generators")}
	enabled := map[string]bool{}
	for _, name := range o.Enabled {
		if enabled[name] {
			continue
		}
		enabled[name] = true
		f, _ := lookup(name)
		gen := f()
		g := &genRunner{name: name, gen: gen, version: versionOf(gen), wake: make(chan struct{}, 1), r: r}
		g.status = Status{Name: name, State: "idle"}
		r.gens = append(r.gens, g)
	}
	if err := r.dropDisabled(enabled); err != nil {
		return nil, err
	}
	for _, g := range r.gens {
		p, err := r.position(g.name)
		if err != nil {
			return nil, err
		}
		g.status.Position = p.Seq
	}
	return r, nil
}

func (r *Runner) dropDisabled(enabled map[string]bool) error {
	var stale []string
	err := r.db.Scan(schema.PrefixGeneratorState, func(key string, _ json.RawMessage) error {
		name, err := schema.UnescapeSegment(key[len(schema.PrefixGeneratorState):])
		if err != nil {
			return err
		}
		if !enabled[name] {
			stale = append(stale, name)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, name := range stale {
		wb := r.db.NewWriteBatch()
		wb.Delete([]byte(schema.GeneratorStateKey(name)))
		wb.DeletePrefix(schema.GeneratorPrefix(name))
		wb.DeletePrefix(schema.StatePrefix(name))
		if err := wb.Commit(); err != nil {
			return err
		}
		r.log.Info("generator is no longer enabled: dropped its position and values (enabling it again rebuilds it)", "generator", name)
	}
	return nil
}

// position reads a generator's bookkeeping; a generator without any is due
// for a rebuild.
func (r *Runner) position(name string) (position, error) {
	var p position
	found, err := r.db.Get(schema.GeneratorStateKey(name), &p)
	if err != nil {
		return p, err
	}
	if !found {
		return position{Rebuild: true}, nil
	}
	return p, nil
}

// Notify wakes every generator to look at the change feed. It never
// blocks: the mirror engine calls it after each applied batch.
func (r *Runner) Notify() {
	for _, g := range r.gens {
		select {
		case g.wake <- struct{}{}:
		default:
		}
	}
}

// Run runs every enabled generator until ctx is done, then returns once
// all of them have stopped.
func (r *Runner) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, g := range r.gens {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g.loop(ctx)
		}()
	}
	wg.Wait()
	r.scans.Wait()
}

// CatchUp brings every enabled generator up to date with the change feed
// as it stands, then returns: the generators' part of "sync --once". Each
// generator gets attempts tries; the error names every generator that
// still failed (the others are up to date regardless). The generators run
// side by side, as in Run: they share nothing but the store, and one
// after the other a resync of 1M events rebuilt hashtags (11 s) and then
// summary (19 s) on one core while the other idled; side by side both
// take 27-29 s, at a peak RSS 30-40 MiB higher (226-234 MiB).
func (r *Runner) CatchUp(ctx context.Context, attempts int) error {
	errs := make([]error, len(r.gens))
	var wg sync.WaitGroup
	for i, g := range r.gens {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := g.catchUp(ctx, attempts); err != nil {
				errs[i] = fmt.Errorf("generator %s: %w", g.name, err)
			}
		}()
	}
	wg.Wait()
	r.scans.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := r.prune(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// catchUp is CatchUp for one generator.
func (g *genRunner) catchUp(ctx context.Context, attempts int) error {
	var err error
	for try := 0; try < max(1, attempts); try++ {
		if try > 0 {
			if werr := ctxtime.Sleep(ctx, g.backoff(try)); werr != nil {
				return werr
			}
		}
		var more bool
		for more, err = g.runOnce(ctx); err == nil && more; more, err = g.runOnce(ctx) {
		}
		if err == nil || ctx.Err() != nil {
			break
		}
	}
	return err
}

// Rebuild resets one enabled generator: its next run recomputes it from
// the whole mirror (also if it is running right now). The reset is
// recorded in the store too, so that a restart still rebuilds it.
func (r *Runner) Rebuild(name string) error {
	for _, g := range r.gens {
		if g.name == name {
			if err := MarkRebuild(r.db, name); err != nil {
				return err
			}
			g.asked.Add(1)
			return nil
		}
	}
	return fmt.Errorf("%w %q (not enabled)", ErrUnknown, name)
}

// RebuildPending reports whether a rebuild of name is asked for and not
// yet committed.
func (r *Runner) RebuildPending(name string) (bool, error) {
	for _, g := range r.gens {
		if g.name == name && g.rebuildAsked() {
			return true, nil
		}
	}
	p, err := r.position(name)
	if err != nil {
		return false, err
	}
	for _, g := range r.gens {
		if g.name == name {
			return p.due(g.version), nil
		}
	}
	return p.Rebuild, nil
}

// rebuildAsked reports whether a reset was asked for that no committed
// rebuild has answered yet.
func (g *genRunner) rebuildAsked() bool { return g.asked.Load() > g.done.Load() }

// due reports whether the generator, at version, must be rebuilt.
func (p position) due(version int) bool { return p.Rebuild || p.Version != version }

// MarkRebuild resets the generator name on a store no runner works on.
func MarkRebuild(db *kv.DB, name string) error {
	if _, ok := lookup(name); !ok {
		return fmt.Errorf("%w %q (registered: %v)", ErrUnknown, name, Names())
	}
	var p position
	if _, err := db.Get(schema.GeneratorStateKey(name), &p); err != nil {
		return err
	}
	p.Rebuild = true
	return db.Put(schema.GeneratorStateKey(name), p)
}

// Statuses returns the status of every enabled generator.
func (r *Runner) Statuses() []Status {
	head := r.head()
	out := make([]Status, 0, len(r.gens))
	for _, g := range r.gens {
		g.mu.Lock()
		s := g.status
		g.mu.Unlock()
		s.Lag = head.after(s.Position)
		out = append(out, s)
	}
	return out
}

// ReadStatuses reports the generators recorded in a store no runner works
// on: positions and lag.
func ReadStatuses(db kv.Reader) ([]Status, error) {
	var out []Status
	f := feedState{}
	if err := f.read(db); err != nil {
		return nil, err
	}
	err := db.Scan(schema.PrefixGeneratorState, func(key string, v json.RawMessage) error {
		name, err := schema.UnescapeSegment(key[len(schema.PrefixGeneratorState):])
		if err != nil {
			return err
		}
		var p position
		if err := json.Unmarshal(v, &p); err != nil {
			return err
		}
		state := "idle"
		version, registered := registeredVersion(name)
		switch {
		case p.LastError != "":
			state = "failing"
		case p.Rebuild, registered && version != p.Version:
			state = "rebuild pending"
		}
		out = append(out, Status{Name: name, Position: p.Seq, Lag: f.after(p.Seq), State: state, LastRun: p.Updated,
			LastError: p.LastError, LastEvent: p.LastEvent, Retries: p.Retries})
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, err
}

// feedState lists the sequence numbers in the change feed.
type feedState struct{ seqs []uint64 }

func (f *feedState) read(r kv.Reader) error {
	f.seqs = f.seqs[:0]
	return r.Scan(schema.PrefixChanges, func(key string, _ json.RawMessage) error {
		seq, err := schema.ParseChangeKey(key)
		if err == nil {
			f.seqs = append(f.seqs, seq)
		}
		return err
	})
}

func (f feedState) after(seq uint64) int {
	return len(f.seqs) - sort.Search(len(f.seqs), func(i int) bool { return f.seqs[i] > seq })
}

func (r *Runner) head() feedState {
	var f feedState
	if err := f.read(r.db); err != nil {
		r.log.Warn("reading the change feed", "err", err)
	}
	return f
}

// prune deletes the change-feed entries every enabled generator is past.
func (r *Runner) prune() error {
	if len(r.gens) == 0 {
		return schema.PruneChanges(r.db, ^uint64(0))
	}
	low := ^uint64(0)
	for _, g := range r.gens {
		p, err := r.position(g.name)
		if err != nil {
			return err
		}
		low = min(low, p.Seq)
	}
	return schema.PruneChanges(r.db, low)
}

func (g *genRunner) setStatus(fn func(*Status)) {
	g.mu.Lock()
	fn(&g.status)
	g.mu.Unlock()
}

func (g *genRunner) backoff(failures int) time.Duration {
	d := g.r.opts.RetryMin
	for i := 1; i < failures && d < g.r.opts.RetryMax; i++ {
		d *= 2
	}
	return min(d, g.r.opts.RetryMax)
}

// loop runs the generator whenever it is woken (or its retry is due) until
// ctx is done.
func (g *genRunner) loop(ctx context.Context) {
	defer g.setStatus(func(s *Status) { s.State = "stopped" })
	failures := 0
	var retry <-chan time.Time
	for {
		more, err := g.runOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			failures++
			d := g.backoff(failures)
			g.setStatus(func(s *Status) { s.NextRetry = g.r.opts.Now().Add(d) })
			retry = time.After(d)
		} else {
			failures, retry = 0, nil
			g.setStatus(func(s *Status) { s.Retries = 0; s.NextRetry = time.Time{} })
			if err := g.r.prune(); err != nil {
				g.r.log.Warn("pruning the change feed", "err", err)
			}
			if more {
				continue
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-g.wake:
		case <-retry:
		}
	}
}

// runOnce runs the generator over the feed entries after its position (at
// most MaxIDs changed events, unless one entry holds more), or over the
// whole mirror when it is due for a rebuild, and commits its writes with
// its new position. more says that entries remain.
func (g *genRunner) runOnce(ctx context.Context) (more bool, err error) {
	r := g.r
	p, err := r.position(g.name)
	if err != nil {
		return false, g.fail(err, "")
	}
	if g.rebuildAsked() || p.due(g.version) {
		p.Rebuild = true
	}
	snap, err := r.db.Snapshot()
	if err != nil {
		return false, g.fail(err, "")
	}
	defer snap.Close()

	in := &Input{View: snap, Rebuild: p.Rebuild}
	upTo, more, err := g.gather(snap, p, in)
	if err != nil {
		return false, g.fail(err, "")
	}
	if in.Rebuild {
		// A streamed rebuild, from a snapshot of its own; the entries
		// after it are for the runs that follow.
		snap.Close()
		if err := g.rebuildStreamed(ctx); err != nil {
			return false, err
		}
		return true, nil
	}
	if upTo == p.Seq {
		g.setStatus(func(s *Status) { s.State = "idle"; s.Position = p.Seq })
		return false, nil // nothing new
	}

	g.setStatus(func(s *Status) { s.State = "running" })
	out := newScope(g.name, r.db, false)
	if err := g.update(ctx, in, out); err != nil {
		return false, g.fail(err, in.currentID())
	}
	if err := g.commit(out, position{Seq: upTo, Version: g.version}); err != nil {
		return false, g.fail(err, "")
	}
	g.setStatus(func(s *Status) {
		s.State, s.Position, s.LastError, s.LastEvent, s.Retries = "idle", upTo, "", "", 0
		s.LastRun = r.opts.Now()
	})
	r.log.Debug("generator updated", "generator", g.name, "position", upTo, "events", len(in.IDs))
	return more, nil
}

var errStop = errors.New("stop")

// backlogRuns bounds the work of a run that does not reach the end of the
// feed: finding what its events are at its end reads the entries after
// it, and past backlogRuns runs' worth of them a rebuild is cheaper.
const backlogRuns = 64

// gather reads the feed after position p into in: the changes of the run
// (at most MaxIDs events, unless one entry holds more), each with its
// before-image from the first entry after p that names it, or Rebuild
// when an entry is a reset or has no before-images (an older release's).
// It returns the last entry the run covers and whether entries remain.
func (g *genRunner) gather(snap *kv.Snapshot, p position, in *Input) (upTo uint64, more bool, err error) {
	maxIDs := g.r.opts.MaxIDs
	upTo = p.Seq
	index := map[string]int{} // id -> its change in in.changes
	err = schema.Changes(snap, p.Seq, func(c schema.Change) error {
		if !in.Rebuild && len(index) > 0 && len(index)+len(c.IDs) > maxIDs {
			more = true
			return errStop
		}
		upTo = c.Seq
		if c.Reset || !c.HasBefore() {
			in.Rebuild = true
		}
		if in.Rebuild {
			return nil // a rebuild reads the whole snapshot: to its last entry
		}
		for i, id := range c.IDs {
			if _, seen := index[id]; !seen {
				index[id] = len(in.changes)
				in.changes = append(in.changes, change{id: id, before: c.BeforeOf(i)})
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return 0, false, err
	}
	if in.Rebuild {
		in.changes = nil
		return upTo, false, nil
	}
	// What each event is at upTo: the before-image of the first later
	// entry that names it, or else what the snapshot holds.
	resolved := make([]bool, len(in.changes))
	if more {
		left, read := len(in.changes), 0
		err = schema.Changes(snap, upTo, func(c schema.Change) error {
			if c.Reset || !c.HasBefore() {
				return errStop // the next run rebuilds: what this one ends with does not matter
			}
			for i, id := range c.IDs {
				if k, ok := index[id]; ok && !resolved[k] {
					in.changes[k].after, resolved[k] = c.BeforeOf(i), true
					left--
				}
			}
			if read += len(c.IDs); left == 0 || read > backlogRuns*maxIDs {
				return errStop
			}
			return nil
		})
		if err != nil && !errors.Is(err, errStop) {
			return 0, false, err
		}
		if left > 0 && read > backlogRuns*maxIDs {
			in.Rebuild, in.changes = true, nil
			head, err := feedHead(snap, upTo)
			return head, false, err
		}
	}
	for k := range in.changes {
		if resolved[k] {
			continue
		}
		var raw json.RawMessage
		if _, err := snap.Get(schema.EventKey(in.changes[k].id), &raw); err != nil {
			return 0, false, err
		}
		in.changes[k].after = raw
	}
	// An event created and deleted within the run, or changed and changed
	// back, is no change.
	in.changes = slices.DeleteFunc(in.changes, func(c change) bool { return bytes.Equal(c.before, c.after) })
	slices.SortFunc(in.changes, func(a, b change) int { return strings.Compare(a.id, b.id) })
	in.IDs = make([]string, len(in.changes))
	for i, c := range in.changes {
		in.IDs[i] = c.id
	}
	return upTo, more, nil
}

// feedHead returns the last sequence number of the feed in snap (after,
// when nothing follows it).
func feedHead(snap *kv.Snapshot, after uint64) (uint64, error) {
	head := after
	err := snap.ScanFrom(schema.PrefixChanges, schema.ChangeKey(after+1), func(key string, _ json.RawMessage) error {
		seq, err := schema.ParseChangeKey(key)
		head = seq
		return err
	})
	return head, err
}

// update calls the generator, turning a panic into an error.
func (g *genRunner) update(ctx context.Context, in *Input, out *Scope) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v\n%s", p, debug.Stack())
			if id := in.currentID(); id != "" {
				err = WithEvent(id, err)
			}
		}
	}()
	return g.gen.Update(ctx, in, out)
}

// encodePosition is a position as stored.
func encodePosition(p position) ([]byte, error) { return json.Marshal(p) }

// commit writes the scope's pending writes and the position in one batch.
func (g *genRunner) commit(out *Scope, p position) error {
	wb := g.r.db.NewWriteBatch()
	defer wb.Close()
	out.commitTo(wb)
	p.Updated = g.r.opts.Now().UTC()
	wb.Put(schema.GeneratorStateKey(g.name), p)
	n := wb.Len()
	if err := wb.Commit(); err != nil {
		return err
	}
	out.committed()
	g.setStatus(func(s *Status) { s.Written += int64(n) })
	return nil
}

func (g *genRunner) fail(err error, id string) error {
	var ee *EventError
	if errors.As(err, &ee) {
		id = ee.ID
	}
	args := []any{"generator", g.name, "err", err}
	if id != "" {
		args = append(args, "event", id)
	}
	g.r.log.Error("generator failed; it will be retried", args...)
	var retries int
	g.setStatus(func(s *Status) {
		s.State, s.LastError, s.LastEvent = "failing", err.Error(), id
		s.Retries++
		s.Failures++
		retries = s.Retries
	})
	// Record the failure beside the position (which does not move).
	if p, perr := g.r.position(g.name); perr == nil {
		p.LastError, p.LastEvent, p.Retries, p.FailedAt = firstLine(err.Error()), id, retries, g.r.opts.Now().UTC()
		if perr := g.r.db.Put(schema.GeneratorStateKey(g.name), p); perr != nil {
			g.r.log.Warn("recording a generator's failure", "generator", g.name, "err", perr)
		}
	}
	return err
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
