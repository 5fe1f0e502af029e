package generators

import (
	"testing"

	"github.com/mirrord/mirrord/eventlog"
)

// Sequences that TestIncrementalEqualsFromScratch once found failing,
// replayed by name (they were rapid fail files, which rapid ignores once
// its version or the property's draws change).

// regressionStep changes the log: appends, or a rewrite to evs.
type regressionStep struct {
	appendEvs []*eventlog.Event
	rewrite   []*eventlog.Event
}

func ev(id, date, typ, input string) *eventlog.Event {
	return &eventlog.Event{ID: id, Date: date, Type: typ, Input: input, Creator: eventlog.Creator{Name: "n", UUID: "u", Version: "v"}}
}

func TestIncrementalRegressions(t *testing.T) {
	for _, tc := range []struct {
		name  string
		steps []regressionStep
	}{{
		// "summary has 1 months [2025-01], want 0": the month of the only
		// event stayed after the event was deleted.
		name: "deleting the last event of a month",
		steps: []regressionStep{
			{appendEvs: []*eventlog.Event{ev("e1", "2025-01-01T00:00:00+0200", "food", "plain")}},
			{rewrite: []*eventlog.Event{}},
		},
	}, {
		// "hashtags a = [e1 e2 e4], want [e2 e4]": a rewrite that dropped
		// e1 and changed e2 kept e1 under a tag.
		name: "a rewrite that drops one tagged event and changes another",
		steps: []regressionStep{
			{appendEvs: []*eventlog.Event{
				ev("e1", "2025-01-05T01:00:00+0200", "diary", "#b and #A"),
				ev("e2", "2025-03-07T17:00:00+0200", "food", "#a"),
			}},
			{rewrite: []*eventlog.Event{
				ev("e2", "2025-02-02T22:00:00+0200", "call", "#a #b #c"),
				ev("e4", "2025-01-26T02:00:00+0200", "diary", "#a"),
			}},
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, Options{Enabled: []string{"summary", "hashtags"}})
			for _, s := range tc.steps {
				if s.rewrite != nil {
					e.write(s.rewrite)
				} else {
					e.appendEvents(s.appendEvs...)
				}
				e.sync()
				checkSummary(t, e)
				checkHashtags(t, e)
			}
			checkRebuildChangesNothing(t, e)
		})
	}
}

// checkRebuildChangesNothing rebuilds every generator from scratch and
// compares with the incremental state.
func checkRebuildChangesNothing(t *testing.T, e *env) {
	t.Helper()
	names := []string{"summary", "hashtags"}
	before := map[string]map[string]string{}
	for _, name := range names {
		before[name] = e.all(name)
		if err := MarkRebuild(e.db, name); err != nil {
			t.Fatal(err)
		}
	}
	e.sync()
	for _, name := range names {
		if after := e.all(name); !equalMaps(before[name], after) {
			t.Fatalf("%s: a rebuild from scratch differs from the incremental state (%d keys vs %d)", name, len(after), len(before[name]))
		}
	}
}
