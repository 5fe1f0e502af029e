package bench

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The test binary doubles as the benchmark's child process, as
// cmd/mirrord-bench does.
func TestMain(m *testing.M) {
	if os.Getenv(ChildEnv) == "1" {
		os.Exit(Child(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// A small run of the whole benchmark: every step runs for real (mirrord
// built from this module, the naive baseline, the daemons, the socket)
// and the report holds every figure. The figures themselves are the
// benchmark's business, not this test's; that each was taken is.
func TestBenchmarkRunsEveryStep(t *testing.T) {
	if testing.Short() {
		t.Skip("builds mirrord and starts daemons")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("needs the go command to build mirrord")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var progress bytes.Buffer
	dir := t.TempDir()
	rep, err := Run(ctx, Config{
		Quick: true, Sizes: []int{3000}, Appends: 30, GitAppends: 30, Idle: time.Second, NoNode: true,
		Dir: dir, Progress: &progress,
	})
	if err != nil {
		t.Fatalf("%v\nprogress:\n%s", err, progress.String())
	}
	if len(rep.Resync) != 1 || rep.Resync[0].Mirrord.Took <= 0 || rep.Resync[0].Naive.Took <= 0 || rep.Resync[0].Mirrord.MaxRSS <= 0 {
		t.Fatalf("resync row: %+v", rep.Resync)
	}
	if g := rep.Resync[0].WithGenerators; g.Took <= 0 || g.MaxRSS <= 0 {
		t.Fatalf("the resync with the default generators was not measured: %+v", g)
	}
	if c := rep.Reconcile; c == nil || c.Keys == 0 || c.Keys > 20 || c.EventsAfter != 2999 || c.Parse <= 0 {
		t.Fatalf("reconcile row: %+v (one event of 3000 deleted: a handful of keys, 2999 events left)", c)
	}
	if len(rep.Latency) != 2 || rep.Latency[0].Appends != 30 || rep.Latency[1].P50 <= 0 {
		t.Fatalf("latency rows: %+v", rep.Latency)
	}
	if _, err := exec.LookPath("git"); err == nil {
		if len(rep.GitLatency) != 2 || rep.GitLatency[0].Appends != 30 || rep.GitLatency[1].P50 <= 0 || rep.GitLatency[1].FloorP50 <= 0 ||
			rep.GitLoad == nil || rep.GitLoad.MaxRSS <= 0 {
			t.Fatalf("git mode rows: %+v, load %+v", rep.GitLatency, rep.GitLoad)
		}
	}
	if len(rep.Idle) != 2 || rep.Idle[0].RSS <= 0 || rep.Idle[1].RSS <= 0 {
		t.Fatalf("idle rows: %+v", rep.Idle)
	}
	if k := rep.KV; k == nil || k.Scanned != 3000-1+30 || k.GetP50 <= 0 || k.CachedGetP50 <= 0 || k.StoreBytes <= 0 {
		t.Fatalf("kv row: %+v (3000 events, one deleted, 30 appended)", k)
	}
	var out bytes.Buffer
	if err := rep.Write(&out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Full resync", "With the default generators rebuilt too", "Append-to-visible", "Rewrite reconcile", "Following daemon", "kv (g)", "Targets", "Node original: skipped"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("the report has no %q:\n%s", want, out.String())
		}
	}
	// The run's scratch directory is gone; the synthetic logs are kept.
	runs, _ := filepath.Glob(filepath.Join(dir, "run-*"))
	logs, _ := filepath.Glob(filepath.Join(dir, "synth-*.json"))
	if len(runs) != 0 || len(logs) != 2 { // 3000 events, and 1000 for the latency
		t.Fatalf("left in %s: runs %v, logs %v", dir, runs, logs)
	}
}
