package generators

import (
	"context"
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

	// In a streamed rebuild: the session's stream of events, and the
	// run's context.
	stream *member
	ctx    context.Context

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

// item is one change handed to a generator: stored JSON, and in a
// streamed rebuild the batch that caches its parses.
type item struct {
	id            string
	before, after []byte
	batch         *eventBatch
	i             int
}

func (it item) afterEvent() (*eventlog.Event, error) {
	if it.batch != nil {
		return it.batch.eventOf(it.i)
	}
	return parseStored(it.after)
}

func (it item) afterFields() (*Fields, error) {
	if it.batch != nil {
		return it.batch.fieldsOf(it.i)
	}
	return storedFields(it.after)
}

// Changes calls fn with each event changed since the generator's last
// run: its id, the event as it stood then (nil: it was not in the
// mirror) and as it stands now (nil: deleted). An event changed several
// times is handed once, with the first and the last of its versions. In
// a rebuild, every event of the mirror, with before nil. A generator that
// only needs to take back what an event contributed (counts, sums, sets
// keyed by one of its fields) thus keeps no index of its own. The events
// are the generator's to read, not to change: in a rebuild they are
// shared with the other generators. A panic or an error inside fn is
// reported with that event's id.
func (in *Input) Changes(fn func(id string, before, after *eventlog.Event) error) error {
	return in.each(func(it item) error {
		b, err := parseStored(it.before)
		if err != nil {
			return err
		}
		a, err := it.afterEvent()
		if err != nil {
			return err
		}
		return fn(it.id, b, a)
	})
}

// FieldChanges is Changes with each version's Fields (its date, type and
// input) instead of the whole event: they are read from the stored JSON
// without decoding the rest, several times faster than a full parse, and
// all the built-in generators need.
func (in *Input) FieldChanges(fn func(id string, before, after *Fields) error) error {
	return in.each(func(it item) error {
		b, err := storedFields(it.before)
		if err != nil {
			return err
		}
		a, err := it.afterFields()
		if err != nil {
			return err
		}
		return fn(it.id, b, a)
	})
}

// Events calls fn with each changed event as it stands now, or with a nil
// event when it was deleted; in a rebuild, with every event (shared with
// the other generators: not to be changed). A panic or an error inside fn
// is reported with that event's id.
func (in *Input) Events(fn func(id string, ev *eventlog.Event) error) error {
	return in.each(func(it item) error {
		ev, err := it.afterEvent()
		if err != nil {
			return err
		}
		return fn(it.id, ev)
	})
}

// each calls fn with every change of the run, naming the event in what fn
// returns and in a panic's report.
func (in *Input) each(fn func(it item) error) error {
	call := func(it item) error {
		in.setCurrent(it.id)
		if err := fn(it); err != nil {
			return WithEvent(it.id, err)
		}
		in.setCurrent("")
		return nil
	}
	if !in.Rebuild {
		for _, c := range in.changes {
			if err := call(item{id: c.id, before: c.before, after: c.after}); err != nil {
				return err
			}
		}
		return nil
	}
	if in.stream != nil {
		ctx := in.ctx
		if ctx == nil {
			ctx = context.Background()
		}
		snap, _ := in.View.(*kv.Snapshot) // nil beside a load
		return in.stream.each(ctx, snap, call)
	}
	if snap, ok := in.View.(*kv.Snapshot); ok {
		return eachStored(snap, "", call)
	}
	return in.View.Scan(schema.PrefixEvent, func(key string, raw json.RawMessage) error {
		k, err := schema.ParseKey(key)
		if err != nil {
			return err
		}
		return call(item{id: k.ID, after: raw})
	})
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
