package generators

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mirrord/mirrord/eventlog"
	"github.com/mirrord/mirrord/kv"
	"github.com/mirrord/mirrord/schema"
)

// A rebuild streams. The generators due for one at the same time (after a
// resync, at the first start, after an upgrade) are rebuilt in one
// session: one scan of the mirror's events from one snapshot, each event
// parsed once and handed to every one of them, each generator's Update in
// its own goroutine (its loop's, as for any run). What a generator writes
// is kept in memory and in sorted runs on disk (streamScope), then
// written as sstables and put in place, with its new position, in one
// atomic ingest that replaces its values and its state: a crash at any
// point leaves the old state or the new one, and no rebuild goes through
// memtables and compactions.
//
// A session waits a moment (joinWait) for the generators it expects, so
// that they share the scan; one that comes later, or does not start
// reading (notReading) or stops reading for long (slowReader), reads the
// snapshot on its own: a slow or failing generator delays the others
// little. A generator that reads, however slowly, is waited for: reading
// alone costs a second scan and parse of every event (on a loaded
// machine, a quarter-second stall while summary spilt a run had both
// generators read alone, and a rebuild take twice the CPU).

// errFedOnce: a generator rebuilt beside a load reads the events once.
var errFedOnce = errors.New("a rebuild beside a load hands the events once")

// joinWait is how long a session waits for the generators it expects
// before it starts the scan without them.
var joinWait = 200 * time.Millisecond

// notReading is how long the scan waits for a generator that has taken
// none of the events it was handed before it goes on without it; once it
// reads, slowReader.
var (
	notReading = 250 * time.Millisecond
	slowReader = 10 * time.Second
)

// Each batch of events handed to the generators: up to batchEvents
// events or batchBytes of them.
const (
	batchEvents = 256
	batchBytes  = 256 << 10
	batchQueue  = 8 // batches queued for each generator
)

// eventBatch is consecutive events of the scan, shared by the generators
// of a session: each parse of an event is done once, by the first
// generator that asks for it.
type eventBatch struct {
	ids   []string
	raws  [][]byte
	at    []eventlog.FieldOffsets // where each event's fields are, when a load handed them (else nil)
	last  string                  // the event key of the last event
	arena []byte

	fieldsOnce sync.Once
	fields     []Fields
	fieldsErr  []error // nil when every event read

	eventsOnce sync.Once
	events     []*eventlog.Event
	eventsErr  []error

	refs atomic.Int32 // its holders: the producer and the generators handed it
}

func (b *eventBatch) fieldsOf(i int) (*Fields, error) {
	b.fieldsOnce.Do(func() {
		// One allocation for the batch, not one an event: the Fields
		// are handed out as pointers into it, and it is never recycled.
		b.fields = make([]Fields, len(b.raws))
		for j, raw := range b.raws {
			if j < len(b.at) && fieldsAt(&b.fields[j], raw, b.at[j]) {
				continue
			}
			if err := storedFieldsInto(&b.fields[j], raw); err != nil {
				if b.fieldsErr == nil {
					b.fieldsErr = make([]error, len(b.raws))
				}
				b.fieldsErr[j] = err
			}
		}
	})
	if b.fieldsErr != nil && b.fieldsErr[i] != nil {
		return nil, b.fieldsErr[i]
	}
	return &b.fields[i], nil
}

func (b *eventBatch) eventOf(i int) (*eventlog.Event, error) {
	b.eventsOnce.Do(func() {
		b.events, b.eventsErr = make([]*eventlog.Event, len(b.raws)), make([]error, len(b.raws))
		for j, raw := range b.raws {
			b.events[j], b.eventsErr[j] = parseStored(raw)
		}
	})
	return b.events[i], b.eventsErr[i]
}

