package generators

import (
	"bytes"
	"fmt"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mirrord/mirrord/eventlog"
	"github.com/mirrord/mirrord/internal/synth"
	"github.com/mirrord/mirrord/schema"
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

// BenchmarkBesideTheLoad is the built-in generators' rebuild beside a
// bulk load, without the load: 200,000 stored events handed in key order
// over two ranges, as a load of two ranges hands them, then Finish
// writing their values, state and positions to sstables. The figure to
// watch is ns/event: it is what the generators add to a first load.
func BenchmarkBesideTheLoad(b *testing.B) {
	const n = 200_000
	e := newEnv(b, Options{Enabled: []string{"summary", "hashtags"}})
	type stored struct {
		key, value []byte
		at         eventlog.FieldOffsets
	}
	evs := make([]stored, 0, n)
	for _, ev := range synth.New(7).Events(n) {
		ent := decodeOne(b, ev)
		evs = append(evs, stored{[]byte(schema.EventKey(ev.ID)), bytes.Clone(ent.Raw), ent.Fields})
	}
	slices.SortFunc(evs, func(a, b stored) int { return bytes.Compare(a.key, b.key) })
	b.ResetTimer()
	cpu0 := processCPU()
	for b.Loop() {
		f := e.run.LoadFeed()
		sinks := f.Start(2)
		var wg sync.WaitGroup
		for r := range 2 {
			wg.Go(func() {
				for _, ev := range evs[r*n/2 : (r+1)*n/2] {
					sinks[r](ev.key, ev.value, ev.at)
				}
			})
		}
		wg.Wait()
		in := e.db.NewIngest("", nil)
		if err := f.Finish(e.ctx(), 1, in.File); err != nil {
			b.Fatal(err)
		}
		in.Abort()
		f.Done(false)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/event")
	b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N)/n, "cpu-ns/event")
}

// processCPU is the process's user and system time so far: on a machine
// shared with other work, the CPU a benchmark takes varies less than the
// time it takes.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkTagsManyDistinct reads the hashtags of one input of n distinct
// tags: ns/tag stays flat from 1k to 1M (linear input cost), where a
// search of the tags found so far made a million distinct tags quadratic.
func BenchmarkTagsManyDistinct(b *testing.B) {
	for _, n := range []int{1_000, 10_000, 100_000, 1_000_000} {
		var text bytes.Buffer
		for i := range n {
			fmt.Fprintf(&text, "#t%d ", n-i) // descending: the sort does work
		}
		input := text.String()
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			b.SetBytes(int64(len(input)))
			for b.Loop() {
				if got := Tags(input); len(got) != n {
					b.Fatalf("%d tags, want %d", len(got), n)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/tag")
		})
	}
}

// decodeOne is the entry a load's decoder reads for ev: its stored value
// and where its fields are.
func decodeOne(tb testing.TB, ev *eventlog.Event) *eventlog.Entry {
	tb.Helper()
	raw, err := ev.MarshalJSON()
	if err != nil {
		tb.Fatal(err)
	}
	ent, err := eventlog.NewDecoder(bytes.NewReader(raw), nil).Next()
	if err != nil || ent.Kind != eventlog.KindEvent {
		tb.Fatalf("decoding %s: %v %+v", raw, err, ent)
	}
	return ent
}
