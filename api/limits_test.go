package api_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mirrord/mirrord/api"
	"github.com/mirrord/mirrord/internal/testkit"
	"github.com/mirrord/mirrord/schema"
)

// bounded serves h on ln through api.NewHTTPServer until the test ends.
func bounded(t *testing.T, name string, h http.Handler, ln net.Listener, log *slog.Logger, o *api.ServeOptions) *api.HTTPServer {
	t.Helper()
	if log == nil {
		log = testkit.QuietLogger()
	}
	s, err := api.NewHTTPServer(name, h, ln, log, o)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve() }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return s
}

// boundedSocket serves h on a fresh unix socket.
func boundedSocket(t *testing.T, h http.Handler, o *api.ServeOptions) (string, *api.HTTPServer) {
	t.Helper()
	path := filepath.Join(shortDir(t), "b.sock")
	ln, err := api.Listen(path, "")
	if err != nil {
		t.Fatal(err)
	}
	return path, bounded(t, "socket", h, ln, nil, o)
}

// idleConns opens n connections to addr that send nothing, closed when
// the test ends.
func idleConns(t *testing.T, network, addr string, n int) {
	t.Helper()
	for range n {
		c, err := net.Dial(network, addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
	}
}

func openIs(s *api.HTTPServer, n int) func() error {
	return func() error {
		if got := s.Open(); got != n {
			return fmt.Errorf("%d connections open", got)
		}
		return nil
	}
}

// TestStalledDumpAndIdleConnections: idle connections on both listeners
// and a /v1/dump client that stopped reading do not stop appends from
// being mirrored and served; the stalled dump is cut off once its writes
// make no progress for WriteTimeout.
func TestStalledDumpAndIdleConnections(t *testing.T) {
	f := newFixture(t, fixtureOptions{events: 4000})
	const idle = 6
	// Idle connections stay for the whole test; only the write timeout is
	// short.
	slow := &api.ServeOptions{MaxConns: idle + 2, WriteTimeout: 300 * time.Millisecond, ReadHeaderTimeout: time.Minute, IdleTimeout: time.Minute}
	sock, srv := boundedSocket(t, f.srv.Handler(), slow)
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pub := bounded(t, "metrics", f.srv.PublicHandler(), tl, nil, &api.ServeOptions{MaxConns: idle, ReadHeaderTimeout: time.Minute})
	idleConns(t, "tcp", tl.Addr().String(), 3*idle) // more than the cap: the rest wait in the queue
	idleConns(t, "unix", sock, idle)

	// The full dump, for its size.
	_, full := httpDo(t, sock, "GET", "/v1/dump")
	if len(full) < 1<<20 {
		t.Fatalf("setup: the dump is %d bytes, too small to fill the socket's buffers", len(full))
	}
	stalled, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()
	if _, err := stalled.Write([]byte("GET /v1/dump HTTP/1.1\r\nHost: mirrord\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "the idle and stalled connections open", openIs(srv, idle+1))
	testkit.Eventually(t, "the public listener full", openIs(pub, idle))

	f.runEngine()
	evs := f.appendEvents(3)
	c := api.NewClient(sock)
	defer c.Close()
	key := schema.EventKey(evs[2].ID)
	testkit.Eventually(t, "an appended event served", func() error {
		if _, found, err := c.Get(testCtx(t, 5*time.Second), key); !found {
			return fmt.Errorf("found %v, err %v", found, err)
		}
		return nil
	})
	c.Close()

	// The stalled dump goes; the idle ones stay until their timeouts.
	testkit.Eventually(t, "the stalled dump cut off", openIs(srv, idle))
	got, _ := io.ReadAll(stalled)
	if len(got) >= len(full) || bytes.HasSuffix(got, []byte("0\r\n\r\n")) {
		t.Errorf("the stalled client got %d bytes of a %d-byte dump, ending cleanly", len(got), len(full))
	}
}

// TestIdleConnectionsClosed: a keep-alive connection that sends no
// further request, and one that never sends its headers, are closed.
func TestIdleConnectionsClosed(t *testing.T) {
	checkGoroutines(t)
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok")) })
	sock, srv := boundedSocket(t, h, &api.ServeOptions{IdleTimeout: 200 * time.Millisecond, ReadHeaderTimeout: 200 * time.Millisecond})
	idleConns(t, "unix", sock, 3)
	for range 3 {
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if _, err := c.Write([]byte("GET / HTTP/1.1\r\nHost: m\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	testkit.Eventually(t, "the connections open", func() error {
		if srv.Open() == 0 {
			return errors.New("none")
		}
		return nil
	})
	testkit.Eventually(t, "idle connections closed", openIs(srv, 0))
}

// TestConnectionCap: no more than MaxConns connections are served at
// once; the next is served when one ends.
func TestConnectionCap(t *testing.T) {
	checkGoroutines(t)
	const max = 2
	release := make(chan struct{})
	var inflight, peak atomic.Int64
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := inflight.Add(1)
		defer inflight.Add(-1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		if r.URL.Path == "/block" {
			<-release
		}
		w.Write([]byte("ok"))
	})
	sock2, srv2 := boundedSocket(t, h, &api.ServeOptions{MaxConns: max})
	var wg sync.WaitGroup
	get := func(path string) <-chan error {
		ch := make(chan error, 1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			hc, closeIdle := unixHTTPClient(sock2)
			defer closeIdle()
			resp, err := hc.Get("http://mirrord" + path)
			if err == nil {
				resp.Body.Close()
			}
			ch <- err
		}()
		return ch
	}
	first := []<-chan error{get("/block"), get("/block")}
	testkit.Eventually(t, "two requests in flight", func() error {
		if n := inflight.Load(); n != max {
			return fmt.Errorf("%d in flight", n)
		}
		return nil
	})
	third := get("/")
	select {
	case err := <-third:
		t.Fatalf("a request beyond the cap was served while %d were (%v)", max, err)
	case <-time.After(300 * time.Millisecond):
	}
	if srv2.Open() != max {
		t.Errorf("%d connections open, want the cap %d", srv2.Open(), max)
	}
	release <- struct{}{} // one of the first ends: the third gets its slot
	select {
	case err := <-third:
		if err != nil {
			t.Fatalf("the third request: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the third request was not served after a slot freed")
	}
	close(release)
	for _, ch := range first {
		if err := <-ch; err != nil {
			t.Error(err)
		}
	}
	wg.Wait()
	if p := peak.Load(); p > max {
		t.Errorf("%d requests were served at once, cap %d", p, max)
	}
}

// TestVerifyOneAtATime: a second /v1/verify while one runs is refused
// with 429; a client that goes away frees the slot.
func TestVerifyOneAtATime(t *testing.T) {
	f := newFixture(t, fixtureOptions{events: 20})
	orig, err := os.ReadFile(f.logPath)
	if err != nil {
		t.Fatal(err)
	}
	// A rewritten prefix no longer matches the checkpoint: verify waits
	// (up to a minute) for the engine, which does not run here, to
	// reconcile it.
	changed := bytes.Replace(orig, []byte(`"id"`), []byte(`"iD"`), 1)
	if err := os.WriteFile(f.logPath, changed, 0o644); err != nil {
		t.Fatal(err)
	}
	// Two at once: one is refused at once, the other runs (and waits).
	type result struct {
		i    int
		code int
		body string
		err  error
	}
	results := make(chan result, 2)
	var cancels [2]context.CancelFunc
	for i := range cancels {
		ctx, cancel := context.WithCancel(context.Background())
		cancels[i] = cancel
		defer cancel()
		go func() {
			hc, closeIdle := unixHTTPClient(f.sock)
			defer closeIdle()
			req, _ := http.NewRequestWithContext(ctx, "POST", "http://mirrord/v1/verify", nil)
			resp, err := hc.Do(req)
			if err != nil {
				results <- result{i: i, err: err}
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			results <- result{i: i, code: resp.StatusCode, body: string(b)}
		}()
	}
	var refused result
	select {
	case refused = <-results:
	case <-time.After(10 * time.Second):
		t.Fatal("neither of two concurrent verifies was refused within 10s")
	}
	if refused.code != http.StatusTooManyRequests || !strings.Contains(refused.body, "already running") {
		t.Fatalf("the first verify to answer: %d %q %v, want 429 already running", refused.code, refused.body, refused.err)
	}
	cancels[1-refused.i]() // the running one's client goes away
	select {
	case r := <-results:
		if !errors.Is(r.err, context.Canceled) {
			t.Fatalf("the running verify: %d %q %v, want it cancelled", r.code, r.body, r.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the running verify did not end with its client")
	}
	if err := os.WriteFile(f.logPath, orig, 0o644); err != nil {
		t.Fatal(err)
	}
	// The gone client's verification stopped: the next one runs.
	testkit.Eventually(t, "verify after the first client left", func() error {
		rep, err := f.client.Verify(testCtx(t, 10*time.Second))
		if err == nil && !rep.OK() {
			return errors.New("the report is not OK")
		}
		return err
	})
}

// TestRebuildWaitValidated: a wait that is not a positive duration is
// refused, naming the parameter, before anything is reset.
func TestRebuildWaitValidated(t *testing.T) {
	f := newFixture(t, fixtureOptions{events: 5, generators: []string{"summary"}})
	for _, wait := range []string{"-1s", "0s", "soon", "5"} {
		code, body := httpDo(t, f.sock, "POST", "/v1/generators/rebuild?name=summary&wait="+wait)
		if code != http.StatusBadRequest || !strings.Contains(body, "wait=") || !strings.Contains(body, wait) {
			t.Errorf("rebuild with wait=%s: %d %s, want 400 naming wait", wait, code, strings.TrimSpace(body))
		}
		if pending, err := f.runner.RebuildPending("summary"); pending || err != nil {
			t.Fatalf("wait=%s was refused but a rebuild is pending (%v)", wait, err)
		}
	}
}

// recordHandler keeps the messages logged through it.
type recordHandler struct {
	mu   sync.Mutex
	msgs []string
}

func (h *recordHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := r.Level.String() + " " + r.Message
	r.Attrs(func(a slog.Attr) bool { s += " " + a.String(); return true })
	h.msgs = append(h.msgs, s)
	return nil
}
func (h *recordHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &attrHandler{h, as}
}
func (h *recordHandler) WithGroup(string) slog.Handler { return h }

type attrHandler struct {
	*recordHandler
	as []slog.Attr
}

func (h *attrHandler) Handle(ctx context.Context, r slog.Record) error {
	r.AddAttrs(h.as...)
	return h.recordHandler.Handle(ctx, r)
}

func (h *recordHandler) find(sub string) (bool, string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, m := range h.msgs {
		if strings.Contains(m, sub) {
			return true, m
		}
	}
	return false, fmt.Sprintf("%q", h.msgs)
}

// TestHTTPErrorsThroughSlog: the HTTP server's own complaints reach
// mirrord's logger, naming the listener.
func TestHTTPErrorsThroughSlog(t *testing.T) {
	checkGoroutines(t)
	rec := &recordHandler{}
	path := filepath.Join(shortDir(t), "b.sock")
	ln, err := api.Listen(path, "")
	if err != nil {
		t.Fatal(err)
	}
	// net/http complains of a handler that writes its header twice.
	twice := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusTeapot)
		w.WriteHeader(http.StatusOK)
	})
	bounded(t, "socket", twice, ln, slog.New(rec), nil)
	if code, _ := httpDo(t, path, "GET", "/"); code != http.StatusTeapot {
		t.Fatalf("GET: %d", code)
	}
	testkit.Eventually(t, "the server's error in the slog handler", func() error {
		if ok, m := rec.find("superfluous response.WriteHeader"); !ok || !testkit.ContainsAll(m, "WARN", "listener=socket") {
			return fmt.Errorf("found %v: %q", ok, m)
		}
		return nil
	})
}
