package schema

import (
	"encoding/json"
	"fmt"

	"github.com/mirrord/mirrord/kv"
)

// Change is one entry of the change feed, "mirrord:changes:{seq}": the ids
// of the events one applied batch put or deleted, or Reset when everything
// may have changed (a resync or a first load finished). The mirror engine
// writes it in the same batch as the data; generators read it.
type Change struct {
	Seq   uint64   `json:"-"`
	IDs   []string `json:"ids,omitempty"`
	Reset bool     `json:"reset,omitempty"`
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
