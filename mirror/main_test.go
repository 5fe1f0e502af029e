package mirror

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/mirrord/mirrord/internal/gittest"
	"github.com/mirrord/mirrord/internal/testkit"
	"github.com/mirrord/mirrord/kv"
	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine outlives them: Run
// stops what it starts, and every test closes the stores it opens. Git is
// made hermetic first (see gittest.Hermetic): the git source's tests run
// real git, and the engine's git children inherit the environment.
func TestMain(m *testing.M) {
	cleanup, err := gittest.Hermetic()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	goleak.VerifyTestMain(m, goleak.Cleanup(func(int) { cleanup() }))
}

// noFollowerLeft waits until no goroutine runs the follower's code or the
// file watcher's: what Run started has ended with it. (goleak's check is
// for the whole package; the store's own goroutines, which it starts
// lazily, come and go with the store, not with Run.)
func noFollowerLeft(t *testing.T) {
	t.Helper()
	testkit.Eventually(t, "the goroutines Run started end", func() error {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		for _, g := range strings.Split(string(buf), "\n\n") {
			for _, f := range []string{"github.com/fsnotify/fsnotify.", "mirror.(*follower).", "mirror.(*Engine).Run("} {
				if strings.Contains(g, f) {
					return fmt.Errorf("still running:\n%s", g)
				}
			}
		}
		return nil
	})
}

// closeDB closes a test's store; an error fails t.
func closeDB(t testing.TB, db *kv.DB) {
	t.Helper()
	if db == nil {
		return
	}
	if err := db.Close(); err != nil {
		t.Errorf("closing the store: %v", err)
	}
}
