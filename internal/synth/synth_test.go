package synth

import (
	"bytes"
	"flag"
	"os"
	"testing"

	"github.com/mirrord/mirrord/eventlog"
)

var update = flag.Bool("update", false, "rewrite examples/data.json")

const exampleLog = "../../examples/data.json"

// The bundled example log is this generator's output for a fixed seed, so
// it can be rebuilt (go test ./internal/synth -update) and is never edited
// by hand.
func TestExampleLogIsReproducible(t *testing.T) {
	want := eventlog.Format(New(2026).Events(300))
	if *update {
		if err := os.WriteFile(exampleLog, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(exampleLog)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs from the generator's output; rebuild it with go test ./internal/synth -update", exampleLog)
	}
}

func TestEventsAreValidAndDeterministic(t *testing.T) {
	a := eventlog.Format(New(7).Events(500))
	b := eventlog.Format(New(7).Events(500))
	if !bytes.Equal(a, b) {
		t.Fatal("same seed, different events")
	}
	if bytes.Equal(a, eventlog.Format(New(8).Events(500))) {
		t.Fatal("different seeds, same events")
	}
	d := eventlog.NewDecoder(bytes.NewReader(a), nil)
	n, ids := 0, map[string]bool{}
	for {
		e, err := d.Next()
		if err != nil {
			break
		}
		if e.Kind != eventlog.KindEvent {
			t.Fatalf("entry at %d is %s: %s %s", e.Offset, e.Kind, e.Field, e.Reason)
		}
		ids[string(e.ID)] = true
		n++
	}
	if n != 500 || len(ids) != 500 {
		t.Fatalf("%d events, %d distinct ids; want 500", n, len(ids))
	}
	if avg := len(a) / 500; avg < 600 || avg > 760 {
		t.Fatalf("average event size %d bytes, want about 680", avg)
	}
}
