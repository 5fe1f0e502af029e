package mirror

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/mirrord/mirrord/eventlog"
	"github.com/mirrord/mirrord/internal/gitlog"
	"github.com/mirrord/mirrord/internal/gittest"
	"github.com/mirrord/mirrord/internal/synth"
	"github.com/mirrord/mirrord/internal/testkit"
	"github.com/mirrord/mirrord/schema"
)

// appliedUntil waits until a batch reaching offset end of a blob of that
// size was applied, and returns the batches applied since the last call.
func (g *gitHarness) appliedUntil(what string, end int64) []Applied {
	g.t.Helper()
	var got []Applied
	testkit.Eventually(g.t, what, func() error {
		got = append(got, g.takeApplied()...)
		for _, a := range got {
			if a.Offset == end && a.Size == end {
				return nil
			}
		}
		return fmt.Errorf("applied %+v", got)
	})
	return got
}

func changedBy(as []Applied, kind string) (n int, ok bool) {
	for _, a := range as {
		if a.Kind != kind {
			return 0, false
		}
		n += a.Changed
	}
	return n, true
}

// The application's pattern: transactions are committed in a clone and
// pushed into the repository's checked-out branch, whose work tree never
// moves. Git mode follows the branch: an append is a tail that applies
// the appended event alone, a delete (the application rewrites the log)
// a reconcile that writes only the difference; the work tree's file is
// never read.
func TestGitFollowsPushesIntoTheCheckedOutBranch(t *testing.T) {
	g := newGitHarness(t, layoutApp, synth.New(1).Events(30), nil)
	r := g.run()
	g.verifyGit()
	first := g.e.Checkpoint()
	if first.Ref != "refs/heads/master" || first.Commit != gittest.Git(t, g.repo, "rev-parse", "master") ||
		first.Blob != gittest.Git(t, g.repo, "rev-parse", "master:data.json") || first.Dev != 0 || first.Ino != 0 {
		t.Fatalf("checkpoint after the first load: %+v", first)
	}
	g.takeApplied()
	// The work tree's file is not the log: garbage there changes nothing.
	g.writeWorkTree([]byte("not JSON at all\n"))
	for i := range 3 {
		evs := append(slices.Clone(g.evs), g.newEvents(1)...)
		c := g.push(evs)
		size := int64(len(eventlog.Format(evs)))
		if n, ok := changedBy(g.appliedUntil("append", size), "tail"); !ok || n != 1 {
			t.Fatalf("append %d: not one tail applying one event", i)
		}
		g.atCommit("append", c)
		if st := g.e.Status(); st.Commit != c || st.Ref != "refs/heads/master" || st.LogSize != size || st.Lag != 0 {
			t.Fatalf("status after append %d: %+v", i, st)
		}
	}
	evs := without(g.evs, 5)
	c := g.push(evs)
	if n, ok := changedBy(g.appliedUntil("delete", int64(len(eventlog.Format(evs)))), "reconcile"); !ok || n != 1 {
		t.Fatal("the delete was not one reconcile changing one event")
	}
	g.atCommit("delete", c)
	r.stop(t)
	g.verifyGit()
	if b, _ := os.ReadFile(g.path); string(b) != "not JSON at all\n" {
		t.Fatalf("the work tree's file changed: %q", b)
	}
	noFollowerLeft(t)
}

// A bare repository and a linked worktree (its branch followed through
// the worktree's path) are found as git finds them, and followed through
// appends, a rewrite and a force-push that drops commits.
func TestGitLayouts(t *testing.T) {
	for _, layout := range []string{layoutBare, layoutWorktree, layoutApp} {
		t.Run(layout, func(t *testing.T) {
			g := newGitHarness(t, layout, synth.New(2).Events(10), nil)
			r := g.run()
			g.verifyGit()
			base := g.commit(append(slices.Clone(g.evs), g.newEvents(5)...))
			baseEvs := slices.Clone(g.evs)
			g.atCommit("append", base)
			c := g.commit(append(slices.Clone(g.evs), g.newEvents(5)...))
			g.atCommit("append", c)
			c = g.commit(without(without(g.evs, 3), 7))
			g.atCommit("rewrite", c)
			// A force-push back to base drops the last two commits.
			gittest.Git(t, g.repo, "update-ref", g.ref, base)
			g.evs = baseEvs
			g.atCommit("force-push", base)
			r.stop(t)
			g.verifyGit()
		})
	}
}

