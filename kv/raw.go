package kv

import (
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// The byte-level reads below serve the mirror engine's hot paths (one
// lookup per applied event): keys as bytes, no string conversion, and a
// Get into the caller's buffer. Values come back exactly as stored, as
// from every read.

// GetBytes appends the value stored under key to dst. found is false for a
// missing key.
func (db *DB) GetBytes(key, dst []byte) (value []byte, found bool, err error) {
	if !db.enter() {
		return dst, false, db.closedError("GET " + string(key))
	}
	defer db.leave()
	v, closer, err := db.pdb.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return dst, false, nil
	}
	if err != nil {
		return dst, false, queryError(db.path, "GET "+string(key), err)
	}
	dst = append(dst, v...)
	return dst, true, closer.Close()
}

// ScanKeys calls fn with every key that starts with prefix, in order. The
// key is only valid until fn returns. If fn returns an error, ScanKeys
// stops and returns it unchanged.
func (db *DB) ScanKeys(prefix []byte, fn func(key []byte) error) error {
	if !db.enter() {
		return db.closedError(fmt.Sprintf("SCAN %s*", prefix))
	}
	defer db.leave()
	return scanRaw(db.pdb, db.path, prefix, func(k, _ []byte) error { return fn(k) })
}

// ScanRaw calls fn with every key that starts with prefix and its value,
// as stored: Scan with the key as bytes. Both are only valid until fn
// returns.
func (db *DB) ScanRaw(prefix []byte, fn func(key, value []byte) error) error {
	if !db.enter() {
		return db.closedError(fmt.Sprintf("SCAN %s*", prefix))
	}
	defer db.leave()
	return scanRaw(db.pdb, db.path, prefix, fn)
}

func scanRaw(r pebble.Reader, path string, prefix []byte, fn func(k, v []byte) error) error {
	err := iterate(r, string(prefix), "", func(it *pebble.Iterator) error {
		v, err := it.ValueAndErr()
		if err != nil {
			return err
		}
		if err := fn(it.Key(), v); err != nil {
			return stopped{err}
		}
		return nil
	})
	var s stopped
	if errors.As(err, &s) {
		return s.err
	}
	if err != nil {
		return queryError(path, fmt.Sprintf("SCAN %s*", prefix), err)
	}
	return nil
}
