package generators

import (
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/mirrord/mirrord/kv"
	"github.com/mirrord/mirrord/schema"
)

// A streamed rebuild's output written in parts side by side holds exactly
// what it holds written whole: every key once, the last write of each,
// nothing deleted, whatever the runs and the log hold and wherever the
// splits fall (a key of the log, of a run's index, between values and
// state).
func TestOutputInPartsHoldsWhatWasWritten(t *testing.T) {
	defer func(n int, p int64) { streamBudget, outputPartBytes = n, p }(streamBudget, outputPartBytes)
	streamBudget, outputPartBytes = 32<<10, 8<<10
	for _, parts := range []int{2, 3, 8} {
		t.Run(fmt.Sprint(parts, " parts"), func(t *testing.T) {
			e := newEnv(t, Options{Enabled: []string{}})
			fs, dir := e.db.TempDir()
			name := "parts"
			s := newStreamScope(name, fs, dir)
			defer s.w.closeRuns()
			rng := rand.New(rand.NewPCG(uint64(parts), 9))
			values, state := map[string]int{}, map[string]int{}
			for i := range 20_000 {
				sc, model := s, values
				if rng.IntN(2) == 0 {
					sc, model = s.State(), state
				}
				k := fmt.Sprintf("%c/%05d", 'a'+rune(rng.IntN(3)), rng.IntN(8000))
				if rng.IntN(10) == 0 {
					if err := sc.Delete(k); err != nil {
						t.Fatal(err)
					}
					delete(model, k)
					continue
				}
				if err := sc.putJSON(k, []byte(fmt.Sprint(i))); err != nil {
					t.Fatal(err)
				}
				model[k] = i
			}
			if len(s.w.stream.runs) < 3 || len(s.w.stream.recs) == 0 {
				t.Fatalf("%d runs and %d records in the log: the test misses merging them", len(s.w.stream.runs), len(s.w.stream.recs))
			}
			splits := s.w.outputSplits(parts)
			if len(splits) != parts-1 || !slices.IsSorted(splits) {
				t.Fatalf("splits for %d parts: %q", parts, splits)
			}
			vp := schema.GeneratorPrefix(name)
			in := e.db.NewIngest(vp, kv.PrefixEnd([]byte(schema.StatePrefix(name))))
			files := make([]outputFiles, len(splits)+1)
			for i := range files {
				files[i] = outputFiles{in.File(), in.File()}
			}
			if err := s.w.writeOutputParts(files, splits); err != nil {
				t.Fatal(err)
			}
			if err := in.Commit(e.ctx()); err != nil {
				t.Fatal(err)
			}
			if n := s.w.written; n != int64(len(values)+len(state)) {
				t.Fatalf("%d keys counted as written, want %d", n, len(values)+len(state))
			}
			for prefix, want := range map[string]map[string]int{vp: values, schema.StatePrefix(name): state} {
				got := map[string]int{}
				err := e.db.Scan(prefix, func(k string, v json.RawMessage) error {
					var n int
					err := json.Unmarshal(v, &n)
					got[k[len(prefix):]] = n
					return err
				})
				if err != nil {
					t.Fatal(err)
				}
				if !maps.Equal(got, want) {
					t.Fatalf("under %s: %d keys written in parts, %d in the model", prefix, len(got), len(want))
				}
			}
		})
	}
}
