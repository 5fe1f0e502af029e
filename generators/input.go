package generators

import (
	"encoding/json"
	"fmt"
	"sync"

	"github.com/mirrord/mirrord/eventlog"
	"github.com/mirrord/mirrord/kv"
	"github.com/mirrord/mirrord/schema"
)

// Input is what one run of a generator works from: the events that
// changed since its last run, each with what it was then and what it is
// now, or (Rebuild) every event of the mirror.
type Input struct {
	// Rebuild asks for a recomputation from the whole mirror: out starts
	// empty (everything the generator wrote before is being replaced).
	Rebuild bool
	// IDs are the events put or deleted since the last successful run,
	// each once, sorted; nil when Rebuild is set.
	IDs []string
	// View is a consistent snapshot of the mirror: event:, modifier: and
	// generated: keys (the kv read API).
	View kv.Reader

	changes []change // of IDs, in the same order

	mu      sync.Mutex
	current string // the event being processed, for reports
}

// change is one event's change over a run, as stored JSON: before as the
// mirror held it at the generator's position, after as it holds it at
// the run's (nil: not in the mirror).
type change struct {
	id            string
	before, after []byte
}

// Changes calls fn with each event changed since the generator's last
// run: its id, the event as it stood then (nil: it was not in the
// mirror) and as it stands now (nil: deleted). An event changed several
// times is handed once, with the first and the last of its versions. In
// a rebuild, every event of the mirror, with before nil. A generator that
// only needs to take back what an event contributed (counts, sums, sets
// keyed by one of its fields) thus keeps no index of its own. A panic or
// an error inside fn is reported with that event's id.
func (in *Input) Changes(fn func(id string, before, after *eventlog.Event) error) error {
	return in.each(func(id string, before, after []byte) error {
		b, err := parseStored(before)
		if err != nil {
			return err
		}
		a, err := parseStored(after)
		if err != nil {
			return err
		}
		return fn(id, b, a)
	})
}

// FieldChanges is Changes with each version's Fields (its date, type and
// input) instead of the whole event: they are read from the stored JSON
// without decoding the rest, several times faster than a full parse, and
// all the built-in generators need.
func (in *Input) FieldChanges(fn func(id string, before, after *Fields) error) error {
	return in.each(func(id string, before, after []byte) error {
		b, err := storedFields(before)
		if err != nil {
			return err
		}
		a, err := storedFields(after)
		if err != nil {
			return err
		}
		return fn(id, b, a)
	})
}

// Events calls fn with each changed event as it stands now, or with a nil
// event when it was deleted; in a rebuild, with every event. A panic or
// an error inside fn is reported with that event's id.
func (in *Input) Events(fn func(id string, ev *eventlog.Event) error) error {
	return in.each(func(id string, _, after []byte) error {
		ev, err := parseStored(after)
		if err != nil {
			return err
		}
		return fn(id, ev)
	})
}

// each calls fn with every change of the run as stored JSON, naming the
// event in what fn returns and in a panic's report.
func (in *Input) each(fn func(id string, before, after []byte) error) error {
	call := func(id string, before, after []byte) error {
		in.setCurrent(id)
		if err := fn(id, before, after); err != nil {
			return WithEvent(id, err)
		}
		in.setCurrent("")
		return nil
	}
	if !in.Rebuild {
		for _, c := range in.changes {
			if err := call(c.id, c.before, c.after); err != nil {
				return err
			}
		}
		return nil
	}
	each := func(key string, raw []byte) error {
		k, err := schema.ParseKey(key)
		if err != nil {
			return err
		}
		return call(k.ID, nil, raw)
	}
	// The events are checked where they are parsed, so the views that
	// can skip Scan's own check of the grammar do: a second pass over
	// every event, a tenth of the CPU of a rebuild.
	if v, ok := in.View.(rawScanner); ok {
		return v.ScanRaw([]byte(schema.PrefixEvent), func(key, raw []byte) error { return each(string(key), raw) })
	}
	return in.View.Scan(schema.PrefixEvent, func(key string, raw json.RawMessage) error { return each(key, raw) })
}

// rawScanner is what kv.DB and kv.Snapshot offer beyond kv.Reader: a Scan
// that hands values over unchecked.
type rawScanner interface {
	ScanRaw(prefix []byte, fn func(key, value []byte) error) error
}

// parseStored parses a stored event (nil for nil).
func parseStored(raw []byte) (*eventlog.Event, error) {
	if raw == nil {
		return nil, nil
	}
	ev, err := eventlog.ParseEvent(raw)
	if err != nil {
		return nil, fmt.Errorf("stored event is not valid: %w", err)
	}
	return ev, nil
}

// Event returns the event as it stands in the mirror, or nil when there is
// none.
func (in *Input) Event(id string) (*eventlog.Event, error) {
	var raw json.RawMessage
	found, err := in.View.Get(schema.EventKey(id), &raw)
	if err != nil || !found {
		return nil, err
	}
	return parseStored(raw)
}

func (in *Input) setCurrent(id string) {
	in.mu.Lock()
	in.current = id
	in.mu.Unlock()
}

func (in *Input) currentID() string {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.current
}
