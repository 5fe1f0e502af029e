package mirror

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/mirrord/mirrord/eventlog"
	"github.com/mirrord/mirrord/internal/extsort"
	"github.com/mirrord/mirrord/schema"
)

// desired is the last valid occurrence of an event in the log.
type desired struct {
	digest uint64
	off    int64
	n      int64
	mods   int
}

// heldInfo describes deletions held back because the log ends in an
// incomplete value.
type heldInfo struct {
	offset  int64
	line    int
	deletes int
}

// reconcile makes the store equal to a log that is not a continuation of
// the checkpoint. It reads the whole log and compares each event's digest
// with the digest the store keeps (mirrord:digest:{id}), so it reads no
// stored value and writes only the difference: deleting one event of a
// million writes a handful of keys.
func (e *Engine) reconcile(ctx context.Context, f *os.File, st fileStat) (stepResult, error) {
	if ok, wait := e.settled(st); !ok {
		e.log.Debug("the log changed recently; reconciling once it settles", "path", e.path, "wait", wait)
		return stepResult{action: actSettle, wait: wait}, nil
	}
	started := time.Now()
	kind := "reconcile"
	if e.bulk {
		kind = "load"
	}
	prog := e.newProgress(kind, 0, st.Size)
	d, err := e.decodeLog(ctx, f, st, prog, digestRecords)
	if err != nil {
		return stepResult{}, err
	}
	defer d.close()
	end, endLine, pending, fp, nInvalid := d.end, d.endLine, d.pending, d.fp, d.invalid

	// The log must not have changed while it was read, except by growing:
	// appends that arrive during a long read are taken by the next tail
	// (otherwise a busy log could keep a reconcile from ever finishing).
	if !e.unchangedSince(f, st, end, fp) {
		e.log.Debug("the log changed while being read; reading it again once it settles", "path", e.path)
		return stepResult{action: actAgain, wait: e.opts.Settle}, nil
	}

	puts, deletes, events, mods, err := e.diff(d.events())
	if err != nil {
		return stepResult{}, err
	}

	if len(deletes) > 0 && pending != nil {
		e.held = &heldInfo{offset: pending.Offset, line: pending.Line, deletes: len(deletes)}
		e.log.Warn("the log ends in an incomplete value: holding deletions until it is complete",
			"path", e.path, "offset", pending.Offset, "line", pending.Line, "deletions", len(deletes))
		e.updateStatus(func(s *Status) { s.Held = len(deletes) })
		return stepResult{action: actHeld}, nil
	}
	e.held = nil
	e.updateStatus(func(s *Status) { s.Held = 0 })

	next := *e.cp
	e.identify(&next, st)
	next.Offset, next.Line = end, endLine
	next.TailSum, next.PrefixSum, next.State = hash64(fp.TailSum64()), hash64(fp.Sum64()), fp.State()
	next.Invalid = 0
	// The counts are recomputed from the log, not adjusted: a reconcile
	// also repairs them.
	next.Events, next.Modifiers = e.cp.Events, e.cp.Modifiers
	if err := e.writeDiff(f, puts, deletes, next, nInvalid, started); errors.Is(err, errChangedUnderfoot) {
		e.log.Debug("the log changed while being reconciled; reading it again once it settles", "path", e.path)
		return stepResult{action: actAgain, wait: e.opts.Settle}, nil
	} else if err != nil {
		return stepResult{}, err
	}
	if e.cp.Events != events || e.cp.Modifiers != mods {
		e.log.Warn("store counts disagreed with the log; corrected", "events", events, "modifiers", mods)
		cp := *e.cp
		cp.Events, cp.Modifiers = events, mods
		if _, err := e.commit(&batch{kind: "reconcile", cp: cp, started: time.Now()}); err != nil {
			return stepResult{}, err
		}
	}
	e.doubt = false
	e.verified = st
	e.updateStatus(func(s *Status) { s.Reconciles++ })
	e.log.Info("reconciled the log", "path", e.path, "puts", len(puts), "deletes", len(deletes),
		"events", e.cp.Events, "took", time.Since(started).Round(time.Millisecond))
	res, err := e.caughtUp(st, pending)
	res.action = actReconcile
	return res, err
}

