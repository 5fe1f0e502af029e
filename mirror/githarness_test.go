package mirror

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/mirrord/mirrord/eventlog"
	"github.com/mirrord/mirrord/internal/gitlog"
	"github.com/mirrord/mirrord/internal/gittest"
	"github.com/mirrord/mirrord/internal/synth"
	"github.com/mirrord/mirrord/internal/testkit"
)

// gitHarness is a harness whose log is a file committed at a ref of a
// real git repository: the engine runs in git mode.
type gitHarness struct {
	*harness
	repo string // where commits are made: the work tree, or the bare repository
	ref  string // the full ref commits go to

	mu    sync.Mutex
	reads []gitlog.Snapshot // the blobs the engine started reading
}

// The repository layouts a gitHarness can make.
const (
	layoutApp      = "app"      // the application's: non-bare, pushes into its checked-out branch
	layoutBare     = "bare"     // a bare repository; the log's path is repo.git/data.json
	layoutWorktree = "worktree" // a linked worktree of the app's repository, on its own branch
)

// newGitHarness makes a repository of the layout whose log holds evs
// (committed), and an engine following it at its branch.
func newGitHarness(t *testing.T, layout string, evs []*eventlog.Event, mod func(*Options)) *gitHarness {
	t.Helper()
	gittest.Need(t)
	root, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, dir: root, fs: vfs.NewMem(), gen: synth.New(uint64(len(t.Name())) + 7),
		clock: &fakeClock{now: time.Now().Add(24 * time.Hour)}}
	g := &gitHarness{harness: h, ref: "refs/heads/master"}
	content := eventlog.Format(evs)
	switch layout {
	case layoutApp:
		g.repo = gittest.AppRepo(t, root, content)
		h.path = filepath.Join(g.repo, "data.json")
	case layoutBare:
		g.repo = gittest.BareRepo(t, filepath.Join(root, "repo.git"))
		gittest.Commit(t, g.repo, g.ref, map[string][]byte{"data.json": content})
		h.path = filepath.Join(g.repo, "data.json")
	case layoutWorktree:
		app := gittest.AppRepo(t, root, []byte("not the log followed\n"))
		g.repo = filepath.Join(root, "side-tree")
		gittest.Git(t, app, "worktree", "add", "-q", "-b", "side", g.repo)
		g.ref = "refs/heads/side"
		gittest.Commit(t, g.repo, g.ref, map[string][]byte{"data.json": content})
		h.path = filepath.Join(g.repo, "data.json")
	default:
		t.Fatalf("no layout %q", layout)
	}
	h.evs = slices.Clone(evs)
	h.opts = Options{EventLog: h.path, GitRef: g.ref, Now: h.clock.Now, Logger: testLogger(t), TempDir: t.TempDir(),
		OnApply: func(a Applied) { h.mu.Lock(); h.applied = append(h.applied, a); h.mu.Unlock() }}
	if mod != nil {
		mod(&h.opts)
	}
	testHookGitRead = func(s gitlog.Snapshot) {
		g.mu.Lock()
		g.reads = append(g.reads, s)
		g.mu.Unlock()
	}
	t.Cleanup(func() { testHookGitRead = nil })
	h.open()
	t.Cleanup(func() { closeDB(t, h.db) })
	return g
}

// commit commits evs as the log (a direct commit on the ref) and returns
// the commit.
func (g *gitHarness) commit(evs []*eventlog.Event) string {
	g.t.Helper()
	c := gittest.Commit(g.t, g.repo, g.ref, map[string][]byte{"data.json": eventlog.Format(evs)})
	g.evs = slices.Clone(evs)
	return c
}

// push commits evs as the application does: in a clone, pushed to the
// branch.
func (g *gitHarness) push(evs []*eventlog.Event) string {
	g.t.Helper()
	c := gittest.Push(g.t, g.repo, filepath.Base(g.ref), eventlog.Format(evs))
	g.evs = slices.Clone(evs)
	return c
}

// takeReads returns the blobs the engine started reading since the last
// call.
func (g *gitHarness) takeReads() []gitlog.Snapshot {
	g.mu.Lock()
	defer g.mu.Unlock()
	r := g.reads
	g.reads = nil
	return r
}

// log is where the engine reads, for VerifyLog.
func (g *gitHarness) log() Log { return Log{Path: g.path, GitRef: g.ref} }

// verifyGit checks the store against the blob at the ref with
// VerifyLog, and the store's ids against the model.
func (g *gitHarness) verifyGit() *Report {
	g.t.Helper()
	r, err := VerifyLog(g.ctx(), g.db, g.log(), 0)
	if err != nil {
		g.t.Fatalf("VerifyLog: %v", err)
	}
	if !r.OK() {
		g.t.Fatalf("%s\nmissing %q\nextra %q\ndiffer %q\nbookkeeping %q", r.Summary(), r.MissingKeys, r.ExtraKeys, r.DifferKeys, r.BookkeepingKeys)
	}
	g.wantIDs(g.modelIDs()...)
	return r
}

// atCommit waits until the engine's checkpoint was written from commit's
// blob and the store holds the model's events.
func (g *gitHarness) atCommit(what, commit string) {
	g.t.Helper()
	blob := gittest.Git(g.t, g.repo, "rev-parse", commit+":data.json")
	testkit.Eventually(g.t, what, func() error {
		cp := g.e.Status().Checkpoint
		if cp == nil || cp.Blob != blob {
			return fmt.Errorf("checkpoint %+v, want blob %s", cp, blob)
		}
		return nil
	})
	g.eventually(what)
}

// writeWorkTree writes the work tree's file (which git mode ignores).
func (g *gitHarness) writeWorkTree(content []byte) {
	g.t.Helper()
	if err := os.WriteFile(g.path, content, 0o644); err != nil {
		g.t.Fatal(err)
	}
}
