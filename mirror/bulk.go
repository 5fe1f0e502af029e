package mirror

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/mirrord/mirrord/eventlog"
	"github.com/mirrord/mirrord/internal/extsort"
	"github.com/mirrord/mirrord/kv"
	"github.com/mirrord/mirrord/schema"
)

// LoadFeed is handed, by a bulk load, every event it stores as it writes
// it: the generators rebuild from the load's own sorted output, so that
// the log is read and parsed once for the mirror and for them, and their
// state goes into the store in the load's own atomic step.
type LoadFeed interface {
	// Start is called as the load begins writing, with the number of key
	// ranges it writes side by side. It returns one function per range,
	// called from that range's goroutine with each event's key, stored
	// value and where its date, type and input are in the value, in key
	// order.
	Start(ranges int) []func(key, value []byte, fields eventlog.FieldOffsets)
	// Finish is called once every event has been handed, before the load
	// is committed: what the feed adds to the load's files (from newFile,
	// one at a time; under the replaced range, apart from the load's own
	// keys) is put in place with it. seq is the change feed's reset entry
	// the load records. An error fails the load.
	Finish(ctx context.Context, seq uint64, newFile func() *kv.IngestFile) error
	// Done is called last, with whether the load was committed.
	Done(committed bool)
}

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
	if e.opts.BulkMemory != nil {
		defer e.opts.BulkMemory()()
	}
	prog := e.newProgress("load", 0, st.Size)
	var feed LoadFeed
	recs := bulkRecords
	if e.opts.LoadFeed != nil {
		if feed = e.opts.LoadFeed(); feed != nil {
			recs = fedRecords // the feed's events carry where their fields are
		}
	}
	d, err := e.decodeLog(ctx, f, st, prog, recs)
	if err != nil {
		return stepResult{}, err
	}
	defer d.close()
	if !e.unchangedSince(f, st, d.end, d.fp) {
		e.log.Debug("the log changed while being loaded; loading it again once it settles", "path", e.path)
		return stepResult{action: actAgain, wait: e.opts.Settle}, nil
	}

	tDecoded := time.Now()
	in := e.db.NewIngest(schema.PrefixEvent, kv.PrefixEnd([]byte(schema.PrefixModifier)))
	metaFile, schemaFile := in.File(), in.File()
	committed := false
	defer func() {
		if !committed {
			in.Abort()
		}
	}()
	evSorters, modSorters := d.events(), d.mods()
	// The sorted streams go to their sstables at the same time, cut in
	// key ranges, one per core: each range's events with their digests
	// (mirrord:digest:{id} sorts as event:{id} does, so the ranges' files
	// do not overlap), and beside them the same ids' modifiers.
	splits, err := extsort.SplitKeys(evSorters, decoders())
	if err != nil {
		return stepResult{}, err
	}
	bounds := append(append([][]byte{nil}, splits...), nil)
	rep := newRepeatedIDs(bounds)
	var sinks []func(key, value []byte, fields eventlog.FieldOffsets)
	if feed != nil {
		sinks = feed.Start(len(bounds) - 1)
		defer func() { feed.Done(committed) }()
	}
	var (
		wg      sync.WaitGroup
		nRanges = len(bounds) - 1
		nEvents = make([]int64, nRanges)
		nModsAt = make([]int64, nRanges)
		errs    = make([]error, 2*nRanges)
	)
	wg.Add(2 * nRanges)
	for i := range nRanges {
		evFile, digestFile := in.File(), in.File()
		w := eventWriter{events: evFile, digests: digestFile, fed: feed != nil}
		if sinks != nil {
			w.sink = sinks[i]
		}
		go func() {
			defer wg.Done()
			nEvents[i], errs[i] = writeEvents(evSorters, rep, i, w)
		}()
		// The modifiers of the same ids, each range beside its events'
		// (following them: see repeatedIDs), in a file of its own.
		modFile := in.File()
		go func() {
			defer wg.Done()
			nModsAt[i], errs[nRanges+i] = writeModifiers(modSorters, rep, modBound(bounds[i]), modBound(bounds[i+1]), modFile)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return stepResult{}, err
	}
	var nEventsAll, nMods int64
	for i := range nRanges {
		nEventsAll += nEvents[i]
		nMods += nModsAt[i]
	}

	cp := Checkpoint{
		Dev: st.Dev, Ino: st.Ino, Offset: d.end, Line: d.endLine,
		TailSum: hash64(d.fp.TailSum64()), PrefixSum: hash64(d.fp.Sum64()), State: d.fp.State(),
		Seq: e.cp.Seq + 1, Events: nEventsAll, Modifiers: nMods, Invalid: int64(d.invalid),
		Size: st.Size, MTime: st.MTime, AppliedAt: e.opts.Now().UTC(),
	}
	e.identify(&cp, st)
	// The bookkeeping inside the replaced range, in key order:
	// mirrord:changes:{seq} < mirrord:checkpoint < mirrord:digest:* <
	// mirrord:schema.
	for _, kv2 := range []struct {
		file *kv.IngestFile
		key  string
		v    any
	}{
		{metaFile, schema.ChangeKey(cp.Seq), schema.Change{Reset: true}},
		{metaFile, schema.CheckpointKey, &cp},
		{schemaFile, schema.SchemaKey, schemaRecord{Version: SchemaVersion}},
	} {
		b, err := json.Marshal(kv2.v)
		if err != nil {
			return stepResult{}, err
		}
		if err := kv2.file.Add([]byte(kv2.key), b); err != nil {
			return stepResult{}, err
		}
	}
	if feed != nil {
		// The generators fed put their state in the same step; those
		// not fed (or failing) rebuild afterwards, as the reset asks.
		if err := feed.Finish(ctx, cp.Seq, in.File); err != nil {
			return stepResult{}, fmt.Errorf("writing the generators' state beside the load: %w", err)
		}
	}
	tWritten := time.Now()
	if err := in.Commit(ctx); err != nil {
		return stepResult{}, fmt.Errorf("loading the log into the store: %w", err)
	}
	committed = true
	e.log.Debug("bulk load phases", "parts", len(d.parts), "ranges", nRanges, "decode", tDecoded.Sub(started),
		"write", tWritten.Sub(tDecoded), "ingest", time.Since(tWritten))

	e.cp, e.bulk, e.reconciling, e.held = &cp, false, false, nil
	e.doubt, e.verified = false, st
	a := Applied{Kind: "bulk", Seq: cp.Seq, Changed: int(nEventsAll), Puts: int(2*nEventsAll + nMods + 3),
		Offset: cp.Offset, Size: cp.Size, Events: cp.Events, Modifiers: cp.Modifiers,
		Invalid: d.invalid, Duration: time.Since(started)}
	e.updateStatus(func(s *Status) { s.LastApply = a; s.LastError = "" })
	if e.opts.OnApply != nil {
		e.opts.OnApply(a)
	}
	e.log.Debug("applied a batch", "kind", a.Kind, "changed", a.Changed, "puts", a.Puts, "deletes", 0,
		"offset", cp.Offset, "events", cp.Events, "seq", cp.Seq)
	e.log.Info("loaded the log", "events", cp.Events, "modifiers", cp.Modifiers, "invalid", cp.Invalid,
		"took", time.Since(started).Round(time.Millisecond))

	e.notePending(d.pending)
	return stepResult{action: actTail, caughtUp: true}, nil
}

