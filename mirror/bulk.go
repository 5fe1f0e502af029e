package mirror

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/mirrord/mirrord/eventlog"
	"github.com/mirrord/mirrord/kv"
)

// The memory the bulk load's sorters may hold: two buffers each (one
// filling, one being written out). Events take the most room. (Variables
// so that tests can force many sorted runs.)
var (
	eventSortBudget    = 32 << 20
	modifierSortBudget = 16 << 20
)

// bulkLoad mirrors the whole log into the store in one atomic step: the
// first load of an empty store, or a resync. The log is read once; its
// events and modifiers go through two external sorters (bounded memory,
// sorted runs on disk); the sorted streams become sstables that replace
// the whole mirror keyspace at once (kv.Ingest: Pebble's IngestAndExcise),
// together with the checkpoint, the change feed's reset entry and the
// schema. There is no write-ahead log, no memtable and no compaction, and
// a crash at any point leaves either the old state (with the resync marker
// still set, so the next start loads again) or the new one.
func (e *Engine) bulkLoad(ctx context.Context, f *os.File, st fileStat) (stepResult, error) {
	started := time.Now()
	events := e.db.NewSorter(eventSortBudget, len(kv.PrefixEvent))
	defer events.Close()
	mods := e.db.NewSorter(modifierSortBudget, len(kv.PrefixModifier))
	defer mods.Close()

	fp := eventlog.NewFingerprint()
	dec := eventlog.NewDecoder(io.NewSectionReader(f, 0, maxSection), &eventlog.Options{
		Fingerprint: fp, MaxValueSize: e.opts.MaxValueSize, BufferSize: 1 << 20,
	})
	prog := e.newProgress("load", 0, st.Size)
	var (
		key, val []byte
		invalid  invalidReporter
		nInvalid int
		pending  *eventlog.Entry
	)
	for {
		if err := ctx.Err(); err != nil {
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
			seq := uint64(ent.Offset)
			key = kv.AppendEventKey(key[:0], ent.ID)
			if err := events.Add(key, ent.Raw, seq); err != nil {
				return stepResult{}, err
			}
			for _, m := range ent.Modifiers {
				key = kv.AppendModifierKey(key[:0], ent.ID, m.Name)
				val = append(append(append(val[:0], `{"value":`...), m.Value...), '}')
				if err := mods.Add(key, val, seq); err != nil {
					return stepResult{}, err
				}
			}
			prog.event()
		case eventlog.KindInvalid:
			invalid.report(e.log, e.path, ent)
			nInvalid++
		case eventlog.KindIncomplete:
			p := *ent
			pending = &p
		}
		prog.at(ent.End)
	}
	invalid.summary(e.log, e.path)
	end, endLine := dec.Consumed()
	prog.finish(end)
	if !e.unchangedSince(f, st, end, fp) {
		e.log.Debug("the log changed while being loaded; loading it again once it settles", "path", e.path)
		return stepResult{action: actAgain, wait: e.opts.Settle}, nil
	}

	tDecoded := time.Now()
	in := e.db.NewIngest(kv.PrefixEvent, kv.PrefixEnd([]byte(kv.PrefixModifier)))
	evFile, metaFile, digestFile, schemaFile, modFile := in.File(), in.File(), in.File(), in.File(), in.File()
	committed := false
	defer func() {
		if !committed {
			in.Abort()
		}
	}()

	// Events, and their digests, in key order. Equal keys (an id that
	// occurs more than once) arrive together, ordered by offset: the last
	// occurrence wins, and is remembered for its modifiers.
	winners := map[string]uint64{} // escaped id -> offset of the winning occurrence, for repeated ids only
	var nEvents int64
	var held []byte // the event key held back, to see whether it repeats
	var heldVal []byte
	emit := func() error {
		if held == nil {
			return nil
		}
		nEvents++
		if err := evFile.Add(held, heldVal); err != nil {
			return err
		}
		key = kv.AppendDigestKeyOf(key[:0], held)
		val = appendDigestValue(val[:0], xxhash.Sum64(heldVal))
		return digestFile.Add(key, val)
	}
	err := events.Each(func(k, v []byte, seq uint64) error {
		if held != nil && string(k) == string(held) {
			winners[string(k[len(kv.PrefixEvent):])] = seq
		} else if err := emit(); err != nil {
			return err
		}
		held = append(held[:0], k...)
		heldVal = append(heldVal[:0], v...)
		return nil
	})
	if err == nil {
		err = emit()
	}
	if err != nil {
		return stepResult{}, err
	}

	tEvents := time.Now()
	// Modifiers in key order; of a repeated id, only the winner's.
	var nMods int64
	err = mods.Each(func(k, v []byte, seq uint64) error {
		rest := k[len(kv.PrefixModifier):]
		esc := rest
		for i, c := range rest {
			if c == ':' {
				esc = rest[:i]
				break
			}
		}
		if w, repeated := winners[string(esc)]; repeated && w != seq {
			return nil // a modifier of an occurrence that lost
		}
		nMods++
		return modFile.Add(k, v)
	})
	if err != nil {
		return stepResult{}, err
	}

	cp := Checkpoint{
		Dev: st.Dev, Ino: st.Ino, Offset: end, Line: endLine,
		TailSum: hash64(fp.TailSum64()), PrefixSum: hash64(fp.Sum64()), State: fp.State(),
		Seq: e.cp.Seq + 1, Events: nEvents, Modifiers: nMods, Invalid: int64(nInvalid),
		Size: st.Size, MTime: st.MTime, AppliedAt: e.opts.Now().UTC(),
	}
	// The bookkeeping inside the replaced range, in key order:
	// mirrord:changes:{seq} < mirrord:checkpoint < mirrord:digest:* <
	// mirrord:schema.
	for _, kv2 := range []struct {
		file *kv.IngestFile
		key  string
		v    any
	}{
		{metaFile, kv.ChangeKey(cp.Seq), kv.Change{Reset: true}},
		{metaFile, kv.CheckpointKey, &cp},
		{schemaFile, kv.SchemaKey, schemaRecord{Version: SchemaVersion}},
	} {
		b, err := json.Marshal(kv2.v)
		if err != nil {
			return stepResult{}, err
		}
		if err := kv2.file.Add([]byte(kv2.key), b); err != nil {
			return stepResult{}, err
		}
	}
	tMods := time.Now()
	if err := in.Commit(ctx); err != nil {
		return stepResult{}, fmt.Errorf("loading the log into the store: %w", err)
	}
	committed = true
	e.log.Debug("bulk load phases", "decode", tDecoded.Sub(started), "events", tEvents.Sub(tDecoded),
		"modifiers", tMods.Sub(tEvents), "ingest", time.Since(tMods))

	e.cp, e.bulk, e.reconciling, e.held = &cp, false, false, nil
	e.doubt, e.verified = false, st
	a := Applied{Kind: "bulk", Seq: cp.Seq, Changed: int(nEvents), Puts: int(2*nEvents + nMods + 3),
		Offset: cp.Offset, Size: cp.Size, Events: cp.Events, Modifiers: cp.Modifiers,
		Invalid: nInvalid, Duration: time.Since(started)}
	e.log.Debug("applied a batch", "kind", a.Kind, "changed", a.Changed, "puts", a.Puts, "deletes", 0,
		"offset", cp.Offset, "events", cp.Events, "seq", cp.Seq)
	e.updateStatus(func(s *Status) { s.LastApply = a; s.LastError = "" })
	if e.opts.OnApply != nil {
		e.opts.OnApply(a)
	}
	e.log.Info("loaded the log", "events", cp.Events, "modifiers", cp.Modifiers, "invalid", cp.Invalid,
		"took", time.Since(started).Round(time.Millisecond))
	e.notePending(pending)
	return stepResult{action: actTail, caughtUp: true}, nil
}