// A commit that does not touch the log moves the ref but not the log's
// blob: the engine reads nothing and writes nothing (the checkpoint, its
// change-feed sequence number included, stays as it was). A restart on
// the same blob reads nothing either.
func TestGitCommitThatDoesNotTouchTheLog(t *testing.T) {
	g := newGitHarness(t, layoutApp, synth.New(3).Events(20), nil)
	r := g.run()
	before := g.e.Checkpoint()
	g.takeReads()
	g.takeApplied()
	content := eventlog.Format(g.evs)
	for i := range 3 {
		c := gittest.Commit(t, g.repo, g.ref, map[string][]byte{"data.json": content, "other.txt": []byte(fmt.Sprint(i))})
		testkit.Eventually(t, "the engine looks at the new commit", func() error {
			if got := g.e.Status().Commit; got != c {
				return fmt.Errorf("status at commit %s, want %s", got, c)
			}
			return nil
		})
	}
	if reads, applied := g.takeReads(), g.takeApplied(); len(reads) != 0 || len(applied) != 0 {
		t.Fatalf("commits that did not touch the log read %d blobs and applied %d batches", len(reads), len(applied))
	}
	after := g.e.Checkpoint()
	if after.Seq != before.Seq || !reflect.DeepEqual(after, before) {
		t.Fatalf("the checkpoint moved:\n%+v\n%+v", before, after)
	}
	r.stop(t)

	g.open()
	g.sync()
	if reads := g.takeReads(); len(reads) != 0 {
		t.Fatalf("a restart on the blob mirrored read %d blobs", len(reads))
	}
	if cp := g.e.Checkpoint(); !reflect.DeepEqual(cp, before) {
		t.Fatalf("the restart moved the checkpoint:\n%+v\n%+v", before, cp)
	}
	g.verifyGit()
}

// After a restart the spool is empty: the next blob is written to it
// whole, its prefix hashed on the way, and still applied as a tail of only
// what was appended; a rewrite after a restart is a reconcile. (While the
// engine runs, the spool's bytes are the checkpoint's blob's, and the
// comparison decides instead: see TestGitFollowsPushesIntoTheCheckedOutBranch.)
func TestGitRestartThenAppendOrRewrite(t *testing.T) {
	g := newGitHarness(t, layoutBare, synth.New(4).Events(20), nil)
	g.sync()
	g.open()
	g.takeApplied()
	g.commit(append(slices.Clone(g.evs), g.newEvents(2)...))
	g.sync()
	if n, ok := changedBy(g.takeApplied(), "tail"); !ok || n != 2 {
		t.Fatal("the append after a restart was not a tail of two events")
	}
	g.verifyGit()
	g.open()
	g.commit(append(without(g.evs, 19), g.newEvents(1)...)) // one event deleted, one appended
	g.sync()
	if n, ok := changedBy(g.takeApplied(), "reconcile"); !ok || n != 2 {
		t.Fatal("the rewrite after a restart was not a reconcile changing two events")
	}
	g.verifyGit()
}

