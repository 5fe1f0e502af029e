package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mirrord/mirrord/api"
	"github.com/mirrord/mirrord/eventlog"
	"github.com/mirrord/mirrord/generators"
	"github.com/mirrord/mirrord/internal/synth"
	"github.com/mirrord/mirrord/internal/testkit"
	"github.com/mirrord/mirrord/schema"
)

// Concurrency (issue 7, item 5), with real processes: two daemons on one
// store, two daemons on two stores following one log, and readers that
// run while the tail applies.

// A second mirrord on a store a daemon holds fails at once, whatever it
// was asked to do (a --resync included: it must not touch the store), and
// the first daemon goes on unharmed.
func TestSecondProcessOnAHeldStore(t *testing.T) {
	dir := shortDir(t)
	log, store := filepath.Join(dir, "data.json"), filepath.Join(dir, "store")
	gen := synth.New(61)
	writeLog(t, log, gen.Events(40))
	first := startChild(t, "run", "--eventlog", log, "--store", store)
	first.WaitLine(60*time.Second, "caught up")
	client := api.NewClient(api.DefaultPath("", store))
	defer client.Close()
	for _, args := range [][]string{
		{"run"},
		{"run", "--resync"},
		{"sync", "--once"},
		{"sync", "--once", "--resync"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			started := time.Now()
			// Its own socket, so that the refusal is the store's lock and
			// not the live socket of the first daemon.
			second := startChild(t, append(args, "--eventlog", log, "--store", store, "--socket", filepath.Join(dir, "second.sock"))...)
			if code := second.Wait(15 * time.Second); code != 1 {
				t.Fatalf("exit %d, want 1:\n%s", code, second.Output())
			}
			out := second.Output()
			if !strings.Contains(out, "locked") || !strings.Contains(out, store) {
				t.Fatalf("the message does not say the store is locked:\n%s", out)
			}
			t.Logf("refused in %v", time.Since(started).Round(time.Millisecond))
		})
	}
	// The first daemon still follows, and the store is whole.
	if err := eventlog.AppendFile(log, gen.Events(3)...); err != nil {
		t.Fatal(err)
	}
	waitExact(t, client, "after the refused second processes")
	testkit.Eventually(t, "the status after the refused second processes", func() error { // it follows the commit verify reads
		st, err := client.Status(context.Background())
		if err == nil && (st.Mirror.Checkpoint == nil || st.Mirror.Checkpoint.Events != 43 || st.Mirror.Resyncs != 0) {
			err = fmt.Errorf("status %+v, want 43 events and no resync", st.Mirror)
		}
		return err
	})
	first.Signal(syscall.SIGTERM)
	if code := first.Wait(30 * time.Second); code != 0 {
		t.Fatalf("first daemon exit %d", code)
	}
}

// logWriter plays the application: it appends events (with modifiers)
// and rewrites the log to delete some and change others' modifiers.
type logWriter struct {
	t     *testing.T
	path  string
	gen   *synth.Generator
	rng   *rand.Rand
	evs   []*eventlog.Event
	pause time.Duration // after a rewrite, so that a reconcile can settle

	appends, rewrites atomic.Int64
}

func newLogWriter(t *testing.T, path string, seed uint64, n int, pause time.Duration) *logWriter {
	w := &logWriter{t: t, path: path, gen: synth.New(seed), rng: rand.New(rand.NewPCG(seed, 1)), pause: pause}
	w.evs = w.withModifiers(n)
	writeLog(t, path, w.evs)
	return w
}

// withModifiers makes n events, each with one to three modifiers: the
// readers' invariant is about events and their modifiers together.
func (w *logWriter) withModifiers(n int) []*eventlog.Event {
	evs := w.gen.Events(n)
	for _, e := range evs {
		e.Modifiers = nil
		for i := range 1 + w.rng.IntN(3) {
			e.Modifiers = append(e.Modifiers, eventlog.Modifier{Name: fmt.Sprintf("m%d", i), Value: fmt.Sprint(w.rng.IntN(100))})
		}
	}
	return evs
}

