package mirror

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/mirrord/mirrord/internal/testkit"
	"github.com/mirrord/mirrord/kv"
	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine outlives them: Run
// stops what it starts, and every test closes the stores it opens.
//
// One exception is by design: a store whose write failed (kv.ErrFailed)
// cannot be closed (Pebble's Close would block on the commit pipeline the
// failed write left locked), so kv abandons the handle and its goroutines
// stay until the process exits. The fault tests do that on purpose;
// closeDB counts it, and only then are those goroutines let through. This
// is goleak.VerifyTestMain with that one condition, which its options,
// fixed before the tests run, cannot express.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		var opts []goleak.Option
		if abandonedStores.Load() > 0 {
			opts = failedStoreGoroutines
		}
		if err := goleak.Find(opts...); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: errors on successful test run: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// abandonedStores counts the store handles closeDB found failed.
var abandonedStores atomic.Int64

// failedStoreGoroutines are the goroutines an abandoned failed handle
// keeps: Pebble's, and the kv scheduler's granter (under two names: the
// race detector's build inlines it differently).
var failedStoreGoroutines = []goleak.Option{
	goleak.IgnoreAnyFunction("github.com/cockroachdb/pebble/v2.(*cleanupManager).mainLoop"),
	goleak.IgnoreAnyFunction("github.com/cockroachdb/pebble/v2/internal/genericcache.(*shard[...]).releaseLoop"),
	goleak.IgnoreAnyFunction("github.com/cockroachdb/pebble/v2/record.(*LogWriter).flushLoop"),
	goleak.IgnoreAnyFunction("github.com/mirrord/mirrord/kv.(*scheduler).startGranter.func1.1"),
	goleak.IgnoreAnyFunction("github.com/mirrord/mirrord/kv.(*scheduler).UpdateGetAllowedWithoutPermission.(*scheduler).startGranter.func1.1"),
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

// closeDB closes a test's store. A handle that failed cannot be closed:
// it is counted as abandoned (see TestMain); any other error fails t.
func closeDB(t testing.TB, db *kv.DB) {
	t.Helper()
	if db == nil {
		return
	}
	err := db.Close()
	switch {
	case errors.Is(err, kv.ErrFailed):
		abandonedStores.Add(1)
	case err != nil:
		t.Errorf("closing the store: %v", err)
	}
}
