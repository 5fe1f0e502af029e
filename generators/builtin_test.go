package generators

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"sort"
	"testing"

	"github.com/mirrord/mirrord/eventlog"
	"github.com/mirrord/mirrord/internal/synth"
	"github.com/mirrord/mirrord/schema"
	"pgregory.net/rapid"
)

// The expected values, computed from scratch from the events the mirror
// holds: what the incremental generators must always equal.

func expectedSummary(evs map[string]*eventlog.Event) map[string]MonthSummary {
	out := map[string]MonthSummary{}
	for _, ev := range evs {
		m := ev.Date[:7]
		s, ok := out[m]
		if !ok {
			s = MonthSummary{ByType: map[string]int{}, First: ev.Date, Last: ev.Date}
		}
		s.Count++
		s.ByType[ev.Type]++
		if earlier(instant(ev.Date), ev.Date, instant(s.First), s.First) {
			s.First = ev.Date
		}
		if earlier(instant(s.Last), s.Last, instant(ev.Date), ev.Date) {
			s.Last = ev.Date
		}
		out[m] = s
	}
	return out
}

// expectedHashtags is every key hashtags must hold, relative to its
// prefix ({tag}:{id}, escaped), with its value: the event's date.
func expectedHashtags(evs map[string]*eventlog.Event) map[string]string {
	out := map[string]string{}
	for id, ev := range evs {
		for _, t := range Tags(ev.Input) {
			d, _ := json.Marshal(ev.Date)
			out[schema.GeneratedSubKey("hashtags", t, id)] = string(d)
		}
	}
	return out
}

// fataler is what the checks need: a *testing.T or a *rapid.T.
type fataler interface {
	Fatalf(format string, args ...any)
}

func checkSummary(t fataler, e *env) {
	want := expectedSummary(e.winners())
	got := e.generated("summary")
	if len(got) != len(want) {
		t.Fatalf("summary has %d months %v, want %d", len(got), keysOf(got), len(want))
	}
	for m, w := range want {
		wb, _ := json.Marshal(w)
		if !jsonEq(got[m], wb) {
			t.Fatalf("summary %s = %s, want %s", m, got[m], wb)
		}
	}
}

func checkHashtags(t fataler, e *env) {
	want := expectedHashtags(e.winners())
	got := map[string]string{}
	if err := e.db.Scan(schema.GeneratorPrefix("hashtags"), func(k string, v json.RawMessage) error {
		got[k] = string(v)
		return nil
	}); err != nil {
		t.Fatalf("%v", err)
	}
	for k, w := range want {
		if got[k] != w {
			t.Fatalf("hashtags: %s = %q, want %q", k, got[k], w)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Fatalf("hashtags holds %s, which no event's tags give", k)
		}
	}
}

func keysOf(m map[string]json.RawMessage) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func TestSummaryValues(t *testing.T) {
	e := newEnv(t, Options{Enabled: []string{"summary"}})
	mk := func(id, date, typ string) *eventlog.Event {
		return &eventlog.Event{ID: id, Date: date, Type: typ, Creator: eventlog.Creator{Name: "n", UUID: "u", Version: "v"}}
	}
	e.appendEvents(
		mk("a", "2025-01-31T23:30:00+0200", "food"),
		mk("b", "2025-01-02T08:00:00Z", "food"),
		mk("c", "2025-01-15T12:00:00.5+02:00", "call"),
		mk("d", "2025-02-01T00:10:00+0300", "diary"), // UTC still January: the month is the local date's
	)
	e.sync()
	var jan MonthSummary
	if err := json.Unmarshal(e.generated("summary")["2025-01"], &jan); err != nil {
		t.Fatal(err)
	}
	if jan.Count != 3 || jan.ByType["food"] != 2 || jan.ByType["call"] != 1 ||
		jan.First != "2025-01-02T08:00:00Z" || jan.Last != "2025-01-31T23:30:00+0200" {
		t.Fatalf("January: %+v", jan)
	}
	if _, ok := e.generated("summary")["2025-02"]; !ok {
		t.Fatal("February (by its local date) missing")
	}
	// The last event of February goes: the month disappears.
	e.write(e.evs[:3])
	e.sync()
	if _, ok := e.generated("summary")["2025-02"]; ok {
		t.Fatal("a month with no events left still has a key")
	}
	checkSummary(t, e)
}

