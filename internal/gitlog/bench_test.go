package gitlog

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/procfs"
)

// The benchmarks measure what the engine will do on each move of the
// ref: Stat (resolve the ref, look the file up) and a whole read of the
// blob, on the 1k-event repository (built in a temporary directory, or
// under $GITLOG_BENCH_DIR) and the 1M-event one (only under
// $GITLOG_BENCH_DIR, where it is built once and kept). Besides time they
// report CPU and peak resident memory, of this process and of the git
// child apart; BenchmarkFloor is "git cat-file blob ID > /dev/null"
// itself. Run them with
//
//	GITLOG_BENCH_DIR=/var/tmp/gitlog-bench go test -run XXX -bench . -benchtime 3x ./internal/gitlog
func BenchmarkSmall(b *testing.B) { benchRepo(b, benchSpecs[0]) }

// BenchmarkLarge is BenchmarkSmall on the 1M-event repository.
func BenchmarkLarge(b *testing.B) { benchRepo(b, benchSpecs[1]) }

func benchRepo(b *testing.B, spec benchRepoSpec) {
	cache, ok := benchCache(b)
	if !ok {
		if spec.Events > 10_000 {
			b.Skip("set GITLOG_BENCH_DIR to a directory to keep the 1M-event repository in (about 1 GB)")
		}
		cache = b.TempDir()
	}
	repo := makeBenchRepo(b, cache, spec)
	file := filepath.Join(repo, "data.json")
	loc, _, err := Find(file)
	if err != nil {
		b.Fatal(err)
	}

	b.Run("Stat", func(b *testing.B) {
		s := benchSource(b, file)
		r := s.repoForBench(b) // the batch child is started
		r.mu.Lock()
		pid := r.check.cmd.Process.Pid
		r.mu.Unlock()
		before := procCPU(b, pid)
		m := startMeasure()
		for range b.N {
			stat(b, s)
		}
		m.liveChildCPU = procCPU(b, pid) - before
		m.report(b)
	})
	b.Run("StatCold", func(b *testing.B) {
		m := startMeasure()
		for range b.N {
			s := benchSource(b, file)
			stat(b, s)
			s.Close()
		}
		m.report(b)
	})
	reads := []struct{ name, rev string }{{"ReadLatest", "master"}}
	if spec.Events > 10_000 {
		// Four commits back, 600k events (409 MB): git gc stores the
		// versions above core.bigFileThreshold (512 MiB) whole, makes
		// the largest below it (700k events) the whole base of the
		// others, and this one a delta against it (git verify-pack -v
		// shows it).
		reads = append(reads, struct{ name, rev string }{"ReadDeltified", "master~4"})
	}
	for _, rd := range reads {
		blob := ID(git(b, repo, "rev-parse", rd.rev+":data.json"))
		b.Run(rd.name, func(b *testing.B) {
			s := benchSource(b, file)
			r := s.repoForBench(b)
			buf := make([]byte, readBuffer)
			m := startMeasure()
			for range b.N {
				bl, err := r.OpenBlob(context.Background(), blob)
				if err != nil {
					b.Fatal(err)
				}
				m.watchChild(bl.child.cmd.Process.Pid)
				n, err := io.CopyBuffer(discard, bl, buf)
				if err != nil || n != bl.Size() {
					b.Fatalf("read %d of %d: %v", n, bl.Size(), err)
				}
				bl.Close()
				b.SetBytes(n)
			}
			m.report(b)
		})
		b.Run("Floor"+rd.name[4:], func(b *testing.B) {
			devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
			if err != nil {
				b.Fatal(err)
			}
			defer devnull.Close()
			size := git(b, repo, "cat-file", "-s", string(blob))
			m := startMeasure()
			for range b.N {
				cmd := exec.Command("git", "--git-dir="+loc.GitDir, "cat-file", "blob", string(blob))
				cmd.Stdout = devnull
				if err := cmd.Start(); err != nil {
					b.Fatal(err)
				}
				m.watchChild(cmd.Process.Pid)
				if err := cmd.Wait(); err != nil {
					b.Fatal(err)
				}
				n, err := strconv.ParseInt(size, 10, 64)
				if err != nil {
					b.Fatal(err)
				}
				b.SetBytes(n)
			}
			m.report(b)
		})
	}
}

