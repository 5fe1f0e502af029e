package generators

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/mirrord/mirrord/eventlog"
	"github.com/mirrord/mirrord/internal/synth"
)

// handed records, by generator name, the event each rebuild handed it for
// each id: id → *eventlog.Event.
var handed sync.Map // string → *sync.Map

// recorder remembers the events a rebuild hands it.
type recorder struct{ name string }

func (r recorder) Update(_ context.Context, in *Input, _ *Scope) error {
	m, _ := handed.LoadOrStore(r.name, &sync.Map{})
	return in.Events(func(id string, ev *eventlog.Event) error {
		if in.Rebuild {
			m.(*sync.Map).Store(id, ev)
		}
		return nil
	})
}

func init() {
	Register("test-record-a", func() Generator { return recorder{"test-record-a"} })
	Register("test-record-b", func() Generator { return recorder{"test-record-b"} })
}

// Generators rebuilt together read the mirror once: one scan, each event
// parsed once and the same parse handed to each of them (a second scan,
// or a parse of its own, would hand the other a different *Event).
func TestRebuildScansAndParsesOnceForAll(t *testing.T) {
	// Nobody is left to read alone because a loaded machine was slow to
	// start it: the session waits for both.
	defer func(a, b, c time.Duration) { joinWait, notReading, slowReader = a, b, c }(joinWait, notReading, slowReader)
	joinWait, notReading, slowReader = time.Minute, time.Minute, time.Minute
	names := []string{"test-record-a", "test-record-b"}
	e := newEnv(t, Options{Enabled: names})
	const n = 3000 // several batches
	e.appendEvents(synth.New(41).Events(n)...)
	e.sync()
	for _, name := range names {
		handed.Delete(name)
		if err := MarkRebuild(e.db, name); err != nil {
			t.Fatal(err)
		}
	}
	e.sync()
	seen := func(name string) map[string]*eventlog.Event {
		m := map[string]*eventlog.Event{}
		if s, ok := handed.Load(name); ok {
			s.(*sync.Map).Range(func(k, v any) bool {
				m[k.(string)] = v.(*eventlog.Event)
				return true
			})
		}
		return m
	}
	a, b := seen(names[0]), seen(names[1])
	if len(a) != n || len(b) != n {
		t.Fatalf("the rebuild handed %d and %d events, want %d each", len(a), len(b), n)
	}
	for id, ev := range a {
		if b[id] != ev {
			t.Fatalf("event %s was parsed for each generator apart (or read twice), not once for both", id)
		}
	}
}