// newBatch returns an empty batch with room for a full one, held once
// (by its producer).
func newBatch() *eventBatch {
	b := &eventBatch{}
	if bufs, ok := batchBufs.Get().(*eventBatch); ok {
		b.arena, b.ids, b.raws, b.at = bufs.arena[:0], bufs.ids[:0], bufs.raws[:0], bufs.at[:0]
	} else {
		b.arena, b.ids, b.raws = make([]byte, 0, batchBytes+batchBytes/4), make([]string, 0, batchEvents), make([][]byte, 0, batchEvents)
	}
	b.refs.Store(1)
	return b
}

// batchBufs recycles the batches' buffers: a rebuild of a million events
// allocated 700 MB of them, and the collections that cost were a good
// part of the generators' CPU beside a load.
var batchBufs sync.Pool

// hold adds a holder of the batch (a generator it was handed to).
func (b *eventBatch) hold() { b.refs.Add(1) }

// release drops a holder; the last one recycles the buffers, unless an
// event was parsed whole (its fields may point into them, and the
// generators may keep it).
func (b *eventBatch) release() {
	if b.refs.Add(-1) != 0 || b.events != nil {
		return
	}
	clear(b.ids)
	clear(b.raws)
	batchBufs.Put(&eventBatch{arena: b.arena, ids: b.ids, raws: b.raws, at: b.at})
}

// session is one streamed pass over the mirror for the generators being
// rebuilt together.
type session struct {
	r        *Runner
	snap     *kv.Snapshot
	head     uint64
	created  time.Time
	expected map[*genRunner]bool

	mu      sync.Mutex
	members []*member
	joined  chan struct{} // a member joined (signalled, not closed)
	started bool          // the scan has begun: nobody joins any more
	refs    int           // users of snap: the scan and each member
}

// member is one generator's part of a session.
type member struct {
	g        *genRunner
	ch       chan *eventBatch
	detached atomic.Bool   // the scan went on without it: it reads the rest itself
	reading  atomic.Bool   // it has taken a batch
	err      error         // the scan's error, set before ch is closed
	done     chan struct{} // closed when its Update has returned
	read     bool          // the stream was read (a second read scans the snapshot)
}

// joinRebuild makes g a member of the session being formed, or of a new
// one, whose scan then starts.
func (r *Runner) joinRebuild(ctx context.Context, g *genRunner) (*session, *member, error) {
	r.sessMu.Lock()
	defer r.sessMu.Unlock()
	s := r.sess
	if s == nil || !s.take() || !s.expected[g] {
		if s != nil {
			s.release()
		}
		var err error
		if s, err = r.newSession(g); err != nil {
			return nil, nil, err
		}
		r.sess = s
		r.scans.Add(1)
		go func() {
			defer r.scans.Done()
			s.scan(ctx)
		}()
	}
	m := &member{g: g, ch: make(chan *eventBatch, batchQueue), done: make(chan struct{})}
	s.mu.Lock()
	s.members = append(s.members, m)
	s.mu.Unlock()
	select {
	case s.joined <- struct{}{}:
	default:
	}
	return s, m, nil
}

// take adds a user of the snapshot of a session that has not begun its
// scan; false once it has.
func (s *session) take() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return false
	}
	s.refs++
	return true
}

// release drops a user of the snapshot; the last closes it.
func (s *session) release() {
	s.mu.Lock()
	s.refs--
	last := s.refs == 0
	s.mu.Unlock()
	if last {
		s.snap.Close()
	}
}

// newSession takes a snapshot and finds the generators due for a rebuild
// in it, first among them g. Its users: the scan, and g.
func (r *Runner) newSession(g *genRunner) (*session, error) {
	snap, err := r.db.Snapshot()
	if err != nil {
		return nil, err
	}
	s := &session{r: r, snap: snap, created: time.Now(), expected: map[*genRunner]bool{g: true},
		joined: make(chan struct{}, 1), refs: 2}
	low := ^uint64(0)
	pos := map[*genRunner]position{}
	for _, o := range r.gens {
		p, err := positionIn(snap, o.name)
		if err != nil {
			snap.Close()
			return nil, err
		}
		pos[o] = p
		low = min(low, p.Seq)
		s.head = max(s.head, p.Seq)
		if o.rebuildAsked() || p.due(o.version) {
			s.expected[o] = true
		}
	}
	// Entries that ask for a rebuild: a reset, or one without before-
	// images.
	err = schema.Changes(snap, low, func(c schema.Change) error {
		s.head = max(s.head, c.Seq)
		if c.Reset || !c.HasBefore() {
			for o, p := range pos {
				if p.Seq < c.Seq {
					s.expected[o] = true
				}
			}
		}
		return nil
	})
	if err != nil {
		snap.Close()
		return nil, err
	}
	return s, nil
}

