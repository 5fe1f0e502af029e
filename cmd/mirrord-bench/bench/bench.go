package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Config says what to measure. The zero value (after defaults) is the full
// run; Quick is the smoke run of well under a minute.
type Config struct {
	// Quick measures small logs only (10k events), 200 appends and 5 s of
	// idling, and skips Node unless NodeOrigin is set. Default: false.
	Quick bool

	// Sizes are the logs' event counts for the resync comparison; the
	// largest is also the log of the reconcile, latency, idle and kv
	// figures. Default: 10k, 100k, 1M (Quick: 10k).
	Sizes []int

	// Runs is how many times each resync runs; the table shows the
	// median. Default: 1.
	Runs int

	// Appends is the number of single-event appends timed on each log.
	// Default: 1000 (Quick: 200).
	Appends int

	// GitAppends is the number of commits timed on each log in git mode,
	// at most 20 on a log of 500k events or more (each commit writes the
	// whole log into the repository first). Default: 1000 (Quick: 200).
	GitAppends int

	// Idle is how long the daemon's CPU is watched while nothing changes.
	// Default: 60s (Quick: 5s).
	Idle time.Duration

	// SkewedEvents is the size of the skewed log (every event in one
	// month, a tag on all). Default: 1M (Quick: 10k).
	SkewedEvents int

	// SmallEvents is the size of the log of small events (compact, one
	// month, 50 tags); negative skips it. Default: 10M (Quick: skipped).
	SmallEvents int

	// Dir holds the synthetic logs (kept for the next run) and the
	// stores (removed). Default: $TMPDIR/mirrord-bench.
	Dir string

	// Mirrord is the mirrord binary to measure. Default: built from this
	// module with `go build` into Dir.
	Mirrord string

	// NodeOrigin is the directory of the original Node.js module's
	// benchmark (ingest.js). Default: shared/bench/node-origin in the
	// nearest ancestor of the working directory that has one; none found,
	// or no node on PATH, and the Node column says why it is empty.
	NodeOrigin string

	// NoNode skips the Node.js comparison. Default: false.
	NoNode bool

	// Progress receives a line per step. Default: io.Discard.
	Progress io.Writer
}

func (c Config) withDefaults() (Config, error) {
	if len(c.Sizes) == 0 {
		c.Sizes = []int{10_000, 100_000, 1_000_000}
		if c.Quick {
			c.Sizes = []int{10_000}
		}
	}
	for _, n := range c.Sizes {
		if n < 10 {
			return c, fmt.Errorf("sizes: %d events is too few to measure", n)
		}
	}
	c.Sizes = slices.Sorted(slices.Values(c.Sizes))
	if c.Runs <= 0 {
		c.Runs = 1
	}
	if c.Appends <= 0 {
		c.Appends = 1000
		if c.Quick {
			c.Appends = 200
		}
	}
	if c.Idle <= 0 {
		c.Idle = time.Minute
		if c.Quick {
			c.Idle = 5 * time.Second
		}
	}
	if c.SkewedEvents <= 0 {
		c.SkewedEvents = 1_000_000
		if c.Quick {
			c.SkewedEvents = 10_000
		}
	}
	if c.SmallEvents == 0 {
		c.SmallEvents = 10_000_000
		if c.Quick {
			c.SmallEvents = -1
		}
	}
	if c.Dir == "" {
		c.Dir = filepath.Join(os.TempDir(), "mirrord-bench")
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	return c, nil
}

// runner holds one run's state.
type runner struct {
	cfg  Config
	work string // this run's scratch directory, removed at the end
	rep  *Report
}

// Run measures everything the Config asks for and returns the report;
// Report.Write prints it.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp(cfg.Dir, "run-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	b := &runner{cfg: cfg, work: work, rep: newReport(cfg)}
	if b.cfg.Mirrord == "" {
		if b.cfg.Mirrord, err = b.buildMirrord(ctx); err != nil {
			return nil, err
		}
	}
	b.rep.Node = b.nodeStatus(ctx)
	steps := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"resync", b.resyncs},
		{"reconcile", b.rewriteReconcile},
		{"latency", b.latencies},
		{"generators' latency", b.genLatencies},
		{"git latency", b.gitLatencies},
		{"kv", b.kvReads},
		{"idle", b.idle},
		{"skewed log", b.skewed},
		{"small events", func(ctx context.Context) error {
			if b.cfg.SmallEvents < 0 {
				return nil
			}
			return b.small(ctx)
		}},
	}
	for _, s := range steps {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := s.fn(ctx); err != nil {
			return nil, fmt.Errorf("%s: %w", s.name, err)
		}
	}
	return b.rep, nil
}

func (b *runner) progress(format string, args ...any) {
	fmt.Fprintf(b.cfg.Progress, "%s  "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// buildMirrord builds the mirrord command of this module, without the race
// detector or any instrumentation: the binary users run.
func (b *runner) buildMirrord(ctx context.Context) (string, error) {
	bin := filepath.Join(b.work, "mirrord")
	b.progress("building mirrord")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/mirrord/mirrord/cmd/mirrord")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building mirrord (or pass --mirrord): %v\n%s", err, out)
	}
	return bin, nil
}

// childStep runs a Child step and decodes its result.
func (b *runner) childStep(ctx context.Context, args ...string) (childResult, procResult, error) {
	p, err := b.self(ctx, args...)
	if err != nil {
		return childResult{}, p, err
	}
	var r childResult
	if err := json.Unmarshal(p.Stdout, &r); err != nil {
		return r, p, fmt.Errorf("child %s: bad result %q: %v", args[0], p.Stdout, err)
	}
	if r.PeakRSS > 0 {
		p.MaxRSS = r.PeakRSS
	}
	return r, p, nil
}

// mirrordSync runs `mirrord sync` (with --resync when asked) on a log and
// a store, without generators (the work the other stacks do too) unless
// asked. Its peak RSS is the one mirrord logs (its own VmHWM).
func (b *runner) mirrordSync(ctx context.Context, logPath, store string, resync, generators bool) (procResult, error) {
	args := []string{"sync", "--eventlog", logPath, "--store", store, "--log-format", "json"}
	if resync {
		args = append(args, "--resync")
	}
	var env []string
	if !generators {
		env = append(env, "MIRRORD_GENERATORS=")
	}
	return b.runSync(ctx, env, args...)
}

// runSync runs mirrord with args (a sync: --log-format json) and env, and
// takes its peak RSS from the line it logs when the store is up to date.
func (b *runner) runSync(ctx context.Context, env []string, args ...string) (procResult, error) {
	p, err := run(ctx, "", env, b.cfg.Mirrord, args...)
	if err != nil {
		return p, err
	}
	for _, line := range strings.Split(p.Stderr, "\n") {
		var rec struct {
			Msg  string `json:"msg"`
			Peak int64  `json:"peak_rss_mib"`
		}
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "the store is up to date" && rec.Peak > 0 {
			p.MaxRSS = rec.Peak << 20
		}
	}
	return p, nil
}

// median returns the middle value (the lower of the two middle ones).
func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[(len(s)-1)/2]
}

// dirSize sums the sizes of the files under dir.
func dirSize(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			n += info.Size()
		}
		return nil
	})
	return n, err
}

func fileSize(path string) (int64, error) {
	st, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

// countLabel writes an event count the way the table does: 10k, 1M.
func countLabel(n int) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return strconv.Itoa(n/1_000_000) + "M"
	case n >= 1000 && n%1000 == 0:
		return strconv.Itoa(n/1000) + "k"
	}
	return strconv.Itoa(n)
}
