package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/mirrord/mirrord/internal/synth"
	"github.com/mirrord/mirrord/mirror"
	"github.com/mirrord/mirrord/schema"
)

// Git mode (k): the log as committed at a ref. Each append is a commit
// whose blob is the whole new log, and reading a new blob is O(its size)
// whatever reads it: the floor is what `git cat-file blob` itself takes
// to read that blob. The append is timed from the moment the ref update
// lands (the rename of the ref's lock file onto it, as git does) to the
// event being readable from the store.

// GitLatencyRow is (k) for one log: mirrord's append-to-visible in git
// mode, and the floor beside it.
type GitLatencyRow struct {
	Events, Appends int
	P50, P99, Max   time.Duration
	// FloorP50 and FloorP99 are `git cat-file blob` reading each append's
	// blob to /dev/null, process start to exit.
	FloorP50, FloorP99 time.Duration
}

// GitLoadRow is a first load in git mode (`mirrord sync --git-ref`) of
// the largest log: the blob streamed from git into the spool, then the
// bulk load; mirrord's own peak RSS (the git child's is its own).
type GitLoadRow struct {
	Events int
	Took   time.Duration
	MaxRSS int64
}

// gitAppends is how many appends are timed on a log in git mode: every
// one writes the whole new blob into the repository first (the
// application's own cost, seconds at 1M events), so fewer on the large log.
func (b *runner) gitAppends(events int) int {
	n := b.cfg.GitAppends
	if n <= 0 {
		n = 1000
		if b.cfg.Quick {
			n = 200
		}
	}
	if events >= 500_000 {
		n = min(n, 20)
	}
	return n
}

// gitLatencies measures (k) on a 1k-event log and on the largest one, and
// the first load of the largest in git mode.
func (b *runner) gitLatencies(ctx context.Context) error {
	if _, err := exec.LookPath("git"); err != nil {
		b.rep.Git = "skipped: no git program in PATH"
		return nil
	}
	for i, n := range []int{1000, b.cfg.Sizes[len(b.cfg.Sizes)-1]} {
		cached, err := b.gitRepo(ctx, n)
		if err != nil {
			return err
		}
		// A clone of the cached repository (its objects hard-linked):
		// the appends move its master, not the cache's.
		repo := filepath.Join(b.work, fmt.Sprintf("git-%d.git", n))
		if err := git(ctx, "", "", "clone", "-q", "--bare", "--local", cached, repo); err != nil {
			return err
		}
		store := filepath.Join(b.work, fmt.Sprintf("git-store-%d", n))
		logPath := filepath.Join(repo, "data.json")
		b.progress("git mode: first load of the %s-event log at master", countLabel(n))
		load, err := b.gitLoad(ctx, logPath, store)
		if err != nil {
			return err
		}
		if i == 1 {
			b.rep.GitLoad = &GitLoadRow{Events: n, Took: load.Wall, MaxRSS: load.MaxRSS}
		}
		appends := b.gitAppends(n)
		b.progress("git mode: append-to-visible latency on the %s-event log: %d commits", countLabel(n), appends)
		row, err := gitAppendLatency(ctx, repo, logPath, store, b.work, n, appends)
		if err != nil {
			return err
		}
		b.rep.GitLatency = append(b.rep.GitLatency, row)
		if err := os.RemoveAll(repo); err != nil {
			return err
		}
	}
	return nil
}

// gitRepo returns a bare repository in the benchmark's directory whose
// master holds, as data.json, the synthetic log of n events the other
// rows read: one commit, built once and kept. Its history would not
// change what reading the latest blob costs (a version above 512 MiB is
// stored whole, and a pushed one arrives as a loose object), so a commit
// of the log suffices. Written with core.compression=1, which changes
// little of what reading costs (inflating) and much of how long the
// large repository takes to write.
func (b *runner) gitRepo(ctx context.Context, n int) (string, error) {
	repo := filepath.Join(b.cfg.Dir, fmt.Sprintf("git-%d-%d.git", logSeed, n))
	if _, err := os.Stat(filepath.Join(repo, "complete")); err == nil {
		return repo, nil
	}
	log, err := synthLog(b.cfg.Dir, n)
	if err != nil {
		return "", err
	}
	b.progress("git mode: making a repository of the %s-event log", countLabel(n))
	if err := os.RemoveAll(repo); err != nil {
		return "", err
	}
	if err := git(ctx, "", "", "init", "-q", "--bare", repo); err != nil {
		return "", err
	}
	if _, err := commitLog(ctx, repo, log, ""); err != nil {
		return "", err
	}
	return repo, os.WriteFile(filepath.Join(repo, "complete"), nil, 0o644)
}