// positionIn reads a generator's position in a snapshot.
func positionIn(r kv.Reader, name string) (position, error) {
	var p position
	found, err := r.Get(schema.GeneratorStateKey(name), &p)
	if err == nil && !found {
		p.Rebuild = true
	}
	return p, err
}

// scan waits for the members it expects (or joinWait), then hands them
// every event of the snapshot, in batches, and closes their streams.
func (s *session) scan(ctx context.Context) {
	defer s.release()
	wait := time.NewTimer(max(0, joinWait-time.Since(s.created)))
	defer wait.Stop()
	for !s.allJoined() {
		select {
		case <-s.joined:
			continue
		case <-wait.C:
		case <-ctx.Done():
		}
		break
	}
	s.r.sessMu.Lock()
	s.mu.Lock()
	s.started = true
	members := append([]*member(nil), s.members...)
	s.mu.Unlock()
	if s.r.sess == s {
		s.r.sess = nil
	}
	s.r.sessMu.Unlock()

	err := s.stream(ctx, members)
	for _, m := range members {
		if !m.detached.Load() {
			m.err = err
			close(m.ch)
		}
	}
}

func (s *session) allJoined() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	in := map[*genRunner]bool{}
	for _, m := range s.members {
		in[m.g] = true
	}
	for g := range s.expected {
		if !in[g] {
			return false
		}
	}
	return true
}

// stream scans the snapshot's events and hands each batch to every
// member still reading.
func (s *session) stream(ctx context.Context, members []*member) error {
	b := newBatch()
	slow := time.NewTimer(time.Hour)
	defer slow.Stop()
	send := func() error {
		if len(b.raws) == 0 {
			return nil
		}
		live := 0
		defer b.release()
		for _, m := range members {
			if m.detached.Load() {
				continue
			}
			b.hold()
			select {
			case m.ch <- b:
				live++
				continue
			default:
			}
			wait := notReading
			if m.reading.Load() {
				wait = slowReader
			}
			slow.Reset(wait)
			select {
			case m.ch <- b:
				live++
			case <-m.done:
				b.release()
				m.detach()
			case <-slow.C:
				b.release()
				m.detach() // it reads the rest itself, from b's first event
			case <-ctx.Done():
				b.release()
				return ctx.Err()
			}
		}
		if live == 0 {
			return errStop // nobody reads: stop scanning
		}
		b = newBatch()
		return ctx.Err()
	}
	err := s.snap.ScanRaw([]byte(schema.PrefixEvent), func(key, raw []byte) error {
		id, err := schema.UnescapeSegment(string(key[len(schema.PrefixEvent):]))
		if err != nil {
			return fmt.Errorf("event key %q: %w", key, err)
		}
		start := len(b.arena)
		b.arena = append(b.arena, raw...)
		b.ids = append(b.ids, id)
		b.raws = append(b.raws, b.arena[start:len(b.arena):len(b.arena)])
		b.last = string(key)
		if len(b.raws) >= batchEvents || len(b.arena) >= batchBytes {
			return send()
		}
		return nil
	})
	if err == nil {
		err = send()
	}
	if errors.Is(err, errStop) {
		err = nil
	}
	return err
}

// detach stops handing m events: it reads on by itself.
func (m *member) detach() {
	if m.detached.CompareAndSwap(false, true) {
		close(m.ch)
	}
}

