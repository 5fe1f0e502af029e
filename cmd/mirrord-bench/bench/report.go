package bench

import (
	"fmt"
	"io"
	"runtime"
	"strings"
	"time"
)

// Report is one run's figures.
type Report struct {
	Date      time.Time
	Platform  string
	Quick     bool
	Node      string // "" when the Node.js original ran; else why not
	Resync    []ResyncRow
	Reconcile *ReconcileRow
	Latency   []LatencyRow
	KV        *KVRow
	Idle      []IdleRow
	// GenLatency is (h): append → the new event's hashtags value readable.
	GenLatency []LatencyRow
	Skewed     *SkewedRow
	Small      *SmallRow
	// Git mode (k), in gitlatency.go; Git says why it was not measured.
	Git        string
	GitLatency []GitLatencyRow
	GitLoad    *GitLoadRow
}

// SkewedRow is (i): the log whose events all fall in one month and carry
// one tag: its load with the default generators, the append → hashtags
// latency, and the CPU of one append across all generators.
type SkewedRow struct {
	Events    int
	Load      Measure
	Latency   LatencyRow
	AppendCPU time.Duration
}

// SmallRow is (j): a log of many small events, loaded by the default
// sync and by the mirror alone.
type SmallRow struct {
	Events          int
	Bytes           int64
	Mirror, Default Measure
}

// Measure is one stack's resync of one log: the median time of the runs
// and the highest peak RSS among them. Zero Took: not measured.
type Measure struct {
	Took   time.Duration
	MaxRSS int64
}

// ResyncRow is (a)–(c) for one log.
type ResyncRow struct {
	Events               int
	Bytes                int64
	Mirrord, Naive, Node Measure
	// Mirrord is the mirror alone (--generators=); WithGenerators the
	// default sync, the mirror and its default generators, what a user's
	// first "sync --once" costs.
	WithGenerators Measure
}

// ReconcileRow is (e).
type ReconcileRow struct {
	Events, EventsAfter int
	Parse, Took         time.Duration
	MaxRSS              int64
	Keys, Applies       int
	GenKeys             int64 // written by the default generators catching up
}

// LatencyRow is (d) for one log.
type LatencyRow struct {
	Events, Appends int
	P50, P99, Max   time.Duration
}

// KVRow is (g).
type KVRow struct {
	GetP50, GetP99       time.Duration
	CachedGetP50         time.Duration // Gets of keys whose blocks are cached
	Scanned              int
	ScanTook             time.Duration
	StoreBytes, LogBytes int64
}

// IdleRow is (f) for one log.
type IdleRow struct {
	Events       int
	CPUPerMinute time.Duration
	RSS          int64
}

func newReport(cfg Config) *Report {
	return &Report{
		Date:     time.Now(),
		Platform: fmt.Sprintf("%s/%s, %d CPUs, %s", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version()),
		Quick:    cfg.Quick,
	}
}

// Target is one of the targets, checked against the report.
type Target struct {
	Name     string
	Measured string
	Met      bool
}

const mib = 1 << 20

