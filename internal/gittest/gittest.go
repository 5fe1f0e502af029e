// Package gittest makes git repositories for the tests of mirrord's git
// source, with the real git program: the application's layout (a non-bare
// repository that receives pushes into its checked-out branch), bare
// repositories and linked worktrees, commits made as the application
// makes them (clone, commit, push) or directly (git fast-import, one
// process a commit, for tests that make many).
//
// Git is made hermetic for the tests' commands and for the children the
// code under test starts: Hermetic points HOME at an empty directory and
// turns the system configuration off, so that no user's or machine's
// settings change what git does. Every command runs with a fixed identity
// and dates, and is bounded in time.
package gittest

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Hermetic sets the process's environment so that git reads no user or
// system configuration, for the tests' git commands and for the git
// children of the code under test alike; call it from TestMain. The
// returned function removes the empty home directory it made.
//
// The go command a test runs (to build mirrord for a child process) keeps
// the user's module and build caches and settings: they are named
// explicitly before HOME moves, or it would download every module and
// build everything again into the empty home, minutes per test binary.
func Hermetic() (cleanup func(), err error) {
	if err := pinGoDirs(); err != nil {
		return nil, err
	}
	home, err := os.MkdirTemp("", "gittest-home-")
	if err != nil {
		return nil, err
	}
	os.Setenv("HOME", home)
	os.Setenv("GIT_CONFIG_NOSYSTEM", "1")
	for _, k := range []string{"XDG_CONFIG_HOME", "GIT_DIR", "GIT_WORK_TREE", "GIT_CONFIG_GLOBAL", "GIT_INDEX_FILE"} {
		os.Unsetenv(k)
	}
	return func() { os.RemoveAll(home) }, nil
}

// pinGoDirs sets GOPATH, GOCACHE and GOENV, where unset, to what the go
// command derives from HOME and the XDG directories now.
func pinGoDirs() error {
	home, err := os.UserHomeDir()
	if err != nil {
		return nil // no home: the go command has none to lose either
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return err
	}
	config, err := os.UserConfigDir()
	if err != nil {
		return err
	}
	for k, v := range map[string]string{
		"GOPATH":  filepath.Join(home, "go"),
		"GOCACHE": filepath.Join(cache, "go-build"),
		"GOENV":   filepath.Join(config, "go", "env"),
	} {
		if os.Getenv(k) == "" {
			os.Setenv(k, v)
		}
	}
	return nil
}

// Need skips the test when there is no git program.
func Need(tb testing.TB) {
	tb.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		tb.Skip("no git program in PATH: the git source's tests need real git")
	}
}

// cmdTimeout bounds each git command a test runs (but git gc: see Run).
const cmdTimeout = 2 * time.Minute

