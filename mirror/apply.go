package mirror

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/mirrord/mirrord/eventlog"
	"github.com/mirrord/mirrord/schema"
)

// upsert is an event to store as it stands in the log.
type upsert struct {
	id   []byte
	raw  []byte // compacted object
	mods []eventlog.RawModifier
}

// batch is one atomic write: events to put, events to delete, and the
// checkpoint that covers them.
type batch struct {
	kind    string
	upserts []upsert
	deletes [][]byte // event ids
	cp      Checkpoint
	invalid int

	setReconcileMarker   bool
	clearReconcileMarker bool
	finishBulk           bool // clear the resync marker, record a reset in the feed
	started              time.Time
}

// commit writes the batch atomically: the data, the change-feed entry and
// the checkpoint together. Only after the commit succeeds does the engine
// adopt the new checkpoint, so a failure never advances it.
// aliveEvery is how many modifiers one apply writes between heartbeats:
// about a tenth of a second's work.
const aliveEvery = 32 << 10

func (e *Engine) commit(b *batch) (Applied, error) {
	wb := e.db.NewWriteBatch()
	defer wb.Close()
	var (
		key, dkey, val, scratch []byte
		changed                 []string
		before                  []json.RawMessage // of each changed id: what the mirror held, for the feed
		dEvents, dMods          int64
	)
	// beforeImage is the stored event id, for the feed (nil when the
	// batch records no entry: during a bulk load).
	beforeImage := func(id []byte) (json.RawMessage, error) {
		if e.bulk {
			return nil, nil
		}
		v, _, err := e.db.GetBytes(schema.AppendEventKey(nil, id), nil)
		return v, err
	}
	for _, u := range b.upserts {
		digest := xxhash.Sum64(u.raw)
		dkey = schema.AppendDigestKey(dkey[:0], u.id)
		old, found, err := e.db.GetBytes(dkey, scratch[:0])
		if err != nil {
			return Applied{}, err
		}
		scratch = old
		if found {
			if h, ok := parseDigestValue(old); ok && h == digest {
				continue // stored exactly like this already
			}
		}
		var (
			oldMods map[string]bool
			prev    json.RawMessage
		)
		if found {
			if oldMods, err = e.modifierKeys(u.id); err != nil {
				return Applied{}, err
			}
			if prev, err = beforeImage(u.id); err != nil {
				return Applied{}, err
			}
		} else {
			dEvents++
		}
		key = schema.AppendEventKey(key[:0], u.id)
		wb.PutRaw(key, u.raw)
		val = appendDigestValue(val[:0], digest)
		wb.PutRaw(dkey, val)
		for i, m := range u.mods {
			if i%aliveEvery == aliveEvery-1 {
				e.alive() // one value may hold a million modifiers
			}
			key = schema.AppendModifierKey(key[:0], u.id, m.Name)
			val = append(append(append(val[:0], `{"value":`...), m.Value...), '}')
			wb.PutRaw(key, val)
			if oldMods[string(key)] {
				delete(oldMods, string(key))
			} else {
				dMods++
			}
		}
		for k := range oldMods {
			wb.Delete([]byte(k))
			dMods--
		}
		changed = append(changed, string(u.id))
		before = append(before, prev)
	}
	for _, id := range b.deletes {
		dkey = schema.AppendDigestKey(dkey[:0], id)
		_, found, err := e.db.GetBytes(dkey, scratch[:0])
		if err != nil {
			return Applied{}, err
		}
		if !found {
			continue
		}
		mods, err := e.modifierKeys(id)
		if err != nil {
			return Applied{}, err
		}
		prev, err := beforeImage(id)
		if err != nil {
			return Applied{}, err
		}
		for k := range mods {
			wb.Delete([]byte(k))
		}
		wb.Delete(schema.AppendEventKey(key[:0], id))
		wb.Delete(dkey)
		dEvents--
		dMods -= int64(len(mods))
		changed = append(changed, string(id))
		before = append(before, prev)
	}

	cp := b.cp
	cp.Events += dEvents
	cp.Modifiers += dMods
	cp.Invalid += int64(b.invalid)
	cp.AppliedAt = e.opts.Now().UTC()
	var seq uint64
	if len(changed) > 0 && !e.bulk {
		cp.Seq++
		seq = cp.Seq
		wb.Put(schema.ChangeKey(seq), schema.Change{IDs: changed, Before: before})
	}
	if b.finishBulk {
		cp.Seq++
		seq = cp.Seq
		wb.Put(schema.ChangeKey(seq), schema.Change{Reset: true})
		wb.Delete([]byte(schema.ResyncMarkerKey))
	}
	if b.setReconcileMarker {
		wb.Put(schema.ReconcileMarkerKey, markerRecord{Started: cp.AppliedAt, Reason: "reconcile spanning several batches"})
	}
	if b.clearReconcileMarker {
		wb.Delete([]byte(schema.ReconcileMarkerKey))
	}
	wb.Put(schema.CheckpointKey, &cp)
	puts, dels := wb.Puts(), wb.Deletes()
	if err := wb.Commit(); err != nil {
		return Applied{}, fmt.Errorf("applying %d events to the store: %w", len(b.upserts)+len(b.deletes), err)
	}

	e.cp = &cp
	if b.setReconcileMarker {
		e.reconciling = true
	}
	if b.clearReconcileMarker {
		e.reconciling = false
	}
	if b.finishBulk {
		e.bulk = false
	}
	a := Applied{
		Kind: b.kind, Seq: seq, Changed: len(changed), Puts: puts, Deletes: dels,
		Offset: cp.Offset, Size: cp.Size, Events: cp.Events, Modifiers: cp.Modifiers,
		Invalid: b.invalid, Duration: time.Since(b.started),
	}
	e.updateStatus(func(s *Status) { s.LastApply = a; s.LastError = "" })
	if e.opts.OnApply != nil {
		e.opts.OnApply(a)
	}
	// Logged once the status says so: a reader woken by the line finds it.
	e.log.Debug("applied a batch", "kind", a.Kind, "changed", a.Changed, "puts", puts, "deletes", dels,
		"offset", cp.Offset, "events", cp.Events, "seq", seq)
	return a, nil
}

// modifierKeys returns the keys of the stored modifiers of event id.
func (e *Engine) modifierKeys(id []byte) (map[string]bool, error) {
	var keys map[string]bool
	err := e.db.ScanKeys(schema.AppendModifiersOf(nil, id), func(k []byte) error {
		if keys == nil {
			keys = map[string]bool{}
		}
		keys[string(k)] = true
		return nil
	})
	return keys, err
}
