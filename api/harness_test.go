package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/mirrord/mirrord/api"
	"github.com/mirrord/mirrord/eventlog"
	"github.com/mirrord/mirrord/generators"
	"github.com/mirrord/mirrord/internal/synth"
	"github.com/mirrord/mirrord/internal/testkit"
	"github.com/mirrord/mirrord/kv"
	"github.com/mirrord/mirrord/mirror"
)

// The fixtures below are real components end to end: a Pebble store on an
// in-memory vfs, a mirror engine on a log file in a temporary directory, a
// generator runner, and the API served over a real unix socket.

const storePath = "/store"

// farFuture is the engine's clock in most tests: every file looks settled.
func farFuture() time.Time { return time.Now().Add(100 * 24 * time.Hour) }

// testCtx is a context bounded in time and cancelled when the test ends.
func testCtx(t testing.TB, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// checkGoroutines fails the test if goroutines started during it are still
// running once every cleanup registered after it has run. Call it first.
func checkGoroutines(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		// Poll, not Eventually: the stack dump is the failure's point.
		err := testkit.Poll(5*time.Second, func() error {
			if n := runtime.NumGoroutine(); n > before {
				return fmt.Errorf("%d goroutines before the test, %d after it", before, n)
			}
			return nil
		})
		if err != nil {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Errorf("%v:\n%s", err, buf)
		}
	})
}

// shortDir returns a fresh directory with a short path, for unix sockets
// (108 bytes at most), removed when the test ends.
func shortDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "api")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

type fixtureOptions struct {
	events     int              // events in the log before the first sync
	generators []string         // generators to run; nil: no runner
	runRunner  bool             // run the runner's loop (Rebuild needs it)
	stall      time.Duration    // Config.StallTimeout
	now        func() time.Time // the engine's clock; default farFuture
	noSync     bool             // do not sync before serving
	engineMod  func(*mirror.Options)
	fatal      func(error) // Config.Fatal
}

type fixture struct {
	t       *testing.T
	dir     string
	logPath string
	sock    string
	fs      vfs.FS
	db      *kv.DB
	eng     *mirror.Engine
	runner  *generators.Runner
	srv     *api.Server
	client  *api.Client
	gen     *synth.Generator
	events  []*eventlog.Event

	mu      sync.Mutex
	applied []mirror.Applied
}

func newFixture(t *testing.T, o fixtureOptions) *fixture {
	t.Helper()
	checkGoroutines(t)
	f := &fixture{t: t, dir: t.TempDir(), fs: vfs.NewMem(), gen: synth.New(uint64(len(t.Name())) + 7)}
	f.logPath = filepath.Join(f.dir, "data.json")
	f.events = f.gen.Events(o.events)
	if err := eventlog.RewriteFile(f.logPath, f.events); err != nil {
		t.Fatal(err)
	}
	db, err := kv.Open(storePath, &kv.Options{FS: f.fs, Logger: testkit.QuietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	f.db = db
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("closing the store: %v", err)
		}
	})
	now := o.now
	if now == nil {
		now = farFuture
	}
	mo := mirror.Options{
		EventLog: f.logPath, Now: now, Logger: testkit.QuietLogger(), SafetyCheck: -1,
		OnApply: func(a mirror.Applied) {
			f.mu.Lock()
			f.applied = append(f.applied, a)
			f.mu.Unlock()
			f.srv.Applied(a)
		},
	}
	if o.engineMod != nil {
		o.engineMod(&mo)
	}
	if f.eng, err = mirror.Open(db, &mo); err != nil {
		t.Fatal(err)
	}
	if o.generators != nil {
		f.runner, err = generators.NewRunner(db, &generators.Options{Enabled: o.generators, Logger: testkit.QuietLogger(), RetryMin: 10 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
	}
	f.srv = api.NewServer(api.Config{
		DB: db, Engine: f.eng, Store: storePath, Version: "test", StallTimeout: o.stall, Logger: testkit.QuietLogger(),
		Runner: func() *generators.Runner { return f.runner }, Fatal: o.fatal,
	})
	if !o.noSync {
		f.sync()
	}
	if o.runRunner && f.runner != nil {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			f.runner.Run(ctx)
		}()
		t.Cleanup(func() { cancel(); <-done })
	}
	f.sock = filepath.Join(shortDir(t), "m.sock")
	f.client = serve(t, f.sock, f.srv.Handler())
	return f
}

