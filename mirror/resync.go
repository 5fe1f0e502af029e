package mirror

import (
	"context"
	"fmt"
	"time"

	"github.com/mirrord/mirrord/schema"
)

// A bulk load (a resync, or the first load of an empty store) runs behind
// the resync marker, mirrord:resync. While it is present the store is
// being rebuilt: batches record no change-feed entries, and the batch
// that reaches the end of the log removes the marker and records one
// "reset" entry, which tells every generator to rebuild. A crash in
// between leaves the marker, so the store never looks finished when it is
// not; the next start continues the load from its checkpoint.

// beginBulk marks the start of a first load on an empty store.
func (e *Engine) beginBulk(reason string) error {
	wb := e.db.NewWriteBatch()
	defer wb.Close()
	now := e.opts.Now().UTC()
	wb.Put(schema.ResyncMarkerKey, markerRecord{Started: now, Reason: reason})
	cp := Checkpoint{Line: 1, AppliedAt: now}
	if e.cp != nil {
		cp.Seq = e.cp.Seq // sequence numbers never go back
	}
	wb.Put(schema.CheckpointKey, &cp)
	if err := wb.Commit(); err != nil {
		return err
	}
	e.cp, e.bulk, e.reconciling = &cp, true, false
	e.log.Info("loading the log into the store", "path", e.path, "reason", reason)
	return nil
}

// present returns nil when the log exists, and otherwise why it cannot
// be read: ErrLogMissing when it does not exist.
func (e *Engine) present(ctx context.Context) error {
	if e.git != nil {
		return e.gitPresent(ctx)
	}
	f, err := openLog(e.path)
	if isNotExist(err) {
		return fmt.Errorf("%w: %s (the store is kept as it is; resync once the log is back)", ErrLogMissing, e.path)
	}
	if err != nil {
		return fmt.Errorf("opening the event log: %w (the store is kept as it is)", err)
	}
	return f.Close()
}

// Resync rebuilds the store from scratch: with the resync marker set, it
// replaces every event, modifier, generated value and the bookkeeping by a
// fresh load of the whole log, in one atomic step (see bulkLoad). Like
// Sync, it returns once the store reflects the log.
func (e *Engine) Resync(ctx context.Context) error {
	// A missing or unreadable log never empties the mirror: look before
	// clearing anything.
	detach, err := e.attach()
	if err != nil {
		return err
	}
	defer detach()
	if err := e.present(ctx); err != nil {
		return err
	}
	// The marker, and a checkpoint at the start of the log: the bulk load
	// then replaces the whole mirror (events, modifiers, generated values,
	// bookkeeping) in one atomic step. Until it does, the old state stays
	// readable, marked as being rebuilt.
	wb := e.db.NewWriteBatch()
	defer wb.Close()
	now := e.opts.Now().UTC()
	wb.Put(schema.ResyncMarkerKey, markerRecord{Started: now, Reason: "--resync"})
	cp := Checkpoint{Line: 1, AppliedAt: now}
	if e.cp != nil {
		cp.Seq = e.cp.Seq
	}
	wb.Put(schema.CheckpointKey, &cp)
	if err := wb.Commit(); err != nil {
		return err
	}
	e.cp, e.bulk, e.reconciling, e.held = &cp, true, false, nil
	e.log.Info("resync: rebuilding the store from the whole log", "path", e.path)
	started := time.Now()
	if err := e.Sync(ctx); err != nil {
		return err
	}
	e.updateStatus(func(s *Status) { s.Resyncs++ })
	e.log.Info("resync complete", "events", e.cp.Events, "modifiers", e.cp.Modifiers,
		"invalid", e.cp.Invalid, "took", time.Since(started).Round(time.Millisecond))
	return nil
}
