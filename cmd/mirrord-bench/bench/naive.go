package bench

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/cockroachdb/pebble/v2"
	"github.com/mirrord/mirrord/schema"
)

// naiveEvent is the application's event as a naive Go program declares
// it. Field order follows the writer's, so the re-encoded value equals the
// compacted object mirrord stores.
type naiveEvent struct {
	ID          string            `json:"id"`
	Date        string            `json:"date"`
	Original    string            `json:"original"`
	Input       string            `json:"input"`
	Modifiers   map[string]string `json:"modifiers,omitempty"`
	Type        string            `json:"type"`
	Description string            `json:"description"`
	Creator     struct {
		Name    string `json:"name"`
		UUID    string `json:"uuid"`
		Version string `json:"version"`
	} `json:"creator"`
}

// naiveLoad is the baseline the issue names: encoding/json into structs and
// Pebble batches of 1000 events with default options, the same keys and
// values as mirrord writes. It is what a straightforward Go port of the
// original module would do.
func naiveLoad(logPath, store string) (int, error) {
	f, err := os.Open(logPath)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	db, err := pebble.Open(store, &pebble.Options{})
	if err != nil {
		return 0, err
	}
	dec := json.NewDecoder(bufio.NewReaderSize(f, 1<<16))
	var (
		val    bytes.Buffer
		enc    = json.NewEncoder(&val)
		batch  = db.NewBatch()
		events int
	)
	enc.SetEscapeHTML(false) // as JSON.stringify
	put := func(key []byte, v any) error {
		val.Reset()
		if err := enc.Encode(v); err != nil {
			return err
		}
		return batch.Set(key, bytes.TrimSuffix(val.Bytes(), []byte("\n")), nil)
	}
	for {
		var ev naiveEvent
		if err := dec.Decode(&ev); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			db.Close()
			return events, fmt.Errorf("%s: %w", logPath, err)
		}
		if err := put(schema.AppendEventKey(nil, ev.ID), &ev); err != nil {
			db.Close()
			return events, err
		}
		for name, value := range ev.Modifiers {
			if err := put(schema.AppendModifierKey(nil, ev.ID, name), struct {
				Value string `json:"value"`
			}{value}); err != nil {
				db.Close()
				return events, err
			}
		}
		events++
		if events%1000 == 0 {
			if err := batch.Commit(pebble.NoSync); err != nil {
				db.Close()
				return events, err
			}
			batch = db.NewBatch()
		}
	}
	if err := batch.Commit(pebble.Sync); err != nil {
		db.Close()
		return events, err
	}
	return events, db.Close()
}
