package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mirrord/mirrord/api"
	"github.com/mirrord/mirrord/internal/testkit"
)

// testLifetime is a lifetime whose exits are recorded, not made.
func testLifetime(t *testing.T, timeout time.Duration) (*lifetime, *syncWriter, chan int) {
	t.Helper()
	exited := make(chan int, 1)
	stderr := &syncWriter{w: &bytes.Buffer{}}
	m := &Main{Stderr: stderr, Exit: func(code int) { exited <- code }}
	l := m.newLifetime(context.Background(), newLogger(io.Discard, "text", levelVar("info"), noEnv),
		func() time.Duration { return timeout })
	t.Cleanup(l.stop)
	return l, stderr, exited
}

// The first component to fail stops the others; its error is the one
// Wait returns, not the errors the others meet on their way out.
func TestGroupFirstErrorStopsTheRest(t *testing.T) {
	l, _, exited := testLifetime(t, time.Minute)
	g := &group{l: l}
	first := errors.New("the engine failed")
	fail := make(chan struct{})
	g.Go("engine", func(context.Context) error {
		<-fail
		return first
	})
	for _, name := range []string{"api", "generators"} {
		g.Go(name, func(ctx context.Context) error {
			<-ctx.Done()
			return nil
		})
	}
	g.Go("late", func(ctx context.Context) error {
		<-ctx.Done()
		return errors.New("a consequence")
	})
	close(fail)
	if err := g.Wait(); err != first {
		t.Fatalf("Wait: %v, want %v", err, first)
	}
	select {
	case code := <-exited:
		t.Fatalf("exited (%d) although every component stopped", code)
	default:
	}
}

// A component that does not stop keeps nothing running past
// shutdown-timeout: the process exits 1 with the cause on one line.
func TestFatalErrorBoundsTheShutdown(t *testing.T) {
	l, stderr, exited := testLifetime(t, 50*time.Millisecond)
	g := &group{l: l}
	release := make(chan struct{})
	g.Go("stuck", func(context.Context) error {
		<-release // ignores its context
		return nil
	})
	g.Go("engine", func(context.Context) error { return errors.New("the event log /x is not a regular file") })
	select {
	case code := <-exited:
		if code != exitFailure {
			t.Fatalf("exit %d, want %d", code, exitFailure)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a stuck component kept the process alive past shutdown-timeout")
	}
	close(release)
	g.Wait()
	stderr.mu.Lock()
	out := stderr.w.(*bytes.Buffer).String()
	stderr.mu.Unlock()
	want := "mirrord: the event log /x is not a regular file (shutting down took longer than shutdown-timeout; exited at once)\n"
	if out != want {
		t.Fatalf("stderr %q, want %q", out, want)
	}
}

// failingListener fails every Accept for good.
type failingListener struct{ net.Listener }

func (failingListener) Accept() (net.Conn, error) {
	return nil, errors.New("accept: too many open files")
}

// testServer is an httpServer on ln, as the daemon makes them.
func testServer(t *testing.T, what string, ln net.Listener) httpServer {
	t.Helper()
	srv, err := api.NewHTTPServer(what, http.NotFoundHandler(), ln, testkit.QuietLogger(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return httpServer{what: what, srv: srv, ln: ln}
}

// A listener that fails is a fatal error naming what it served.
func TestServerErrorIsFatal(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := testServer(t, "metrics-listen "+ln.Addr().String(), failingListener{ln})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = h.serve(ctx)
	if err == nil || !strings.Contains(err.Error(), "serving metrics-listen 127.0.0.1:") || !strings.Contains(err.Error(), "too many open files") {
		t.Fatalf("serve: %v", err)
	}
}

// A server stops when its context is done, without an error.
func TestServerStopsWithItsContext(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := testServer(t, "test", ln)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.serve(ctx) }()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve after cancel: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop with its context")
	}
}