// gitLoad runs `mirrord sync --git-ref master` (no generators) into an
// empty store and returns what it cost; its peak RSS is the one mirrord
// logs (its own VmHWM).
func (b *runner) gitLoad(ctx context.Context, logPath, store string) (procResult, error) {
	return b.runSync(ctx, []string{"MIRRORD_GENERATORS="},
		"sync", "--eventlog", logPath, "--git-ref", "master", "--store", store, "--log-format", "json")
}

// gitAppendLatency follows master of repo with an in-process engine on
// store (loaded already) and times appends: each a commit of the log with
// one more event, made ahead (not timed), then the ref moved onto it by
// renaming its lock file, from which the clock runs until the event is
// readable. After each, `git cat-file blob` reads the same blob: the
// floor.
func gitAppendLatency(ctx context.Context, repo, logPath, store, work string, events, appends int) (GitLatencyRow, error) {
	fl, err := follow(ctx, store, mirror.Options{EventLog: logPath, GitRef: "master"}, false)
	if err != nil {
		return GitLatencyRow{}, err
	}
	defer fl.stop()

	// The log as committed, which each append extends by one event.
	content := filepath.Join(work, "git-log.json")
	if err := git(ctx, repo, content, "cat-file", "blob", "master:data.json"); err != nil {
		return GitLatencyRow{}, err
	}
	parent, err := gitOut(ctx, repo, "rev-parse", "master")
	if err != nil {
		return GitLatencyRow{}, err
	}
	f, err := os.OpenFile(content, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return GitLatencyRow{}, err
	}
	defer f.Close()
	gen := synth.New(uint64(time.Now().UnixNano()))
	var (
		lat, floor = make([]time.Duration, 0, appends), make([]time.Duration, 0, appends)
		buf, key   []byte
		val        []byte
	)
	ref := filepath.Join(repo, "refs", "heads", "master")
	for range appends {
		ev := gen.Event()
		buf = append(ev.AppendJS(buf[:0]), '\n')
		key = schema.AppendEventKey(key[:0], ev.ID)
		if _, err := f.Write(buf); err != nil {
			return GitLatencyRow{}, err
		}
		commit, err := commitLog(ctx, repo, content, parent)
		if err != nil {
			return GitLatencyRow{}, err
		}
		if err := os.WriteFile(ref+".lock", []byte(commit+"\n"), 0o644); err != nil {
			return GitLatencyRow{}, err
		}
		fl.expect()
		t0 := time.Now()
		if err := os.Rename(ref+".lock", ref); err != nil {
			return GitLatencyRow{}, err
		}
		d, v, err := fl.await(t0, key, val, 2*time.Minute, ev.ID, "its commit landed")
		if err != nil {
			return GitLatencyRow{}, err
		}
		lat, val = append(lat, d), v
		if !bytes.Contains(val, []byte(ev.ID)) {
			return GitLatencyRow{}, fmt.Errorf("event %s: the store holds another value", ev.ID)
		}
		t1 := time.Now()
		if err := git(ctx, repo, "", "cat-file", "blob", commit+":data.json"); err != nil {
			return GitLatencyRow{}, err
		}
		floor = append(floor, time.Since(t1))
		parent = commit
		time.Sleep(appendGap)
	}
	row := GitLatencyRow{Events: events, Appends: appends}
	row.P50, row.P99, row.Max = percentiles(lat)
	row.FloorP50, row.FloorP99, _ = percentiles(floor)
	return row, nil
}

