package gitlog

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestMain makes git hermetic (no system or user configuration: HOME is
// an empty directory) for the tests' own git commands and the package's
// children alike, and fails the run if any goroutine outlives the tests.
func TestMain(m *testing.M) {
	home, err := os.MkdirTemp("", "gitlog-home-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	os.Setenv("HOME", home)
	os.Setenv("GIT_CONFIG_NOSYSTEM", "1")
	os.Unsetenv("XDG_CONFIG_HOME")
	os.Unsetenv("GIT_DIR")
	os.Unsetenv("GIT_WORK_TREE")
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goroutines outlived the tests:", err)
			code = 1
		}
	}
	os.RemoveAll(home)
	os.Exit(code)
}

// needGit skips the test when there is no git program.
func needGit(tb testing.TB) {
	tb.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		tb.Skip("no git program in PATH: the git source's tests need real git")
	}
}

// gitCmdTimeout bounds each git command a test runs.
const gitCmdTimeout = 2 * time.Minute

// git runs git in dir with a fixed identity and returns its output
// trimmed; a failure fails the test.
func git(tb testing.TB, dir string, args ...string) string {
	tb.Helper()
	out, err := gitErr(dir, nil, args...)
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// gitErr is git with stdin, returning the failure instead.
func gitErr(dir string, stdin []byte, args ...string) (string, error) {
	timeout := gitCmdTimeout
	if len(args) > 0 && args[0] == "gc" {
		// git gc of the benchmark's large repository takes minutes; a
		// kill would end git gc but not the git pack-objects under it.
		timeout = time.Hour
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	full := append([]string{"-c", "user.name=Test", "-c", "user.email=test@example.com",
		"-c", "init.defaultBranch=master", "-c", "gc.auto=0"}, args...)
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

// appRepo makes the application's layout in a new directory: a
// non-bare repository that accepts pushes to its checked-out branch,
// with one commit holding data.json. It returns the repository's path.
func appRepo(tb testing.TB, content string) string {
	tb.Helper()
	needGit(tb)
	root := tb.TempDir()
	repo := filepath.Join(root, "working-git-repository")
	git(tb, root, "init", "-q", repo)
	git(tb, repo, "config", "receive.denyCurrentBranch", "ignore")
	if err := os.WriteFile(filepath.Join(repo, "data.json"), []byte(content), 0o644); err != nil {
		tb.Fatal(err)
	}
	git(tb, repo, "add", "data.json")
	git(tb, repo, "commit", "-q", "-m", "first")
	return repo
}

// transaction does what the application does for each change: clone the
// repository into a temporary directory, let edit change the clone's
// files, commit and push to master. The pushed commit's id is returned.
func transaction(tb testing.TB, repo string, edit func(dir string) error) string {
	tb.Helper()
	tmp := tb.TempDir()
	clone := filepath.Join(tmp, "clone")
	git(tb, tmp, "clone", "-q", repo, clone)
	if err := edit(clone); err != nil {
		tb.Fatal(err)
	}
	git(tb, clone, "add", "-A")
	git(tb, clone, "commit", "-q", "--allow-empty", "-m", "transaction")
	git(tb, clone, "push", "-q", "origin", "HEAD:master")
	return git(tb, clone, "rev-parse", "HEAD")
}

// setData is an edit that sets the clone's data.json to content.
func setData(content string) func(string) error {
	return func(dir string) error {
		return os.WriteFile(filepath.Join(dir, "data.json"), []byte(content), 0o644)
	}
}

// testCtx is a context bounding one test's git work.
func testCtx(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	tb.Cleanup(cancel)
	return ctx
}