// Targets checks the report against the targets mirrord must meet. A
// figure the run did not take (Node skipped) yields no target.
func (r *Report) Targets() []Target {
	var ts []Target
	add := func(name string, met bool, format string, args ...any) {
		ts = append(ts, Target{name, fmt.Sprintf(format, args...), met})
	}
	// The resync ratios count at 100k events and more; a quick run has
	// only smaller logs, and checks its largest.
	for i, row := range r.Resync {
		if row.Events < 100_000 && i != len(r.Resync)-1 {
			continue
		}
		n := countLabel(row.Events)
		if row.Node.Took > 0 {
			x := ratio(row.Node.Took, row.Mirrord.Took)
			add("resync "+n+": ≥ 10× the Node original", x >= 10, "%.1f×", x)
		}
		x := ratio(row.Naive.Took, row.Mirrord.Took)
		add("resync "+n+": ≥ 3× the naive Go baseline", x >= 3, "%.1f×", x)
		if g := row.WithGenerators; g.Took > 0 {
			if row.Node.Took > 0 {
				x := ratio(row.Node.Took, g.Took)
				add("default sync "+n+" (mirror + default generators): ≥ 10× the Node original's mirror", x >= 10, "%.1f×", x)
			}
			x := ratio(g.Took, row.Mirrord.Took)
			add("default sync "+n+": ≤ 1.3× the mirror alone", x <= 1.3, "%.2f×", x)
		}
	}
	if len(r.Resync) > 0 {
		row := r.Resync[len(r.Resync)-1]
		add("peak RSS, resync of "+countLabel(row.Events)+": ≤ 256 MiB", row.Mirrord.MaxRSS <= 256*mib, "%s", bytesLabel(row.Mirrord.MaxRSS))
		if g := row.WithGenerators; g.Took > 0 {
			add("peak RSS, default sync of "+countLabel(row.Events)+" (with the generators): ≤ 256 MiB", g.MaxRSS <= 256*mib, "%s", bytesLabel(g.MaxRSS))
		}
	}
	if c := r.Reconcile; c != nil {
		add("peak RSS, reconcile of "+countLabel(c.Events)+": ≤ 256 MiB", c.MaxRSS <= 256*mib, "%s", bytesLabel(c.MaxRSS))
		x := ratio(c.Took, c.Parse)
		add("rewrite reconcile: ≤ 1.5× one read-and-parse", x <= 1.5, "%.2f×", x)
		add("rewrite reconcile: ≤ 20 keys written", c.Keys <= 20, "%d", c.Keys)
		add("deleting one event of "+countLabel(c.Events)+" by rewrite: ≤ 20 keys written by the generators", c.GenKeys <= 20, "%d", c.GenKeys)
	}
	for _, l := range r.GenLatency {
		add("append → generated value readable p99 at "+countLabel(l.Events)+": ≤ 5 ms", l.P99 <= 5*time.Millisecond, "%s", durLabel(l.P99))
	}
	if k := r.Skewed; k != nil {
		n := countLabel(k.Events)
		add("skewed log ("+n+", one month, a tag on all): append → generated value readable p99 ≤ 5 ms", k.Latency.P99 <= 5*time.Millisecond, "%s", durLabel(k.Latency.P99))
		add("skewed log: CPU of one append across all generators ≤ 2 ms", k.AppendCPU <= 2*time.Millisecond, "%s", durLabel(k.AppendCPU))
	}
	if s := r.Small; s != nil {
		n := countLabel(s.Events)
		add(n+" small events: default sync peak RSS ≤ 256 MiB", s.Default.MaxRSS <= 256*mib, "%s", bytesLabel(s.Default.MaxRSS))
		x := ratio(s.Default.Took, s.Mirror.Took)
		add(n+" small events: default sync ≤ 1.5× the mirror alone's time", x <= 1.5, "%.2f×", x)
	}
	if len(r.Idle) == 2 {
		small, big := r.Idle[0], r.Idle[1]
		// Flat: following the large log costs no more memory than
		// following the small one, but for the block cache, which is
		// bounded (32 MiB by default) and fills on a store larger than it.
		add("RSS while following: flat ("+countLabel(big.Events)+" ≤ "+countLabel(small.Events)+" + 32 MiB cache + 16 MiB)",
			big.RSS <= small.RSS+48*mib, "%s vs %s", bytesLabel(big.RSS), bytesLabel(small.RSS))
	}
	for _, l := range r.Latency {
		add("append-to-visible p99 at "+countLabel(l.Events)+": ≤ 10 ms", l.P99 <= 10*time.Millisecond, "%s", durLabel(l.P99))
	}
	if len(r.Latency) == 2 {
		x := ratio(r.Latency[1].P50, r.Latency[0].P50)
		add("append-to-visible p50 at "+countLabel(r.Latency[1].Events)+": ≤ 1.5× p50 at 1k", x <= 1.5, "%.2f×", x)
	}
	for _, d := range r.Idle {
		s := d.CPUPerMinute.Seconds()
		add("idle at "+countLabel(d.Events)+": ≤ 0.05 CPU-s a minute", s <= 0.05, "%.3f CPU-s", s)
	}
	r.gitTargets(add)
	// The kv reads have no target here: theirs are relative to Pebble's
	// own reads of the same store, interleaved in one run, which only a
	// benchmark inside package kv can do (kv.BenchmarkReadsBesidePebble);
	// the kv table shows this run's figures for comparison between runs.
	return ts
}

