package gogitbench

import (
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

// repos are gitlog's benchmark repositories, by the names it builds them
// under $GITLOG_BENCH_DIR.
var repos = []struct{ name, dir string }{
	{"Small", "repo-1000-events-200-commits-aggressive"},
	{"Large", "repo-1000000-events-10-commits"},
}

// thresholds are go-git's LargeObjectThreshold settings measured: its
// default (every object read into memory) and 1 MiB (larger ones
// streamed from the pack).
var thresholds = []struct {
	name string
	t    int64
}{{"Default", 0}, {"Threshold1MiB", 1 << 20}}

func BenchmarkGoGit(b *testing.B) {
	root := os.Getenv("GITLOG_BENCH_DIR")
	if root == "" {
		b.Skip("set GITLOG_BENCH_DIR to where gitlog's benchmarks built their repositories")
	}
	for _, r := range repos {
		gitDir := filepath.Join(root, r.dir, ".git")
		if _, err := os.Stat(filepath.Join(root, r.dir, "complete")); err != nil {
			b.Logf("%s: not built (run gitlog's benchmarks first)", r.dir)
			continue
		}
		for _, th := range thresholds {
			b.Run(r.name+"/"+th.name+"/Stat", func(b *testing.B) {
				repo := openRepo(b, gitDir, th.t)
				lookup(b, repo, "master")
				m := start()
				for range b.N {
					lookup(b, repo, "master")
				}
				m.report(b)
			})
			b.Run(r.name+"/"+th.name+"/StatCold", func(b *testing.B) {
				m := start()
				for range b.N {
					lookup(b, openRepo(b, gitDir, th.t), "master")
				}
				m.report(b)
			})
			revs := []struct{ name, rev string }{{"ReadLatest", "master"}}
			if r.name == "Large" {
				revs = append(revs, struct{ name, rev string }{"ReadDeltified", "master~4"})
			}
			for _, rv := range revs {
				b.Run(r.name+"/"+th.name+"/"+rv.name, func(b *testing.B) {
					buf := make([]byte, 1<<20) // as gitlog's benchmark reads
					m := start()
					for range b.N {
						f := lookup(b, openRepo(b, gitDir, th.t), rv.rev)
						rd, err := f.Reader()
						if err != nil {
							b.Fatal(err)
						}
						n, err := io.CopyBuffer(discard, rd, buf)
						rd.Close()
						if err != nil || n != f.Size {
							b.Fatalf("read %d of %d: %v", n, f.Size, err)
						}
						b.SetBytes(n)
					}
					m.report(b)
				})
			}
		}
	}
}

// discard is io.Discard without its ReadFrom, so that io.CopyBuffer
// reads through the buffer given.
var discard = struct{ io.Writer }{io.Discard}

// openRepo opens the repository with go-git's object cache (96 MiB) and
// the threshold given.
func openRepo(b *testing.B, gitDir string, threshold int64) *git.Repository {
	st := filesystem.NewStorageWithOptions(osfs.New(gitDir), cache.NewObjectLRUDefault(),
		filesystem.Options{LargeObjectThreshold: threshold})
	repo, err := git.Open(st, nil)
	if err != nil {
		b.Fatal(err)
	}
	return repo
}

// lookup resolves rev ("master" or "master~N") and returns data.json's
// blob in its commit.
func lookup(b *testing.B, repo *git.Repository, rev string) *object.File {
	ref, err := repo.Reference(plumbing.NewBranchReferenceName("master"), true)
	if err != nil {
		b.Fatal(err)
	}
	c, err := repo.CommitObject(ref.Hash())
	if err != nil {
		b.Fatal(err)
	}
	if back, ok := strings.CutPrefix(rev, "master~"); ok {
		n, _ := strconv.Atoi(back)
		for range n {
			if c, err = c.Parent(0); err != nil {
				b.Fatal(err)
			}
		}
	}
	f, err := c.File("data.json")
	if err != nil {
		b.Fatal(err)
	}
	return f
}

// measure is CPU time and the peak resident set (VmHWM, reset at the
// start) of this process.
type measure struct{ ru syscall.Rusage }

func start() *measure {
	runtime.GC()
	debug.FreeOSMemory()
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		panic(err)
	}
	m := &measure{}
	syscall.Getrusage(syscall.RUSAGE_SELF, &m.ru)
	return m
}

func (m *measure) report(b *testing.B) {
	b.StopTimer()
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	cpu := func(r syscall.Rusage) time.Duration { return time.Duration(r.Utime.Nano() + r.Stime.Nano()) }
	b.ReportMetric(float64((cpu(ru)-cpu(m.ru)).Microseconds())/1000/float64(b.N), "self-cpu-ms/op")
	b.ReportMetric(float64(vmHWM(b))/(1<<20), "self-peak-MB")
}

// vmHWM is this process's peak resident set in bytes.
func vmHWM(b *testing.B) int64 {
	st, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(st), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb << 10
		}
	}
	b.Fatal("no VmHWM")
	return 0
}
