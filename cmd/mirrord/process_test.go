package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
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

// child is a mirrord process started by a test. Its stderr is kept
// whole: a wait searches every line from a mark, so that two lines the
// test waits for are found in whichever order the daemon's goroutines
// logged them.
type child struct {
	t    *testing.T
	cmd  *exec.Cmd
	mu   sync.Mutex
	log  []string
	grew chan struct{} // closed and replaced on every new line
	done chan struct{}
	err  error
}

// startChild runs the test binary itself as mirrord (race-instrumented).
func startChild(t *testing.T, args ...string) *child {
	t.Helper()
	return startProcess(t, os.Args[0], args...)
}

func startProcess(t *testing.T, bin string, args ...string) *child {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "MIRRORDTEST_AS_MAIN=1")
	cmd.Env = filterEnv(cmd.Env, "JOURNAL_STREAM", "NOTIFY_SOCKET")
	return startCmd(t, cmd)
}

// startCmd starts a prepared command and collects its stderr lines.
func startCmd(t *testing.T, cmd *exec.Cmd) *child {
	t.Helper()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	c := &child{t: t, cmd: cmd, grew: make(chan struct{}), done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			c.mu.Lock()
			c.log = append(c.log, sc.Text())
			close(c.grew)
			c.grew = make(chan struct{})
			c.mu.Unlock()
		}
		c.err = cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-c.done
	})
	return c
}

func filterEnv(env []string, drop ...string) []string {
	var out []string
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		keep := !strings.HasPrefix(name, "MIRRORD_")
		for _, d := range drop {
			if name == d {
				keep = false
			}
		}
		if keep {
			out = append(out, kv)
		}
	}
	return out
}

// mark is the number of lines logged so far: a wait from it sees only
// what was logged after.
func (c *child) mark() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.log)
}

// waitLine waits for a stderr line containing every one of subs, logged
// at any time since the start.
func (c *child) waitLine(timeout time.Duration, subs ...string) string {
	c.t.Helper()
	l, _ := c.waitLineFrom(0, timeout, subs...)
	return l
}

// waitLineFrom waits for a line containing every one of subs among the
// lines from index from on, and returns it and its index.
func (c *child) waitLineFrom(from int, timeout time.Duration, subs ...string) (string, int) {
	c.t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		l, i, grew := c.find(from, subs)
		if i >= 0 {
			return l, i
		}
		select {
		case <-grew:
		case <-c.done:
			if l, i, _ := c.find(from, subs); i >= 0 { // logged just before the exit
				return l, i
			}
			c.t.Fatalf("mirrord exited (%v) before logging %q:\n%s", c.err, subs, c.output())
		case <-deadline.C:
			c.t.Fatalf("no line with %q after %v:\n%s", subs, timeout, c.output())
		}
	}
}

// find returns the first line from index from that contains every one of
// subs (index -1: none yet) and the channel closed on the next line.
func (c *child) find(from int, subs []string) (string, int, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := from; i < len(c.log); i++ {
		if containsAll(c.log[i], subs) {
			return c.log[i], i, nil
		}
	}
	return "", -1, c.grew
}

// next returns line i once it is logged; ok is false when the process
// exited without logging it, or after timeout.
func (c *child) next(i int, timeout time.Duration) (line string, ok bool) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		if i < len(c.log) {
			defer c.mu.Unlock()
			return c.log[i], true
		}
		grew := c.grew
		c.mu.Unlock()
		select {
		case <-grew:
		case <-c.done:
			c.mu.Lock()
			defer c.mu.Unlock()
			if i < len(c.log) {
				return c.log[i], true
			}
			return "", false
		case <-deadline.C:
			return "", false
		}
	}
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// wait waits for the process to exit and returns its exit code.
func (c *child) wait(timeout time.Duration) int {
	c.t.Helper()
	select {
	case <-c.done:
	case <-time.After(timeout):
		c.t.Fatalf("mirrord still running after %v:\n%s", timeout, c.output())
	}
	var ee *exec.ExitError
	if errors.As(c.err, &ee) {
		return ee.ExitCode()
	}
	if c.err != nil {
		c.t.Fatal(c.err)
	}
	return 0
}

func (c *child) output() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.log, "\n")
}

func (c *child) signal(sig os.Signal) {
	c.t.Helper()
	if err := c.cmd.Process.Signal(sig); err != nil {
		c.t.Fatal(err)
	}
}

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
	c.waitLine(60*time.Second, "caught up; following the log")

	// applied waits until the daemon has applied the log up to its end,
	// and the summary generator has caught up with that batch: two lines
	// logged since mark by two goroutines, in either order.
	applied := func(mark int) {
		t.Helper()
		l, _ := c.waitLineFrom(mark, 30*time.Second, "applied a batch", fmt.Sprintf("offset=%d ", fileSize(t, log)))
		_, seq, _ := strings.Cut(l, "seq=")
		seq, _, _ = strings.Cut(seq, " ")
		c.waitLineFrom(mark, 30*time.Second, "generator=summary", "position="+seq+" ")
	}
	for i := 0; i < 3; i++ {
		mark := c.mark()
		more := gen.Events(1)
		if err := eventlog.AppendFile(log, more...); err != nil {
			t.Fatal(err)
		}
		evs = append(evs, more...)
		applied(mark)
	}
	mark := c.mark()
	evs = append(evs[:10], evs[11:]...)
	if err := eventlog.RewriteFile(log, evs); err != nil {
		t.Fatal(err)
	}
	applied(mark)
	mark = c.mark()
	tmp := filepath.Join(dir, "new.json")
	evs = append(evs, gen.Events(2)...)
	writeLog(t, tmp, evs)
	if err := os.Rename(tmp, log); err != nil {
		t.Fatal(err)
	}
	applied(mark)

	c.signal(syscall.SIGTERM)
	if code := c.wait(30 * time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM:\n%s", code, c.output())
	}
	if !strings.Contains(c.output(), "stopped; store closed") {
		t.Fatalf("no clean stop in the log:\n%s", c.output())
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
	first.waitLine(60*time.Second, "caught up")
	second := startChild(t, "run", "--eventlog", log, "--store", store)
	if code := second.wait(10 * time.Second); code != 1 {
		t.Fatalf("second daemon exit %d, want 1:\n%s", code, second.output())
	}
	if out := second.output(); !strings.Contains(out, "locked") || !strings.Contains(out, store) {
		t.Fatalf("second daemon's message does not say the store is locked:\n%s", out)
	}
	first.signal(syscall.SIGTERM)
	if code := first.wait(30 * time.Second); code != 0 {
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
