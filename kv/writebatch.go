package kv

import (
	"encoding/json"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// WriteBatch is the low-level atomic write used by the mirror engine: it
// takes keys and values as bytes (built with the Append*Key functions), so
// that a chunk of thousands of events costs no per-key allocation, and it
// counts what it writes. Nothing is visible until Commit, and Commit applies
// everything or nothing. A WriteBatch is not safe for concurrent use.
type WriteBatch struct {
	db   *DB
	b    *pebble.Batch
	puts int
	dels int
	err  error // first failure; reported by Commit
	done bool
}

// NewWriteBatch starts an empty batch.
func (db *DB) NewWriteBatch() *WriteBatch {
	return &WriteBatch{db: db, b: db.pdb.NewBatch()}
}

func (w *WriteBatch) fail(err error) {
	if w.err == nil {
		w.err = err
	}
}

// PutRaw stores value under key. The caller guarantees that value is valid
// JSON (the engine's values come from a validating parser); key and value
// are copied.
func (w *WriteBatch) PutRaw(key, value []byte) {
	if len(key) == 0 {
		w.fail(fmt.Errorf("op %d: empty key", w.puts+w.dels))
		return
	}
	if err := w.b.Set(key, value, nil); err != nil {
		w.fail(err)
	}
	w.puts++
}

// Put stores value, encoded as JSON, under key.
func (w *WriteBatch) Put(key string, value any) {
	v, err := json.Marshal(value)
	if err != nil {
		w.fail(fmt.Errorf("PUT %s: encoding value: %w", key, err))
		return
	}
	w.PutRaw([]byte(key), v)
}

// Delete deletes key.
func (w *WriteBatch) Delete(key []byte) {
	if err := w.b.Delete(key, nil); err != nil {
		w.fail(err)
	}
	w.dels++
}

// DeletePrefix deletes every key that starts with prefix, with one range
// tombstone; it counts as one deletion.
func (w *WriteBatch) DeletePrefix(prefix string) {
	if err := w.b.DeleteRange([]byte(prefix), PrefixEnd([]byte(prefix)), nil); err != nil {
		w.fail(err)
	}
	w.dels++
}

// Puts returns the number of keys the batch stores.
func (w *WriteBatch) Puts() int { return w.puts }

// Deletes returns the number of deletions in the batch.
func (w *WriteBatch) Deletes() int { return w.dels }

// Len returns the number of operations in the batch.
func (w *WriteBatch) Len() int { return w.puts + w.dels }

// Size returns the batch's encoded size in bytes.
func (w *WriteBatch) Size() int { return w.b.Len() }

// Commit applies the batch atomically and releases it. A batch that
// recorded a failure applies nothing and reports it.
func (w *WriteBatch) Commit() error {
	query := fmt.Sprintf("BATCH %d ops", w.Len())
	if w.done {
		return queryError(w.db.path, query, fmt.Errorf("batch already committed or closed"))
	}
	defer w.Close()
	if w.err != nil {
		return queryError(w.db.path, query, w.err)
	}
	return w.db.write(query, func() error {
		w.done = true // from here the batch is Pebble's
		err := w.b.Commit(w.db.wo)
		_ = w.b.Close()
		return err
	})
}

// Close discards the batch if it was not committed. It is safe to call more
// than once.
func (w *WriteBatch) Close() {
	if !w.done {
		w.done = true
		_ = w.b.Close()
	}
}
