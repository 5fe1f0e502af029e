package api_test

// Regression tests for bugs found in review, in api/*.go or in what it
// calls: each names where the bug was.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mirrord/mirrord/api"
	"github.com/mirrord/mirrord/eventlog"
	"github.com/mirrord/mirrord/internal/testkit"
	"github.com/mirrord/mirrord/mirror"
)

// BUG (api/health.go:46-49): when the engine last saw an incomplete value
// at the end of the log, Health measures "ahead" up to that value's offset
// whatever the log holds now. Once the writer completes the value and
// appends more, a stalled engine (its status still says Pending) is
// reported "caught up" for ever: exactly the stall /healthz is meant to
// catch. The pending value should only count while it still ends the log
// (the log's size is still Pending.Offset+Pending.Bytes).
func TestRegressionHealthStalePendingTailHidesStall(t *testing.T) {
	f := newFixture(t, fixtureOptions{events: 5, stall: 20 * time.Millisecond})
	whole := eventlog.Format(f.gen.Events(1))
	f.appendRaw(string(whole[:len(whole)/2])) // the writer caught mid-append
	f.sync()
	if f.eng.Status().Pending == nil {
		t.Fatal("setup: the engine does not report the incomplete tail")
	}
	f.wantHealth(http.StatusOK, "caught up\n")

	// The writer finishes that value and appends three more; the engine
	// does not move (no Sync: it is stalled).
	f.appendRaw(string(whole[len(whole)/2:]))
	f.appendEvents(3)
	offset := f.eng.Checkpoint().Offset
	t.Logf("checkpoint %d, log %d bytes (4 complete events ahead), stall timeout 20ms", offset, f.logSize())

	// The bound is the finding: 75 stall timeouts and still no stall.
	testkit.EventuallyWithin(t, 1500*time.Millisecond, "/healthz = 503 \"stalled: ...\" (75x the stall timeout)", func() error {
		if code, body := f.healthz(); code != http.StatusServiceUnavailable || !strings.HasPrefix(body, "stalled: ") {
			return fmt.Errorf("the log is %d bytes ahead in complete events and the checkpoint has not moved, yet /healthz = %d %q",
				f.logSize()-offset, code, body)
		}
		return nil
	})
}

// BUG (mirror/watch.go:143-149, surfacing in api/health.go:32-34): a failed
// step sets the engine's LastError, and only a committed batch clears it
// (mirror/apply.go:155). When the next step succeeds without anything to
// commit (the log is back as it was), LastError stays, and /healthz
// answers 503 "the last apply failed" (and mirrord_healthy is 0) until
// the log next grows, although the mirror is caught up and nothing fails
// any more. With a daemon running as its own user, a log briefly
// unreadable (EACCES) does this; as root the test puts a symlink loop
// (ELOOP) in the log's place for a moment. (Not a directory: that is a
// misconfiguration Run ends on, mirror.ErrNotRegular.)
func TestRegressionHealthStaysFailedAfterRecovery(t *testing.T) {
	f := newFixture(t, fixtureOptions{events: 5, stall: time.Hour})
	f.runEngine()
	f.wantHealth(http.StatusOK, "caught up\n")

	aside := f.logPath + ".aside"
	if err := os.Rename(f.logPath, aside); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Base(f.logPath), f.logPath); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "/healthz reports the failure", func() error {
		if code, body := f.healthz(); code != http.StatusServiceUnavailable || !strings.HasPrefix(body, "the last apply failed") {
			return fmt.Errorf("%d %q", code, body)
		}
		return nil
	})
	// The log comes back, unchanged: the store already equals it.
	if err := os.Remove(f.logPath); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(aside, f.logPath); err != nil {
		t.Fatal(err)
	}
	testkit.EventuallyWithin(t, 2*time.Second, "/healthz = 200 \"caught up\" after the log came back unchanged", func() error {
		if code, body := f.healthz(); code != http.StatusOK {
			st := f.eng.Status()
			return fmt.Errorf("checkpoint offset %d = log size %d, lag %d, yet /healthz answers %d %q",
				st.Checkpoint.Offset, f.logSize(), st.Lag, code, body)
		}
		return nil
	})
}

