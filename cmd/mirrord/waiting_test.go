package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mirrord/mirrord/api"
	"github.com/mirrord/mirrord/internal/synth"
)

// unixGet GETs path from the daemon's socket and returns the status and
// body.
func unixGet(t *testing.T, sock, path string) (int, string) {
	t.Helper()
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://mirrord"+path, nil)
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// A daemon whose log does not exist yet waits for it: /healthz and
// "mirrord status" say so (not "starting"), and once the log appears it
// is mirrored.
func TestRunWaitsForAMissingLog(t *testing.T) {
	dir := shortDir(t)
	log, store := filepath.Join(dir, "data.json"), filepath.Join(dir, "store")
	c := startChild(t, "run", "--eventlog", log, "--store", store, "--log-format", "text", "--settle", "20ms")
	c.waitLine(60*time.Second, "event log is missing")
	want := "waiting for the log: " + log
	if code, body := unixGet(t, api.DefaultPath("", store), "/healthz"); code != http.StatusOK || body != want+"\n" {
		t.Fatalf("/healthz while the log is missing: %d %q, want 200 %q", code, body, want)
	}
	env := map[string]string{"MIRRORD_EVENTLOG": log, "MIRRORD_STORE": store}
	r := mirrord(t, env, "status")
	if r.code != 0 || strings.Count(r.stdout, want) != 2 { // the state, and the daemon's health
		t.Fatalf("status while the log is missing: exit %d (%v):\n%s", r.code, r.err, r.stdout)
	}
	writeLog(t, log, synth.New(64).Events(10))
	c.waitLine(60*time.Second, "event log is back")
	waitFor(t, 30*time.Second, "the daemon to mirror the log", func() bool {
		code, body := unixGet(t, api.DefaultPath("", store), "/healthz")
		return code == http.StatusOK && body == "caught up\n"
	})
	c.signal(syscall.SIGTERM)
	if code := c.wait(30 * time.Second); code != 0 {
		t.Fatalf("exit %d:\n%s", code, c.output())
	}
	verifyStore(t, store, log)
}
