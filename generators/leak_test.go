package generators

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests when a goroutine outlives them: every
// goroutine has an owner that stops it.
//
// Except the goroutines of the store TestGeneratorCommitFault makes fail
// a write: kv abandons a failed store's Pebble handle with its goroutines
// until the process exits (kv.DB.Close says why), and the test cannot
// close it. These are the goroutines of an open Pebble store; the package
// closes every other store it opens.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/cockroachdb/pebble/v2/internal/genericcache.(*shard[...]).releaseLoop"),
		goleak.IgnoreAnyFunction("github.com/cockroachdb/pebble/v2/record.(*LogWriter).flushLoop"),
		goleak.IgnoreAnyFunction("github.com/cockroachdb/pebble/v2.(*cleanupManager).mainLoop"),
		goleak.IgnoreAnyFunction("github.com/mirrord/mirrord/kv.(*scheduler).UpdateGetAllowedWithoutPermission.(*scheduler).startGranter.func1.1"),
	)
}