// Months found in any order across centuries (the table grows before its
// first year and after its last) and more types than a month counts in
// itself: every month's value is the one computed from the events, in a
// rebuild and after changes that take events back out.
func TestSummaryAcrossCenturiesAndManyTypes(t *testing.T) {
	e := newEnv(t, Options{Enabled: []string{"summary"}})
	rng := rand.New(rand.NewPCG(3, 5))
	var evs []*eventlog.Event
	for i := range 2000 {
		year := 1000 + rng.IntN(9000)
		if i < 12 {
			year = 2000 - i*100 // ever earlier years first
		}
		date := fmt.Sprintf("%04d-%02d-%02dT%02d:00:00Z", year, 1+rng.IntN(12), 1+rng.IntN(28), rng.IntN(24))
		evs = append(evs, ev(fmt.Sprintf("e%05d", i), date, fmt.Sprintf("type%d", rng.IntN(3*inlineTypes)), ""))
	}
	e.appendEvents(evs...)
	e.sync()
	checkSummary(t, e)
	e.write(append(e.evs[:500:500], e.evs[1500:]...))
	e.sync()
	checkSummary(t, e)
}

// The application's definition, /#(\w+(?:-\w+)*)/g without the u flag:
// each row is what it extracts (the set, sorted).
func TestTags(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []string
	}{
		{"no tags", nil},
		{"", nil},
		{"#", nil},
		{"#family dinner #family #work", []string{"family", "work"}},
		{"#Family and #family", []string{"Family", "family"}}, // case matters
		{"#WORK #Work #work", []string{"WORK", "Work", "work"}},
		{"#a#b", []string{"a", "b"}},
		{"##x", []string{"x"}},
		{"#_", []string{"_"}},
		{"#_a_ #9 #0x1F", []string{"0x1F", "9", "_a_"}},
		{"#a-", []string{"a"}},
		{"#-a", nil},
		{"#a--b", []string{"a"}},
		{"#a-b-c", []string{"a-b-c"}},
		{"#deep-work today, #deep-work again", []string{"deep-work"}},
		{"#a-b--c-d", []string{"a-b"}},
		{"#a-#b", []string{"a", "b"}},
		{"#tag. #tag2, #tag3! (#tag4) #tag5?", []string{"tag", "tag2", "tag3", "tag4", "tag5"}},
		{"#end-", []string{"end"}},
		{"#музика #Київ", nil},                  // \w is ASCII: no tag starts with a Cyrillic letter
		{"#café #naïve", []string{"caf", "na"}}, // and a tag ends where ASCII does
		{"#日本 #😀 #x😀y", []string{"x"}},
		{"email me@x.com # not#tag #9", []string{"9", "tag"}},
		{"#a\n#b\t#c", []string{"a", "b", "c"}}, // controls end a tag; the next one starts after
		{"https://example.com/page#anchor", []string{"anchor"}},
		{"#über-cool #cool-über", []string{"cool"}},
	} {
		if got := Tags(c.in); !slices.Equal(got, c.want) {
			t.Errorf("Tags(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// The property of the issue: after any sequence of appends, edits,
// deletions and rewrites, the incrementally maintained values equal a
// recomputation from scratch, and rebuilding changes nothing (the index
// is exact too).
func TestIncrementalEqualsFromScratch(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		e := newEnv(t, Options{Enabled: []string{"summary", "hashtags"}})
		months := []string{"2025-01", "2025-02", "2025-03"}
		types := []string{"food", "call", "diary"}
		inputs := []string{"plain", "#a", "#b and #A and #a-b", "#c #b", "#a #b #c"}
		n := 0
		newEvent := func() *eventlog.Event {
			n++
			day := rapid.IntRange(1, 28).Draw(rt, "day")
			return &eventlog.Event{
				ID:      fmt.Sprintf("e%d", n),
				Date:    fmt.Sprintf("%s-%02dT%02d:00:00+0200", rapid.SampledFrom(months).Draw(rt, "month"), day, rapid.IntRange(0, 23).Draw(rt, "hour")),
				Type:    rapid.SampledFrom(types).Draw(rt, "type"),
				Input:   rapid.SampledFrom(inputs).Draw(rt, "input"),
				Creator: eventlog.Creator{Name: "n", UUID: "u", Version: "v"},
			}
		}
		steps := rapid.IntRange(1, 12).Draw(rt, "steps")
		for i := 0; i < steps; i++ {
			switch op := rapid.IntRange(0, 4).Draw(rt, "op"); {
			case op == 0 || len(e.evs) == 0: // append
				k := rapid.IntRange(1, 4).Draw(rt, "appended")
				for j := 0; j < k; j++ {
					e.appendEvents(newEvent())
				}
			case op == 1: // edit: append a new version of an existing id
				old := e.evs[rapid.IntRange(0, len(e.evs)-1).Draw(rt, "edited")]
				ev := newEvent()
				ev.ID = old.ID
				e.appendEvents(ev)
			case op == 2: // delete: the application's rewrite
				i := rapid.IntRange(0, len(e.evs)-1).Draw(rt, "deleted")
				id := e.evs[i].ID
				e.write(slices.DeleteFunc(slices.Clone(e.evs), func(ev *eventlog.Event) bool { return ev.ID == id }))
			case op == 3: // rewrite: keep some, change some, add some
				var next []*eventlog.Event
				for _, ev := range e.evs {
					switch rapid.IntRange(0, 3).Draw(rt, "fate") {
					case 0:
					case 1:
						c := newEvent()
						c.ID = ev.ID
						next = append(next, c)
					default:
						next = append(next, ev)
					}
				}
				e.write(append(next, newEvent()))
			case op == 4: // nothing changes
			}
			e.sync()
			checkSummary(rt, e)
			checkHashtags(rt, e)
		}
		before := map[string]map[string]string{"summary": e.all("summary"), "hashtags": e.all("hashtags")}
		for _, name := range []string{"summary", "hashtags"} {
			if err := MarkRebuild(e.db, name); err != nil {
				rt.Fatal(err)
			}
		}
		e.sync()
		for _, name := range []string{"summary", "hashtags"} {
			if after := e.all(name); !equalMaps(before[name], after) {
				rt.Fatalf("%s: a rebuild from scratch differs from the incremental state (%d keys vs %d)", name, len(after), len(before[name]))
			}
		}
	})
}

// appTagPattern is the application's regular expression in RE2's syntax:
// leftmost-first, greedy, with \w spelt out as JavaScript's ASCII class.
var appTagPattern = regexp.MustCompile(`#([A-Za-z0-9_]+(?:-[A-Za-z0-9_]+)*)`)

// Tags agrees with the application's regular expression on any text.
func FuzzTags(f *testing.F) {
	for _, s := range []string{"#a#b", "##x", "#a-b-c", "#a--b", "#музика", "x#y-z-", "#a-#b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		var want []string
		for _, m := range appTagPattern.FindAllStringSubmatch(text, -1) {
			if !slices.Contains(want, m[1]) {
				want = append(want, m[1])
			}
		}
		sort.Strings(want)
		if got := Tags(text); !slices.Equal(got, want) {
			t.Fatalf("Tags(%q) = %q, the application's expression finds %q", text, got, want)
		}
	})
}

