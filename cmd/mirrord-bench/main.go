// Command mirrord-bench measures mirrord against what it replaces and
// prints one table, with the targets mirrord must meet:
//
//	go run ./cmd/mirrord-bench            # the full run (minutes)
//	go run ./cmd/mirrord-bench --quick    # a smoke run (under a minute)
//
// It builds cmd/mirrord, writes seeded synthetic logs in the application's
// format (kept in --dir for the next run), and measures, in one run: a
// full resync by mirrord, by a naive Go pipeline and by the original
// Node.js module (when node is installed); append-to-visible latency, also
// in git mode beside git's own read of the blob; a rewrite reconcile; a following daemon's idle CPU and memory; kv reads.
// See package bench beside it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/mirrord/mirrord/cmd/mirrord-bench/bench"
)

func main() {
	if os.Getenv(bench.ChildEnv) == "1" {
		os.Exit(bench.Child(os.Args[1:]))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := (&Main{Stdout: os.Stdout, Stderr: os.Stderr}).Run(ctx, os.Args[1:])
	stop()
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "mirrord-bench:", err)
		os.Exit(1)
	}
}

// Main is the command, testable in process.
type Main struct {
	Stdout, Stderr io.Writer
}

// Run parses args, runs the benchmark and prints the report.
func (m *Main) Run(ctx context.Context, args []string) error {
	var (
		cfg   bench.Config
		sizes string
		out   string
	)
	fs := flag.NewFlagSet("mirrord-bench", flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	fs.BoolVar(&cfg.Quick, "quick", false, "a smoke run: a 10k-event log, 200 appends, 5 s idle, no Node (under a minute)")
	fs.StringVar(&sizes, "sizes", "", "event counts of the resync logs, comma-separated, with k or M (default 10k,100k,1M; --quick: 10k)")
	fs.IntVar(&cfg.Runs, "runs", 1, "runs of each resync; the table shows the median")
	fs.IntVar(&cfg.Appends, "appends", 0, "single-event appends timed on each log (default 1000; --quick: 200)")
	fs.IntVar(&cfg.GitAppends, "git-appends", 0, "commits timed on each log in git mode, at most 20 on 500k events or more (default 1000; --quick: 200)")
	fs.DurationVar(&cfg.Idle, "idle", 0, "how long the idle daemons are watched (default 1m; --quick: 5s)")
	fs.StringVar(&cfg.Dir, "dir", "", "directory for the synthetic logs (kept) and the stores (removed) (default $TMPDIR/mirrord-bench)")
	fs.StringVar(&cfg.Mirrord, "mirrord", "", "mirrord binary to measure (default: built from this module)")
	fs.StringVar(&cfg.NodeOrigin, "node-origin", "", "directory of the Node.js original's ingest.js (default: shared/bench/node-origin above the working directory)")
	fs.BoolVar(&cfg.NoNode, "no-node", false, "skip the Node.js original")
	fs.StringVar(&out, "out", "", "also write the report to this file")
	var skewed, small string
	fs.StringVar(&skewed, "skewed", "", "events of the skewed log (one month, a tag on all), with k or M (default 1M; --quick: 10k)")
	fs.StringVar(&small, "small", "", "events of the log of small events, with k or M, or 0 to skip (default 10M; --quick: skipped)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if skewed != "" {
		n, err := parseCount(skewed)
		if err != nil {
			return err
		}
		cfg.SkewedEvents = n
	}
	switch small {
	case "":
	case "0":
		cfg.SmallEvents = -1
	default:
		n, err := parseCount(small)
		if err != nil {
			return err
		}
		cfg.SmallEvents = n
	}
	if sizes != "" {
		for _, s := range strings.Split(sizes, ",") {
			n, err := parseCount(s)
			if err != nil {
				return fmt.Errorf("--sizes: %w", err)
			}
			cfg.Sizes = append(cfg.Sizes, n)
		}
	}
	cfg.Progress = m.Stderr
	rep, err := bench.Run(ctx, cfg)
	if err != nil {
		return err
	}
	if err := rep.Write(m.Stdout); err != nil {
		return err
	}
	if out != "" {
		f, err := os.Create(out)
		if err != nil {
			return err
		}
		if err := rep.Write(f); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	}
	return nil
}

// parseCount reads an event count: 1000, 10k, 1M.
func parseCount(s string) (int, error) {
	s = strings.TrimSpace(s)
	mult := 1
	switch {
	case strings.HasSuffix(s, "k"):
		mult, s = 1000, strings.TrimSuffix(s, "k")
	case strings.HasSuffix(s, "M"):
		mult, s = 1_000_000, strings.TrimSuffix(s, "M")
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%q is not an event count (such as 1000, 10k, 1M)", s)
	}
	return n * mult, nil
}