// unescapedID returns the event id of a digest key.
func unescapedID(digestKey []byte) ([]byte, error) {
	id, err := schema.UnescapeSegment(string(digestKey[len(schema.PrefixDigest):]))
	if err != nil {
		return nil, fmt.Errorf("bookkeeping key %q: %w", digestKey, err)
	}
	return []byte(id), nil
}

// addDigestRecord is a reconcile's record of an event: its escaped id
// (as event:{id}), and its digest, extent and modifier count; seq is its
// offset, so that of a repeated id the last occurrence comes last.
func addDigestRecord(p *part, ent *eventlog.Entry) error {
	p.key = schema.AppendEventKey(p.key[:0], ent.ID)
	p.val = binary.BigEndian.AppendUint64(p.val[:0], xxhash.Sum64(ent.Raw))
	p.val = binary.AppendUvarint(p.val, uint64(ent.End-ent.Offset))
	p.val = binary.AppendUvarint(p.val, uint64(len(ent.Modifiers)))
	return p.events.Add(p.key, p.val, uint64(ent.Offset))
}

// diff walks the log's events (sorted by id, the last occurrence of each)
// beside the store's digests (mirrord:digest:{id}, in the same order):
// an event the store lacks or holds with another digest is a put, a
// stored id the log lacks a delete. Memory: the sorters' budget and the
// diff itself, whatever the size of the log.
func (e *Engine) diff(sorters []*extsort.Sorter) (puts []desired, deletes [][]byte, events, mods int64, err error) {
	it, err := extsort.NewMergeIter(sorters, nil, nil)
	if err != nil {
		return nil, nil, 0, 0, err
	}
	defer it.Close()
	// next returns the next id's last occurrence (its escaped id after
	// the event: prefix, and what the log wants for it).
	var (
		cur, nxt []byte
		curD     desired
		more     = it.Next()
		lastErr  error
	)
	decode := func() (desired, error) {
		v := it.Value()
		if len(v) < 8 {
			return desired{}, fmt.Errorf("reconcile: malformed record of %q", it.Key())
		}
		n, k1 := binary.Uvarint(v[8:])
		m, k2 := binary.Uvarint(v[8+max(k1, 0):])
		if k1 <= 0 || k2 <= 0 {
			return desired{}, fmt.Errorf("reconcile: malformed record of %q", it.Key())
		}
		return desired{digest: binary.BigEndian.Uint64(v), off: int64(it.Seq()), n: int64(n), mods: int(m)}, nil
	}
	next := func() bool {
		if !more {
			return false
		}
		cur = append(cur[:0], it.Key()[len(schema.PrefixEvent):]...)
		if curD, lastErr = decode(); lastErr != nil {
			return false
		}
		for more = it.Next(); more; more = it.Next() {
			nxt = it.Key()[len(schema.PrefixEvent):]
			if string(nxt) != string(cur) {
				break
			}
			if curD, lastErr = decode(); lastErr != nil {
				return false
			}
		}
		return true
	}
	have := next()
	want := func() {
		events++
		mods += int64(curD.mods)
	}
	err = e.db.ScanRaw([]byte(schema.PrefixDigest), func(k, v []byte) error {
		esc := k[len(schema.PrefixDigest):]
		for have && string(cur) < string(esc) {
			puts = append(puts, curD) // an event the store lacks
			want()
			have = next()
		}
		if have && string(cur) == string(esc) {
			if h, ok := parseDigestValue(v); !ok || h != curD.digest {
				puts = append(puts, curD)
			}
			want()
			have = next()
			return nil
		}
		id, err := unescapedID(k)
		if err != nil {
			return err
		}
		deletes = append(deletes, id)
		return nil
	})
	for err == nil && have {
		puts = append(puts, curD)
		want()
		have = next()
	}
	if err == nil {
		err = errors.Join(lastErr, it.Err())
	}
	return puts, deletes, events, mods, err
}