// readBuffer is the reads' size: the engine reads the log through a
// buffer of this size (io.Discard's own ReadFrom would read 8 KiB at a
// time).
const readBuffer = 1 << 20

// discard is io.Discard without its ReadFrom, so that io.CopyBuffer
// reads readBuffer at a time.
var discard = struct{ io.Writer }{io.Discard}

// benchSource is a Source closed when the benchmark ends.
func benchSource(b *testing.B, file string) *Source {
	s, err := NewSource(file, "master", nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// repoForBench is the Source's Repo after a Stat.
func (s *Source) repoForBench(b *testing.B) *Repo {
	stat(b, s)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.repo
}

// measure collects CPU time (this process's and its children's, from
// getrusage) and peak resident memory: this process's VmHWM, reset at
// the start, and the highest VmHWM seen of each git child watched,
// sampled every 5 ms until it ends (the peak is a high-water mark: a
// sample after it still sees it).
type measure struct {
	self, kids syscall.Rusage

	// liveChildCPU is the CPU time of a child still running (which
	// RUSAGE_CHILDREN counts only once it is reaped).
	liveChildCPU time.Duration

	mu       sync.Mutex
	childHWM int64
	wg       sync.WaitGroup
}

func startMeasure() *measure {
	runtime.GC()
	debug.FreeOSMemory()
	// "5" resets the peak resident set to the current one (Linux 4.0+).
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		panic(err)
	}
	m := &measure{}
	syscall.Getrusage(syscall.RUSAGE_SELF, &m.self)
	syscall.Getrusage(syscall.RUSAGE_CHILDREN, &m.kids)
	return m
}

// watchChild samples pid's peak resident set until it ends.
func (m *measure) watchChild(pid int) {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for range t.C {
			hwm, err := peakRSS(pid)
			if err != nil {
				return // ended (a zombie has no memory figures)
			}
			m.mu.Lock()
			m.childHWM = max(m.childHWM, hwm)
			m.mu.Unlock()
		}
	}()
}

// procCPU is a running process's CPU time (user and system) from
// /proc/PID/stat, in clock ticks of 10ms.
func procCPU(b *testing.B, pid int) time.Duration {
	st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command's closing parenthesis: state is the
	// first, utime the 12th, stime the 13th.
	f := strings.Fields(string(st[bytes.LastIndexByte(st, ')')+1:]))
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		b.Fatalf("/proc/%d/stat: %q", pid, st)
	}
	return time.Duration(ut+stime) * 10 * time.Millisecond
}

func cpu(ru syscall.Rusage) time.Duration {
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// report adds the measures to b's results, per operation.
func (m *measure) report(b *testing.B) {
	b.StopTimer()
	m.wg.Wait()
	var self, kids syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &self)
	syscall.Getrusage(syscall.RUSAGE_CHILDREN, &kids)
	hwm, err := peakRSS(os.Getpid())
	if err != nil {
		b.Fatal(err)
	}
	n := float64(b.N)
	b.ReportMetric(float64((cpu(self)-cpu(m.self)).Microseconds())/1000/n, "self-cpu-ms/op")
	b.ReportMetric(float64((cpu(kids)-cpu(m.kids)+m.liveChildCPU).Microseconds())/1000/n, "git-cpu-ms/op")
	b.ReportMetric(float64(hwm)/(1<<20), "self-peak-MB")
	if m.childHWM > 0 {
		b.ReportMetric(float64(m.childHWM)/(1<<20), "git-peak-MB")
	}
}

// peakRSS is a process's peak resident memory in bytes (VmHWM).
func peakRSS(pid int) (int64, error) {
	p, err := procfs.NewProc(pid)
	if err != nil {
		return 0, err
	}
	st, err := p.NewStatus()
	if err != nil {
		return 0, err
	}
	return int64(st.VmHWM), nil
}
