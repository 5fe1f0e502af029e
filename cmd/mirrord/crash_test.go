package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mirrord/mirrord/eventlog"
	"github.com/mirrord/mirrord/internal/synth"
)

// Crash tests: SIGKILL a real mirrord at random moments of a long
// operation, restart it, and require the store to equal the log. Every
// batch carries its checkpoint, so any instant is a safe one. The default
// run kills 4 × -mirrord.kills (8) times; raise the flag for more.

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// mirrordBinary builds mirrord without the race detector, once per test
// run: crash tests run it dozens of times over thousands of events, and a
// race-instrumented Pebble is an order of magnitude slower. (The follow
// and signal tests run the race-instrumented test binary itself.)
func mirrordBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "mirrord-bin")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "mirrord")
		out, err := exec.Command("go", "build", "-o", builtBin, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

// killAfterBatches starts mirrord with args and SIGKILLs it once it has
// applied `batches` batches plus a random jitter, so the kill lands at a
// random point of the work, whatever the machine's speed. It reports
// whether the kill happened before the process finished.
func killAfterBatches(t *testing.T, rng *rand.Rand, batches int, args ...string) bool {
	t.Helper()
	c := startProcess(t, mirrordBinary(t), args...)
	for i, n := 0, 0; n < batches; i++ {
		l, ok := c.Line(i, time.Minute)
		if !ok {
			if c.Exited() {
				return false
			}
			t.Fatalf("no progress for a minute:\n%s", c.Output())
		}
		if strings.Contains(l, "applied a batch") {
			n++
		}
	}
	time.Sleep(time.Duration(rng.Int64N(int64(3 * time.Millisecond))))
	c.Signal(syscall.SIGKILL)
	c.Wait(30 * time.Second)
	return !strings.Contains(c.Output(), "the store is up to date")
}

// followUntilCaughtUp runs "mirrord run" until it has caught up, stops it
// with SIGTERM, and returns how many batches it applied.
func followUntilCaughtUp(t *testing.T, args ...string) int {
	t.Helper()
	c := startProcess(t, mirrordBinary(t), args...)
	c.WaitLine(5*time.Minute, "caught up; following the log")
	c.Signal(syscall.SIGTERM)
	if code := c.Wait(time.Minute); code != 0 {
		t.Fatalf("mirrord run: exit %d after SIGTERM\n%s", code, c.Output())
	}
	return strings.Count(c.Output(), "applied a batch")
}

// run runs mirrord (the non-race build) to completion, failing on a
// non-zero exit, and returns how many batches it applied.
func runBinary(t *testing.T, args ...string) int {
	t.Helper()
	c := startProcess(t, mirrordBinary(t), args...)
	if code := c.Wait(5 * time.Minute); code != 0 {
		t.Fatalf("mirrord %v: exit %d\n%s", args, code, c.Output())
	}
	return strings.Count(c.Output(), "applied a batch")
}

func syncArgs(log, store string, extra ...string) []string {
	return append([]string{"sync", "--once", "--eventlog", log, "--store", store,
		"--batch-size", "64KiB", "--settle", "10ms", "--log-level", "debug", "--log-format", "text"}, extra...)
}

// verifyWithBinary runs mirrord verify (exit 0 only when the store equals
// the log).
func verifyWithBinary(t *testing.T, log, store string) {
	t.Helper()
	c := startProcess(t, mirrordBinary(t), "verify", "--eventlog", log, "--store", store)
	if code := c.Wait(2 * time.Minute); code != 0 {
		t.Fatalf("verify after a crash and a restart: exit %d\n%s", code, c.Output())
	}
}

// killAfter starts mirrord with args and SIGKILLs it after d. It reports
// whether the kill landed inside the load (mirrord had not logged "loaded
// the log"), and when the load ended first, how long after the start it
// did. A run that exits before its kill must exit 0.
func killAfter(t *testing.T, d time.Duration, args ...string) (midway bool, loaded time.Duration) {
	t.Helper()
	start := time.Now()
	c := startProcess(t, mirrordBinary(t), args...)
	deadline := time.Now().Add(d)
	for i := 0; ; i++ {
		l, ok := c.Line(i, time.Until(deadline))
		if !ok {
			break // exited, or time to kill it
		}
		if loaded == 0 && strings.Contains(l, "loaded the log") {
			loaded = time.Since(start)
		}
	}
	if c.Exited() {
		if code := c.Wait(time.Second); code != 0 {
			t.Fatalf("mirrord %v: exit %d before its kill\n%s", args, code, c.Output())
		}
		if loaded == 0 {
			loaded = time.Since(start)
		}
		return false, loaded
	}
	c.Signal(syscall.SIGKILL)
	c.Wait(30 * time.Second)
	if strings.Contains(c.Output(), "loaded the log") {
		return false, loaded
	}
	return true, 0
}

// crashScenario kills mirrord many times during op: after a random number
// of applied batches when op applies many, or at a random moment of its
// duration when it is one atomic step (a bulk load).
func crashScenario(t *testing.T, name string, prepare func(t *testing.T, log, store string), op func(log, store string) []string) {
	t.Run(name, func(t *testing.T) {
		seed := uint64(time.Now().UnixNano())
		t.Logf("seed %d", seed)
		rng := rand.New(rand.NewPCG(seed, 1))
		dir := t.TempDir()
		log := filepath.Join(dir, "data.json")
		// How many batches the operation applies, and how long it takes,
		// uninterrupted: to spread the kills over it.
		calib := filepath.Join(dir, "calibration")
		prepare(t, log, calib)
		mirrordBinary(t) // built once, outside the timed run
		start := time.Now()
		var total int
		if args := op(log, calib); args[0] == "run" {
			total = followUntilCaughtUp(t, args...)
		} else {
			total = runBinary(t, args...)
		}
		took := time.Since(start)
		kills := 0
		for i := 0; i < *crashKills; i++ {
			store := filepath.Join(dir, "store", fmt.Sprint(i))
			prepare(t, log, store)
			if total >= 4 {
				if killAfterBatches(t, rng, rng.IntN(total-1), op(log, store)...) {
					kills++
				}
			} else {
				midway, loaded := killAfter(t, time.Duration(float64(took)*(0.05+0.9*rng.Float64())), op(log, store)...)
				if midway {
					kills++
				} else if loaded > 0 {
					// The calibration ran slower than this run (another
					// test's load on the machine, say): aim the next
					// kills within what this one took.
					took = min(took, loaded)
				}
			}
			// Restart: a plain sync finishes whatever was interrupted.
			runBinary(t, syncArgs(log, store)...)
			verifyWithBinary(t, log, store)
		}
		t.Logf("%s: %d of %d runs killed mid-way (%d batches, %v)", name, kills, *crashKills, total, took.Round(time.Millisecond))
		if kills < *crashKills/2 {
			t.Fatalf("only %d of %d kills landed before the operation ended", kills, *crashKills)
		}
	})
}

func TestCrashAtRandomMoments(t *testing.T) {
	if testing.Short() {
		t.Skip("crash tests run real processes; skipped with -short")
	}
	base := synth.New(99).Events(6000)
	// A first load and a resync are one atomic step each: a larger log
	// gives the kills room.
	big := synth.New(98).Events(10000)

	// A large initial ingest.
	crashScenario(t, "initial ingest",
		func(t *testing.T, log, store string) { writeLog(t, log, big) },
		func(log, store string) []string { return syncArgs(log, store) })

	// A rewrite reconcile: the store holds the old log, the log is
	// rewritten with a third deleted, a tenth changed and new events.
	rewritten := func() []*eventlog.Event {
		var out []*eventlog.Event
		for i, e := range base {
			switch {
			case i%3 == 0:
				continue
			case i%10 == 1:
				c := *e
				c.Description += " (edited)"
				out = append(out, &c)
			default:
				out = append(out, e)
			}
		}
		return append(out, synth.New(100).Events(500)...)
	}()
	crashScenario(t, "rewrite reconcile",
		func(t *testing.T, log, store string) {
			writeLog(t, log, base)
			runBinary(t, syncArgs(log, store)...)
			old := time.Now().Add(-time.Hour)
			writeLog(t, log, rewritten)
			_ = os.Chtimes(log, old, old)
		},
		func(log, store string) []string { return syncArgs(log, store) })

	// The daemon itself, loading a log into an empty store.
	crashScenario(t, "run",
		func(t *testing.T, log, store string) { writeLog(t, log, big) },
		func(log, store string) []string {
			return append([]string{"run"}, syncArgs(log, store)[2:]...)
		})

	// A resync of a full store.
	crashScenario(t, "resync",
		func(t *testing.T, log, store string) {
			writeLog(t, log, big)
			runBinary(t, syncArgs(log, store)...)
		},
		func(log, store string) []string { return syncArgs(log, store, "--resync") })
}
