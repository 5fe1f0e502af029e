package kv

import (
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"github.com/mirrord/mirrord/internal/testkit"
	"go.uber.org/goleak"
)

// The test binary doubles as a child process that opens a store and meets
// a fault that ends it (see Options.OnFatal): with KVTEST_CHILD set, it
// runs that scenario of childScenarios instead of the tests.
const childEnv = "KVTEST_CHILD"

func TestMain(m *testing.M) {
	if name := os.Getenv(childEnv); name != "" {
		runChildScenario(name)
		return
	}
	goleak.VerifyTestMain(m)
}

// childConfig is what a child reads from its environment.
type childConfig struct {
	store string // the store directory
	fault string // a key of childFaults
	sync  bool   // Options.Sync
	after int    // the fault spares this many write operations first
}

// childScenarios are the stores a child runs. Each ends the process: 0
// when it is done without a failure, 2 on an error it did not expect
// (printed), 3 when the fault never ended it; a fatal failure exits 1
// through kv's default OnFatal, which logs one line on stderr.
var childScenarios = map[string]func(c childConfig, fs *switchFS){
	"batches":    childBatches,
	"concurrent": childConcurrent,
	"openwrite":  childOpenWrite,
	"fatalf":     childFatalf,
}

func runChildScenario(name string) {
	after, _ := strconv.Atoi(os.Getenv("KVTEST_AFTER"))
	c := childConfig{
		store: os.Getenv("KVTEST_STORE"),
		fault: os.Getenv("KVTEST_FAULT"),
		sync:  os.Getenv("KVTEST_SYNC") == "1",
		after: after,
	}
	scenario, ok := childScenarios[name]
	inj, known := childFaults[c.fault]
	if !ok || !known {
		fmt.Fprintf(os.Stderr, "unknown scenario %q or fault %q\n", name, c.fault)
		os.Exit(2)
	}
	scenario(c, newSwitchFS(vfs.Default, inj, c.after))
	os.Exit(0)
}

// childLogger is the child store's logger: what kv logs, one record a
// line, on stderr, which the parent reads.
func childLogger() *slog.Logger { return slog.New(slog.NewTextHandler(os.Stderr, nil)) }

func childFailed(err error) {
	fmt.Fprintf(os.Stderr, "unexpected error: %v\n", err)
	os.Exit(2)
}

// switchFS is a file system behind a fault that is off until on is set,
// and then spares the first after write operations.
type switchFS struct {
	vfs.FS
	on   atomic.Bool
	seen atomic.Int64
}

func newSwitchFS(base vfs.FS, inj func(errorfs.Op) error, after int) *switchFS {
	s := &switchFS{}
	s.FS = errorfs.Wrap(base, errorfs.InjectorFunc(func(op errorfs.Op) error {
		if !s.on.Load() {
			return nil
		}
		if err := inj(op); err != nil && s.seen.Add(1) > int64(after) {
			return err
		}
		return nil
	}))
	return s
}

// childResult is how a child ended.
type childResult testkit.Result

// runChild runs scenario in a child process on the store directory,
// with the fault and settings of env ("KVTEST_FAULT=diskfull", ...).
func runChild(t *testing.T, scenario, store string, env ...string) childResult {
	t.Helper()
	cmd := testkit.Self(append([]string{childEnv + "=" + scenario, "KVTEST_STORE=" + store}, env...), nil, "-test.run=^$")
	return childResult(testkit.Run(t, 2*time.Minute, cmd))
}

// wantFatal checks that the child ended through the store's fatal path:
// exit status 1 and exactly one line on stderr, naming the store and the
// cause, and no panic or stack trace.
func (r childResult) wantFatal(t *testing.T, store, cause string) {
	t.Helper()
	lines := strings.Split(strings.TrimRight(r.Stderr, "\n"), "\n")
	if r.Code != 1 || len(lines) != 1 || !strings.Contains(lines[0], store) || !strings.Contains(lines[0], cause) ||
		strings.Contains(r.Stderr, "goroutine ") || strings.Contains(r.Stderr, "panic") {
		t.Fatalf("the child exited %d with stderr:\n%s\nwant exit 1 and one line naming the store %s and %q", r.Code, r.Stderr, store, cause)
	}
}

// last returns the last number the child printed on stdout (the batches
// it had acknowledged), or -1.
func (r childResult) last() int {
	fields := strings.Fields(r.Stdout)
	if len(fields) == 0 {
		return -1
	}
	n, err := strconv.Atoi(fields[len(fields)-1])
	if err != nil {
		return -1
	}
	return n
}
