package kv

import (
	"encoding/json"
	"fmt"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
)

// Snapshot is a consistent, read-only view of the store at the moment it
// was taken: writes made afterwards are invisible to it. Use one when
// several reads must agree with each other (an event and its modifiers, a
// generator's whole pass). Close it when done; DB.Close closes any snapshot
// still open, after which its methods return ErrQuery.
type Snapshot struct {
	db     *DB
	snap   *pebble.Snapshot
	closed atomic.Bool // set under db.mu
}

// Snapshot takes a consistent read view of the store.
func (db *DB) Snapshot() (*Snapshot, error) {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.closed.Load() {
		return nil, db.closedError("SNAPSHOT")
	}
	s := &Snapshot{db: db, snap: db.pdb.NewSnapshot()}
	db.snaps[s] = struct{}{}
	return s, nil
}

// enter admits an operation while both the snapshot and its store are open.
func (s *Snapshot) enter() bool {
	if !s.db.enter() {
		return false
	}
	if s.closed.Load() {
		s.db.leave()
		return false
	}
	return true
}

// Close releases the snapshot. It is safe to call more than once.
func (s *Snapshot) Close() error {
	db := s.db
	db.mu.Lock()
	if s.closed.Load() || db.closed.Load() {
		db.mu.Unlock()
		return nil
	}
	s.closed.Store(true)
	delete(db.snaps, s)
	// Count the release as an operation so that DB.Close waits for it
	// (Close cannot set closed while db.mu is held here).
	db.active.Add(1)
	db.mu.Unlock()
	defer db.leave()
	if err := s.snap.Close(); err != nil {
		return queryError(db.path, "SNAPSHOT CLOSE", err)
	}
	return nil
}

// Get is DB.Get on the snapshot.
func (s *Snapshot) Get(key string, dst any) (bool, error) {
	if !s.enter() {
		return false, s.db.closedError("GET " + key)
	}
	defer s.db.leave()
	return get(s.snap, s.db.path, key, dst)
}

// Keys is DB.Keys on the snapshot.
func (s *Snapshot) Keys(prefix string) ([]string, error) {
	if !s.enter() {
		return nil, s.db.closedError("KEYS " + prefix + "*")
	}
	defer s.db.leave()
	return keys(s.snap, s.db.path, prefix)
}

// GetAll is DB.GetAll on the snapshot.
func (s *Snapshot) GetAll(prefix string) ([]json.RawMessage, error) {
	if !s.enter() {
		return nil, s.db.closedError("GETALL " + prefix + "*")
	}
	defer s.db.leave()
	return getAll(s.snap, s.db.path, prefix)
}

// Scan is DB.Scan on the snapshot.
func (s *Snapshot) Scan(prefix string, fn func(key string, value json.RawMessage) error) error {
	return s.ScanFrom(prefix, "", fn)
}

// ScanFrom is DB.ScanFrom on the snapshot.
func (s *Snapshot) ScanFrom(prefix, start string, fn func(key string, value json.RawMessage) error) error {
	if !s.enter() {
		return s.db.closedError("SCAN " + prefix + "*")
	}
	defer s.db.leave()
	return scan(s.snap, s.db.path, prefix, start, fn)
}

// ScanRaw is DB.ScanRaw on the snapshot.
func (s *Snapshot) ScanRaw(prefix []byte, fn func(key, value []byte) error) error {
	if !s.enter() {
		return s.db.closedError(fmt.Sprintf("SCAN %s*", prefix))
	}
	defer s.db.leave()
	return scanRaw(s.snap, s.db.path, prefix, fn)
}
