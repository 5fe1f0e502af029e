package mirror

import (
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
	dec := eventlog.NewDecoder(io.NewSectionReader(f, cp.Offset, maxSection-cp.Offset), &eventlog.Options{
		Offset:       cp.Offset,
		Line:         max(cp.Line, 1),
		Fingerprint:  fp,
		MaxValueSize: e.opts.MaxValueSize,
	})
	var ch chunk
	var pending *eventlog.Entry
	var invalid invalidReporter
	flush := func() error {
		end, endLine := dec.Consumed()
		if !ch.taken && end == e.cp.Offset {
			return nil
		}
		next := *e.cp
		next.Dev, next.Ino = st.Dev, st.Ino
		next.Offset, next.Line = end, endLine
		next.TailSum, next.PrefixSum, next.State = hash64(fp.TailSum64()), hash64(fp.Sum64()), fp.State()
		next.Size, next.MTime = st.Size, st.MTime
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
		case eventlog.KindInvalid:
			invalid.report(e.log, e.path, ent)
			ch.invalid++
			ch.take(ent)
		case eventlog.KindIncomplete:
			p := *ent
			pending = &p
		}
		if ch.size >= e.opts.ChunkBytes {
			if err := flush(); err != nil {
				return stepResult{}, err
			}
		}
	}
	if err := flush(); err != nil {
		return stepResult{}, err
	}
	invalid.summary(e.log, e.path)
	return e.caughtUp(st, pending)
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
