package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/mirrord/mirrord/eventlog"
	"github.com/mirrord/mirrord/generators"
	"github.com/mirrord/mirrord/internal/synth"
	"github.com/mirrord/mirrord/mirror"
	"github.com/mirrord/mirrord/schema"
)

// benchTag is the tag every appended event carries: its hashtags key,
// generated:hashtags:bench:{id}, is what the generators' latency waits for.
const benchTag = "bench"

// genLatencies measures (h): append → the new event's hashtags value
// readable, with the default generators following in process, on the
// 1k-event log and on the largest (whose store the reconcile step left
// with its generators built).
func (b *runner) genLatencies(ctx context.Context) error {
	for _, l := range []struct {
		events     int
		log, store string
	}{
		{1000, filepath.Join(b.work, "small.json"), filepath.Join(b.work, "small-store")},
		{b.cfg.Sizes[len(b.cfg.Sizes)-1], b.bigLog(), b.bigStore()},
	} {
		b.progress("append → generated value latency on the %s-event log: %d appends", countLabel(l.events), b.cfg.Appends)
		row, _, err := genLatency(ctx, l.log, l.store, b.cfg.Appends, true)
		if err != nil {
			return err
		}
		row.Events = l.events
		b.rep.GenLatency = append(b.rep.GenLatency, row)
	}
	return nil
}

// genLatency follows the log with an in-process engine and, when gens is
// set, the default generators, and times each append (of an event tagged
// #bench) from the writer's write until the event's hashtags value (or,
// without generators, the event) is readable. cpu is the process's CPU
// time per append (user and system), the generators' included.
func genLatency(ctx context.Context, logPath, store string, appends int, gens bool) (row LatencyRow, cpu time.Duration, err error) {
	fl, err := follow(ctx, store, mirror.Options{EventLog: logPath}, gens)
	if err != nil {
		return row, 0, err
	}
	defer fl.stop()
	// The generators' commits are seen through the store only: a poll
	// after each apply and every 50 µs finds them. Without generators too,
	// so that the CPU per append of the two compares like for like.
	fl.poll = 50 * time.Microsecond
	if fl.run != nil {
		if err := waitIdle(ctx, fl.run); err != nil {
			return row, 0, err
		}
	}
	f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return row, 0, err
	}
	defer f.Close()
	gen := synth.New(uint64(time.Now().UnixNano()))
	var (
		lat      = make([]time.Duration, 0, appends)
		buf, key []byte
		val      []byte
	)
	cpu0 := processCPU()
	for range appends {
		ev := gen.Event()
		ev.Input += " #" + benchTag
		buf = append(ev.AppendJS(buf[:0]), '\n')
		if gens {
			key = append(key[:0], schema.GeneratedSubKey("hashtags", benchTag, ev.ID)...)
		} else {
			key = schema.AppendEventKey(key[:0], ev.ID)
		}
		fl.expect()
		t0 := time.Now()
		if _, err := f.Write(buf); err != nil {
			return row, 0, err
		}
		d, v, err := fl.await(t0, key, val, 10*time.Second, ev.ID, "its append")
		if err != nil {
			return row, 0, err
		}
		lat, val = append(lat, d), v
		time.Sleep(appendGap)
	}
	if fl.run != nil {
		// Every generator's work for the appends is in the figure.
		if err := waitIdle(ctx, fl.run); err != nil {
			return row, 0, err
		}
	}
	cpu = (processCPU() - cpu0) / time.Duration(appends)
	row.Appends = appends
	row.P50, row.P99, row.Max = percentiles(lat)
	return row, cpu, nil
}

// waitIdle waits until every generator has caught up with the feed.
func waitIdle(ctx context.Context, run *generators.Runner) error {
	deadline := time.Now().Add(10 * time.Minute)
	for {
		idle := true
		for _, s := range run.Statuses() {
			if s.Lag > 0 || (s.State != "idle" && s.State != "stopped") {
				idle = false
			}
			if s.LastError != "" {
				return fmt.Errorf("generator %s: %s", s.Name, s.LastError)
			}
		}
		if idle {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("the generators did not catch up in 10 minutes")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Microsecond):
		}
	}
}