// git gc packs the refs (the loose ref disappears into packed-refs) and
// the objects: nothing to read for that, and the next commit (a loose ref
// over the packed one) is followed.
func TestGitGCWhileFollowing(t *testing.T) {
	g := newGitHarness(t, layoutApp, synth.New(5).Events(20), nil)
	r := g.run()
	c := g.commit(append(slices.Clone(g.evs), g.newEvents(3)...))
	g.atCommit("append", c)
	g.takeReads()
	loose := filepath.Join(g.repo, ".git", "refs", "heads", "master")
	gittest.Git(t, g.repo, "gc", "-q", "--prune=now")
	if _, err := os.Stat(loose); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("git gc left the loose ref: %v", err)
	}
	c = g.commit(append(slices.Clone(g.evs), g.newEvents(3)...))
	g.atCommit("append after gc", c)
	if reads := g.takeReads(); len(reads) != 1 || string(reads[0].Commit) != c {
		t.Fatalf("reads after gc and a commit: %+v, want one, of %s", reads, c)
	}
	gittest.Git(t, g.repo, "pack-refs", "--all")
	c = g.commit(without(g.evs, 0))
	g.atCommit("rewrite after pack-refs", c)
	r.stop(t)
	g.verifyGit()
}

// A ref deleted is a missing log: the store is kept, the status says what
// is missing; the ref made again is followed.
func TestGitRefDeletedAndRecreated(t *testing.T) {
	g := newGitHarness(t, layoutApp, synth.New(6).Events(20), nil)
	r := g.run()
	ids := g.modelIDs()
	gittest.Git(t, g.repo, "update-ref", "-d", g.ref)
	testkit.Eventually(t, "the log is missing", func() error {
		if st := g.e.Status(); !st.LogMissing || st.Missing != "no such ref" || st.Commit != "" {
			return fmt.Errorf("status %+v", st)
		}
		return nil
	})
	g.wantIDs(ids...)
	evs := append(without(g.evs, 2), g.newEvents(4)...)
	c := g.commit(evs) // a new root commit: the ref did not exist
	g.atCommit("the ref is back", c)
	if st := g.e.Status(); st.LogMissing || st.Missing != "" {
		t.Fatalf("status once the ref is back: %+v", st)
	}
	r.stop(t)
	g.verifyGit()
}

// Ref moves that arrive while a blob is being read are read once, at the
// latest commit: the commits in between are never read or applied.
func TestGitBurstIsReadOnceAtTheLatestCommit(t *testing.T) {
	g := newGitHarness(t, layoutApp, synth.New(7).Events(20), nil)
	r := g.run()
	g.takeReads()
	gate := make(chan struct{})
	record := testHookGitRead
	testHookGitRead = func(s gitlog.Snapshot) {
		record(s)
		<-gate
	}
	first := g.commit(append(slices.Clone(g.evs), g.newEvents(1)...))
	testkit.Eventually(t, "the first commit is being read", func() error {
		g.mu.Lock()
		defer g.mu.Unlock()
		if len(g.reads) != 1 {
			return fmt.Errorf("%d reads", len(g.reads))
		}
		return nil
	})
	var last string
	for range 10 {
		last = g.commit(append(slices.Clone(g.evs), g.newEvents(1)...))
	}
	close(gate)
	g.atCommit("the burst", last)
	reads := g.takeReads()
	if len(reads) != 2 || string(reads[0].Commit) != first || string(reads[1].Commit) != last {
		var got []string
		for _, s := range reads {
			got = append(got, string(s.Commit))
		}
		t.Fatalf("read %v; want the first commit %s, then only the latest %s", got, first, last)
	}
	r.stop(t)
	g.verifyGit()
}

// The repository is only read: on a repository that nobody may write
// (and, when the test runs as root, that belongs to another user), a
// first load, following, a sync, a verify and a status leave every file
// and directory in it as they were.
func TestGitReadOnlyRepository(t *testing.T) {
	g := newGitHarness(t, layoutApp, synth.New(8).Events(20), nil)
	g.push(append(slices.Clone(g.evs), g.newEvents(3)...))
	gittest.Git(t, g.repo, "pack-refs", "--all")
	c := g.push(append(slices.Clone(g.evs), g.newEvents(3)...))
	root := filepath.Dir(g.repo)
	gittest.ReadOnly(t, root)
	before := gittest.Listing(t, root)

	r := g.run()
	g.atCommit("the first load", c)
	r.stop(t)
	g.sync()
	g.verifyGit()
	if _, err := ReadLogStatus(g.ctx(), g.db, g.log()); err != nil {
		t.Fatal(err)
	}
	if hint := staleWorkTree(g.ctx(), g.path); hint == "" {
		t.Fatal("no stale work-tree hint for a work tree two pushes behind")
	}
	after := gittest.Listing(t, root)
	for p, was := range before {
		if now := after[p]; now != was {
			t.Errorf("%s changed: %s -> %s", p, was, now)
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			t.Errorf("%s appeared", p)
		}
	}
}

