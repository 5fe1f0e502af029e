package gitlog

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mirrord/mirrord/internal/gittest"
	"go.uber.org/goleak"
)

// noLeaks checks, after the test's cleanups (registered first, it runs
// last), that no goroutine it started is left.
func noLeaks(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
}

// stat is Source.Stat failing the test on error.
func stat(tb testing.TB, s *Source) Snapshot {
	tb.Helper()
	snap, err := s.Stat(testCtx(tb))
	if err != nil {
		tb.Fatal(err)
	}
	return snap
}

// readAll opens snap's blob and reads it whole.
func readAll(tb testing.TB, s *Source, snap Snapshot) string {
	tb.Helper()
	b, err := s.Open(testCtx(tb), snap)
	if err != nil {
		tb.Fatal(err)
	}
	defer b.Close()
	got, err := io.ReadAll(b)
	if err != nil {
		tb.Fatal(err)
	}
	if int64(len(got)) != b.Size() || b.Size() != snap.Size {
		tb.Fatalf("read %d bytes, blob size %d, snapshot size %d", len(got), b.Size(), snap.Size)
	}
	return string(got)
}

// newSource is NewSource closed at the test's end.
func newSource(tb testing.TB, file, ref string) *Source {
	tb.Helper()
	s, err := NewSource(file, ref, nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// The application's pattern: every transaction is pushed into the
// non-bare repository's checked-out branch; the work tree stays at the
// first commit, and the Source follows master:data.json, not the file.
func TestFollowsPushesToCheckedOutBranch(t *testing.T) {
	noLeaks(t)
	repo := appRepo(t, "one\n")
	s := newSource(t, filepath.Join(repo, "data.json"), "master")
	snap := stat(t, s)
	if snap.State != Present || snap.Ref != "refs/heads/master" || snap.Commit != ID(git(t, repo, "rev-parse", "master")) {
		t.Fatalf("first snapshot %+v", snap)
	}
	if got := readAll(t, s, snap); got != "one\n" {
		t.Fatalf("read %q", got)
	}
	for i, content := range []string{"one\ntwo\n", "one\ntwo\nthree\n", "rewritten\n"} {
		commit := transaction(t, repo, setData(content))
		snap = stat(t, s)
		if snap.Commit != ID(commit) || snap.State != Present {
			t.Fatalf("push %d: snapshot %+v, pushed %s", i, snap, commit)
		}
		if got := readAll(t, s, snap); got != content {
			t.Fatalf("push %d: read %q, want %q", i, got, content)
		}
		if wt, _ := os.ReadFile(filepath.Join(repo, "data.json")); string(wt) != "one\n" {
			t.Fatalf("the work tree moved: %q (the test does not model the application)", wt)
		}
	}
	// HEAD is symbolic to master: following it gives the same commit.
	head := newSource(t, filepath.Join(repo, "data.json"), "HEAD")
	if h := stat(t, head); h.Commit != snap.Commit || h.Target != "refs/heads/master" || h.Ref != "HEAD" {
		t.Fatalf("HEAD snapshot %+v, master %+v", h, snap)
	}
}

// A commit that does not touch the file keeps its blob: the caller sees
// the same blob id under a new commit and need not read it again.
func TestCommitNotTouchingFileKeepsBlob(t *testing.T) {
	repo := appRepo(t, "log\n")
	s := newSource(t, filepath.Join(repo, "data.json"), "master")
	before := stat(t, s)
	commit := transaction(t, repo, func(dir string) error {
		return os.WriteFile(filepath.Join(dir, "other.txt"), []byte("x"), 0o644)
	})
	after := stat(t, s)
	if after.Commit != ID(commit) || after.Commit == before.Commit {
		t.Fatalf("commit %s, snapshots %s then %s", commit, before.Commit, after.Commit)
	}
	if after.Blob != before.Blob || after.Size != before.Size || after.State != Present {
		t.Fatalf("blob changed: %+v then %+v", before, after)
	}
}

// A file deleted from the tree is NoFile at the ref; put back, Present.
func TestFileDeletedFromTree(t *testing.T) {
	repo := appRepo(t, "log\n")
	s := newSource(t, filepath.Join(repo, "data.json"), "master")
	transaction(t, repo, func(dir string) error { return os.Remove(filepath.Join(dir, "data.json")) })
	if snap := stat(t, s); snap.State != NoFile || snap.Commit == "" || snap.Blob != "" {
		t.Fatalf("after delete: %+v", snap)
	}
	transaction(t, repo, setData("back\n"))
	if snap := stat(t, s); snap.State != Present || readAll(t, s, snap) != "back\n" {
		t.Fatalf("after restore: %+v", snap)
	}
}

// A deleted ref is NoRef; re-created, it is followed again.
func TestRefDeletedAndRecreated(t *testing.T) {
	repo := appRepo(t, "log\n")
	s := newSource(t, filepath.Join(repo, "data.json"), "master")
	first := stat(t, s)
	git(t, repo, "update-ref", "-d", "refs/heads/master")
	snap := stat(t, s)
	if snap.State != NoRef || snap.Commit != "" {
		t.Fatalf("after delete: %+v", snap)
	}
	// HEAD still points to master: an unborn branch is NoRef too.
	if h := stat(t, newSource(t, filepath.Join(repo, "data.json"), "HEAD")); h.State != NoRef || h.Target != "refs/heads/master" {
		t.Fatalf("HEAD after delete: %+v", h)
	}
	git(t, repo, "update-ref", "refs/heads/master", string(first.Commit))
	if snap := stat(t, s); snap != first {
		t.Fatalf("re-created: %+v, want %+v", snap, first)
	}
}

// After git pack-refs (or gc) the loose ref is gone and the value is
// read from packed-refs; a loose ref written later wins over the packed
// one, as in git.
func TestPackedRefs(t *testing.T) {
	repo := appRepo(t, "log\n")
	git(t, repo, "tag", "-a", "-m", "annotated", "v1")
	transaction(t, repo, setData("log\nmore\n"))
	for _, cmd := range [][]string{{"pack-refs", "--all"}, {"gc", "--quiet"}} {
		git(t, repo, cmd...)
		if _, err := os.Stat(filepath.Join(repo, ".git", "refs", "heads", "master")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("after git %s the loose ref is still there: %v", cmd[0], err)
		}
		s := newSource(t, filepath.Join(repo, "data.json"), "master")
		if snap := stat(t, s); snap.Commit != ID(git(t, repo, "rev-parse", "master")) || readAll(t, s, snap) != "log\nmore\n" {
			t.Fatalf("after git %s: %+v", cmd[0], snap)
		}
		// The annotated tag is packed with its peeled line, and peeled
		// to its commit.
		tag := stat(t, newSource(t, filepath.Join(repo, "data.json"), "refs/tags/v1"))
		if tag.Commit != ID(git(t, repo, "rev-parse", "v1^{commit}")) || tag.State != Present {
			t.Fatalf("tag after git %s: %+v", cmd[0], tag)
		}
	}
	commit := transaction(t, repo, setData("newest\n"))
	s := newSource(t, filepath.Join(repo, "data.json"), "master")
	if snap := stat(t, s); snap.Commit != ID(commit) {
		t.Fatalf("loose over packed: %+v, want %s", snap, commit)
	}
}

// A bare repository: the file's path is relative to the git directory.
func TestBareRepository(t *testing.T) {
	src := appRepo(t, "bare log\n")
	bare := filepath.Join(t.TempDir(), "repo.git")
	git(t, src, "clone", "-q", "--bare", src, bare)
	loc, found, err := Find(filepath.Join(bare, "data.json"))
	if err != nil || !found {
		t.Fatalf("Find: %v %v", found, err)
	}
	if !loc.Bare() || loc.GitDir != bare || loc.CommonDir != bare || loc.Path != "data.json" {
		t.Fatalf("location %+v", loc)
	}
	s := newSource(t, filepath.Join(bare, "data.json"), "master")
	if snap := stat(t, s); readAll(t, s, snap) != "bare log\n" {
		t.Fatalf("bare: %+v", snap)
	}
}

// A linked worktree: HEAD is its own (in .git/worktrees/NAME), branches
// and objects are the common directory's.
func TestLinkedWorktree(t *testing.T) {
	repo := appRepo(t, "main log\n")
	git(t, repo, "branch", "side")
	wt := filepath.Join(t.TempDir(), "side-tree")
	git(t, repo, "worktree", "add", "-q", wt, "side")
	git(t, wt, "commit", "-q", "--allow-empty", "-m", "on side")
	if err := os.WriteFile(filepath.Join(wt, "data.json"), []byte("side log\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	git(t, wt, "commit", "-q", "-am", "side log")
	loc, found, err := Find(filepath.Join(wt, "data.json"))
	if err != nil || !found {
		t.Fatalf("Find: %v %v", found, err)
	}
	common := filepath.Join(repo, ".git")
	if loc.CommonDir != common || loc.GitDir != filepath.Join(common, "worktrees", "side-tree") || loc.WorkTree != wt || loc.Path != "data.json" {
		t.Fatalf("location %+v", loc)
	}
	head := newSource(t, filepath.Join(wt, "data.json"), "HEAD")
	snap := stat(t, head)
	if snap.Target != "refs/heads/side" || readAll(t, head, snap) != "side log\n" {
		t.Fatalf("worktree HEAD: %+v", snap)
	}
	master := stat(t, newSource(t, filepath.Join(wt, "data.json"), "master"))
	if master.Commit != ID(git(t, repo, "rev-parse", "master")) {
		t.Fatalf("master from the worktree: %+v", master)
	}
	ws, err := head.Watches()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{filepath.Join(loc.GitDir, "HEAD"), filepath.Join(common, "refs", "heads", "side"), filepath.Join(common, "packed-refs")} {
		if !ws.Concerns(want) {
			t.Errorf("worktree watches %+v do not concern %s", ws, want)
		}
	}
	if ws.Concerns(filepath.Join(common, "HEAD")) {
		t.Errorf("the main worktree's HEAD concerns the linked worktree's: %+v", ws)
	}
}

// A file in a subdirectory, reached through a symbolic link to the
// repository: the path in the tree is the physical one's.
func TestSubdirectoryThroughSymlink(t *testing.T) {
	repo := appRepo(t, "x\n")
	commit := transaction(t, repo, func(dir string) error {
		if err := os.MkdirAll(filepath.Join(dir, "sub", "deeper"), 0o755); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, "sub", "deeper", "data.json"), []byte("deep\n"), 0o644)
	})
	git(t, repo, "checkout", "-q", "-f", "master") // the subdirectory must exist in the work tree
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(filepath.Join(repo, "sub"), link); err != nil {
		t.Fatal(err)
	}
	s := newSource(t, filepath.Join(link, "deeper", "data.json"), "master")
	snap := stat(t, s)
	if snap.Commit != ID(commit) || readAll(t, s, snap) != "deep\n" {
		t.Fatalf("through the link: %+v", snap)
	}
}

// No repository yet: NoRepository, with watches on the nearest existing
// directory; once the repository is made, it is found.
func TestRepositoryAppears(t *testing.T) {
	gittest.Need(t)
	root := t.TempDir()
	repo := filepath.Join(root, "app", "working-git-repository")
	s := newSource(t, filepath.Join(repo, "data.json"), "master")
	if snap := stat(t, s); snap.State != NoRepository || snap.Ref != "refs/heads/master" {
		t.Fatalf("before: %+v", snap)
	}
	ws, err := s.Watches()
	if err != nil {
		t.Fatal(err)
	}
	if !ws.Concerns(filepath.Join(root, "app")) || ws.Concerns(filepath.Join(root, "other")) {
		t.Fatalf("watches before the repository: %+v", ws)
	}
	if err := os.MkdirAll(repo, 0o755); err != nil {
		t.Fatal(err)
	}
	if ws, _ = s.Watches(); !ws.Concerns(filepath.Join(repo, ".git")) {
		t.Fatalf("watches in the empty directory: %+v", ws)
	}
	git(t, repo, "init", "-q")
	if snap := stat(t, s); snap.State != NoRef {
		t.Fatalf("empty repository: %+v", snap)
	}
	if err := os.WriteFile(filepath.Join(repo, "data.json"), []byte("now\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	git(t, repo, "add", "data.json")
	git(t, repo, "commit", "-q", "-m", "first")
	if snap := stat(t, s); snap.State != Present || readAll(t, s, snap) != "now\n" {
		t.Fatalf("after the first commit: %+v", snap)
	}
	// Removed whole, it is missing again (the old child is let go).
	if err := os.RemoveAll(repo); err != nil {
		t.Fatal(err)
	}
	if snap := stat(t, s); snap.State != NoRepository {
		t.Fatalf("after removal: %+v", snap)
	}
}

// What is not a file at the ref is an error naming it, not a state to
// wait in.
func TestNotAFile(t *testing.T) {
	repo := appRepo(t, "x\n")
	transaction(t, repo, func(dir string) error {
		if err := os.Remove(filepath.Join(dir, "data.json")); err != nil {
			return err
		}
		if err := os.Mkdir(filepath.Join(dir, "data.json"), 0o755); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, "data.json", "f"), nil, 0o644)
	})
	_, err := newSource(t, filepath.Join(repo, "data.json"), "master").Stat(testCtx(t))
	if err == nil || !strings.Contains(err.Error(), "data.json") || !strings.Contains(err.Error(), "tree") {
		t.Fatalf("a directory at the path: %v", err)
	}
	// A ref naming a tree, not a commit.
	tree := git(t, repo, "rev-parse", "master^{tree}")
	git(t, repo, "update-ref", "refs/tags/tree", tree)
	_, err = newSource(t, filepath.Join(repo, "data.json"), "refs/tags/tree").Stat(testCtx(t))
	if err == nil || !strings.Contains(err.Error(), "not a commit") || !strings.Contains(err.Error(), "refs/tags/tree") {
		t.Fatalf("a ref to a tree: %v", err)
	}
}

// A repository whose refs are in a reftable (a newer git's format) is
// an error, not a ref that is missing forever.
func TestReftableRefused(t *testing.T) {
	repo := appRepo(t, "x\n")
	if err := os.Mkdir(filepath.Join(repo, ".git", "reftable"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := newSource(t, filepath.Join(repo, "data.json"), "master").Stat(testCtx(t)); !errors.Is(err, ErrReftable) {
		t.Fatalf("Stat: %v", err)
	}
}

// Blob streaming: a blob closed early stops its child; a cancelled
// context ends the read; Close of the Source ends blobs still open.
func TestBlobLifecycle(t *testing.T) {
	for _, tc := range []struct {
		name string
		size int
	}{
		{"streamed", 4 << 20}, // more than the pipe holds
		{"small", 64 << 10},   // read whole by the --batch child
	} {
		t.Run(tc.name, func(t *testing.T) { testBlobLifecycle(t, tc.size) })
	}
}

func testBlobLifecycle(t *testing.T, size int) {
	noLeaks(t)
	big := strings.Repeat("0123456789abcdef", size/16)
	repo := appRepo(t, big)
	s := newSource(t, filepath.Join(repo, "data.json"), "master")
	snap := stat(t, s)

	b, err := s.Open(testCtx(t), snap)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	if _, err := io.ReadFull(b, buf); err != nil || string(buf) != big[:100] {
		t.Fatalf("first bytes %q, %v", buf, err)
	}
	b.Close()
	if _, err := b.Read(buf); !errors.Is(err, ErrClosed) {
		t.Fatalf("read after Close: %v", err)
	}

	ctx, cancel := context.WithCancel(testCtx(t))
	b, err = s.Open(ctx, snap)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(b, buf); err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := io.Copy(io.Discard, b); !errors.Is(err, context.Canceled) {
		t.Fatalf("a cancelled read ended with %v", err)
	}
	b.Close()

	b, err = s.Open(testCtx(t), snap)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := io.Copy(io.Discard, b); !errors.Is(err, ErrClosed) {
		t.Fatalf("read after the Source's Close: %v", err)
	}
	b.Close()
	if _, err := s.Stat(testCtx(t)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Stat after Close: %v", err)
	}
}

// A child that cannot start its work (the directory is no repository
// any more) is an error with git's own words, not retried in a loop.
func TestChildFailsAtOnce(t *testing.T) {
	noLeaks(t)
	gittest.Need(t)
	dir := t.TempDir()
	r, err := Open(Location{GitDir: dir, CommonDir: dir, Path: "data.json"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	_, err = r.OpenBlob(testCtx(t), sha1A)
	if err == nil || !strings.Contains(err.Error(), "not a git repository") || !strings.Contains(err.Error(), dir) {
		t.Fatalf("OpenBlob in a directory that is no repository: %v", err)
	}
}

// A blob up to smallBlob is read whole by the one long-lived --batch
// child, with no child of its own (a process start costs as much as
// reading a 1k-event log); a larger one is streamed by a child of its
// own. Both read exactly the blob.
func TestSmallBlobsShareOneChild(t *testing.T) {
	noLeaks(t)
	repo := appRepo(t, "x\n")
	file := filepath.Join(repo, "data.json")
	loc, _, err := Find(file)
	if err != nil {
		t.Fatal(err)
	}
	r, err := Open(loc, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var cat *batch
	for _, size := range []int{1, 100 << 10, smallBlob, smallBlob + 1, 3 << 20} {
		want := strings.Repeat("y", size-1) + "\n"
		transaction(t, repo, setData(want))
		snap, err := r.Stat(testCtx(t), "master")
		if err != nil {
			t.Fatal(err)
		}
		b, err := r.OpenBlob(testCtx(t), snap.Blob)
		if err != nil {
			t.Fatal(err)
		}
		streamed := b.child != nil
		got, err := io.ReadAll(b)
		b.Close()
		if err != nil || string(got) != want {
			t.Fatalf("blob of %d bytes: read %d bytes, %v", size, len(got), err)
		}
		if streamed != (size > smallBlob) {
			t.Fatalf("blob of %d bytes: streamed by a child of its own: %v", size, streamed)
		}
		r.mu.Lock()
		now := r.cat
		r.mu.Unlock()
		switch {
		case now == nil:
			t.Fatalf("blob of %d bytes: no --batch child", size)
		case cat != nil && now != cat:
			t.Fatalf("blob of %d bytes: another --batch child was started", size)
		}
		cat = now
	}
}

// A batch child that dies is replaced by the next request.
func TestDeadChildRestarted(t *testing.T) {
	noLeaks(t)
	repo := appRepo(t, "x\n")
	loc, _, err := Find(filepath.Join(repo, "data.json"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := Open(loc, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	first, err := r.Stat(testCtx(t), "master")
	if err != nil {
		t.Fatal(err)
	}
	read := func() {
		t.Helper()
		b, err := r.OpenBlob(testCtx(t), first.Blob)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		if got, err := io.ReadAll(b); err != nil || string(got) != "x\n" {
			t.Fatalf("after the child died: read %q, %v", got, err)
		}
	}
	read()
	for range 3 {
		for _, mode := range []string{modeCheck, modeContents} {
			r.mu.Lock()
			old := *r.slot(mode)
			r.mu.Unlock()
			// Whether the next request meets a closed pipe or no answer,
			// it must start another child.
			old.kill()
			snap, err := r.Stat(testCtx(t), "master")
			if err != nil || snap != first {
				t.Fatalf("after the %s child died: %+v, %v", mode, snap, err)
			}
			read()
			r.mu.Lock()
			replaced := *r.slot(mode) != old
			r.mu.Unlock()
			if !replaced {
				t.Fatalf("the dead %s child was not replaced", mode)
			}
		}
	}
}