// processCPU is this process's user and system time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// skewed measures (i) on the skewed log: every event in one month, a tag
// on every one (#daily) and one of 50 others: the default sync into an
// empty store, then append → hashtags value readable, and the CPU of one
// append with the default generators and without, in process.
func (b *runner) skewed(ctx context.Context) error {
	n := b.cfg.SkewedEvents
	b.progress("writing a skewed log of %s events (one month, a tag on all)", countLabel(n))
	src, err := skewedLog(b.cfg.Dir, n)
	if err != nil {
		return err
	}
	logPath, store := filepath.Join(b.work, "skewed.json"), filepath.Join(b.work, "skewed-store")
	if err := copyFile(logPath, src); err != nil {
		return err
	}
	row := SkewedRow{Events: n}
	b.progress("mirrord sync of the skewed log with its default generators")
	p, err := b.mirrordSync(ctx, logPath, store, false, true)
	if err != nil {
		return err
	}
	row.Load = Measure{Took: p.Wall, MaxRSS: p.MaxRSS}
	appends := b.cfg.Appends
	b.progress("append → generated value latency on the skewed log: %d appends, without and with the generators", appends)
	_, without, err := genLatency(ctx, logPath, store, appends, false)
	if err != nil {
		return err
	}
	lat, with, err := genLatency(ctx, logPath, store, appends, true)
	if err != nil {
		return err
	}
	row.Latency, row.AppendCPU = lat, max(0, with-without)
	row.Latency.Events = n
	b.rep.Skewed = &row
	return os.RemoveAll(store)
}

// skewedLog returns the path of the skewed log of n events in dir: synth's
// events with every date in March 2026 (ten minutes' worth of seconds
// apart at most) and every input tagged #daily and one of #t0…#t49. Made
// once, like synthLog's.
func skewedLog(dir string, n int) (string, error) {
	path := filepath.Join(dir, fmt.Sprintf("skewed-%d-%d.json", logSeed, n))
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	g := synth.New(logSeed + 1)
	r := rand.New(rand.NewPCG(logSeed, 1))
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.FixedZone("", 3600))
	step := (30 * 24 * time.Hour) / time.Duration(n+1)
	return path, writeLog(path, n, func(i int) *eventlog.Event {
		ev := g.Event()
		ev.Date = start.Add(time.Duration(i) * step).Add(time.Duration(r.IntN(1000)) * time.Millisecond).Format("2006-01-02T15:04:05-0700")
		ev.Input += " #daily #t" + strconv.Itoa(r.IntN(50))
		return ev
	})
}

// writeLog writes n events, made by next, as the application does, to
// path (named once complete).
func writeLog(path string, n int, next func(i int) *eventlog.Event) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	enc := eventlog.NewEncoder(w)
	for i := range n {
		if err := enc.Encode(next(i)); err != nil {
			f.Close()
			return err
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// small measures (j): a log of many small events (compact, about 190
// bytes each, all in one month, one of 50 tags each): the default sync
// into an empty store against the mirror alone, time and peak RSS.
func (b *runner) small(ctx context.Context) error {
	n := b.cfg.SmallEvents
	b.progress("writing a log of %s small events", countLabel(n))
	logPath, err := smallLog(b.cfg.Dir, n)
	if err != nil {
		return err
	}
	size, err := fileSize(logPath)
	if err != nil {
		return err
	}
	row := SmallRow{Events: n, Bytes: size}
	store := filepath.Join(b.work, "small-events-store")
	for _, m := range []struct {
		gens bool
		into *Measure
	}{{false, &row.Mirror}, {true, &row.Default}} {
		if err := os.RemoveAll(store); err != nil {
			return err
		}
		b.progress("mirrord sync of the %s small events, generators %v", countLabel(n), m.gens)
		p, err := b.mirrordSync(ctx, logPath, store, false, m.gens)
		if err != nil {
			return err
		}
		*m.into = Measure{Took: p.Wall, MaxRSS: p.MaxRSS}
	}
	b.rep.Small = &row
	return os.RemoveAll(store)
}

// smallLog returns the path of a log of n small events in dir, one
// compact JSON object a line (the decoder takes any spelling): about 190
// bytes an event, all in March 2026, each tagged one of #t0…#t49.
func smallLog(dir string, n int) (string, error) {
	return writeOnce(filepath.Join(dir, fmt.Sprintf("small-%d-%d.json", logSeed, n)), func(w io.Writer) error {
		r := rand.New(rand.NewPCG(logSeed, 2))
		types := []string{"food", "diary", "call", "sleep", "work"}
		start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.FixedZone("", 3600))
		step := (30 * 24 * time.Hour) / time.Duration(n+1)
		const idChars = "0123456789abcdefghijklmnopqrstuvwxyz"
		var b []byte
		for i := range n {
			typ := types[r.IntN(len(types))]
			tag := "#t" + strconv.Itoa(r.IntN(50))
			b = append(b[:0], `{"id":"`...)
			for range 16 {
				b = append(b, idChars[r.IntN(len(idChars))])
			}
			b = append(b, `","date":"`...)
			b = start.Add(time.Duration(i)*step).AppendFormat(b, "2006-01-02T15:04:05-0700")
			b = append(b, `","original":"`+typ+" "+tag+`","input":"`+typ+" "+tag+`","modifiers":{},"type":"`+typ+
				`","description":"","creator":{"name":"V","uuid":"5c8e1f2a","version":"1.2.3"}}`+"\n"...)
			if _, err := w.Write(b); err != nil {
				return err
			}
		}
		return nil
	})
}