// No repository yet (the application has not cloned it) is a missing
// log: the engine waits, and loads the log once the repository and its
// first commit appear.
func TestGitRepositoryAppearsLater(t *testing.T) {
	gittest.Need(t)
	g := newGitHarness(t, layoutBare, nil, nil)
	later := filepath.Join(g.dir, "later")
	g.path = filepath.Join(later, "working-git-repository", "data.json")
	g.opts.EventLog, g.opts.GitRef = g.path, "master"
	g.open()
	r := g.run()
	if st := g.e.Status(); !st.LogMissing || st.Missing != "no repository" {
		t.Fatalf("status before the repository exists: %+v", st)
	}
	if err := os.Mkdir(later, 0o755); err != nil {
		t.Fatal(err)
	}
	evs := synth.New(9).Events(15)
	g.repo = gittest.AppRepo(t, later, eventlog.Format(evs))
	g.evs, g.ref = evs, "refs/heads/master"
	g.atCommit("the repository appeared", gittest.Git(t, g.repo, "rev-parse", "master"))
	r.stop(t)
	g.verifyGit()
}

// Sync and Resync in git mode: a missing ref is ErrLogMissing (the store
// kept); Resync rebuilds from the blob at the ref.
func TestGitSyncAndResync(t *testing.T) {
	g := newGitHarness(t, layoutBare, synth.New(10).Events(25), nil)
	g.sync()
	g.verifyGit()
	seq := g.e.Checkpoint().Seq
	gittest.Git(t, g.repo, "update-ref", "-d", g.ref)
	if err := g.e.Sync(g.ctx()); !errors.Is(err, ErrLogMissing) || !strings.Contains(err.Error(), "no such ref") {
		t.Fatalf("Sync with the ref deleted: %v", err)
	}
	if err := g.e.Resync(g.ctx()); !errors.Is(err, ErrLogMissing) {
		t.Fatalf("Resync with the ref deleted: %v", err)
	}
	g.wantIDs(g.modelIDs()...)
	g.commit(g.evs)
	if err := g.e.Resync(g.ctx()); err != nil {
		t.Fatal(err)
	}
	if cp := g.e.Checkpoint(); cp.Seq != seq+1 || cp.Blob == "" {
		t.Fatalf("after the resync: %+v (seq before %d)", cp, seq)
	}
	g.verifyGit()
}

// The git source's watches hear the ref's file and packed-refs, and not
// the lock files git writes first (nor the work tree's log).
func TestGitSourceClassifiesRefEvents(t *testing.T) {
	g := newGitHarness(t, layoutApp, synth.New(11).Events(3), nil)
	detach, err := g.e.attach()
	if err != nil {
		t.Fatal(err)
	}
	defer detach()
	w, err := fsnotify.NewWatcher()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	d := dirWatch{w: w, src: &gitSource{src: g.e.git.src}, dirs: map[string]*watched{}}
	if _, err := d.update(); err != nil {
		t.Fatal(err)
	}
	gitDir := filepath.Join(g.repo, ".git")
	for name, want := range map[string]eventKind{
		filepath.Join(gitDir, "refs", "heads", "master"):      evPath,
		filepath.Join(gitDir, "refs", "heads", "master.lock"): evNone,
		filepath.Join(gitDir, "packed-refs"):                  evPath,
		filepath.Join(gitDir, "packed-refs.lock"):             evNone,
		filepath.Join(gitDir, "refs", "heads", "other"):       evNone,
		filepath.Join(gitDir, "index"):                        evNone,
		filepath.Join(g.repo, ".git"):                         evPath,
		filepath.Join(g.repo, "data.json"):                    evNone,
	} {
		if got := d.classify(fsnotify.Event{Name: name, Op: fsnotify.Create}); got != want {
			t.Errorf("%s: %v, want %v", name, got, want)
		}
	}
}

