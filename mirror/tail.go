package mirror

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/mirrord/mirrord/eventlog"
)

// chunk collects decoded entries until they are applied as one batch.
// The decoder's entries are only valid until its next call, so their bytes
// are copied.
type chunk struct {
	events  []upsert
	index   map[string]int // id -> position in events: the last occurrence wins
	size    int
	invalid int
	taken   bool // at least one entry (event or invalid) taken
}

func (c *chunk) reset() {
	c.events = c.events[:0]
	clear(c.index)
	c.size, c.invalid, c.taken = 0, 0, false
}

func (c *chunk) addEvent(ent *eventlog.Entry) {
	if c.index == nil {
		c.index = map[string]int{}
	}
	u := upsert{
		id:   append([]byte(nil), ent.ID...),
		raw:  append([]byte(nil), ent.Raw...),
		mods: make([]eventlog.RawModifier, len(ent.Modifiers)),
	}
	for i, m := range ent.Modifiers {
		u.mods[i] = eventlog.RawModifier{Name: append([]byte(nil), m.Name...), Value: append([]byte(nil), m.Value...)}
	}
	if i, ok := c.index[string(u.id)]; ok {
		c.events[i] = u
	} else {
		c.index[string(u.id)] = len(c.events)
		c.events = append(c.events, u)
	}
	c.size += len(ent.Raw)
	c.take(ent)
}

func (c *chunk) take(*eventlog.Entry) { c.taken = true }

// tail applies what was appended after the checkpoint, in bounded
// batches, and leaves an incomplete trailing value for later.
func (e *Engine) tail(ctx context.Context, f *os.File, st fileStat) (stepResult, error) {
	cp := e.cp
	if st.Size == cp.Offset {
		return e.caughtUp(st, nil)
	}
	fp := eventlog.NewFingerprint()
	if cp.Offset > 0 {
		tail, err := readTail(f, cp.Offset)
		if err != nil {
			return stepResult{}, err
		}
		if fp, err = eventlog.ResumeFingerprint(cp.State, tail); err != nil {
			return stepResult{}, fmt.Errorf("checkpoint of %s: %w (rebuild with --resync)", e.db.Path(), err)
		}
	}
	if testHookBeforeTailRead != nil {
		testHookBeforeTailRead()
	}
	resume := e.takePending(f, st)
	dec := eventlog.NewDecoder(io.NewSectionReader(f, cp.Offset, maxSection-cp.Offset), &eventlog.Options{
		Offset:       cp.Offset,
		Line:         max(cp.Line, 1),
		Fingerprint:  fp,
		MaxValueSize: e.opts.MaxValueSize,
		Resume:       resume,
	})
	// Where reading starts: an incomplete value's bytes scanned by the
	// last tail are not read again.
	from := cp.Offset
	if resume != nil {
		from = resume.At()
	}
	var ch chunk
	var pending *eventlog.Entry
	var invalid invalidReporter
	kind := "tail"
	if e.bulk {
		kind = "load"
	}
	prog := e.newProgress(kind, from, st.Size)
	// What a chunk read must still be in the file when it is committed:
	// an in-place rewrite that lands during the read would otherwise hand
	// the decoder new bytes at old offsets, and commit them.
	chunkStart, fpStart := cp.Offset, *fp
	flush := func() error {
		end, endLine := dec.Consumed()
		if !ch.taken && end == e.cp.Offset {
			return nil
		}
		if err := recheck(f, st, chunkStart, end, fpStart, fp.Sum64()); err != nil {
			return err
		}
		chunkStart, fpStart = end, *fp
		next := *e.cp
		e.identify(&next, st)
		next.Offset, next.Line = end, endLine
		next.TailSum, next.PrefixSum, next.State = hash64(fp.TailSum64()), hash64(fp.Sum64()), fp.State()
		kind := "tail"
		if e.bulk {
			kind = "bulk"
		}
		_, err := e.commit(&batch{kind: kind, upserts: ch.events, cp: next, invalid: ch.invalid, started: time.Now()})
		ch.reset()
		return err
	}
	for {
		if err := ctx.Err(); err != nil {
			// Stop between batches: everything committed so far is
			// consistent with its checkpoint.
			return stepResult{}, err
		}
		ent, err := dec.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return stepResult{}, fmt.Errorf("reading the event log: %w", err)
		}
		switch ent.Kind {
		case eventlog.KindEvent:
			ch.addEvent(ent)
			prog.event()
		case eventlog.KindInvalid:
			invalid.report(e.log, e.path, ent)
			ch.invalid++
			ch.take(ent)
		case eventlog.KindIncomplete:
			p := *ent
			pending = &p
		}
		prog.at(ent.End)
		if ch.size >= e.opts.ChunkBytes {
			if err := flush(); errors.Is(err, errChangedUnderfoot) {
				e.log.Debug("the log changed while its tail was read; deciding again", "path", e.path)
				return stepResult{action: actAgain, wait: e.opts.Debounce}, nil
			} else if err != nil {
				return stepResult{}, err
			}
		}
	}
	if err := flush(); errors.Is(err, errChangedUnderfoot) {
		e.log.Debug("the log changed while its tail was read; deciding again", "path", e.path)
		return stepResult{action: actAgain, wait: e.opts.Debounce}, nil
	} else if err != nil {
		return stepResult{}, err
	}
	invalid.summary(e.log, e.path)
	done, _ := dec.Consumed()
	if st.Size-from >= progressStep {
		// A long read ends (a short one reported nothing: no end either).
		prog.finish(done)
	}
	if r := dec.Resume(); r != nil && pending != nil {
		e.pending = &pendingScan{st: st, r: r}
	}
	if testHookTailRead != nil {
		testHookTailRead(dec.BytesRead())
	}
	if cp.Offset == 0 {
		// The whole log was just read (and rechecked): no doubt remains.
		e.doubt, e.verified = false, st
	}
	return e.caughtUp(st, pending)
}