// Write prints the report as Markdown tables.
func (r *Report) Write(w io.Writer) error {
	var b strings.Builder
	mode := "full"
	if r.Quick {
		mode = "quick"
	}
	fmt.Fprintf(&b, "mirrord bench (%s run), %s, %s\n\n", mode, r.Date.Format("2006-01-02 15:04"), r.Platform)

	if len(r.Resync) > 0 {
		b.WriteString("Full resync into an empty store (a–c): median time, events/s, MB/s of log, peak RSS\n\n")
		b.WriteString("| log | mirrord | naive Go | mirrord ÷ naive | Node original | mirrord ÷ Node |\n|---|---|---|---|---|---|\n")
		for _, row := range r.Resync {
			node, nodeX := "–", "–"
			if row.Node.Took > 0 {
				node = measureLabel(row.Node, row)
				nodeX = fmt.Sprintf("**%.1f×**", ratio(row.Node.Took, row.Mirrord.Took))
			}
			fmt.Fprintf(&b, "| %s events, %s | %s | %s | **%.1f×** | %s | %s |\n",
				countLabel(row.Events), bytesLabel(row.Bytes), measureLabel(row.Mirrord, row),
				measureLabel(row.Naive, row), ratio(row.Naive.Took, row.Mirrord.Took), node, nodeX)
		}
		if r.Node != "" {
			fmt.Fprintf(&b, "\nNode original: %s\n", r.Node)
		}
		b.WriteString("\nThe default sync (the mirror and its default generators, rebuilt beside the load) against the mirror alone (`--generators=`), into an empty store\n\n")
		b.WriteString("| log | mirror alone | default sync | ÷ mirror alone | Node original ÷ default sync |\n|---|---|---|---|---|\n")
		for _, row := range r.Resync {
			if row.WithGenerators.Took == 0 {
				continue
			}
			nodeX := "–"
			if row.Node.Took > 0 {
				nodeX = fmt.Sprintf("**%.1f×**", ratio(row.Node.Took, row.WithGenerators.Took))
			}
			fmt.Fprintf(&b, "| %s events | %s | %s | **%.2f×** | %s |\n", countLabel(row.Events), measureLabel(row.Mirrord, row),
				measureLabel(row.WithGenerators, row), ratio(row.WithGenerators.Took, row.Mirrord.Took), nodeX)
		}
		b.WriteString("\n")
	}
	if len(r.Latency) > 0 {
		b.WriteString("Append-to-visible latency (d): the writer's write() called → readable in process\n\n")
		b.WriteString("| log | appends | p50 | p99 | max |\n|---|---|---|---|---|\n")
		for _, l := range r.Latency {
			fmt.Fprintf(&b, "| %s events | %d | %s | %s | %s |\n", countLabel(l.Events), l.Appends, durLabel(l.P50), durLabel(l.P99), durLabel(l.Max))
		}
		b.WriteString("\n")
	}
	r.writeGit(&b)
	if len(r.GenLatency) > 0 {
		b.WriteString("Append → generated value readable (h): the writer's write() called → the new event's hashtags key readable, default generators following in process\n\n")
		b.WriteString("| log | appends | p50 | p99 | max |\n|---|---|---|---|---|\n")
		for _, l := range r.GenLatency {
			fmt.Fprintf(&b, "| %s events | %d | %s | %s | %s |\n", countLabel(l.Events), l.Appends, durLabel(l.P50), durLabel(l.P99), durLabel(l.Max))
		}
		b.WriteString("\n")
	}
	if c := r.Reconcile; c != nil {
		b.WriteString("Rewrite reconcile (e): one event deleted from the middle by an in-place rewrite\n\n")
		b.WriteString("| log | read-and-parse | reconcile | ratio | keys written | by the generators after it | batches | peak RSS |\n|---|---|---|---|---|---|---|---|\n")
		fmt.Fprintf(&b, "| %s events | %s | %s | **%.2f×** | %d | %d | %d | %s |\n\n", countLabel(c.Events), durLabel(c.Parse), durLabel(c.Took),
			ratio(c.Took, c.Parse), c.Keys, c.GenKeys, c.Applies, bytesLabel(c.MaxRSS))
	}
	if k := r.Skewed; k != nil {
		b.WriteString("Skewed log (i): every event in one month, each tagged #daily and one of 50 tags\n\n")
		b.WriteString("| log | default sync | append → hashtags readable p50 | p99 | max | CPU of one append, all generators |\n|---|---|---|---|---|---|\n")
		fmt.Fprintf(&b, "| %s events | %s, %s | %s | %s | %s | %s |\n\n", countLabel(k.Events), durLabel(k.Load.Took), bytesLabel(k.Load.MaxRSS),
			durLabel(k.Latency.P50), durLabel(k.Latency.P99), durLabel(k.Latency.Max), durLabel(k.AppendCPU))
	}
	if s := r.Small; s != nil {
		b.WriteString("Small events (j): compact, one month, one of 50 tags each\n\n")
		b.WriteString("| log | mirror alone | default sync | ratio |\n|---|---|---|---|\n")
		fmt.Fprintf(&b, "| %s events, %s | %s, %s | %s, %s | **%.2f×** |\n\n", countLabel(s.Events), bytesLabel(s.Bytes),
			durLabel(s.Mirror.Took), bytesLabel(s.Mirror.MaxRSS), durLabel(s.Default.Took), bytesLabel(s.Default.MaxRSS),
			ratio(s.Default.Took, s.Mirror.Took))
	}
	if len(r.Idle) > 0 {
		b.WriteString("Following daemon, no changes (f): `mirrord run` with its default generators\n\n")
		b.WriteString("| log | CPU a minute | RSS |\n|---|---|---|\n")
		for _, d := range r.Idle {
			fmt.Fprintf(&b, "| %s events | %.3f s | %s |\n", countLabel(d.Events), d.CPUPerMinute.Seconds(), bytesLabel(d.RSS))
		}
		b.WriteString("\n")
	}
	if k := r.KV; k != nil {
		b.WriteString("kv (g), on the largest store\n\n")
		b.WriteString("| Get p50 | Get p99 | Get p50, cached | Scan event: | store on disk | log |\n|---|---|---|---|---|---|\n")
		fmt.Fprintf(&b, "| %s | %s | %s | %s keys/s | %s (%.2f× the log) | %s |\n\n", durLabel(k.GetP50), durLabel(k.GetP99), durLabel(k.CachedGetP50),
			countFloat(float64(k.Scanned)/k.ScanTook.Seconds()), bytesLabel(k.StoreBytes), float64(k.StoreBytes)/float64(k.LogBytes), bytesLabel(k.LogBytes))
	}
	ts := r.Targets()
	if len(ts) > 0 {
		b.WriteString("Targets\n\n| target | measured | |\n|---|---|---|\n")
		for _, t := range ts {
			v := "met"
			if !t.Met {
				v = "**missed**"
			}
			fmt.Fprintf(&b, "| %s | %s | %s |\n", t.Name, t.Measured, v)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func ratio(a, b time.Duration) float64 {
	if b <= 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func measureLabel(m Measure, row ResyncRow) string {
	s := m.Took.Seconds()
	return fmt.Sprintf("%s, %s ev/s, %.0f MB/s, %s", durLabel(m.Took), countFloat(float64(row.Events)/s),
		float64(row.Bytes)/1e6/s, bytesLabel(m.MaxRSS))
}

func durLabel(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	case d >= time.Millisecond:
		return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.1f µs", float64(d)/float64(time.Microsecond))
}

func bytesLabel(n int64) string {
	if n >= 10*mib {
		return fmt.Sprintf("%d MiB", (n+mib/2)/mib)
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/mib)
}

// countFloat writes a rate with thousands separators.
func countFloat(f float64) string {
	s := fmt.Sprintf("%.0f", f)
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	return string(out)
}