// In file mode, a log in a work tree whose HEAD has moved past it (the
// application pushed into the branch) gets a hint, once, in the log and
// the status: git-ref follows the branch. A work tree that is current,
// or a log that is not in a repository, gets none.
func TestStaleWorkTreeHint(t *testing.T) {
	gittest.Need(t)
	evs := synth.New(12).Events(10)
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, root string) string // returns the log's path
		stale bool
	}{
		{"current", func(t *testing.T, root string) string {
			return filepath.Join(gittest.AppRepo(t, root, eventlog.Format(evs)), "data.json")
		}, false},
		{"pushed past", func(t *testing.T, root string) string {
			repo := gittest.AppRepo(t, root, eventlog.Format(evs))
			gittest.Push(t, repo, "master", eventlog.Format(append(slices.Clone(evs), synth.New(13).Events(1)...)))
			return filepath.Join(repo, "data.json")
		}, true},
		{"same size, other content", func(t *testing.T, root string) string {
			repo := gittest.AppRepo(t, root, eventlog.Format(evs))
			changed := eventlog.Format(evs)
			i := slices.Index(changed, '"') + 1
			changed[i] ^= 1
			gittest.Push(t, repo, "master", changed)
			return filepath.Join(repo, "data.json")
		}, true},
		{"no repository", func(t *testing.T, root string) string {
			p := filepath.Join(root, "data.json")
			writeLog(t, p, evs)
			return p
		}, false},
		{"untracked", func(t *testing.T, root string) string {
			repo := gittest.AppRepo(t, root, []byte("x\n"))
			p := filepath.Join(repo, "other.json")
			writeLog(t, p, evs)
			return p
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := tc.setup(t, t.TempDir())
			var logged lockedLog
			h := newHarness(t, func(o *Options) {
				o.EventLog = path
				o.Logger = slog.New(slog.NewTextHandler(io.MultiWriter(&logged, testWriter{t}), nil))
			})
			h.sync()
			hint := h.e.Status().Hint
			if tc.stale != (hint != "") || tc.stale && !strings.Contains(hint, "git-ref: master") {
				t.Fatalf("hint %q, want stale=%v", hint, tc.stale)
			}
			st, err := ReadLogStatus(h.ctx(), h.db, Log{Path: path})
			if err != nil || st.Hint != hint {
				t.Fatalf("ReadLogStatus: hint %q (%v), the engine's %q", st.Hint, err, hint)
			}
			// Once: neither a second Sync nor a new event says it again.
			h.sync()
			if err := eventlog.AppendFile(path, synth.New(14).Events(1)...); err != nil {
				t.Fatal(err)
			}
			h.sync()
			want := 0
			if tc.stale {
				want = 1
			}
			if n := strings.Count(logged.String(), "the work tree is stale"); n != want {
				t.Fatalf("the hint was logged %d times, want %d", n, want)
			}
		})
	}
}