// Git runs git in dir with a fixed identity and returns its output,
// trimmed; a failure fails the test.
func Git(tb testing.TB, dir string, args ...string) string {
	tb.Helper()
	out, err := Run(dir, nil, args...)
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// Run runs git in dir with stdin (nil for none) and returns its output,
// trimmed, or an error with what git said.
//
// Each command is bounded by two minutes but git gc, by an hour: git gc of
// a benchmark's large repository takes minutes, and a kill would end git
// gc but not the git pack-objects under it.
func Run(dir string, stdin []byte, args ...string) (string, error) {
	timeout := cmdTimeout
	if len(args) > 0 && args[0] == "gc" {
		timeout = time.Hour
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	full := append([]string{"-c", "user.name=Test", "-c", "user.email=test@example.com",
		"-c", "init.defaultBranch=master", "-c", "gc.auto=0", "-c", "advice.detachedHead=false",
		// The tests' own commands, on a repository ReadOnly gave to another
		// user: mirrord's git children name the git directory and need no
		// such exception.
		"-c", "safe.directory=*"}, args...)
	cmd := exec.CommandContext(ctx, "git", full...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_DATE=2024-01-01T00:00:00Z", "GIT_COMMITTER_DATE=2024-01-01T00:00:00Z")
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("git %s in %s: %v: %s", strings.Join(args, " "), dir, err, stderr.String())
	}
	return strings.TrimSpace(stdout.String()), nil
}

// AppRepo makes the application's layout in a new directory under root:
// a non-bare repository, working-git-repository, that accepts pushes to
// its checked-out branch, with one commit holding data.json with content.
// It returns the repository's path.
func AppRepo(tb testing.TB, root string, content []byte) string {
	tb.Helper()
	Need(tb)
	repo := filepath.Join(root, "working-git-repository")
	Git(tb, root, "init", "-q", repo)
	Git(tb, repo, "config", "receive.denyCurrentBranch", "ignore")
	if err := os.WriteFile(filepath.Join(repo, "data.json"), content, 0o644); err != nil {
		tb.Fatal(err)
	}
	Git(tb, repo, "add", "data.json")
	Git(tb, repo, "commit", "-q", "-m", "first")
	return repo
}

// BareRepo makes an empty bare repository at path.
func BareRepo(tb testing.TB, path string) string {
	tb.Helper()
	Need(tb)
	Git(tb, filepath.Dir(path), "init", "-q", "--bare", path)
	return path
}

// Push does what the application does for each transaction: clone repo
// into a temporary directory, write data.json there with content, commit
// and push to branch. It returns the pushed commit.
func Push(tb testing.TB, repo, branch string, content []byte) string {
	tb.Helper()
	tmp := tb.TempDir()
	clone := filepath.Join(tmp, "clone")
	Git(tb, tmp, "clone", "-q", "--branch", branch, repo, clone)
	if err := os.WriteFile(filepath.Join(clone, "data.json"), content, 0o644); err != nil {
		tb.Fatal(err)
	}
	Git(tb, clone, "add", "data.json")
	Git(tb, clone, "commit", "-q", "--allow-empty", "-m", "transaction")
	Git(tb, clone, "push", "-q", "origin", "HEAD:"+branch)
	return Git(tb, clone, "rev-parse", "HEAD")
}

// Commit makes a commit on ref (a full name, refs/heads/master) of the
// repository that holds dir (its work tree or git directory), holding the files given (path
// → content; a nil content leaves the path out), with the ref's commit as
// its parent when it has one, by one git fast-import. The ref is updated
// as git updates refs (a lock file renamed onto the ref). It returns the
// new commit.
func Commit(tb testing.TB, dir, ref string, files map[string][]byte) string {
	tb.Helper()
	out, err := CommitErr(dir, ref, files)
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// CommitErr is Commit returning its failure, for a goroutine.
func CommitErr(dir, ref string, files map[string][]byte) (string, error) {
	var in bytes.Buffer
	fmt.Fprintf(&in, "commit %s\ncommitter Test <test@example.com> 1700000000 +0000\ndata 6\ncommit\n", ref)
	if parent, err := Run(dir, nil, "rev-parse", "-q", "--verify", ref+"^{commit}"); err == nil && parent != "" {
		fmt.Fprintf(&in, "from %s\n", parent)
	}
	in.WriteString("deleteall\n")
	for path, content := range files {
		if content == nil {
			continue
		}
		fmt.Fprintf(&in, "M 100644 inline %s\ndata %d\n", path, len(content))
		in.Write(content)
		in.WriteString("\n")
	}
	in.WriteString("done\n")
	if _, err := Run(dir, in.Bytes(), "fast-import", "--quiet", "--done", "--force"); err != nil {
		return "", err
	}
	return Run(dir, nil, "rev-parse", ref)
}

// Listing records every file and directory under root with what a write
// would change: mode, size, modification time and inode (a rename onto a
// file changes its inode; a lock file made and removed changes its
// directory's modification time). Two listings equal: nothing was
// written.
func Listing(tb testing.TB, root string) map[string]string {
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

// ReadOnly takes write permission away from everything under root
// (chmod -R a-w) and, when the test runs as root (which permissions do not
// stop), gives it all to another user (nobody), so that what is run on it
// runs as a user with read access alone; the test's cleanup gives it
// back. Compare Listings to prove nothing was written.
func ReadOnly(tb testing.TB, root string) {
	tb.Helper()
	setWritable(tb, root, false)
	uid, gid := os.Getuid(), os.Getgid()
	tb.Cleanup(func() {
		if os.Geteuid() == 0 {
			_ = chownAll(root, uid, gid)
		}
		setWritable(tb, root, true)
	})
	if os.Geteuid() == 0 {
		if err := chownAll(root, 65534, 65534); err != nil {
			tb.Fatal(err)
		}
	}
}

// setWritable adds or removes the owner's write permission (and removes
// everyone else's) on everything under root.
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

func chownAll(root string, uid, gid int) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
}
