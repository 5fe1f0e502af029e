package gitlog

import (
	"bufio"
	"context"
	"errors"
	"fmt"

	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/mirrord/mirrord/eventlog"
	"github.com/mirrord/mirrord/internal/gittest"
	"github.com/mirrord/mirrord/internal/synth"
)

// benchRepoSpec is a generated repository: Commits commits on master,
// the i-th (from 1) holding in data.json the first Events*i/Commits
// synthetic events in the application's append format.
type benchRepoSpec struct {
	Events, Commits int
	// Aggressive packs with git gc --aggressive rather than git gc.
	Aggressive bool
}

func (s benchRepoSpec) name() string {
	n := fmt.Sprintf("repo-%d-events-%d-commits", s.Events, s.Commits)
	if s.Aggressive {
		n += "-aggressive"
	}
	return n
}

// makeBenchRepo builds the repository of spec under cache (reusing one
// built before: a file "complete" is written last) and returns its work
// tree, which is left empty (the application's stays at its first clone;
// only the commits matter). The commits are fed to git fast-import; git
// gc then packs them as it would the application's repository: each
// version of data.json up to core.bigFileThreshold (512 MiB) deltified,
// the larger ones stored whole.
func makeBenchRepo(tb testing.TB, cache string, spec benchRepoSpec) string {
	tb.Helper()
	repo := filepath.Join(cache, spec.name())
	if _, err := os.Stat(filepath.Join(repo, "complete")); err == nil {
		return repo
	}
	gittest.Need(tb)
	if err := os.RemoveAll(repo); err != nil {
		tb.Fatal(err)
	}
	start := time.Now()
	var log []byte
	ends := make([]int, spec.Events+1)
	enc := eventlog.NewEncoder(writerFunc(func(p []byte) (int, error) {
		log = append(log, p...)
		return len(p), nil
	}))
	g := synth.New(7)
	for i := 1; i <= spec.Events; i++ {
		if err := enc.Encode(g.Event()); err != nil {
			tb.Fatal(err)
		}
		ends[i] = len(log)
	}
	git(tb, cache, "init", "-q", repo)
	if err := fastImport(repo, func(w *bufio.Writer) error {
		for c := 1; c <= spec.Commits; c++ {
			data := log[:ends[spec.Events*c/spec.Commits]]
			msg := "transaction " + strconv.Itoa(c)
			fmt.Fprintf(w, "commit refs/heads/master\ncommitter Bench <bench@example.com> %d +0000\ndata %d\n%s\n", 1700000000+c, len(msg), msg)
			fmt.Fprintf(w, "M 100644 inline data.json\ndata %d\n", len(data))
			if _, err := w.Write(data); err != nil {
				return err
			}
			if _, err := w.WriteString("\n"); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		tb.Fatal(err)
	}
	gc := []string{"gc", "--quiet"}
	if spec.Aggressive {
		gc = append(gc, "--aggressive")
	}
	git(tb, repo, gc...)
	if err := os.WriteFile(filepath.Join(repo, "complete"), nil, 0o644); err != nil {
		tb.Fatal(err)
	}
	tb.Logf("built %s (%d bytes of log at master) in %v", repo, len(log), time.Since(start).Round(time.Second))
	return repo
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// fastImport runs git fast-import in repo on the stream that write
// produces.
func fastImport(repo string, write func(*bufio.Writer) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Hour)
	defer cancel()
	// The objects end loose, as the application's pushes of a few
	// objects each arrive (below receive.unpackLimit), so that git gc
	// computes their deltas afresh as it would in its repository, rather
	// than reuse fast-import's (each version against the one before).
	cmd := exec.CommandContext(ctx, "git", "-c", "fastimport.unpackLimit=100000000", "fast-import", "--quiet")
	cmd.Dir = repo
	in, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	w := bufio.NewWriterSize(in, 1<<20)
	werr := write(w)
	if werr == nil {
		werr = w.Flush()
	}
	in.Close()
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("git fast-import: %w", err)
	}
	return werr
}

// benchCache is where generated repositories are kept between runs:
// $GITLOG_BENCH_DIR. Without it, the large repository's benchmarks
// skip.
func benchCache(tb testing.TB) (string, bool) {
	dir := os.Getenv("GITLOG_BENCH_DIR")
	if dir == "" {
		return "", false
	}
	if err := os.MkdirAll(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		tb.Fatal(err)
	}
	return dir, true
}

// TestBuildBenchRepo builds the benchmarks' repositories ahead of them
// when GITLOG_BENCH_BUILD=1 and GITLOG_BENCH_DIR are set (it takes
// minutes for the large one).
func TestBuildBenchRepo(t *testing.T) {
	cache, ok := benchCache(t)
	if !ok || os.Getenv("GITLOG_BENCH_BUILD") != "1" {
		t.Skip("set GITLOG_BENCH_DIR and GITLOG_BENCH_BUILD=1 to build the benchmark repositories")
	}
	for _, spec := range benchSpecs {
		makeBenchRepo(t, cache, spec)
	}
}

// benchSpecs are the benchmarks' repositories: the application's log of
// 1k events grown over 200 commits, and of 1M events (about 680 MB) grown
// over 10. Building the large one in 200 commits would feed git 68 GB of
// versions (two hours here) and store each version above 512 MB whole;
// in 10 the versions up to 750k events (510 MB) are deltified and the
// last three are whole, which are the two shapes a read meets.
var benchSpecs = []benchRepoSpec{
	{Events: 1_000, Commits: 200, Aggressive: true},
	{Events: 1_000_000, Commits: 10},
}