// BUG (mirror/verify.go:85-90 and 109-111, made worse by api/server.go:238-261):
// VerifyCheckpoint compares the hash of the log's prefix [0, Offset) with
// the checkpoint's PrefixSum, also when the checkpoint is at offset 0 with
// PrefixSum 0: no checkpoint at all (it then uses Checkpoint{}), or the one
// that beginBulk and Resync commit before a first load or a resync
// (mirror/resync.go:25 and :61, Checkpoint{Line: 1}). The hash of the empty prefix is
// xxhash64("") = 0xef46db3751d8e999, not 0, so the answer is ErrLogChanged,
// and the API's verify retries it for a whole minute before answering 500
// "the log changed during verification". The daemon serves the socket
// before its first catch-up (cmd/mirrord/serve.go), so "mirrord verify"
// during a first load or a resync (minutes on a large log) hangs a minute
// and then blames the log. An offset-0 checkpoint covers nothing and should
// verify at once (a report covering 0 bytes), or verify should say that a
// load is in progress.
func TestRegressionVerifyCheckpointAtOffsetZero(t *testing.T) {
	quick := func(t *testing.T, c *api.Client) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
		defer cancel()
		started := time.Now()
		rep, err := c.Verify(ctx)
		took := time.Since(started).Round(time.Millisecond)
		if ctx.Err() != nil || (err != nil && strings.Contains(err.Error(), "the log changed")) {
			t.Errorf("Verify: %v after %s; want at once a report covering 0 bytes (or an error saying a load is in progress)", err, took)
			return
		}
		if err == nil && rep.Covered != 0 {
			t.Errorf("report %+v, want nothing covered", rep)
		}
	}
	t.Run("before the first load", func(t *testing.T) {
		f := newFixture(t, fixtureOptions{events: 3, noSync: true})
		quick(t, f.client)
	})
	t.Run("during the first load", func(t *testing.T) {
		// A log over 4 MiB, so that the load reports progress while it
		// runs; verify is asked from there, mid-load.
		var f *fixture
		asked := false
		f = newFixture(t, fixtureOptions{events: 6500, noSync: true, engineMod: func(o *mirror.Options) {
			o.OnProgress = func(p mirror.Progress) {
				if !asked && !p.Finished {
					asked = true
					quick(t, f.client)
				}
			}
		}})
		f.sync()
		if !asked {
			t.Fatal("setup: the load reported no progress")
		}
	})
	// Fails at HEAD (5d5988c): the first load of an empty log kept
	// beginBulk's checkpoint. The bulk-load work in progress in the tree
	// (mirror/bulk.go) writes a real fingerprint there.
	t.Run("empty log", func(t *testing.T) {
		f := newFixture(t, fixtureOptions{events: 0, noSync: true})
		if err := os.WriteFile(f.logPath, nil, 0o644); err != nil { // the application has not written yet
			t.Fatal(err)
		}
		f.sync()
		if cp := f.eng.Checkpoint(); cp == nil || cp.Offset != 0 {
			t.Fatalf("setup: checkpoint %+v", cp)
		}
		quick(t, f.client)
	})
}

// BUG (api/listen.go:104-113): clearStale takes any failure to connect for
// a stale socket and removes it. A live daemon whose accept queue is full
// (busy, or its accept loop stuck) makes connect fail with EAGAIN, not
// ECONNREFUSED; a second Listen then deletes the live daemon's socket and
// takes its path instead of answering ErrInUse. Only ECONNREFUSED (and a
// vanished file) say that nobody listens.
func TestRegressionListenReplacesBusyLiveSocket(t *testing.T) {
	checkGoroutines(t)
	path := filepath.Join(shortDir(t), "m.sock")
	live, err := net.Listen("unix", path) // a daemon that does not accept right now
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	raiseFileLimit(t, 70000)
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	var dialErr error
	for len(conns) < 66000 {
		c, err := net.DialTimeout("unix", path, time.Second)
		if err != nil {
			dialErr = err
			break
		}
		conns = append(conns, c)
	}
	if !errors.Is(dialErr, syscall.EAGAIN) {
		t.Fatalf("setup: filling the accept queue ended with %v after %d connections", dialErr, len(conns))
	}
	before, _ := os.Lstat(path)
	ln, err := api.Listen(path, "")
	if err == nil {
		ln.Close()
	}
	after, statErr := os.Lstat(path)
	replaced := statErr != nil || !os.SameFile(before, after)
	if !errors.Is(err, api.ErrInUse) || replaced {
		t.Fatalf("Listen on the socket of a live daemon with a full accept queue (%d connections waiting): err %v, socket replaced %v; "+
			"want ErrInUse and the socket left alone", len(conns), err, replaced)
	}
}

