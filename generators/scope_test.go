package generators

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/mirrord/mirrord/kv"
	"github.com/mirrord/mirrord/schema"
)

// TestScopeScanMatchesAModel drives a scope with random puts, deletes,
// gets, prefix scans (some from inside another scan's callback) and
// commits, enough of them to cross the point where pending keys are folded
// into the sorted index many times, and checks every read against a map:
// an incremental run's scope over the store, a cleared one, and a streamed
// rebuild's, whose "commits" spill its writes to runs (and a small budget
// many more), read back by Get and Scan and, at the end, written out.
func TestScopeScanMatchesAModel(t *testing.T) {
	e := newEnv(t, Options{Enabled: []string{}})
	defer func(n int) { streamBudget = n }(streamBudget)
	streamBudget = 2 << 10
	for _, mode := range []string{"incremental", "cleared", "stream"} {
		cleared := mode != "incremental"
		t.Run(mode, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(7, uint64(len(mode))))
			name := "model-" + mode
			// The store already holds some values; a cleared scope must
			// not see them.
			model := map[string]int{}
			var ops []kv.Op
			for i := range 300 {
				k := fmt.Sprintf("%c%03d", 'a'+rune(rng.IntN(4)), rng.IntN(500))
				ops = append(ops, kv.PutOp(schema.GeneratedKey(name, k), i))
				if !cleared {
					model[k] = i
				}
			}
			if err := e.db.Batch(ops); err != nil {
				t.Fatal(err)
			}
			s := newScope(name, e.db, cleared)
			wb := func() {
				w := e.db.NewWriteBatch()
				defer w.Close()
				s.commitTo(w)
				if err := w.Commit(); err != nil {
					t.Fatal(err)
				}
				s.committed()
			}
			if mode == "stream" {
				fs, dir := e.db.TempDir()
				s = newStreamScope(name, fs, dir)
				defer s.w.closeRuns()
				wb = func() {
					if err := s.w.spillRun(); err != nil {
						t.Fatal(err)
					}
				}
			}
			checkFrom := func(prefix, start string) {
				var got []string
				err := s.ScanFrom(prefix, start, func(k string, v json.RawMessage) error {
					got = append(got, k+"="+string(v))
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				var want []string
				for _, k := range slices.Sorted(maps.Keys(model)) {
					if strings.HasPrefix(k, prefix) && k >= start {
						want = append(want, fmt.Sprintf("%s=%d", k, model[k]))
					}
				}
				if !slices.Equal(got, want) {
					t.Fatalf("ScanFrom(%q, %q):\n got %v\nwant %v", prefix, start, got, want)
				}
			}
			check := func(prefix string) { checkFrom(prefix, "") }
			folded := false
			for i := range 3000 {
				k := fmt.Sprintf("%c%03d", 'a'+rune(rng.IntN(4)), rng.IntN(100))
				switch r := rng.IntN(100); {
				case r < 60:
					if err := s.Put(k, i); err != nil {
						t.Fatal(err)
					}
					model[k] = i
				case r < 80:
					if err := s.Delete(k); err != nil {
						t.Fatal(err)
					}
					delete(model, k)
				case r < 85:
					// Read, then maybe commit, then delete: what a
					// generator's index does.
					var v int
					found, err := s.Get(k, &v)
					if want, ok := model[k]; err != nil || found != ok || (ok && v != want) {
						t.Fatalf("Get(%q) = %v, %v, %v; want %v, %v", k, v, found, err, want, ok)
					}
					if rng.IntN(3) == 0 {
						if err := s.Put(k, -i); err != nil {
							t.Fatal(err)
						}
						if rng.IntN(2) == 0 {
							wb()
						}
					}
					if err := s.Delete(k); err != nil {
						t.Fatal(err)
					}
					delete(model, k)
				case r < 92:
					check(k[:1+rng.IntN(2)])
				case r < 95:
					checkFrom(k[:1], k[:1+rng.IntN(3)])
				case r < 96:
					// A scan inside a scan: the inner one may fold the
					// index the outer one is walking.
					_ = s.Scan(k[:1], func(string, json.RawMessage) error {
						check(k[:1])
						return nil
					})
				case r < 97 && rng.IntN(4) == 0:
					wb()
				}
				folded = folded || len(s.w.sorted) > 0 || (s.w.stream != nil && len(s.w.stream.recs) > 20)
				if i%1000 == 0 {
					check("")
				}
			}
			check("")
			if !folded {
				t.Fatal("the pending keys were never folded into the sorted index (or, streamed, many in the log): the test misses that path")
			}
			if mode != "stream" {
				return
			}
			if len(s.w.stream.runs) < 10 {
				t.Fatalf("%d runs: the test misses reading across many", len(s.w.stream.runs))
			}
			// Written out, the store holds exactly the model.
			in := e.db.NewReplacement()
			vr, sr := replaceRanges(name)
			if err := s.w.writeOutput(in.Replace(vr[0], vr[1]), in.Replace(sr[0], sr[1])); err != nil {
				t.Fatal(err)
			}
			if err := in.Commit(e.ctx()); err != nil {
				t.Fatal(err)
			}
			got := map[string]int{}
			err := e.db.Scan(schema.GeneratorPrefix(name), func(k string, v json.RawMessage) error {
				p, err := schema.ParseKey(k)
				if err != nil {
					return err
				}
				var n int
				err = json.Unmarshal(v, &n)
				got[p.Name] = n
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(got, model) {
				t.Fatalf("written out: %d keys, the model %d", len(got), len(model))
			}
		})
	}
}

// Writes made from inside a Scan's callback never spill in the middle of
// it: the Scan goes on seeing the pending values it walks, and the spill
// comes once the Scan is done; what was spilt is still read back.
func TestScopeSpillWaitsForTheScan(t *testing.T) {
	e := newEnv(t, Options{Enabled: []string{}})
	fs, dir := e.db.TempDir()
	s := newStreamScope("spill", fs, dir)
	defer s.w.closeRuns()
	s.w.stream.budget = 1 << 20
	for i := range 100 {
		if err := s.Put(fmt.Sprintf("a%03d", i), i); err != nil {
			t.Fatal(err)
		}
	}
	big := strings.Repeat("x", 64<<10)
	n := 0
	err := s.Scan("a", func(k string, v json.RawMessage) error {
		if want := fmt.Sprintf("a%03d", n); k != want || string(v) != fmt.Sprint(n) {
			return fmt.Errorf("Scan gave %s=%q, want %s=%d", k, v, want, n)
		}
		n++
		// 100 × 64 KiB: past the budget well before the Scan ends.
		return s.Put("z"+k, big)
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != 100 {
		t.Fatalf("Scan gave %d keys, want 100", n)
	}
	if runs := len(s.w.stream.runs); runs != 1 {
		t.Fatalf("%d spills, want 1, once the Scan was done", runs)
	}
	if s.Len() != 0 {
		t.Fatalf("%d writes still pending after the spill", s.Len())
	}
	var v string
	if found, err := s.Get("za099", &v); err != nil || !found || v != big {
		t.Fatalf("a value spilt during the Scan is not read back: %v %v", found, err)
	}
	var i int
	if found, err := s.Get("a042", &i); err != nil || !found || i != 42 {
		t.Fatalf("a value spilt is not read back: %d %v %v", i, found, err)
	}
}

// A generator's views: its values, a Sub's family of values under one of
// their keys (generated:{name}:{key}:{sub}), and its private state, each
// seeing only its own keys; the keys a view cannot address are errors.
func TestScopeViews(t *testing.T) {
	e := newEnv(t, Options{Enabled: []string{}})
	s := newScope("v", e.db, false)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.Put("tag", 1))
	must(s.Sub("tag").Put("id1", "d1"))
	must(s.Sub("tag").Put("id:2", "d2"))
	must(s.Sub("other").Put("id1", "d3"))
	must(s.State().Put("tag", "private"))
	w := e.db.NewWriteBatch()
	s.commitTo(w)
	must(w.Commit())
	s.committed()
	keys, err := e.db.Keys(schema.PrefixGenerated)
	must(err)
	state, err := e.db.Keys(schema.PrefixState)
	must(err)
	keys = append(keys, state...)
	want := []string{
		schema.GeneratedKey("v", "tag"),
		schema.GeneratedSubKey("v", "other", "id1"),
		schema.GeneratedSubKey("v", "tag", "id:2"),
		schema.GeneratedSubKey("v", "tag", "id1"),
		schema.StateKey("v", "tag"),
	}
	slices.Sort(want)
	if !slices.Equal(keys, want) {
		t.Fatalf("keys %q, want %q", keys, want)
	}
	scan := func(v *Scope) string {
		var got []string
		must(v.Scan("", func(k string, val json.RawMessage) error { got = append(got, k+"="+string(val)); return nil }))
		return strings.Join(got, " ")
	}
	if got := scan(s); got != "tag=1" {
		t.Fatalf("the values' Scan: %s (a Sub's keys are the Sub's)", got)
	}
	if got := scan(s.Sub("tag")); got != `id:2="d2" id1="d1"` { // in the store's order: id%3A2 first
		t.Fatalf("the Sub's Scan: %s", got)
	}
	if got := scan(s.State()); got != `tag="private"` {
		t.Fatalf("the state's Scan: %s", got)
	}
	if err := s.Sub("tag").Put("", 1); !errors.Is(err, ErrKey) {
		t.Fatalf("an empty key in a Sub: %v", err)
	}
	if err := s.Sub("a").Sub("b").Put("c", 1); !errors.Is(err, ErrKey) {
		t.Fatalf("a Sub of a Sub: %v", err)
	}
	for _, k := range keys {
		if p, err := schema.ParseKey(k); err != nil {
			t.Fatalf("%q does not parse: %v", k, err)
		} else if p.Kind == schema.KeyGenerated && p.Generator != "v" {
			t.Fatalf("%q parses as %+v", k, p)
		}
	}
}