// lockedLog is a log's output that a test reads while the engine writes.
type lockedLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// Status of a store no engine runs on, in git mode: the ref, its commit
// and blob; the checkpoint's blob; a missing ref.
func TestReadLogStatusInGitMode(t *testing.T) {
	g := newGitHarness(t, layoutBare, synth.New(14).Events(10), nil)
	g.sync()
	c := g.commit(append(slices.Clone(g.evs), g.newEvents(1)...))
	st, err := ReadLogStatus(g.ctx(), g.db, g.log())
	if err != nil {
		t.Fatal(err)
	}
	cp := g.e.Checkpoint()
	if st.Ref != g.ref || st.Commit != c || st.Blob == "" || st.Blob == cp.Blob || st.Checkpoint.Blob != cp.Blob ||
		st.LogSize != int64(len(eventlog.Format(g.evs))) || st.Lag != st.LogSize-cp.Offset {
		t.Fatalf("status %+v, checkpoint %+v", st, cp)
	}
	gittest.Git(t, g.repo, "update-ref", "-d", g.ref)
	if st, err = ReadLogStatus(g.ctx(), g.db, g.log()); err != nil || !st.LogMissing || st.Missing != "no such ref" {
		t.Fatalf("status with the ref deleted: %+v, %v", st, err)
	}
	if _, err := VerifyLog(g.ctx(), g.db, g.log(), 0); !errors.Is(err, ErrLogMissing) {
		t.Fatalf("VerifyLog with the ref deleted: %v", err)
	}
}

// A store mirrored in git mode and one key changed behind the engine's
// back: VerifyLog (against the blob at the ref) finds it.
func TestVerifyLogFindsADifference(t *testing.T) {
	g := newGitHarness(t, layoutBare, synth.New(15).Events(10), nil)
	g.sync()
	key := schema.AppendEventKey(nil, []byte(g.evs[4].ID))
	if err := g.db.Put(string(key), map[string]string{"id": "changed"}); err != nil {
		t.Fatal(err)
	}
	r, err := VerifyLog(g.ctx(), g.db, g.log(), 0)
	if err != nil || r.OK() || r.Differ != 1 || r.Blob == "" || r.Commit == "" {
		t.Fatalf("VerifyLog: %+v, %v", r, err)
	}
}

// The safety check covers git mode: a ref moved where no watch sees it
// (packed-refs rewritten in place through a hard link elsewhere) is found
// by resolving the ref again.
func TestGitSafetyCheckCatchesUnseenRefMoves(t *testing.T) {
	g := newGitHarness(t, layoutBare, synth.New(16).Events(10), func(o *Options) { o.SafetyCheck = 40 * time.Millisecond })
	gittest.Git(t, g.repo, "pack-refs", "--all")
	other := filepath.Join(t.TempDir(), "packed-refs")
	if err := os.Link(filepath.Join(g.repo, "packed-refs"), other); err != nil {
		t.Skipf("hard links not supported here: %v", err)
	}
	r := g.run()
	// A commit on another branch, then master moved onto it by editing
	// packed-refs through the other name.
	evs := append(slices.Clone(g.evs), g.newEvents(4)...)
	c := gittest.Commit(t, g.repo, "refs/heads/elsewhere", map[string][]byte{"data.json": eventlog.Format(evs)})
	g.evs = evs
	old, err := os.ReadFile(other)
	if err != nil {
		t.Fatal(err)
	}
	master := gittest.Git(t, g.repo, "rev-parse", "refs/heads/master")
	if err := os.WriteFile(other, []byte(strings.Replace(string(old), master+" refs/heads/master", c+" refs/heads/master", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := gittest.Git(t, g.repo, "rev-parse", "refs/heads/master"); got != c {
		t.Fatalf("master is %s after the edit, want %s", got, c)
	}
	g.atCommit("the safety check", c)
	r.stop(t)
	g.verifyGit()
}

// A repository that keeps its refs in a reftable cannot be read: Run
// ends with ErrReftable rather than waiting for a ref it would never see.
func TestGitReftableEndsRun(t *testing.T) {
	g := newGitHarness(t, layoutBare, synth.New(17).Events(3), nil)
	if err := os.Mkdir(filepath.Join(g.repo, "reftable"), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testkit.WaitLimit)
	defer cancel()
	if err := g.e.Run(ctx, nil); !errors.Is(err, ErrReftable) {
		t.Fatalf("Run: %v, want ErrReftable", err)
	}
	noFollowerLeft(t)
}
