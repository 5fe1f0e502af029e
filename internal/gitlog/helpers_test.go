package gitlog

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mirrord/mirrord/internal/gittest"
	"go.uber.org/goleak"
)

// TestMain makes git hermetic (no system or user configuration: HOME is
// an empty directory) for the tests' own git commands and the package's
// children alike, and fails the run if any goroutine outlives the tests.
func TestMain(m *testing.M) {
	cleanup, err := gittest.Hermetic()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goroutines outlived the tests:", err)
			code = 1
		}
	}
	cleanup()
	os.Exit(code)
}

// git runs git in dir (gittest's fixed identity and bounds) and returns
// its output trimmed; a failure fails the test.
var git = gittest.Git

// appRepo makes the application's layout in a new directory: a
// non-bare repository that accepts pushes to its checked-out branch,
// with one commit holding data.json. It returns the repository's path.
func appRepo(tb testing.TB, content string) string {
	tb.Helper()
	return gittest.AppRepo(tb, tb.TempDir(), []byte(content))
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
