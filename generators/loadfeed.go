package generators

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/mirrord/mirrord/eventlog"
	"github.com/mirrord/mirrord/kv"
	"github.com/mirrord/mirrord/schema"
)

// LoadFeed rebuilds generators beside a bulk load (mirror.LoadFeed): the
// load hands it each event as it writes it, from its own sorted output,
// and the generators' Updates run meanwhile, each in a goroutine of its
// own; their values, state and positions (at the load's reset entry) go
// into the load's own ingest, so that the mirror and its generators are
// put in place in one atomic step. The log is thus read and parsed once,
// and the store's events are not read back: on a 1M-event log that scan
// was a quarter of the generators' work.
//
// Only generators that read nothing but the events they are handed can
// be fed (the store holds the previous state until the load is in place):
// the built-in ones. The others, and any that fails, rebuild from the
// store afterwards, as the reset entry asks.
type LoadFeed struct {
	r       *Runner
	ctx     context.Context
	cancel  context.CancelFunc
	members []*fedMember
	ranges  []*rangeFeed
	wg      sync.WaitGroup
	started time.Time
	ended   bool   // the generators' streams are closed
	seq     uint64 // their position, once Finish wrote them
}

// fedMember is one generator being rebuilt beside the load.
type fedMember struct {
	g   *genRunner
	m   *member
	out *Scope
	in  *Input
	err error // its Update's, once done is closed
}

// rangeFeed gathers one of the load's ranges into batches.
type rangeFeed struct {
	f *LoadFeed
	b *eventBatch
}

// fedFromLoad marks the generators that read nothing but the events they
// are handed, and can be rebuilt beside a load.
type fedFromLoad interface{ fedFromLoad() }

func (summary) fedFromLoad()  {}
func (hashtags) fedFromLoad() {}

// LoadFeed returns a feed that rebuilds the enabled generators that can
// be fed beside a bulk load, or nil when there are none. Call it for each
// load; the runner must not be running (Run, CatchUp) meanwhile.
func (r *Runner) LoadFeed() *LoadFeed {
	f := &LoadFeed{r: r}
	for _, g := range r.gens {
		if _, ok := g.gen.(fedFromLoad); ok {
			f.members = append(f.members, &fedMember{g: g})
		}
	}
	if len(f.members) == 0 {
		return nil
	}
	return f
}

// Start starts the generators' Updates and returns the load's sinks, one
// per range.
func (f *LoadFeed) Start(ranges int) []func(key, value []byte, fields eventlog.FieldOffsets) {
	f.ctx, f.cancel = context.WithCancel(context.Background())
	f.started = time.Now()
	fs, dir := f.r.db.TempDir()
	for _, fm := range f.members {
		fm.m = &member{g: fm.g, ch: make(chan *eventBatch, batchQueue), done: make(chan struct{})}
		fm.out = newStreamScope(fm.g.name, fs, dir)
		fm.in = &Input{Rebuild: true, stream: fm.m, ctx: f.ctx}
		fm.g.setStatus(func(st *Status) { st.State = "rebuilding" })
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			fm.err = fm.g.update(f.ctx, fm.in, fm.out)
			close(fm.m.done)
		}()
	}
	sinks := make([]func(key, value []byte, fields eventlog.FieldOffsets), ranges)
	for i := range sinks {
		rf := &rangeFeed{f: f, b: newBatch()}
		f.ranges = append(f.ranges, rf)
		sinks[i] = rf.add
	}
	return sinks
}

// add is a range's sink: the event joins the range's batch, handed to the
// generators when full. The load says where the event's fields are: they
// are read from there, not parsed again (see fieldsAt).
func (rf *rangeFeed) add(key, value []byte, fields eventlog.FieldOffsets) {
	b := rf.b
	id, err := schema.UnescapeSegment(string(key[len(schema.PrefixEvent):]))
	if err != nil {
		return // the load checked every key it writes
	}
	start := len(b.arena)
	b.arena = append(b.arena, value...)
	b.ids = append(b.ids, id)
	b.raws = append(b.raws, b.arena[start:len(b.arena):len(b.arena)])
	b.at = append(b.at, fields)
	if len(b.raws) >= batchEvents || len(b.arena) >= batchBytes {
		rf.flush()
	}
}

// flush hands the range's batch to every generator still reading: the
// load waits for them (they have no store to read on their own).
func (rf *rangeFeed) flush() {
	if len(rf.b.raws) == 0 {
		return
	}
	for _, fm := range rf.f.members {
		rf.b.hold()
		select {
		case fm.m.ch <- rf.b:
		case <-fm.m.done:
			rf.b.release()
		case <-rf.f.ctx.Done():
			rf.b.release()
		}
	}
	rf.b.release()
	rf.b = newBatch()
}

// end closes the generators' streams (with err, when not nil) and waits
// for their Updates.
func (f *LoadFeed) end(err error) {
	for _, fm := range f.members {
		fm.m.err = err
		close(fm.m.ch)
	}
	f.wg.Wait()
	f.ended = true
}

// Finish ends the generators' Updates and writes what each wrote, with
// its position at seq, to files of the load's ingest (newFile). A
// generator that failed writes nothing: it rebuilds from the store once
// the load is in place.
func (f *LoadFeed) Finish(ctx context.Context, seq uint64, newFile func() *kv.IngestFile) error {
	for _, rf := range f.ranges {
		rf.flush() // the load's ranges are all written
	}
	f.end(nil)
	// Each generator's output is merged and written side by side, in
	// parts when it is large (see outputPartBytes). The files are made
	// one at a time: the load's Ingest is not for goroutines.
	type files struct {
		parts  []outputFiles
		splits []string
		pos    *kv.IngestFile
	}
	out := make([]files, len(f.members))
	for i, fm := range f.members {
		if fm.err != nil {
			continue
		}
		out[i].splits = fm.out.w.outputSplits(outputParts())
		for range len(out[i].splits) + 1 {
			out[i].parts = append(out[i].parts, outputFiles{newFile(), newFile()})
		}
		out[i].pos = newFile()
	}
	var wg sync.WaitGroup
	errs := make([]error, len(f.members))
	for i, fm := range f.members {
		if fm.err != nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			g := fm.g
			if errs[i] = fm.out.w.writeOutputParts(out[i].parts, out[i].splits); errs[i] != nil {
				return
			}
			p, err := encodePosition(position{Seq: seq, Version: g.version, Updated: g.r.opts.Now().UTC()})
			if err == nil {
				err = out[i].pos.Add([]byte(schema.GeneratorStateKey(g.name)), p)
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	f.seq = seq
	return errors.Join(errs...)
}

// Done reports the generators' rebuild, or its failure, and drops what
// they spilt.
func (f *LoadFeed) Done(committed bool) {
	f.cancel()
	if !f.ended { // the load failed before Finish
		f.end(errors.New("the load did not complete"))
	}
	for _, fm := range f.members {
		fm.out.w.closeRuns()
		g := fm.g
		switch {
		case !committed:
			g.setStatus(func(st *Status) { st.State = "idle" })
		case fm.err != nil:
			_ = g.fail(fm.err, fm.in.currentID()) // due: it rebuilds from the store
		default:
			g.setStatus(func(st *Status) {
				st.State, st.Position, st.LastError, st.LastEvent, st.Retries = "idle", f.seq, "", "", 0
				st.LastRun = g.r.opts.Now()
				st.Written += fm.out.w.written + 1
			})
			g.r.log.Info("generator rebuilt beside the load", "generator", g.name, "position", f.seq,
				"took", time.Since(f.started).Round(time.Millisecond))
		}
	}
}