// serve serves h on a fresh unix socket at path until the test ends, and
// returns a client for it.
func serve(t *testing.T, path string, h http.Handler) *api.Client {
	t.Helper()
	ln, err := api.Listen(path, "")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan error, 1)
	go func() { done <- hs.Serve(ln) }()
	t.Cleanup(func() {
		closed := make(chan error, 1)
		go func() { closed <- hs.Close() }()
		select {
		case <-closed:
		case <-time.After(5 * time.Second):
			t.Errorf("the HTTP server did not close within 5s")
			return
		}
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
		if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("socket %s still exists after Close (%v)", path, err)
		}
	})
	return api.NewClient(path)
}

// sync mirrors the log (and runs the generators once, when there are).
func (f *fixture) sync() {
	f.t.Helper()
	ctx := testCtx(f.t, 10*time.Second)
	if err := f.eng.Sync(ctx); err != nil {
		f.t.Fatalf("Sync: %v", err)
	}
	if f.runner != nil {
		if err := f.runner.CatchUp(ctx, 1); err != nil {
			f.t.Fatalf("CatchUp: %v", err)
		}
	}
}

// appendEvents appends n new events to the log (without syncing).
func (f *fixture) appendEvents(n int) []*eventlog.Event {
	f.t.Helper()
	evs := f.gen.Events(n)
	if err := eventlog.AppendFile(f.logPath, evs...); err != nil {
		f.t.Fatal(err)
	}
	f.events = append(f.events, evs...)
	return evs
}

// appendRaw appends bytes to the log as they are.
func (f *fixture) appendRaw(s string) {
	f.t.Helper()
	fh, err := os.OpenFile(f.logPath, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		f.t.Fatal(err)
	}
	if _, err := fh.WriteString(s); err != nil {
		f.t.Fatal(err)
	}
	if err := fh.Close(); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) logSize() int64 {
	f.t.Helper()
	fi, err := os.Stat(f.logPath)
	if err != nil {
		f.t.Fatal(err)
	}
	return fi.Size()
}

func (f *fixture) appliedKinds() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := map[string]int{}
	for _, a := range f.applied {
		m[a.Kind]++
	}
	return m
}

// modifiers counts the modifiers of the events.
func modifiers(evs []*eventlog.Event) int {
	n := 0
	for _, e := range evs {
		n += len(e.Modifiers)
	}
	return n
}

// runEngine runs the engine's follow loop until the returned stop is
// called (or the test ends); it returns once the initial catch-up is done.
func (f *fixture) runEngine() (stop func()) {
	f.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- f.eng.Run(ctx, func() { close(ready) }) }()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		f.t.Fatalf("Run returned before catching up: %v", err)
	case <-time.After(10 * time.Second):
		cancel()
		f.t.Fatal("Run did not catch up within 10s")
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					f.t.Errorf("Run: %v", err)
				}
			case <-time.After(10 * time.Second):
				f.t.Error("Run did not return within 10s of its cancellation")
			}
		})
	}
	f.t.Cleanup(stop)
	return stop
}

// httpDo issues a request on the socket through a plain HTTP client and
// returns the status and body.
func httpDo(t *testing.T, sock, method, target string) (int, string) {
	t.Helper()
	hc, closeIdle := unixHTTPClient(sock)
	defer closeIdle()
	req, err := http.NewRequestWithContext(testCtx(t, 10*time.Second), method, "http://mirrord"+target, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, target, err)
	}
	return resp.StatusCode, string(b)
}

// unixHTTPClient is a plain net/http client over the socket (for what
// api.Client does not expose: paging, raw bodies, early hang-ups).
func unixHTTPClient(sock string) (*http.Client, func()) {
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}
	return &http.Client{Transport: tr}, tr.CloseIdleConnections
}

// lines splits a JSON-lines body, checking that it ends with a newline.
func lines(t *testing.T, body string) []string {
	t.Helper()
	if body == "" {
		return nil
	}
	if !strings.HasSuffix(body, "\n") {
		t.Fatalf("body does not end with a newline: %q", tail(body))
	}
	return strings.Split(strings.TrimSuffix(body, "\n"), "\n")
}

func tail(s string) string {
	if len(s) > 200 {
		return "…" + s[len(s)-200:]
	}
	return s
}

// streamLines collects the lines of Client.Stream.
func streamLines(t *testing.T, c *api.Client, values bool, prefix string) ([]string, error) {
	t.Helper()
	var out []string
	err := c.Stream(testCtx(t, 10*time.Second), values, prefix, func(line []byte) error {
		out = append(out, string(line))
		return nil
	})
	return out, err
}

type dumpLine struct {
	Key   string          `json:"key"`
	Value json.RawMessage `json:"value"`
}

// readLines reads lines from r until n have been read.
func readLines(r io.Reader, n int) ([]string, error) {
	br := bufio.NewReader(r)
	var out []string
	for len(out) < n {
		l, err := br.ReadString('\n')
		if err != nil {
			return out, err
		}
		out = append(out, l)
	}
	return out, nil
}
