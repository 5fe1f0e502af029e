package mirror

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/mirrord/mirrord/kv"
)

// bulkLoad mirrors the whole log into the store in one atomic step: the
// first load of an empty store, or a resync. The log is read once, by one
// decoder per core over consecutive parts of the file (see splitLog); its
// events and modifiers go through external sorters (bounded memory,
// sorted runs on disk); the sorted streams become sstables, events and
// modifiers written concurrently, that replace the whole mirror keyspace
// at once (kv.Ingest: Pebble's IngestAndExcise), together with the
// checkpoint, the change feed's reset entry and the schema. There is no
// write-ahead log, no memtable and no compaction, and a crash at any point
// leaves either the old state (with the resync marker still set, so the
// next start loads again) or the new one.
func (e *Engine) bulkLoad(ctx context.Context, f *os.File, st fileStat) (stepResult, error) {
	started := time.Now()
	// The load's buffers are most of the heap; the collector's default
	// headroom (GOGC=100: as much again as is live) lifted the peak RSS of
	// a 1M-event load from 231 to 294 MiB. A lower setting is kept.
	if old := debug.SetGCPercent(50); old >= 0 && old < 50 {
		debug.SetGCPercent(old)
	} else {
		defer debug.SetGCPercent(old)
	}
	// And they are garbage once it is done: hand them back to the system
	// at once, not over the scavenger's minutes, so that what runs next
	// (the generators' rebuild, a daemon's following) does not add its
	// peak to the load's. It costs one collection.
	defer debug.FreeOSMemory()
	prog := e.newProgress("load", 0, st.Size)
	d, err := e.decodeLog(ctx, f, st, prog, bulkRecords)
	if err != nil {
		return stepResult{}, err
	}
	defer d.close()
	if !e.unchangedSince(f, st, d.end, d.fp) {
		e.log.Debug("the log changed while being loaded; loading it again once it settles", "path", e.path)
		return stepResult{action: actAgain, wait: e.opts.Settle}, nil
	}

	tDecoded := time.Now()
	in := e.db.NewIngest(kv.PrefixEvent, kv.PrefixEnd([]byte(kv.PrefixModifier)))
	metaFile, schemaFile, modFile := in.File(), in.File(), in.File()
	committed := false
	defer func() {
		if !committed {
			in.Abort()
		}
	}()
	evSorters, modSorters := d.events(), d.mods()
	// The sorted streams go to their sstables at the same time: the
	// modifiers, and the events cut in key ranges, one per core (each
	// range with its events' digests: mirrord:digest:{id} sorts as
	// event:{id} does, so the ranges' files do not overlap).
	splits, err := kv.SplitKeys(evSorters, decoders())
	if err != nil {
		return stepResult{}, err
	}
	bounds := append(append([][]byte{nil}, splits...), nil)
	var (
		wg      sync.WaitGroup
		nMods   int64
		modErr  error
		nEvents = make([]int64, len(bounds)-1)
		evErrs  = make([]error, len(bounds)-1)
	)
	wg.Add(len(bounds))
	go func() {
		defer wg.Done()
		nMods, modErr = writeModifiers(modSorters, modFile)
	}()
	for i := range nEvents {
		evFile, digestFile := in.File(), in.File()
		go func() {
			defer wg.Done()
			nEvents[i], evErrs[i] = writeEvents(evSorters, bounds[i], bounds[i+1], evFile, digestFile)
		}()
	}
	wg.Wait()
	if err := errors.Join(append(evErrs, modErr)...); err != nil {
		return stepResult{}, err
	}
	var nEventsAll int64
	for _, n := range nEvents {
		nEventsAll += n
	}

	cp := Checkpoint{
		Dev: st.Dev, Ino: st.Ino, Offset: d.end, Line: d.endLine,
		TailSum: hash64(d.fp.TailSum64()), PrefixSum: hash64(d.fp.Sum64()), State: d.fp.State(),
		Seq: e.cp.Seq + 1, Events: nEventsAll, Modifiers: nMods, Invalid: int64(d.invalid),
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
	tWritten := time.Now()
	if err := in.Commit(ctx); err != nil {
		return stepResult{}, fmt.Errorf("loading the log into the store: %w", err)
	}
	committed = true
	e.log.Debug("bulk load phases", "parts", len(d.parts), "ranges", len(bounds)-1, "decode", tDecoded.Sub(started),
		"write", tWritten.Sub(tDecoded), "ingest", time.Since(tWritten))

	e.cp, e.bulk, e.reconciling, e.held = &cp, false, false, nil
	e.doubt, e.verified = false, st
	a := Applied{Kind: "bulk", Seq: cp.Seq, Changed: int(nEventsAll), Puts: int(2*nEventsAll + nMods + 3),
		Offset: cp.Offset, Size: cp.Size, Events: cp.Events, Modifiers: cp.Modifiers,
		Invalid: d.invalid, Duration: time.Since(started)}
	e.log.Debug("applied a batch", "kind", a.Kind, "changed", a.Changed, "puts", a.Puts, "deletes", 0,
		"offset", cp.Offset, "events", cp.Events, "seq", cp.Seq)
	e.updateStatus(func(s *Status) { s.LastApply = a; s.LastError = "" })
	if e.opts.OnApply != nil {
		e.opts.OnApply(a)
	}
	e.log.Info("loaded the log", "events", cp.Events, "modifiers", cp.Modifiers, "invalid", cp.Invalid,
		"took", time.Since(started).Round(time.Millisecond))
	e.notePending(d.pending)
	return stepResult{action: actTail, caughtUp: true}, nil
}

// writeEvents writes the merged event records of [lo, hi) to their
// sstable, and each event's digest to another. Equal keys (an id that
// occurs more than once) arrive together, ordered by offset: the last
// occurrence wins.
func writeEvents(sorters []*kv.Sorter, lo, hi []byte, evFile, digestFile *kv.IngestFile) (int64, error) {
	var (
		n             int64
		held, heldVal []byte // the event held back, to see whether its key repeats
		key, val      []byte
	)
	emit := func() error {
		if held == nil {
			return nil
		}
		n++
		if err := evFile.Add(held, heldVal); err != nil {
			return err
		}
		key = kv.AppendDigestKeyOf(key[:0], held)
		val = appendDigestValue(val[:0], xxhash.Sum64(heldVal))
		return digestFile.Add(key, val)
	}
	err := kv.MergeRange(sorters, lo, hi, func(k, v []byte, seq uint64) error {
		if held == nil || string(k) != string(held) {
			if err := emit(); err != nil {
				return err
			}
		}
		held = append(held[:0], k...)
		heldVal = append(heldVal[:0], v...)
		return nil
	})
	if err == nil {
		err = emit()
	}
	return n, err
}

// writeModifiers writes the merged modifier records to their sstable,
// only those of each id's winning occurrence. Every occurrence of an
// event put a marker (key modifier:{id}:, seq its offset, no flag) before
// its modifiers (seq offset|modifierFlag): the markers of an id sort
// before all its modifiers, the last of them names the winner, so this
// stream needs nothing from the events' stream and runs beside it.
func writeModifiers(sorters []*kv.Sorter, modFile *kv.IngestFile) (int64, error) {
	var (
		n      int64
		owner  []byte // the marker key of the id whose modifiers follow
		winner uint64
	)
	err := kv.MergeEach(sorters, func(k, v []byte, seq uint64) error {
		if seq&modifierFlag == 0 {
			owner = append(owner[:0], k...)
			winner = seq // markers come in offset order: the last wins
			return nil
		}
		if !bytes.HasPrefix(k, owner) {
			return fmt.Errorf("bulk load: modifier %q without its event's marker", k)
		}
		if seq&^modifierFlag != winner {
			return nil // a modifier of an occurrence that lost
		}
		n++
		return modFile.Add(k, v)
	})
	return n, err
}