func raiseFileLimit(t *testing.T, n uint64) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur >= n {
		return
	}
	old := lim
	lim.Cur = min(n, lim.Max)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Logf("raising the open-file limit: %v", err)
		return
	}
	t.Cleanup(func() { syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old) })
}

// BUG (api/listen.go:47-77): the check for a live socket (clearStale) and
// the rename into place are not atomic, and rename(2) replaces whatever
// is at the path. Two daemons starting together on one socket path both
// succeed: the later rename silently steals the path from the earlier
// one, which then serves nobody, and whose Close later deletes the other's
// socket. Creating the final name with link(2) (which fails on an
// existing name) instead of rename would make exactly one of them win.
func TestRegressionListenConcurrentStartsBothSucceed(t *testing.T) {
	checkGoroutines(t)
	for round := 0; round < 50; round++ {
		path := filepath.Join(shortDir(t), "m.sock")
		var (
			wg    sync.WaitGroup
			mu    sync.Mutex
			won   []*api.Listener
			start = make(chan struct{})
		)
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				ln, err := api.Listen(path, "")
				if err != nil {
					if !errors.Is(err, api.ErrInUse) {
						t.Errorf("concurrent Listen: %v", err)
					}
					return
				}
				mu.Lock()
				won = append(won, ln)
				mu.Unlock()
			}()
		}
		close(start)
		wg.Wait()
		for _, ln := range won {
			ln.Close()
		}
		if len(won) != 1 {
			t.Fatalf("round %d: 8 concurrent Listen calls on one path: %d succeeded, want exactly 1 (the others ErrInUse)", round, len(won))
		}
	}
}

// BUG (api/listen.go:50-56): the socket is first bound under
// {dir}/.mirrord-sock-NNNNNNNNNN/s, 14 bytes longer than
// {dir}/mirrord.sock. A socket path that the kernel accepts (under 108
// bytes) but whose temporary name does not fit is refused with "bind:
// invalid argument", though net.Listen binds it directly.
func TestRegressionListenPathNearTheLimit(t *testing.T) {
	checkGoroutines(t)
	dir := shortDir(t)
	for len(dir) < 107-len("/mirrord.sock")-10 {
		dir = filepath.Join(dir, "dddddddd")
	}
	dir = filepath.Join(dir, strings.Repeat("e", 107-len("/mirrord.sock")-len(dir)-1))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "mirrord.sock")
	if len(path) != 107 {
		t.Fatalf("setup: path of %d bytes", len(path))
	}
	direct, err := net.Listen("unix", path)
	if err != nil {
		t.Fatalf("setup: the kernel refuses the path itself: %v", err)
	}
	direct.Close()
	ln, err := api.Listen(path, "")
	if err != nil {
		t.Fatalf("Listen on a %d-byte path the kernel accepts: %v", len(path), err)
	}
	ln.Close()
}

// BUG (api/server.go:282-294): rebuild validates ?wait= only after it has
// reset the generator. A request answered 400 "wait is not a duration"
// has nevertheless asked for the rebuild (recorded in the store, so it
// survives a restart); a rejected request should change nothing.
func TestRegressionRebuildBadWaitStillResets(t *testing.T) {
	f := newFixture(t, fixtureOptions{events: 5, generators: []string{"summary"}})
	if pending, _ := f.runner.RebuildPending("summary"); pending {
		t.Fatal("setup: a rebuild is already pending")
	}
	code, body := httpDo(t, f.sock, "POST", "/v1/generators/rebuild?name=summary&wait=soon")
	if code != http.StatusBadRequest {
		t.Fatalf("rebuild with wait=soon: %d %s, want 400", code, body)
	}
	if pending, err := f.runner.RebuildPending("summary"); pending || err != nil {
		t.Fatalf("the request was rejected (%d %s) but the rebuild of summary is pending (%v)", code, strings.TrimSpace(body), err)
	}
}