// eventWriter is where writeEvents writes a range's events.
type eventWriter struct {
	events, digests *kv.IngestFile
	fed             bool // the records are fedRecords'
	sink            func(key, value []byte, fields eventlog.FieldOffsets)
}

// writeEvents writes the merged event records of range i of rep's ranges
// to their sstable, and each event's digest to another, and hands each
// event to the sink (when set). Equal keys (an id that occurs more than
// once) arrive together, ordered by offset: the last occurrence wins, and
// rep learns of it for the modifiers' writer.
func writeEvents(sorters []*extsort.Sorter, rep *repeatedIDs, i int, w eventWriter) (int64, error) {
	defer rep.finish(i)
	var (
		n             int64
		held, heldVal []byte // the event held back, to see whether its key repeats
		heldSeq       uint64
		again         bool // held's key came more than once
		key, val      []byte
	)
	emit := func() error {
		if held == nil {
			return nil
		}
		if again {
			rep.repeated(held, heldSeq)
			again = false
		}
		n++
		value := heldVal
		var fields eventlog.FieldOffsets
		if w.fed {
			var err error
			if fields, value, err = cutFieldOffsets(heldVal); err != nil {
				return err
			}
		}
		if err := w.events.Add(held, value); err != nil {
			return err
		}
		if w.sink != nil {
			w.sink(held, value, fields)
		}
		key = schema.AppendDigestKeyOf(key[:0], held)
		val = appendDigestValue(val[:0], xxhash.Sum64(value))
		return w.digests.Add(key, val)
	}
	err := extsort.MergeRange(sorters, rep.bounds[i], rep.bounds[i+1], func(k, v []byte, seq uint64) error {
		if held == nil || string(k) != string(held) {
			if err := emit(); err != nil {
				return err
			}
			// Every key before k is settled; telling the modifiers'
			// writer every so often is enough to keep it going.
			if n%512 == 0 {
				rep.settle(i, k)
			}
		} else {
			again = true
		}
		held = append(held[:0], k...)
		heldVal = append(heldVal[:0], v...)
		heldSeq = seq
		return nil
	})
	if err == nil {
		err = emit()
	}
	return n, err
}

// modBound returns the modifier key that bounds a range of modifier keys
// as the event key bound bounds the events' range (nil: unbounded). An
// id's modifiers can fall in the range after its event's, when the id is
// a prefix of the bound's; rep.lookup finds the right range for each.
func modBound(eventBound []byte) []byte {
	if eventBound == nil {
		return nil
	}
	return append([]byte(schema.PrefixModifier), eventBound[len(schema.PrefixEvent):]...)
}

// writeModifiers writes the merged modifier records of [lo, hi) (seq: the
// offset of their event) to their sstable: of an id that occurs once, all
// of them; of a repeated one, those of its winning occurrence only, which
// rep tells once the events' writers have got that far.
func writeModifiers(sorters []*extsort.Sorter, rep *repeatedIDs, lo, hi []byte, modFile *kv.IngestFile) (int64, error) {
	var (
		n             int64
		id, evKey     []byte // the escaped id whose modifiers these are, and its event key
		winner        uint64
		repeated, got bool
	)
	err := extsort.MergeRange(sorters, lo, hi, func(k, v []byte, seq uint64) error {
		seg := k[len(schema.PrefixModifier):]
		end := bytes.IndexByte(seg, ':') // escaped ids hold no ':'
		if end < 0 {
			return fmt.Errorf("bulk load: malformed modifier key %q", k)
		}
		if !got || string(seg[:end]) != string(id) {
			id = append(id[:0], seg[:end]...)
			evKey = append(append(evKey[:0], schema.PrefixEvent...), id...)
			winner, repeated = rep.lookup(evKey)
			got = true
		}
		if repeated && seq != winner {
			return nil // a modifier of an occurrence that lost
		}
		n++
		return modFile.Add(k, v)
	})
	return n, err
}
