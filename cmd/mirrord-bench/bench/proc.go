package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/procfs"
)

// ChildEnv marks a process started by the benchmark to run one of its own
// steps (see Child) instead of the whole benchmark.
const ChildEnv = "MIRRORD_BENCH_CHILD"

// procResult is what a finished child process cost.
type procResult struct {
	Wall   time.Duration
	MaxRSS int64 // bytes: the kernel's peak resident set of the process
	CPU    time.Duration
	Stdout []byte
	Stderr string
}

// run runs a command to its end and measures it. Stderr is kept for the
// error message when the command fails.
func run(ctx context.Context, dir string, env []string, name string, args ...string) (procResult, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	res := procResult{Wall: wall, Stdout: stdout.Bytes(), Stderr: stderr.String()}
	if ps := cmd.ProcessState; ps != nil {
		if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
			res.MaxRSS = ru.Maxrss * 1024 // kilobytes on Linux
		}
		res.CPU = ps.UserTime() + ps.SystemTime()
	}
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 2000 {
			msg = "…" + msg[len(msg)-2000:]
		}
		return res, fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, msg)
	}
	return res, nil
}

// self runs one step of the benchmark in a child process: this same
// executable, with ChildEnv set (see Child).
func (b *runner) self(ctx context.Context, args ...string) (procResult, error) {
	exe, err := os.Executable()
	if err != nil {
		return procResult{}, err
	}
	return run(ctx, "", []string{ChildEnv + "=1"}, exe, args...)
}

// cpuTime reads the CPU time a running process has used so far: the sum
// of its threads' run time in /proc/{pid}/task/*/schedstat (nanoseconds;
// /proc/{pid}/stat counts in 10 ms ticks, too coarse for a few seconds of
// idling). Go keeps its threads, so none of the time is lost with an
// exited thread.
func cpuTime(pid int) (time.Duration, error) {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return 0, err
	}
	var total time.Duration
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, t.Name()))
		if err != nil {
			continue // the thread ended
		}
		f := strings.Fields(string(b))
		if len(f) == 0 {
			return 0, fmt.Errorf("/proc/%d/task/%s/schedstat: unexpected format", pid, t.Name())
		}
		ns, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/task/%s/schedstat: %v", pid, t.Name(), err)
		}
		total += time.Duration(ns)
	}
	return total, nil
}

// selfPeakRSS is this process's peak resident set (VmHWM), 0 if unknown.
// A child reports its own: the rusage its parent gets counts, on Linux,
// the parent's own memory as it stood when the child was exec'd.
func selfPeakRSS() int64 {
	p, err := procfs.Self()
	if err != nil {
		return 0
	}
	st, err := p.NewStatus()
	if err != nil {
		return 0
	}
	return int64(st.VmHWM)
}

// rss reads a running process's resident set size (VmRSS).
func rss(pid int) (int64, error) {
	p, err := procfs.NewProc(pid)
	if err != nil {
		return 0, err
	}
	st, err := p.NewStatus()
	if err != nil {
		return 0, err
	}
	return int64(st.VmRSS), nil
}
