package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mirrord/mirrord/eventlog"
	"github.com/mirrord/mirrord/internal/gittest"
	"github.com/mirrord/mirrord/internal/synth"
	"github.com/mirrord/mirrord/internal/testkit"
	"github.com/mirrord/mirrord/kv"
	"github.com/mirrord/mirrord/mirror"
	"github.com/mirrord/mirrord/schema"
	"go.uber.org/goleak"
)

// The test binary doubles as mirrord: with MIRRORDTEST_AS_MAIN=1 it runs
// main() instead of the tests, so process tests exercise the real program
// (signals, exit codes, a real lock between processes) without a build
// step. The tests themselves fail when a goroutine outlives them.
//
// Git is made hermetic for the git mode's tests (gittest.Hermetic): the
// children inherit it.
func TestMain(m *testing.M) {
	if os.Getenv("MIRRORDTEST_AS_MAIN") == "1" {
		main()
		return
	}
	cleanup, err := gittest.Hermetic()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	goleak.VerifyTestMain(m, goleak.Cleanup(func(int) { cleanup() }))
}

var crashKills = flag.Int("mirrord.kills", 8, "SIGKILLs per crash scenario (four scenarios)")

// child is a mirrord process started by a test: a testkit.Proc, whose
// stderr lines a test awaits in whichever order the daemon's goroutines
// logged them.
type child struct{ *testkit.Proc }

// childDrop is what a child must not inherit from the test's environment:
// the MIRRORD_ settings, systemd's variables (a test that wants them sets
// them) and the store faults of storage_test.go.
var childDrop = []string{"MIRRORD_", "JOURNAL_STREAM", "NOTIFY_SOCKET", "MIRRORDTEST_STORE_FAULT", "MIRRORDTEST_STORE_FAULT_ARM"}

// mirrordCmd is the one way a test runs mirrord: bin with args, in this
// process's environment minus childDrop, plus MIRRORDTEST_AS_MAIN=1 (what
// makes the test binary mirrord; a built binary ignores it) and env.
func mirrordCmd(bin string, env []string, args ...string) *exec.Cmd {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(testkit.FilterEnv(os.Environ(), childDrop...), append([]string{"MIRRORDTEST_AS_MAIN=1"}, env...)...)
	return cmd
}

// startChild runs the test binary itself as mirrord (race-instrumented).
func startChild(t *testing.T, args ...string) *child {
	t.Helper()
	return startChildEnv(t, nil, args...)
}

// startChildEnv is startChild with the variables env added.
func startChildEnv(t *testing.T, env []string, args ...string) *child {
	t.Helper()
	return &child{testkit.Start(t, mirrordCmd(os.Args[0], env, args...))}
}

// startProcess runs bin (mirrordBinary's build) as mirrord.
func startProcess(t *testing.T, bin string, args ...string) *child {
	t.Helper()
	return &child{testkit.Start(t, mirrordCmd(bin, nil, args...))}
}