// each hands fn the events of the stream, then (if the scan went on
// without it) the rest of the snapshot, read by itself.
func (m *member) each(ctx context.Context, snap *kv.Snapshot, call func(it item) error) error {
	if m.read {
		if snap == nil {
			return errFedOnce
		}
		return eachStored(snap, "", call) // a second reading: the snapshot, alone
	}
	m.read = true
	last := ""
	for b := range m.ch {
		m.reading.Store(true)
		for i := range b.raws {
			if err := call(item{id: b.ids[i], after: b.raws[i], batch: b, i: i}); err != nil {
				return err // the batch is not released: the collector takes it
			}
		}
		last = b.last
		b.release()
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	if m.err != nil {
		return m.err
	}
	if m.detached.Load() {
		return eachStored(snap, last, call)
	}
	return nil
}

// eachStored hands fn every event of the snapshot after the event key
// after ("": all).
func eachStored(snap *kv.Snapshot, after string, call func(it item) error) error {
	return snap.ScanRaw([]byte(schema.PrefixEvent), func(key, raw []byte) error {
		if string(key) <= after {
			return nil
		}
		k, err := schema.ParseKey(string(key))
		if err != nil {
			return err
		}
		return call(item{id: k.ID, after: raw})
	})
}

// testAfterIngest, when a test sets it, runs between a rebuild's ingest
// and the status that says it is done: the window RebuildPending must
// still cover.
var testAfterIngest func(name string)

// rebuild recomputes g from the whole mirror in a session, and puts its
// values, state and position in place in one ingest.
func (g *genRunner) rebuildStreamed(ctx context.Context) error {
	r := g.r
	asked := g.asked.Load() // the resets this rebuild answers
	s, m, err := r.joinRebuild(ctx, g)
	if err != nil {
		return g.fail(err, "")
	}
	defer s.release()
	g.setStatus(func(st *Status) { st.State = "rebuilding" })
	start := time.Now()
	fs, dir := r.db.TempDir()
	out := newStreamScope(g.name, fs, dir)
	defer out.w.closeRuns()
	in := &Input{View: s.snap, Rebuild: true, stream: m, ctx: ctx}
	err = g.update(ctx, in, out)
	close(m.done)
	if err == nil {
		err = g.ingest(ctx, out, s.head)
	}
	if err != nil {
		return g.fail(err, in.currentID()) // still due
	}
	if testAfterIngest != nil {
		testAfterIngest(g.name)
	}
	g.setStatus(func(st *Status) {
		st.State, st.Position, st.LastError, st.LastEvent, st.Retries = "idle", s.head, "", "", 0
		st.LastRun = r.opts.Now()
		st.Written += out.w.written + 1
	})
	g.done.Store(asked)
	// Logged once the status says so: a reader woken by the line finds it.
	r.log.Info("generator rebuilt", "generator", g.name, "position", s.head, "took", time.Since(start).Round(time.Millisecond))
	if g.rebuildAsked() {
		// A reset asked during this rebuild: its mark in the store may
		// have been replaced by the ingest; mark it again so that a
		// restart still does it.
		if err := MarkRebuild(r.db, g.name); err != nil {
			return g.fail(err, "")
		}
	}
	return nil
}

// ingest writes what a rebuild wrote as sstables that replace the
// generator's values and state, with its position at seq, and puts them
// in place at once.
func (g *genRunner) ingest(ctx context.Context, out *Scope, seq uint64) error {
	in := g.r.db.NewReplacement()
	committed := false
	defer func() {
		if !committed {
			in.Abort()
		}
	}()
	vr, sr := replaceRanges(g.name)
	values, state := in.Replace(vr[0], vr[1]), in.Replace(sr[0], sr[1])
	if err := out.w.writeOutput(values, state); err != nil {
		return err
	}
	pk := []byte(schema.GeneratorStateKey(g.name))
	p, err := encodePosition(position{Seq: seq, Version: g.version, Updated: g.r.opts.Now().UTC()})
	if err != nil {
		return err
	}
	if err := in.Replace(pk, append(pk, 0)).Add(pk, p); err != nil {
		return err
	}
	if err := in.Commit(ctx); err != nil {
		return fmt.Errorf("putting the rebuilt values in place: %w", err)
	}
	committed = true
	return nil
}