// typesByChange counts events per type from Changes alone, as the
// README's example does: what a third-party generator without any index
// of its own can rely on. generated:test-types:{type} = n.
type typesByChange struct{}

func (typesByChange) Update(_ context.Context, in *Input, out *Scope) error {
	add := func(typ string, d int) error {
		var n int
		if _, err := out.Get(typ, &n); err != nil {
			return err
		}
		if n += d; n == 0 {
			return out.Delete(typ)
		}
		return out.Put(typ, n)
	}
	return in.Changes(func(id string, before, after *eventlog.Event) error {
		if before != nil {
			if err := add(before.Type, -1); err != nil {
				return err
			}
		}
		if after != nil {
			return add(after.Type, +1)
		}
		return nil
	})
}

func init() { Register("test-types", func() Generator { return typesByChange{} }) }

func checkTypes(t fataler, e *env) {
	want := map[string]int{}
	for _, ev := range e.winners() {
		want[ev.Type]++
	}
	got := e.generated("test-types")
	if len(got) != len(want) {
		t.Fatalf("test-types has %d types %v, want %v", len(got), keysOf(got), want)
	}
	for typ, n := range want {
		if string(got[typ]) != fmt.Sprint(n) {
			t.Fatalf("test-types %s = %s, want %d", typ, got[typ], n)
		}
	}
}

