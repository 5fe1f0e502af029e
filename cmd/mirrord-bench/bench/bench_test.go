package bench

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/mirrord/mirrord/kv"
	"go.uber.org/goleak"
)

// The test binary doubles as the benchmark's child process, as
// cmd/mirrord-bench does. The tests fail when a goroutine outlives them.
func TestMain(m *testing.M) {
	if os.Getenv(ChildEnv) == "1" {
		os.Exit(Child(os.Args[1:]))
	}
	goleak.VerifyTestMain(m)
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
	dir := t.TempDir()
	// The build first, under its own bound: a cold build on a loaded
	// 2-core machine took 72 s, which is the compiler's time, not the
	// benchmark's.
	bctx, bcancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer bcancel()
	bin := filepath.Join(dir, "mirrord")
	if out, err := exec.CommandContext(bctx, "go", "build", "-o", bin, "github.com/mirrord/mirrord/cmd/mirrord").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	// The quick run took 55 s under the race detector on a shared 2-core
	// machine; the bound allows a loaded one six times that (the skewed and small logs included).
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	var progress bytes.Buffer
	rep, err := Run(ctx, Config{
		Quick: true, Sizes: []int{3000}, Appends: 30, GitAppends: 30, Idle: time.Second, NoNode: true,
		SkewedEvents: 2000, SmallEvents: 5000, Dir: dir, Progress: &progress, Mirrord: bin,
	})
	if err != nil {
		t.Fatalf("%v\nprogress:\n%s", err, progress.String())
	}
	if len(rep.Resync) != 1 || rep.Resync[0].Mirrord.Took <= 0 || rep.Resync[0].Naive.Took <= 0 || rep.Resync[0].Mirrord.MaxRSS <= 0 {
		t.Fatalf("resync row: %+v", rep.Resync)
	}
	if g := rep.Resync[0].WithGenerators; g.Took <= 0 || g.MaxRSS <= 0 {
		t.Fatalf("the default sync (with its generators) was not measured: %+v", g)
	}
	if c := rep.Reconcile; c == nil || c.Keys == 0 || c.Keys > 20 || c.EventsAfter != 2999 || c.Parse <= 0 || c.GenKeys == 0 || c.GenKeys > 20 {
		t.Fatalf("reconcile row: %+v (one event of 3000 deleted: a handful of keys, by the mirror and the generators; 2999 events left)", c)
	}
	if len(rep.Latency) != 2 || rep.Latency[0].Appends != 30 || rep.Latency[1].P50 <= 0 {
		t.Fatalf("latency rows: %+v", rep.Latency)
	}
	if len(rep.GenLatency) != 2 || rep.GenLatency[0].Appends != 30 || rep.GenLatency[1].P99 <= 0 {
		t.Fatalf("generated-value latency rows: %+v", rep.GenLatency)
	}
	if k := rep.Skewed; k == nil || k.Events != 2000 || k.Load.Took <= 0 || k.Latency.P99 <= 0 || k.AppendCPU <= 0 {
		t.Fatalf("skewed row: %+v", k)
	}
	if s := rep.Small; s == nil || s.Events != 5000 || s.Mirror.Took <= 0 || s.Default.MaxRSS <= 0 {
		t.Fatalf("small-events row: %+v", s)
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
	if k := rep.KV; k == nil || k.Scanned != 3000-1+30+30 || k.GetP50 <= 0 || k.CachedGetP50 <= 0 || k.StoreBytes <= 0 {
		t.Fatalf("kv row: %+v (3000 events, one deleted, 30 appended twice)", k)
	}
	var out bytes.Buffer
	if err := rep.Write(&out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Full resync", "The default sync", "Append-to-visible", "Append → generated value", "Rewrite reconcile",
		"Skewed log", "Small events", "Following daemon", "kv (g)", "Targets", "Node original: skipped"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("the report has no %q:\n%s", want, out.String())
		}
	}
	// The run's scratch directory is gone; the synthetic logs are kept.
	runs, _ := filepath.Glob(filepath.Join(dir, "run-*"))
	logs, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	if len(runs) != 0 || len(logs) != 4 { // 3000 events, 1000 for the latency, the skewed and the small ones
		t.Fatalf("left in %s: runs %v, logs %v", dir, runs, logs)
	}
}

// The kv step's timed Gets stop when the run's context is done, rather
// than finish a count that takes minutes under the race detector.
func TestTimeGetsStopsWithItsContext(t *testing.T) {
	db, err := kv.Open("store", &kv.Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Put("k", 1); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	lat, err := timeGets(ctx, db, 1_000_000, func() string {
		if n++; n == 1500 {
			cancel()
		}
		return "k"
	})
	if !errors.Is(err, context.Canceled) || lat != nil || n > 2000 {
		t.Fatalf("after a cancel at the 1500th Get: %d Gets, err %v", n, err)
	}
	if lat, err = timeGets(context.Background(), db, 10, func() string { return "k" }); err != nil || len(lat) != 10 {
		t.Fatalf("10 Gets: %d timed, err %v", len(lat), err)
	}
}
