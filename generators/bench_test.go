package generators

import (
	"fmt"
	"testing"
	"time"

	"github.com/mirrord/mirrord/eventlog"
	"github.com/mirrord/mirrord/internal/synth"
)

// BenchmarkRebuild is a streamed rebuild of both built-in generators over
// a mirror of 20,000 synthetic events: one scan, one parse an event, and
// an ingest each. The figure to watch is ns/op divided by the events.
func BenchmarkRebuild(b *testing.B) {
	// Under a profiler nothing keeps up: measure the shared scan, not a
	// reader left to read alone.
	defer func(a, b time.Duration) { slowReader, notReading = a, b }(slowReader, notReading)
	slowReader, notReading = time.Hour, time.Hour
	e := newEnv(b, Options{Enabled: []string{"summary", "hashtags"}})
	e.appendEvents(synth.New(1).Events(20_000)...)
	e.sync()
	b.ResetTimer()
	for b.Loop() {
		for _, name := range []string{"summary", "hashtags"} {
			if err := MarkRebuild(e.db, name); err != nil {
				b.Fatal(err)
			}
		}
		if err := e.run.CatchUp(e.ctx(), 1); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/20_000, "ns/event")
}

// BenchmarkFields reads the fields the built-in generators need from a
// stored event; BenchmarkFieldsByParseEvent does it with the strict,
// whole parse, for comparison.
func BenchmarkFields(b *testing.B) {
	raw, _ := synth.New(1).Event().MarshalJSON()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if _, err := storedFields(raw); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFieldsByParseEvent(b *testing.B) {
	raw, _ := synth.New(1).Event().MarshalJSON()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if _, err := parseStored(raw); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAppendSkewed is the generators' work for one appended event on
// a skewed log (every event in one month, a tag on all): the mirror's
// apply is not timed, the runners' catching up is. It must not grow with
// the log: compare -benchtime runs on logs of different sizes.
func BenchmarkAppendSkewed(b *testing.B) {
	e := newEnv(b, Options{Enabled: []string{"summary", "hashtags"}})
	gen := synth.New(3)
	skew := func(evs []*eventlog.Event) []*eventlog.Event {
		for i, ev := range evs {
			ev.Date = fmt.Sprintf("2026-03-%02dT%02d:%02d:00+0100", 1+i%28, i%24, i%60)
			ev.Input += " #daily"
		}
		return evs
	}
	e.appendEvents(skew(gen.Events(20_000))...)
	e.sync()
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		e.appendEvents(skew(gen.Events(1))...)
		if err := e.eng.Sync(e.ctx()); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if err := e.run.CatchUp(e.ctx(), 1); err != nil {
			b.Fatal(err)
		}
	}
}
