package gitlog

import (
	"path/filepath"
	"testing"

	"github.com/mirrord/mirrord/internal/gittest"
)

// Every operation on repositories made read-only (chmod -R a-w), owned
// by another user when the test runs as root, leaves every file and
// directory in them as it was: no lock file, no index refresh, no
// object written. Root ignores the permissions, so the listing, not a
// refused write, is the proof.
func TestReadOnly(t *testing.T) {
	noLeaks(t)
	repo := appRepo(t, "first\n")
	transaction(t, repo, setData("first\nsecond\n"))
	git(t, repo, "tag", "-a", "-m", "t", "v1")
	git(t, repo, "pack-refs", "--all")
	transaction(t, repo, setData("first\nsecond\nthird\n")) // a loose ref over the packed one
	git(t, repo, "branch", "side")
	wt := filepath.Join(filepath.Dir(repo), "side-tree")
	git(t, repo, "worktree", "add", "-q", wt, "side")
	bare := filepath.Join(filepath.Dir(repo), "repo.git")
	git(t, repo, "clone", "-q", "--bare", repo, bare)
	root := filepath.Dir(repo)

	before := gittest.Listing(t, root)
	gittest.ReadOnly(t, root)
	afterChmod := gittest.Listing(t, root)

	files := []struct{ file, ref string }{
		{filepath.Join(repo, "data.json"), "master"},
		{filepath.Join(repo, "data.json"), "HEAD"},
		{filepath.Join(repo, "data.json"), "refs/tags/v1"},
		{filepath.Join(repo, "data.json"), "no-such-branch"},
		{filepath.Join(wt, "data.json"), "HEAD"},
		{filepath.Join(bare, "data.json"), "master"},
	}
	for _, f := range files {
		s := newSource(t, f.file, f.ref)
		snap := stat(t, s)
		if f.ref == "no-such-branch" {
			if snap.State != NoRef {
				t.Fatalf("%s at %s: %+v", f.file, f.ref, snap)
			}
		} else if got := readAll(t, s, snap); got == "" {
			t.Fatalf("%s at %s: empty", f.file, f.ref)
		}
		if _, err := s.Watches(); err != nil {
			t.Fatal(err)
		}
		s.Close()
	}

	after := gittest.Listing(t, root)
	if len(after) != len(afterChmod) {
		t.Errorf("%d entries before, %d after", len(afterChmod), len(after))
	}
	for p, was := range afterChmod {
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
