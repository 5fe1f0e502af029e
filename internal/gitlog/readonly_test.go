package gitlog

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// listing records every file and directory under root with what a write
// would change: mode, size, modification time and inode (a rename onto
// a file changes its inode; a lock file made and removed changes its
// directory's modification time).
func listing(tb testing.TB, root string) map[string]string {
	tb.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		st, err := os.Lstat(p)
		if err != nil {
			return err
		}
		sys := st.Sys().(*syscall.Stat_t)
		out[p] = fmt.Sprintf("%v %d %d %d", st.Mode(), st.Size(), st.ModTime().UnixNano(), sys.Ino)
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// setWritable adds or removes write permission on everything under root.
func setWritable(tb testing.TB, root string, writable bool) {
	tb.Helper()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 {
			return nil
		}
		st, err := os.Lstat(p)
		if err != nil {
			return err
		}
		mode := st.Mode().Perm() &^ 0o222
		if writable {
			mode |= 0o200
		}
		return os.Chmod(p, mode)
	})
	if err != nil {
		tb.Fatal(err)
	}
}

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

	before := listing(t, root)
	setWritable(t, root, false)
	t.Cleanup(func() { setWritable(t, root, true) })
	if os.Geteuid() == 0 {
		if err := chownAll(root, 65534, 65534); err != nil {
			t.Fatal(err)
		}
	}
	afterChmod := listing(t, root)

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

	after := listing(t, root)
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

func chownAll(root string, uid, gid int) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
}
