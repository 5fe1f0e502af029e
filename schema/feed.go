package schema

import (
	"encoding/json"
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

// PruneChanges deletes the change-feed entries with a sequence number up
// to and including upTo, with one range tombstone.
func PruneChanges(db *kv.DB, upTo uint64) error {
	end := kv.PrefixEnd([]byte(PrefixChanges))
	if upTo < ^uint64(0) {
		end = []byte(ChangeKey(upTo + 1))
	}
	return db.DeleteRange([]byte(PrefixChanges), end)
}