// testHookBeforeTailRead, when set by a test, runs between the decision to
// tail and the read: where a concurrent rewrite hurts most.
var testHookBeforeTailRead func()

// testHookTailRead, when set by a test, gets the bytes each tail read.
var testHookTailRead func(bytesRead int64)

// pendingScan is where the last tail stopped scanning an incomplete value
// at the end of the log (in memory only, beside the checkpoint): the next
// tail goes on from there, so that a value that keeps growing, however
// large, costs each tail only the bytes appended. It is a hint: unused if
// the checkpoint moved (the decoder checks), the file is another one, or
// the bytes just before where it stopped changed; a restart scans the value
// again once.
type pendingScan struct {
	st fileStat
	r  *eventlog.Resume
}

// takePending returns the Resume to tail the log from, if it still fits,
// and forgets it: a tail that ends inside a value again leaves a new one.
func (e *Engine) takePending(f *os.File, st fileStat) *eventlog.Resume {
	p := e.pending
	e.pending = nil
	if p == nil || p.st.Dev != st.Dev || p.st.Ino != st.Ino || st.Size < p.r.At() || p.r.Offset() != e.cp.Offset {
		return nil
	}
	want := p.r.Tail()
	if len(want) == 0 {
		return nil
	}
	got := make([]byte, len(want))
	if _, err := f.ReadAt(got, p.r.At()-int64(len(want))); err != nil || !bytes.Equal(got, want) {
		return nil
	}
	return p.r
}

// maxSection bounds the section reader over a log that may keep growing.
const maxSection = 1 << 62

// caughtUp finishes a step that reached the end of the complete values:
// a bulk load in progress is completed, and the status notes any
// incomplete tail.
func (e *Engine) caughtUp(st fileStat, pending *eventlog.Entry) (stepResult, error) {
	if e.bulk {
		if _, err := e.commit(&batch{kind: "bulk", cp: *e.cp, finishBulk: true, started: time.Now()}); err != nil {
			return stepResult{}, err
		}
		e.log.Info("first load complete", "events", e.cp.Events, "modifiers", e.cp.Modifiers, "invalid", e.cp.Invalid)
	}
	e.notePending(pending)
	return stepResult{action: actTail, caughtUp: true}, nil
}

// notePending records (and reports once) an incomplete value at the end
// of the log.
func (e *Engine) notePending(p *eventlog.Entry) {
	e.updateStatus(func(s *Status) {
		if p == nil {
			s.Pending = nil
			return
		}
		if s.Pending == nil || s.Pending.Offset != p.Offset {
			e.log.Debug("the log ends in an incomplete value; it is applied once complete",
				"path", e.path, "offset", p.Offset, "line", p.Line, "reason", p.Reason)
		}
		s.Pending = &PendingTail{Offset: p.Offset, Line: p.Line, Bytes: p.End - p.Offset, Reason: p.Reason}
	})
}

// invalidReporter logs invalid entries, each with its offset, line, field
// and reason, but at most a few per pass so that a rewrite of a log with
// many bad entries does not flood the journal.
type invalidReporter struct{ n int }

const maxInvalidReports = 10

func (r *invalidReporter) report(log interface {
	Warn(string, ...any)
}, path string, ent *eventlog.Entry) {
	r.n++
	if r.n > maxInvalidReports {
		return
	}
	args := []any{"path", path, "offset", ent.Offset, "line", ent.Line}
	if ent.Field != "" {
		args = append(args, "field", ent.Field)
	}
	args = append(args, "reason", ent.Reason)
	log.Warn("skipping an invalid entry of the log", args...)
}

func (r *invalidReporter) summary(log interface {
	Warn(string, ...any)
}, path string) {
	if r.n > maxInvalidReports {
		log.Warn("more invalid entries were skipped", "path", path, "reported", maxInvalidReports, "total", r.n)
	}
}

// recheck makes sure that what a chunk read is still the file: the same
// file, still as long; the bytes just before from still those the
// fingerprint at from ends with (an in-place rewrite that removed or
// changed anything before from shifts or changes them); and [from, to)
// read again, extending that fingerprint, hashing to sum.
func recheck(f *os.File, st fileStat, from, to int64, at eventlog.Fingerprint, sum uint64) error {
	now, err := fstat(f)
	if err != nil {
		return err
	}
	if now.Dev != st.Dev || now.Ino != st.Ino || now.Size < to {
		return errChangedUnderfoot
	}
	if from > 0 {
		window, err := readTail(f, from)
		if err != nil {
			return err
		}
		if !bytes.Equal(window, at.Tail()) {
			return errChangedUnderfoot
		}
	}
	if _, err := io.Copy(&at, io.NewSectionReader(f, from, to-from)); err != nil {
		return fmt.Errorf("reading the event log: %w", err)
	}
	if at.Sum64() != sum {
		return errChangedUnderfoot
	}
	return nil
}