// The old names of Proc's methods, kept only for git_test.go, which is
// being written beside this change; they go once it uses the Proc names.
//
// verifyStore checks, in process, that the store equals the log.
func verifyStore(t *testing.T, store, log string) *mirror.Report {
	t.Helper()
	db, err := kv.Open(store, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r, err := mirror.Verify(ctx, db, log, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !r.OK() {
		t.Fatalf("%s: missing %q extra %q differ %q bookkeeping %q", r.Summary(), r.MissingKeys, r.ExtraKeys, r.DifferKeys, r.BookkeepingKeys)
	}
	if found, _ := db.Get(schema.ResyncMarkerKey, nil); found {
		t.Fatal("the store still carries the resync marker after a complete sync")
	}
	return r
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

func writeLog(t *testing.T, path string, evs []*eventlog.Event) {
	t.Helper()
	if err := os.WriteFile(path, eventlog.Format(evs), 0o644); err != nil {
		t.Fatal(err)
	}
}

// The real daemon follows appends, an in-place rewrite and a rename, and
// on SIGTERM finishes, closes the store and exits 0; the store then
// equals the log.
func TestRunFollowsAndStopsOnSIGTERM(t *testing.T) {
	dir := t.TempDir()
	log, store := filepath.Join(dir, "data.json"), filepath.Join(dir, "store")
	gen := synth.New(11)
	evs := gen.Events(100)
	writeLog(t, log, evs)
	c := startChild(t, "run", "--eventlog", log, "--store", store, "--log-level", "debug", "--log-format", "text", "--settle", "50ms")
	c.WaitLine(60*time.Second, "caught up; following the log")

	// applied waits until the daemon has applied the log up to its end,
	// and the summary generator has caught up with that batch: two lines
	// logged since mark by two goroutines, in either order.
	applied := func(mark int) {
		t.Helper()
		l, _ := c.WaitLineFrom(mark, 30*time.Second, "applied a batch", fmt.Sprintf("offset=%d ", fileSize(t, log)))
		_, seq, _ := strings.Cut(l, "seq=")
		seq, _, _ = strings.Cut(seq, " ")
		c.WaitLineFrom(mark, 30*time.Second, "generator=summary", "position="+seq+" ")
	}
	for i := 0; i < 3; i++ {
		mark := c.Mark()
		more := gen.Events(1)
		if err := eventlog.AppendFile(log, more...); err != nil {
			t.Fatal(err)
		}
		evs = append(evs, more...)
		applied(mark)
	}
	mark := c.Mark()
	evs = append(evs[:10], evs[11:]...)
	if err := eventlog.RewriteFile(log, evs); err != nil {
		t.Fatal(err)
	}
	applied(mark)
	mark = c.Mark()
	tmp := filepath.Join(dir, "new.json")
	evs = append(evs, gen.Events(2)...)
	writeLog(t, tmp, evs)
	if err := os.Rename(tmp, log); err != nil {
		t.Fatal(err)
	}
	applied(mark)

	c.Signal(syscall.SIGTERM)
	if code := c.Wait(30 * time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM:\n%s", code, c.Output())
	}
	if !strings.Contains(c.Output(), "stopped; store closed") {
		t.Fatalf("no clean stop in the log:\n%s", c.Output())
	}
	r := verifyStore(t, store, log)
	if r.Events != len(evs) {
		t.Fatalf("store holds %d events, want %d", r.Events, len(evs))
	}
	// The generators followed too: the summary counts every event (its
	// values are the months, and nothing else).
	db, err := kv.Open(store, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	total := 0
	err = db.Scan(schema.GeneratorPrefix("summary"), func(k string, v json.RawMessage) error {
		var m struct{ Count int }
		if err := json.Unmarshal(v, &m); err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
		total += m.Count
		return nil
	})
	if err != nil || total != len(evs) {
		t.Fatalf("summary counts %d events, want %d (%v)", total, len(evs), err)
	}
}

// A second daemon on the same store fails at once with a lock error.
func TestSecondDaemonOnOneStoreFailsAtOnce(t *testing.T) {
	dir := t.TempDir()
	log, store := filepath.Join(dir, "data.json"), filepath.Join(dir, "store")
	writeLog(t, log, synth.New(3).Events(10))
	first := startChild(t, "run", "--eventlog", log, "--store", store)
	first.WaitLine(60*time.Second, "caught up")
	second := startChild(t, "run", "--eventlog", log, "--store", store)
	if code := second.Wait(10 * time.Second); code != 1 {
		t.Fatalf("second daemon exit %d, want 1:\n%s", code, second.Output())
	}
	if out := second.Output(); !strings.Contains(out, "locked") || !strings.Contains(out, store) {
		t.Fatalf("second daemon's message does not say the store is locked:\n%s", out)
	}
	first.Signal(syscall.SIGTERM)
	if code := first.Wait(30 * time.Second); code != 0 {
		t.Fatalf("first daemon exit %d", code)
	}
}

// The first SIGTERM cancels and drains; a second one exits at once.
func TestSecondSignalExitsAtOnce(t *testing.T) {
	var exited = make(chan int, 1)
	m := &Main{Exit: func(code int) { exited <- code }}
	var logs strings.Builder
	ctx, stop := m.signalContext(context.Background(), newLogger(&syncWriter{w: &logs}, "text", levelVar("info"), noEnv), nil)
	defer stop()
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("first SIGTERM did not cancel the context")
	}
	select {
	case code := <-exited:
		t.Fatalf("exited (%d) on the first signal", code)
	default:
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-exited:
		if code != exitFailure {
			t.Fatalf("second signal exit code %d", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("second SIGTERM did not exit")
	}
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
