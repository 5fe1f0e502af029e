package testkit

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// childEnv makes the test binary a child that runs one of childScenarios.
const childEnv = "TESTKIT_CHILD"

func TestMain(m *testing.M) {
	if name := os.Getenv(childEnv); name != "" {
		childScenarios[name]()
		return
	}
	goleak.VerifyTestMain(m)
}

var childScenarios = map[string]func(){
	// exit3 writes to both streams and exits 3.
	"exit3": func() {
		fmt.Print("out")
		fmt.Fprint(os.Stderr, "err")
		os.Exit(3)
	},
	// lines logs "second" before "first", then waits for stdin to close.
	"lines": func() {
		fmt.Fprintln(os.Stderr, "second line")
		fmt.Fprintln(os.Stderr, "first line")
		_, _ = os.Stdin.Read(make([]byte, 1))
		os.Exit(0)
	},
	// hang never ends by itself.
	"hang": func() { select {} },
}

func child(name string) []string { return []string{childEnv + "=" + name} }

// recorder is a testing.TB whose Fatal ends only the goroutine that
// called it, so that a test can see a helper fail.
type recorder struct {
	testing.TB
	failed atomic.Pointer[string]
}

func (r *recorder) Helper() {}

func (r *recorder) Fatalf(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	r.failed.Store(&s)
	runtime.Goexit()
}

func (r *recorder) Fatal(args ...any) { r.Fatalf("%s", fmt.Sprint(args...)) }

// fails runs f with a recorder and returns what it failed with ("" when
// it did not fail).
func fails(t *testing.T, f func(tb testing.TB)) string {
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(r)
	}()
	<-done
	if s := r.failed.Load(); s != nil {
		return *s
	}
	return ""
}

func TestEventuallyWaitsForTheCondition(t *testing.T) {
	calls := 0
	Eventually(t, "three calls", func() error {
		if calls++; calls < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if calls != 3 {
		t.Fatalf("cond called %d times, want 3", calls)
	}
}

func TestEventuallyFailsWithTheLastAnswer(t *testing.T) {
	n := 0
	msg := fails(t, func(tb testing.TB) {
		EventuallyWithin(tb, 30*time.Millisecond, "the impossible", func() error {
			n++
			return fmt.Errorf("answer %d", n)
		})
	})
	if !strings.Contains(msg, "the impossible") || !strings.Contains(msg, "answer "+strconv.Itoa(n)) {
		t.Fatalf("failure %q does not name what was awaited and the last answer (%d)", msg, n)
	}
}

func TestFilterEnv(t *testing.T) {
	env := []string{"A=1", "MIRRORD_X=2", "MIRRORD_Y=3", "NOTIFY_SOCKET=/s", "NOTIFY=4"}
	for _, tc := range []struct {
		drop []string
		want []string
	}{
		{nil, env},
		{[]string{"NOTIFY_SOCKET"}, []string{"A=1", "MIRRORD_X=2", "MIRRORD_Y=3", "NOTIFY=4"}},
		{[]string{"MIRRORD_", "NOTIFY"}, []string{"A=1", "NOTIFY_SOCKET=/s"}},
	} {
		if got := FilterEnv(env, tc.drop...); !slices.Equal(got, tc.want) {
			t.Errorf("FilterEnv(%q) = %q, want %q", tc.drop, got, tc.want)
		}
	}
}

func TestRunCollectsAnExit(t *testing.T) {
	r := Run(t, time.Minute, Self(child("exit3"), nil))
	if r.Code != 3 || r.Stdout != "out" || r.Stderr != "err" {
		t.Fatalf("Run = %+v, want code 3, out, err", r)
	}
}

func TestRunKillsAChildThatOutlivesItsTime(t *testing.T) {
	msg := fails(t, func(tb testing.TB) { Run(tb, 200*time.Millisecond, Self(child("hang"), nil)) })
	if !strings.Contains(msg, "did not end within") {
		t.Fatalf("Run of a hanging child failed with %q", msg)
	}
}

func TestProcFindsLinesInAnyOrder(t *testing.T) {
	cmd := Self(child("lines"), nil)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := Start(t, cmd)
	_, first := p.WaitLineFrom(0, time.Minute, "first")
	_, second := p.WaitLineFrom(0, time.Minute, "second")
	if first != 1 || second != 0 {
		t.Fatalf("lines found at %d and %d, want 1 and 0", first, second)
	}
	if l, ok := p.Line(1, time.Minute); !ok || l != "first line" {
		t.Fatalf("Line(1) = %q, %v", l, ok)
	}
	if m := p.Mark(); m != 2 {
		t.Fatalf("Mark = %d after two lines", m)
	}
	if p.Exited() {
		t.Fatal("the child exited before its stdin closed")
	}
	stdin.Close()
	if code := p.Wait(time.Minute); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if _, ok := p.Line(2, time.Minute); ok {
		t.Fatal("Line(2) of a child that logged two lines")
	}
	msg := fails(t, func(tb testing.TB) {
		q := &Proc{t: tb, cmd: p.cmd, log: p.log, grew: p.grew, done: p.done}
		q.WaitLineFrom(p.Mark(), time.Minute, "never")
	})
	if !strings.Contains(msg, "exited") {
		t.Fatalf("a wait for a line after the exit failed with %q", msg)
	}
}

func TestProcSignalAndWait(t *testing.T) {
	p := Start(t, Self(child("hang"), nil))
	p.Signal(syscall.SIGKILL)
	if code := p.Wait(time.Minute); code != -1 {
		t.Fatalf("exit %d after SIGKILL, want -1", code)
	}
}