// The property again, on what before-images make hard: the generators run
// after several of the mirror's batches at once (a change coalesced over
// them: created and deleted, changed and changed back) and in small runs
// (MaxIDs of 1 to 4, so that a run ends before the feed does and must
// learn what its events were at its end from the entries after it); the
// log repeats events exactly; events move between months and dates share
// an instant under several spellings, so that summary's first and last
// are taken back and looked up in its index.
func TestIncrementalWithBeforeImagesEqualsFromScratch(t *testing.T) {
	names := []string{"summary", "hashtags", "test-types"}
	rapid.Check(t, func(rt *rapid.T) {
		e := newEnv(t, Options{Enabled: names, MaxIDs: rapid.IntRange(1, 4).Draw(rt, "maxIDs")})
		months := []string{"2025-01", "2025-02"}
		types := []string{"food", "call", "diary"}
		inputs := []string{"plain", "#a", "#b and #A and #a-b", "#c #b", "#a #b #c"}
		n := 0
		date := func() string {
			// One instant, three spellings: 10:00 at +02:00 is 08:00Z.
			day := rapid.IntRange(1, 3).Draw(rt, "day")
			hour := rapid.IntRange(9, 11).Draw(rt, "hour")
			m := rapid.SampledFrom(months).Draw(rt, "month")
			switch rapid.IntRange(0, 2).Draw(rt, "spelling") {
			case 0:
				return fmt.Sprintf("%s-%02dT%02d:00:00+0200", m, day, hour)
			case 1:
				return fmt.Sprintf("%s-%02dT%02d:00:00+02:00", m, day, hour)
			}
			return fmt.Sprintf("%s-%02dT%02d:00:00Z", m, day, hour-2)
		}
		newEvent := func() *eventlog.Event {
			n++
			return &eventlog.Event{
				ID:      fmt.Sprintf("e%d", n),
				Date:    date(),
				Type:    rapid.SampledFrom(types).Draw(rt, "type"),
				Input:   rapid.SampledFrom(inputs).Draw(rt, "input"),
				Creator: eventlog.Creator{Name: "n", UUID: "u", Version: "v"},
			}
		}
		pick := func() *eventlog.Event { return e.evs[rapid.IntRange(0, len(e.evs)-1).Draw(rt, "which")] }
		version := func(of *eventlog.Event) *eventlog.Event {
			ev := newEvent()
			ev.ID = of.ID
			return ev
		}
		mirror := func() {
			if err := e.eng.Sync(e.ctx()); err != nil {
				rt.Fatalf("mirror Sync: %v", err)
			}
		}
		steps := rapid.IntRange(1, 16).Draw(rt, "steps")
		for i := 0; i < steps; i++ {
			switch op := rapid.IntRange(0, 6).Draw(rt, "op"); {
			case op == 0 || len(e.evs) == 0: // append
				for range rapid.IntRange(1, 4).Draw(rt, "appended") {
					e.appendEvents(newEvent())
				}
			case op == 1: // edit: a new version of an existing id
				e.appendEvents(version(pick()))
			case op == 2: // delete: the application's rewrite
				id := pick().ID
				e.write(slices.DeleteFunc(slices.Clone(e.evs), func(ev *eventlog.Event) bool { return ev.ID == id }))
			case op == 3: // repeat: an event appended again exactly as it is
				w := e.winners()[pick().ID]
				c := *w
				e.appendEvents(&c)
			case op == 4: // changed and changed back, between two runs
				w := e.winners()[pick().ID]
				e.appendEvents(version(w))
				mirror()
				c := *w
				e.appendEvents(&c)
			case op == 5: // created and deleted, between two runs
				ev := newEvent()
				e.appendEvents(ev)
				mirror()
				e.write(slices.DeleteFunc(slices.Clone(e.evs), func(x *eventlog.Event) bool { return x.ID == ev.ID }))
			case op == 6: // a rewrite: keep some, change some, add some
				var next []*eventlog.Event
				for _, ev := range e.evs {
					switch rapid.IntRange(0, 3).Draw(rt, "fate") {
					case 0:
					case 1:
						next = append(next, version(ev))
					default:
						next = append(next, ev)
					}
				}
				e.write(append(next, newEvent()))
			}
			mirror()
			if rapid.Bool().Draw(rt, "later") {
				continue // the generators catch up after the next batches
			}
			e.sync()
			checkSummary(rt, e)
			checkHashtags(rt, e)
			checkTypes(rt, e)
		}
		e.sync()
		checkSummary(rt, e)
		checkHashtags(rt, e)
		checkTypes(rt, e)
		before := map[string]map[string]string{}
		for _, name := range names {
			before[name] = e.all(name)
			if err := MarkRebuild(e.db, name); err != nil {
				rt.Fatal(err)
			}
		}
		e.sync()
		for _, name := range names {
			if after := e.all(name); !equalMaps(before[name], after) {
				rt.Fatalf("%s: a rebuild from scratch differs from the incremental state (%d keys vs %d)", name, len(after), len(before[name]))
			}
		}
	})
}