// step appends a few events, or, one time in rewriteEvery, rewrites the
// log: a deletion, a modifier change, and, past maxEvents, the oldest
// tenth dropped, so that the log stays bounded however long this runs.
func (w *logWriter) step(rewriteEvery, maxEvents int) error {
	if w.rng.IntN(rewriteEvery) != 0 {
		more := w.withModifiers(1 + w.rng.IntN(3))
		if err := eventlog.AppendFile(w.path, more...); err != nil {
			return err
		}
		w.evs = append(w.evs, more...)
		w.appends.Add(1)
		return nil
	}
	evs := slices.Clone(w.evs)
	if len(evs) > maxEvents {
		evs = evs[len(evs)/10:]
	}
	if len(evs) > 1 {
		i := w.rng.IntN(len(evs))
		evs = append(evs[:i], evs[i+1:]...)
	}
	if len(evs) > 0 {
		i := w.rng.IntN(len(evs))
		e := *evs[i]
		e.Modifiers = append(slices.Clone(e.Modifiers[1:]), eventlog.Modifier{Name: "changed", Value: fmt.Sprint(w.rng.Int())})
		evs[i] = &e
	}
	if err := eventlog.RewriteFile(w.path, evs); err != nil {
		return err
	}
	w.evs = evs
	w.rewrites.Add(1)
	time.Sleep(w.pause) // pacing the writer, not synchronising with the daemon
	return nil
}

// run calls step until ctx ends, about every interval.
func (w *logWriter) run(ctx context.Context, interval time.Duration, rewriteEvery, maxEvents int) error {
	for ctx.Err() == nil {
		if err := w.step(rewriteEvery, maxEvents); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
		case <-time.After(interval):
		}
	}
	return nil
}