// writeDiff writes the puts (re-read from the log by offset, and checked
// against the digest computed while scanning) and the deletes in bounded
// batches. A diff that needs more than one batch is bracketed by the
// reconcile marker, so that a crash in between makes the next start
// reconcile again instead of trusting a half-applied state.
func (e *Engine) writeDiff(f *os.File, puts []desired, deletes [][]byte, final Checkpoint, invalid int, started time.Time) error {
	var ups []upsert
	size := 0
	multi := false
	flush := func(last bool) error {
		b := &batch{kind: "reconcile", upserts: ups, cp: *e.cp, started: started}
		if last {
			b.deletes = deletes
			b.cp = final
			b.invalid = invalid
			b.clearReconcileMarker = e.reconciling || multi
		} else if !multi {
			multi = true
			b.setReconcileMarker = true
		}
		b.cp.Events, b.cp.Modifiers = e.cp.Events, e.cp.Modifiers
		if last {
			b.cp.Invalid = 0
		}
		_, err := e.commit(b)
		ups, size = nil, 0
		return err
	}
	for _, d := range puts {
		u, err := readEvent(f, d, e.opts.MaxValueSize)
		if err != nil {
			return err
		}
		ups = append(ups, u)
		size += len(u.raw)
		if size >= e.opts.ChunkBytes {
			if err := flush(false); err != nil {
				return err
			}
		}
	}
	return flush(true)
}

// errChangedUnderfoot: a value re-read from the log is not what the scan
// saw there.
var errChangedUnderfoot = errors.New("the log changed while being reconciled")

// readEvent reads back one event found by a scan and checks that it is
// still what the scan saw.
func readEvent(f *os.File, d desired, maxSize int) (upsert, error) {
	buf := make([]byte, d.n)
	if _, err := f.ReadAt(buf, d.off); err != nil {
		return upsert{}, fmt.Errorf("reading the event log at %d: %w", d.off, err)
	}
	// A buffer the size of the value: the default 256 KiB per event would
	// dominate a verify or a large reconcile.
	dec := eventlog.NewDecoder(bytes.NewReader(buf), &eventlog.Options{Offset: d.off, MaxValueSize: maxSize, BufferSize: len(buf) + 64})
	ent, err := dec.Next()
	if err != nil || ent.Kind != eventlog.KindEvent || xxhash.Sum64(ent.Raw) != d.digest {
		return upsert{}, fmt.Errorf("%w (at offset %d)", errChangedUnderfoot, d.off)
	}
	u := upsert{id: bytes.Clone(ent.ID), raw: bytes.Clone(ent.Raw)}
	for _, m := range ent.Modifiers {
		u.mods = append(u.mods, eventlog.RawModifier{Name: bytes.Clone(m.Name), Value: bytes.Clone(m.Value)})
	}
	return u, nil
}

// unchangedSince reports whether the log is still the file read from st,
// with the bytes up to end unchanged: the same stat, or the same file
// grown with the TailSize bytes before end as they were read.
func (e *Engine) unchangedSince(f *os.File, st fileStat, end int64, fp *eventlog.Fingerprint) bool {
	if e.git != nil {
		return true // git mode's spool: only the engine writes it, between decisions
	}
	after, err := statFile(e.path)
	fafter, ferr := fstat(f)
	if err != nil || ferr != nil {
		return false
	}
	if after == st && fafter == st {
		return true
	}
	if after.Dev != st.Dev || after.Ino != st.Ino || fafter.Size < st.Size || end == 0 {
		return false
	}
	window, err := readTail(f, end)
	return err == nil && bytes.Equal(window, fp.Tail())
}
