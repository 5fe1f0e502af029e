package schema

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/mirrord/mirrord/kv"
)

// Change is one entry of the change feed, "mirrord:changes:{seq}": the ids
// of the events one applied batch put or deleted, each with its
// before-image, or Reset when everything may have changed (a resync or a
// first load finished). The mirror engine writes it in the same batch as
// the data; generators read it.
type Change struct {
	Seq uint64   `json:"-"`
	IDs []string `json:"ids,omitempty"`
	// Before holds, for each of IDs, the event as the mirror held it
	// before the batch (its stored JSON), or null for an id it did not
	// hold: with it a generator takes back what the event contributed
	// without keeping an index of its own. Entries written before the
	// feed recorded it have none (HasBefore is false).
	Before []json.RawMessage `json:"before,omitempty"`
	Reset  bool              `json:"reset,omitempty"`
}

// HasBefore reports whether the entry records a before-image for each of
// its ids.
func (c *Change) HasBefore() bool { return len(c.Before) == len(c.IDs) }

// BeforeOf returns the before-image of IDs[i]: the stored event, or nil
// when the mirror did not hold it (or the entry records none).
func (c *Change) BeforeOf(i int) []byte {
	if i >= len(c.Before) {
		return nil
	}
	if b := c.Before[i]; len(b) > 0 && string(b) != "null" {
		return b
	}
	return nil
}

// Changes calls fn for every change-feed entry with a sequence number
// greater than after, in order. r is the DB or a snapshot of it.
func Changes(r kv.Reader, after uint64, fn func(Change) error) error {
	return r.ScanFrom(PrefixChanges, ChangeKey(after+1), func(key string, value json.RawMessage) error {
		seq, err := ParseChangeKey(key)
		if err != nil {
			return err
		}
		c := Change{Seq: seq}
		if err := json.Unmarshal(value, &c); err != nil {
			return fmt.Errorf("change-feed entry %s: %w", key, err)
		}
		return fn(c)
	})
}

// pruneByKey is how many entries PruneChanges deletes one by one; more go
// with one range tombstone.
const pruneByKey = 64

// PruneChanges deletes the change-feed entries with a sequence number up
// to and including upTo. The few entries a following daemon's generators
// leave behind each time (one an append) go by point deletions: a range
// tombstone for each made every read of the store slower while the
// memtable held them (each read fragments them all again), a few
// milliseconds of CPU an append after a few hundred. A backlog goes with
// one range tombstone; nothing to prune writes nothing.
func PruneChanges(db *kv.DB, upTo uint64) error {
	end := kv.PrefixEnd([]byte(PrefixChanges))
	if upTo < ^uint64(0) {
		end = []byte(ChangeKey(upTo + 1))
	}
	var keys [][]byte
	errMany := errors.New("many")
	err := db.ScanKeys([]byte(PrefixChanges), func(k []byte) error {
		if string(k) >= string(end) {
			return errStopScan
		}
		if len(keys) == pruneByKey {
			return errMany
		}
		keys = append(keys, bytes.Clone(k))
		return nil
	})
	switch {
	case errors.Is(err, errMany):
		return db.DeleteRange([]byte(PrefixChanges), end)
	case err != nil && !errors.Is(err, errStopScan):
		return err
	case len(keys) == 0:
		return nil
	}
	wb := db.NewWriteBatch()
	defer wb.Close()
	for _, k := range keys {
		wb.Delete(k)
	}
	return wb.Commit()
}

var errStopScan = errors.New("stop")