// Two daemons on two stores follow one log while it is appended to and
// rewritten: each stays exact, and the two stores end up identical.
func TestTwoDaemonsTwoStoresOneLog(t *testing.T) {
	dir := shortDir(t)
	log := filepath.Join(dir, "data.json")
	w := newLogWriter(t, log, 62, 50, 60*time.Millisecond)
	var clients []*api.Client
	var children []*child
	for _, name := range []string{"s1", "s2"} {
		store := filepath.Join(dir, name)
		c := startChild(t, "run", "--eventlog", log, "--store", store, "--settle", "20ms")
		c.WaitLine(60*time.Second, "caught up")
		children = append(children, c)
		cl := api.NewClient(api.DefaultPath("", store))
		defer cl.Close()
		clients = append(clients, cl)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 1200*time.Millisecond)
	defer cancel()
	if err := w.run(ctx, 2*time.Millisecond, 25, 400); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d appends, %d rewrites", w.appends.Load(), w.rewrites.Load())
	dumps := make([]string, len(clients))
	for i, cl := range clients {
		// The mirror first, then the generators' values, which follow it.
		waitExact(t, cl, fmt.Sprintf("daemon %d", i+1))
		waitGenerators(t, cl, fmt.Sprintf("daemon %d", i+1))
		var b strings.Builder
		err := cl.Stream(context.Background(), true, "", func(line []byte) error {
			if !strings.HasPrefix(string(line), `{"key":"mirrord:`) { // bookkeeping may differ (sequence numbers, times)
				b.Write(line)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		dumps[i] = b.String()
	}
	if dumps[0] != dumps[1] {
		a, b := strings.Split(dumps[0], "\n"), strings.Split(dumps[1], "\n")
		i := 0
		for i < min(len(a), len(b)) && a[i] == b[i] {
			i++
		}
		at := func(l []string) string {
			if i < len(l) {
				return l[i]
			}
			return "(end)"
		}
		t.Fatalf("the two stores differ from line %d (of %d and %d):\n%.1000s\n---\n%.1000s", i+1, len(a), len(b), at(a), at(b))
	}
	if n := strings.Count(dumps[0], `{"key":"event:`); n != len(uniqueIDs(w.evs)) {
		t.Fatalf("the stores hold %d events, the log %d", n, len(uniqueIDs(w.evs)))
	}
	for _, c := range children {
		c.Signal(syscall.SIGTERM)
		if code := c.Wait(30 * time.Second); code != 0 {
			t.Fatalf("exit %d", code)
		}
	}
}

// waitGenerators waits until every generator the daemon runs has caught
// up with the change feed (once the log no longer changes).
func waitGenerators(t *testing.T, c *api.Client, what string) {
	t.Helper()
	testkit.Eventually(t, what+": the generators catch up", func() error {
		gens, err := c.Generators(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if behind := slices.ContainsFunc(gens, func(g generators.Status) bool { return g.Lag != 0 }); behind || len(gens) == 0 {
			return fmt.Errorf("%+v", gens)
		}
		return nil
	})
}

func uniqueIDs(evs []*eventlog.Event) map[string]bool {
	m := map[string]bool{}
	for _, e := range evs {
		m[e.ID] = true
	}
	return m
}

// snapshotViolations checks one read of the mirror: every event's
// modifiers are exactly the modifier keys under it, and every modifier
// key has its event. events and mods map keys to stored values.
func snapshotViolations(events, mods map[string]json.RawMessage) []string {
	var bad []string
	want := map[string]string{} // modifier key -> value the events say
	for k, v := range events {
		p, err := schema.ParseKey(k)
		if err != nil {
			bad = append(bad, err.Error())
			continue
		}
		ev, err := eventlog.ParseEvent(v)
		if err != nil {
			bad = append(bad, fmt.Sprintf("%s: %v", k, err))
			continue
		}
		for _, m := range ev.Modifiers {
			want[schema.ModifierKey(p.ID, m.Name)] = m.Value
		}
	}
	for k, v := range want {
		got, ok := mods[k]
		var rec struct{ Value string }
		if !ok {
			bad = append(bad, "an event without its modifier "+k)
		} else if json.Unmarshal(got, &rec) != nil || rec.Value != v {
			bad = append(bad, fmt.Sprintf("modifier %s is %s, its event says %q", k, got, v))
		}
	}
	for k := range mods {
		if _, ok := want[k]; !ok {
			bad = append(bad, "a modifier without its event (or not in it) "+k)
		}
	}
	return bad
}

// snapcheck is a generator that, on every run, reads the whole mirror
// through its view, events and modifiers in two separate scans, and
// counts the reads where they disagree. On a view that was not a
// snapshot, a batch committed between the two scans would show an event
// without its modifiers or the reverse. Registered in the test binary
// only (which doubles as mirrord), and enabled only where asked for.
type snapcheck struct{}

type snapcheckStats struct {
	Checks     int    `json:"checks"`
	Violations int    `json:"violations"`
	First      string `json:"first,omitempty"`
}

func (snapcheck) Update(ctx context.Context, in *generators.Input, out *generators.Scope) error {
	read := func(prefix string) (map[string]json.RawMessage, error) {
		m := map[string]json.RawMessage{}
		return m, in.View.Scan(prefix, func(k string, v json.RawMessage) error {
			m[k] = slices.Clone(v)
			return nil
		})
	}
	events, err := read(schema.PrefixEvent)
	if err != nil {
		return err
	}
	mods, err := read(schema.PrefixModifier)
	if err != nil {
		return err
	}
	var st snapcheckStats
	if _, err := out.Get("stats", &st); err != nil {
		return err
	}
	st.Checks++
	if bad := snapshotViolations(events, mods); len(bad) > 0 {
		st.Violations++
		if st.First == "" {
			st.First = bad[0]
		}
	}
	return out.Put("stats", st)
}

func init() { generators.Register("snapcheck", func() generators.Generator { return snapcheck{} }) }

// minReads is how many dumps, and how many reads by snapcheck, a
// consistency check needs to mean something.
const minReads = 5

// readSnapcheck reads snapcheck's stats from the daemon.
func readSnapcheck(c *api.Client) (snapcheckStats, error) {
	var st snapcheckStats
	raw, found, err := c.Get(context.Background(), schema.GeneratedKey("snapcheck", "stats"))
	if err == nil && found {
		err = json.Unmarshal(raw, &st)
	}
	if err != nil {
		return st, fmt.Errorf("snapcheck stats: %s: %w", raw, err)
	}
	return st, nil
}

// awaitReads returns once the time least has passed and both the dumps
// and snapcheck's reads number minReads, or when ctx is done; with an
// error after most.
func awaitReads(ctx context.Context, c *api.Client, dumps *atomic.Int64, least, most time.Duration) error {
	start := time.Now()
	for ctx.Err() == nil {
		st, err := readSnapcheck(c)
		if err != nil {
			return err
		}
		if time.Since(start) >= least && dumps.Load() >= minReads && st.Checks >= minReads {
			return nil
		}
		if time.Since(start) > most {
			return fmt.Errorf("after %v, %d dumps and %d generator reads, want %d of each", most, dumps.Load(), st.Checks, minReads)
		}
		time.Sleep(20 * time.Millisecond) // polling the counts
	}
	return nil
}

// Readers running while the daemon applies see consistent snapshots:
// dumps through the socket API, and a generator's view, each checked on
// every read for an event without its modifiers or modifiers without
// their event, while a writer appends events with modifiers and rewrites
// the log (deletions, changed modifiers).
func TestReadersSeeConsistentSnapshots(t *testing.T) {
	dir := shortDir(t)
	log, store := filepath.Join(dir, "data.json"), filepath.Join(dir, "store")
	w := newLogWriter(t, log, 63, 100, 40*time.Millisecond)
	c := startChild(t, "run", "--eventlog", log, "--store", store, "--settle", "20ms", "--generators", "snapcheck,summary")
	c.WaitLine(60*time.Second, "caught up")
	client := api.NewClient(api.DefaultPath("", store))
	defer client.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	var dumps atomic.Int64
	// The writer and the readers go on for at least 1.5 s, and until both
	// kinds of reader have read enough times to mean something: on a
	// loaded machine 1.5 s may hold only a few dumps.
	enough := make(chan error, 1)
	go func() {
		defer cancel()
		enough <- awaitReads(ctx, client, &dumps, 1500*time.Millisecond, 2*time.Minute)
	}()
	errs := make(chan error, 8)
	for range 3 { // readers through the API's dump
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				events, mods := map[string]json.RawMessage{}, map[string]json.RawMessage{}
				err := client.Stream(ctx, true, "", func(line []byte) error {
					var rec struct {
						Key   string          `json:"key"`
						Value json.RawMessage `json:"value"`
					}
					if err := json.Unmarshal(line, &rec); err != nil {
						return fmt.Errorf("dump line %q: %w", line, err)
					}
					switch {
					case strings.HasPrefix(rec.Key, schema.PrefixEvent):
						events[rec.Key] = rec.Value
					case strings.HasPrefix(rec.Key, schema.PrefixModifier):
						mods[rec.Key] = rec.Value
					}
					return nil
				})
				if ctx.Err() != nil {
					return
				}
				if err != nil {
					errs <- err
					return
				}
				if bad := snapshotViolations(events, mods); len(bad) > 0 {
					errs <- fmt.Errorf("a dump saw %d inconsistencies, the first: %s", len(bad), bad[0])
					return
				}
				dumps.Add(1)
			}
		}()
	}
	if err := w.run(ctx, time.Millisecond, 30, 1000); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if err := <-enough; err != nil {
		t.Error(err)
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	waitExact(t, client, "after the writer stopped")
	// The generator has caught up with the last batch, and never saw an
	// inconsistent view.
	waitGenerators(t, client, "after the writer stopped")
	st, err := readSnapcheck(client)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d appends, %d rewrites; %d consistent dumps, %d generator reads", w.appends.Load(), w.rewrites.Load(), dumps.Load(), st.Checks)
	if st.Violations != 0 {
		t.Fatalf("the generator saw %d inconsistent views of %d, the first: %s", st.Violations, st.Checks, st.First)
	}
	if dumps.Load() < minReads || st.Checks < minReads {
		t.Fatalf("too few reads to mean anything: %d dumps, %d generator reads", dumps.Load(), st.Checks)
	}
	c.Signal(syscall.SIGTERM)
	if code := c.Wait(30 * time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}

}
