package api_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mirrord/mirrord/api"
	"github.com/mirrord/mirrord/schema"
)

// every client call, for the error paths they share.
func clientCalls(c *api.Client) map[string]func(context.Context) error {
	return map[string]func(context.Context) error{
		"Status": func(ctx context.Context) error { _, err := c.Status(ctx); return err },
		"Get":    func(ctx context.Context) error { _, _, err := c.Get(ctx, "event:x"); return err },
		"Stream": func(ctx context.Context) error {
			return c.Stream(ctx, true, "", func([]byte) error { return nil })
		},
		"Verify":     func(ctx context.Context) error { _, err := c.Verify(ctx); return err },
		"Generators": func(ctx context.Context) error { _, err := c.Generators(ctx); return err },
		"Rebuild":    func(ctx context.Context) error { _, err := c.Rebuild(ctx, "summary"); return err },
	}
}

func TestClientNoDaemon(t *testing.T) {
	checkGoroutines(t)
	dir := shortDir(t)
	missing := filepath.Join(dir, "missing.sock")

	// A socket file nobody listens on (a crashed daemon).
	stale := filepath.Join(dir, "stale.sock")
	ln, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()

	for _, path := range []string{missing, stale} {
		c := api.NewClient(path)
		if c.Path() != path {
			t.Errorf("Path() = %q", c.Path())
		}
		for name, call := range clientCalls(c) {
			err := call(testCtx(t, 5*time.Second))
			if !errors.Is(err, api.ErrNoDaemon) {
				t.Errorf("%s on %s: %v, want ErrNoDaemon", filepath.Base(path), name, err)
			} else if !strings.Contains(err.Error(), path) {
				t.Errorf("%s: %q does not name the socket", name, err)
			}
		}
	}
}

// An error response's message reaches the caller; a response that is not
// the API's (another server on the socket) is reported by its status.
func TestClientErrorBodies(t *testing.T) {
	f := newFixture(t, fixtureOptions{events: 3, generators: []string{"summary"}})
	ctx := testCtx(t, 10*time.Second)
	if _, err := f.client.Rebuild(ctx, "nope"); err == nil || err.Error() != `generator "nope" is not enabled in the daemon` {
		t.Errorf("Rebuild(nope): %v, want the server's message as it is", err)
	}
	if _, _, err := f.client.Get(ctx, ""); err == nil || err.Error() != "query parameter key is required" {
		t.Errorf("Get(\"\"): %v, want the server's message as it is", err)
	}

	// Only the public handler on this socket: /v1/status is a plain 404.
	pub := serve(t, filepath.Join(shortDir(t), "p.sock"), f.srv.PublicHandler())
	if _, err := pub.Status(ctx); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("Status against a server without the API: %v, want the HTTP status", err)
	}
	if err := pub.Stream(ctx, false, "", func([]byte) error { return nil }); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("Stream against a server without the API: %v, want the HTTP status", err)
	}
}

// A stream that fails after it started ends with an {"error": ...} line,
// which the client reports as an error after the lines that came before.
func TestClientStreamErrorLine(t *testing.T) {
	f := newFixture(t, fixtureOptions{events: 2})
	putMany(t, f.db, "generated:t:", 5, 10)
	// A value that is not JSON, written below the kv API's checks (only
	// the engine's raw batch can do it).
	wb := f.db.NewWriteBatch()
	wb.PutRaw([]byte("generated:t:000002x"), []byte("not json"))
	if err := wb.Commit(); err != nil {
		t.Fatal(err)
	}
	for _, values := range []bool{false, true} {
		var got []string
		err := f.client.Stream(testCtx(t, 5*time.Second), values, "generated:t:", func(line []byte) error {
			got = append(got, string(line))
			return nil
		})
		if err == nil || !strings.Contains(err.Error(), "not valid JSON") || !strings.Contains(err.Error(), "generated:t:000002x") {
			t.Errorf("values %v: err %v, want the stored value's error", values, err)
		}
		if len(got) != 3 {
			t.Errorf("values %v: %d lines before the error, want 3: %q", values, len(got), got)
		}
		for _, l := range got {
			if strings.Contains(l, "error") {
				t.Errorf("the error line was handed over as data: %q", l)
			}
		}
	}
	// Raw: the stream is a 200 whose last line is the error.
	code, body := httpDo(t, f.sock, "GET", "/v1/dump?prefix=generated:t:")
	ls := lines(t, body)
	if code != 200 || len(ls) != 4 || !strings.HasPrefix(ls[3], `{"error":`) {
		t.Errorf("raw stream: %d %q", code, ls)
	}
	// A stream that fails at once (the first value) too.
	code, body = httpDo(t, f.sock, "GET", "/v1/keys?prefix=generated:t:000002x")
	if ls := lines(t, body); code != 200 || len(ls) != 1 || !strings.HasPrefix(ls[0], `{"error":`) {
		t.Errorf("raw stream failing at once: %d %q", code, ls)
	}
}

// The callback's error stops the stream and comes back unchanged; a
// cancelled context ends it too.
func TestClientStreamStops(t *testing.T) {
	f := newFixture(t, fixtureOptions{events: 2})
	putMany(t, f.db, "generated:bulk:", 5000, 100)
	stop := errors.New("enough")
	n := 0
	err := f.client.Stream(testCtx(t, 5*time.Second), true, "generated:bulk:", func([]byte) error {
		if n++; n == 10 {
			return stop
		}
		return nil
	})
	if err != stop || n != 10 {
		t.Errorf("Stream returned %v after %d lines, want the callback's error after 10", err, n)
	}

	ctx, cancel := context.WithCancel(testCtx(t, 5*time.Second))
	n = 0
	err = f.client.Stream(ctx, true, "generated:bulk:", func([]byte) error {
		if n++; n == 10 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Stream with a cancelled context: %v after %d lines", err, n)
	}
	if n >= 5000 {
		t.Errorf("all %d lines arrived despite the cancellation", n)
	}
	// The server is still fine.
	if _, err := f.client.Status(testCtx(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, found, err := f.client.Get(testCtx(t, 5*time.Second), fmt.Sprintf("generated:bulk:%06d", 4999)); !found || err != nil {
		t.Errorf("Get after the cancelled stream: %v %v", found, err)
	}
	if _, found, _ := f.client.Get(testCtx(t, 5*time.Second), schema.EventKey(f.events[0].ID)); !found {
		t.Error("event missing")
	}
}