// Deleting one event of many writes a handful of keys, whatever the size
// of the log and of its month and tags: the cost of a change is the
// events it changes, not the log.
func TestOneDeletionWritesAFewKeys(t *testing.T) {
	e := newEnv(t, Options{Enabled: []string{"summary", "hashtags"}})
	evs := synth.New(31).Events(2000)
	for i, ev := range evs { // one month, one tag on all: the worst case for a list per tag
		ev.Date = fmt.Sprintf("2026-03-%02dT%02d:%02d:00+0100", 1+i%28, i%24, i%60)
		ev.Input += " #daily"
	}
	e.appendEvents(evs...)
	e.sync()
	written := func() int64 {
		var n int64
		for _, s := range e.run.Statuses() {
			n += s.Written
		}
		return n
	}
	before := written()
	// The month's first event goes: its first date is looked up again.
	first := evs[0]
	for _, ev := range evs {
		if earlier(instant(ev.Date), ev.Date, instant(first.Date), first.Date) {
			first = ev
		}
	}
	e.write(slices.DeleteFunc(slices.Clone(e.evs), func(ev *eventlog.Event) bool { return ev.ID == first.ID }))
	e.sync()
	checkSummary(t, e)
	checkHashtags(t, e)
	// summary: the month and the index entry; hashtags: #daily and the
	// event's other tag; a position each.
	if n := written() - before; n > 8 {
		t.Fatalf("deleting one event wrote %d keys", n)
	}
}
