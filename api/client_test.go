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

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/mirrord/mirrord/api"
	"github.com/mirrord/mirrord/kv"
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
// The failure: a damaged block of the store (kv's reads trust the values
// kv wrote, but Pebble checks every block's checksum).
func TestClientStreamErrorLine(t *testing.T) {
	f := newFixture(t, fixtureOptions{events: 2})
	// Five values of 6000 bytes that do not compress, one to a 4 KiB
	// block, in a table of their own; then the middle of that table,
	// data blocks only, is spoiled.
	in := f.db.NewIngest("generated:t:", kv.PrefixEnd([]byte("generated:t:")))
	file := in.File()
	for i := range 5 {
		value := fmt.Sprintf(`{"i":%d,"pad":"`, i)
		for len(value) < 6000 {
			value += fmt.Sprintf("%016x", uint64(len(value)+i)*0x9e3779b97f4a7c15)
		}
		if err := file.Add([]byte(fmt.Sprintf("generated:t:%06d", i)), []byte(value+`"}`)); err != nil {
			t.Fatal(err)
		}
	}
	if err := in.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	spoilNewestTable(t, f.fs)
	var failed string // the first key the stream cannot read
	for _, values := range []bool{false, true} {
		var got []string
		err := f.client.Stream(testCtx(t, 5*time.Second), values, "generated:t:", func(line []byte) error {
			got = append(got, string(line))
			return nil
		})
		if err == nil || !strings.Contains(err.Error(), "corrupt") {
			t.Errorf("values %v: err %v, want the store's corruption", values, err)
		}
		if len(got) == 0 || len(got) >= 5 {
			t.Errorf("values %v: %d lines before the error, want some and not all 5: %q", values, len(got), got)
		}
		for _, l := range got {
			if strings.Contains(l, "error") {
				t.Errorf("the error line was handed over as data: %q", l)
			}
		}
		failed = fmt.Sprintf("generated:t:%06d", len(got))
	}
	// Raw: the stream is a 200 whose last line is the error.
	code, body := httpDo(t, f.sock, "GET", "/v1/dump?prefix=generated:t:")
	ls := lines(t, body)
	if code != 200 || len(ls) < 2 || !strings.HasPrefix(ls[len(ls)-1], `{"error":`) {
		t.Errorf("raw stream: %d %q", code, ls)
	}
	// A stream that fails at once (the first value) too.
	code, body = httpDo(t, f.sock, "GET", "/v1/keys?prefix="+failed)
	if ls := lines(t, body); code != 200 || len(ls) != 1 || !strings.HasPrefix(ls[0], `{"error":`) {
		t.Errorf("raw stream failing at once: %d %q", code, ls)
	}
}

// spoilNewestTable inverts the middle fifth of the store's newest sstable
// (its data blocks, when they make most of it): every block there fails
// its checksum.
func spoilNewestTable(t *testing.T, fsys vfs.FS) {
	t.Helper()
	names, err := fsys.List(storePath)
	if err != nil {
		t.Fatal(err)
	}
	newest := ""
	for _, n := range names {
		if strings.HasSuffix(n, ".sst") && n > newest {
			newest = n
		}
	}
	if newest == "" {
		t.Fatal("the store has no sstable")
	}
	fh, err := fsys.OpenReadWrite(fsys.PathJoin(storePath, newest), vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, st.Size()/5)
	off := 2 * st.Size() / 5
	if _, err := fh.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] ^= 0xFF
	}
	if _, err := fh.WriteAt(b, off); err != nil {
		t.Fatal(err)
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
