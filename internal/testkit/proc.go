package testkit

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// Self is a command that runs the test binary itself again, with args
// and with env added to this process's environment minus the variables
// whose names drop lists (a name ending in "_" drops every variable with
// that prefix). A package's TestMain decides, from a variable of env,
// that it is such a child and what to run instead of the tests.
func Self(env []string, drop []string, args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(FilterEnv(os.Environ(), drop...), env...)
	return cmd
}

// FilterEnv returns env without the variables named in drop; a name that
// ends in "_" drops every variable with that prefix.
func FilterEnv(env []string, drop ...string) []string {
	var out []string
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		if !dropped(name, drop) {
			out = append(out, kv)
		}
	}
	return out
}

func dropped(name string, drop []string) bool {
	for _, d := range drop {
		if name == d || strings.HasSuffix(d, "_") && strings.HasPrefix(name, d) {
			return true
		}
	}
	return false
}

// Result is how a process run by Run ended.
type Result struct {
	Code           int // exit status; -1 when ended by a signal
	Stdout, Stderr string
}

// Run runs cmd to its end, collecting its output, and fails t when it
// does not end within d (it is killed then) or cannot start.
func Run(t testing.TB, d time.Duration, cmd *exec.Cmd) Result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", cmd.Path, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("%s %q did not end within %v; stderr:\n%s", cmd.Path, cmd.Args[1:], d, stderr.String())
	}
	return Result{Code: cmd.ProcessState.ExitCode(), Stdout: stdout.String(), Stderr: stderr.String()}
}

// Proc is a child process started by a test, whose stderr it keeps whole,
// line by line: a wait searches every line from a mark, so that two lines
// a test waits for are found in whichever order the child logged them.
// The child is killed, and its reader stopped, when the test ends.
type Proc struct {
	t    testing.TB
	cmd  *exec.Cmd
	mu   sync.Mutex
	log  []string
	grew chan struct{} // closed and replaced on every new line
	done chan struct{} // closed once the process has exited
	err  error         // cmd.Wait's, once done is closed
}

// Start starts cmd (its Stderr must be unset) and collects its stderr.
func Start(t testing.TB, cmd *exec.Cmd) *Proc {
	t.Helper()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &Proc{t: t, cmd: cmd, grew: make(chan struct{}), done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", cmd.Path, err)
	}
	go p.read(stderr)
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
	})
	return p
}

func (p *Proc) read(stderr io.Reader) {
	sc := bufio.NewScanner(stderr)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		p.mu.Lock()
		p.log = append(p.log, sc.Text())
		close(p.grew)
		p.grew = make(chan struct{})
		p.mu.Unlock()
	}
	p.err = p.cmd.Wait()
	close(p.done)
}

// Cmd is the process's command (its Process field is the running process).
func (p *Proc) Cmd() *exec.Cmd { return p.cmd }

// Mark is the number of lines logged so far: a wait from it sees only
// what was logged after.
func (p *Proc) Mark() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.log)
}

// WaitLine waits up to d for a stderr line, logged at any time since the
// start, that contains every one of subs, and returns it.
func (p *Proc) WaitLine(d time.Duration, subs ...string) string {
	p.t.Helper()
	l, _ := p.WaitLineFrom(0, d, subs...)
	return l
}

// WaitLineFrom waits up to d for a line containing every one of subs
// among the lines from index from on, and returns it and its index. It
// fails the test when the process exits first or d passes.
func (p *Proc) WaitLineFrom(from int, d time.Duration, subs ...string) (string, int) {
	p.t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		l, i, grew := p.find(from, subs)
		if i >= 0 {
			return l, i
		}
		select {
		case <-grew:
		case <-p.done:
			if l, i, _ := p.find(from, subs); i >= 0 { // logged just before the exit
				return l, i
			}
			p.t.Fatalf("the process exited (%v) before logging %q:\n%s", p.err, subs, p.Output())
		case <-timer.C:
			p.t.Fatalf("no line with %q after %v:\n%s", subs, d, p.Output())
		}
	}
}

// find returns the first line from index from that contains every one of
// subs (index -1: none yet) and the channel closed on the next line.
func (p *Proc) find(from int, subs []string) (string, int, <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := from; i < len(p.log); i++ {
		if ContainsAll(p.log[i], subs...) {
			return p.log[i], i, nil
		}
	}
	return "", -1, p.grew
}

// Line returns line i once it is logged; ok is false when the process
// exited without logging it, or after d.
func (p *Proc) Line(i int, d time.Duration) (line string, ok bool) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		p.mu.Lock()
		if i < len(p.log) {
			defer p.mu.Unlock()
			return p.log[i], true
		}
		grew := p.grew
		p.mu.Unlock()
		select {
		case <-grew:
		case <-p.done:
			p.mu.Lock()
			defer p.mu.Unlock()
			if i < len(p.log) {
				return p.log[i], true
			}
			return "", false
		case <-timer.C:
			return "", false
		}
	}
}

// Wait waits up to d for the process to exit and returns its exit status
// (-1 when a signal ended it); it fails the test when the process still
// runs after d.
func (p *Proc) Wait(d time.Duration) int {
	p.t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-p.done:
	case <-timer.C:
		p.t.Fatalf("the process still runs after %v:\n%s", d, p.Output())
	}
	var ee *exec.ExitError
	if p.err != nil && !errors.As(p.err, &ee) {
		p.t.Fatal(p.err)
	}
	return p.cmd.ProcessState.ExitCode()
}

// Exited reports whether the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Output is every stderr line so far.
func (p *Proc) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.log, "\n")
}

// Signal sends sig to the process.
func (p *Proc) Signal(sig os.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatal(err)
	}
}

// ContainsAll reports whether s contains every one of subs.
func ContainsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