// commitLog writes the file at path into repo as the blob of data.json in
// a new commit (on parent, if any) and returns the commit; the ref is the
// caller's to move. Without a parent, master is set to it.
func commitLog(ctx context.Context, repo, path, parent string) (string, error) {
	blob, err := gitOut(ctx, repo, "-c", "core.compression=1", "-c", "pack.compression=1", "hash-object", "-w", "--", path)
	if err != nil {
		return "", err
	}
	tree, err := gitIn(ctx, repo, "100644 blob "+blob+"\tdata.json\n", "mktree")
	if err != nil {
		return "", err
	}
	args := []string{"commit-tree", tree, "-m", "transaction"}
	if parent != "" {
		args = append(args, "-p", parent)
	}
	commit, err := gitOut(ctx, repo, args...)
	if err != nil || parent != "" {
		return commit, err
	}
	return commit, git(ctx, repo, "", "update-ref", "refs/heads/master", commit)
}

// gitEnv fixes the identity and dates of the benchmark's commits.
var gitEnv = []string{"GIT_AUTHOR_NAME=bench", "GIT_AUTHOR_EMAIL=bench@example.com", "GIT_COMMITTER_NAME=bench",
	"GIT_COMMITTER_EMAIL=bench@example.com", "GIT_AUTHOR_DATE=2026-01-01T00:00:00Z", "GIT_COMMITTER_DATE=2026-01-01T00:00:00Z"}

// git runs git on the repository at gitDir ("" for none), its output to
// the file out ("" for /dev/null).
func git(ctx context.Context, gitDir, out string, args ...string) error {
	cmd := gitCmd(ctx, gitDir, args...)
	if out != "" {
		f, err := os.Create(out)
		if err != nil {
			return err
		}
		defer f.Close()
		cmd.Stdout = f
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

func gitOut(ctx context.Context, gitDir string, args ...string) (string, error) {
	return gitIn(ctx, gitDir, "", args...)
}

// gitIn runs git with stdin and returns its output, trimmed.
func gitIn(ctx context.Context, gitDir, stdin string, args ...string) (string, error) {
	cmd := gitCmd(ctx, gitDir, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(stdout.String()), nil
}

func gitCmd(ctx context.Context, gitDir string, args ...string) *exec.Cmd {
	if gitDir != "" {
		args = append([]string{"--git-dir=" + gitDir}, args...)
	}
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Env = append(os.Environ(), gitEnv...)
	return cmd
}

// gitTargets are (k)'s targets: the append's p99 within 1.5× the floor's
// p99 plus 5 ms, and the first load's peak RSS within file mode's 256 MiB.
func (r *Report) gitTargets(add func(name string, met bool, format string, args ...any)) {
	for _, l := range r.GitLatency {
		limit := time.Duration(1.5*float64(l.FloorP99)) + 5*time.Millisecond
		add("git mode: append-to-visible p99 at "+countLabel(l.Events)+": ≤ 1.5× git cat-file p99 + 5 ms",
			l.P99 <= limit, "%s (limit %s)", durLabel(l.P99), durLabel(limit))
	}
	if g := r.GitLoad; g != nil {
		add("peak RSS, git mode first load of "+countLabel(g.Events)+": ≤ 256 MiB", g.MaxRSS <= 256*mib, "%s", bytesLabel(g.MaxRSS))
	}
}

// writeGit prints (k).
func (r *Report) writeGit(b *strings.Builder) {
	if r.Git != "" {
		fmt.Fprintf(b, "Git mode (k): %s\n\n", r.Git)
		return
	}
	if len(r.GitLatency) == 0 {
		return
	}
	b.WriteString("Append-to-visible in git mode (k): the ref update lands → readable in process; beside it, `git cat-file blob` reading the same blob (the floor)\n\n")
	b.WriteString("| log | commits | p50 | p99 | max | floor p50 | floor p99 | p99 ÷ floor p99 |\n|---|---|---|---|---|---|---|---|\n")
	for _, l := range r.GitLatency {
		fmt.Fprintf(b, "| %s events | %d | %s | %s | %s | %s | %s | %.2f× |\n", countLabel(l.Events), l.Appends, durLabel(l.P50), durLabel(l.P99),
			durLabel(l.Max), durLabel(l.FloorP50), durLabel(l.FloorP99), ratio(l.P99, l.FloorP99))
	}
	if g := r.GitLoad; g != nil {
		fmt.Fprintf(b, "\nFirst load in git mode (`mirrord sync --git-ref master`, no generators), %s events: %s, peak RSS %s\n",
			countLabel(g.Events), durLabel(g.Took), bytesLabel(g.MaxRSS))
	}
	b.WriteString("\n")
}
