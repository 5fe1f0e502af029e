package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mirrord/mirrord/api"
	"github.com/mirrord/mirrord/internal/synth"
	"github.com/mirrord/mirrord/internal/testkit"
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

// A daemon whose log does not exist yet, or whose log's directory does
// not, waits for it: /healthz and "mirrord status" say so (not
// "starting"), and once the log appears it is mirrored.
func TestRunWaitsForAMissingLog(t *testing.T) {
	for _, tc := range []struct {
		name string
		log  string // under the test's directory
		dir  string // the directory waited for, "" for none
	}{
		{"the log", "data.json", ""},
		{"the log's directory", "repo/data.json", "repo"},
		{"two directories", "home/repo/data.json", "home"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := shortDir(t)
			log, store := filepath.Join(dir, tc.log), filepath.Join(dir, "store")
			c := startChild(t, "run", "--eventlog", log, "--store", store, "--log-format", "text", "--settle", "20ms")
			c.WaitLine(60*time.Second, "event log is missing")
			if l := c.WaitLine(60*time.Second, "INF ready; waiting for the log"); !strings.Contains(l, "path="+log) ||
				strings.Contains(c.Output(), "caught up") {
				t.Fatalf("the daemon does not say it waits for the log:\n%s", c.Output())
			}
			var missingDir string
			if tc.dir != "" {
				missingDir = filepath.Join(dir, tc.dir)
			}
			wantWaiting(t, log, store, missingDir)
			if err := os.MkdirAll(filepath.Dir(log), 0o755); err != nil {
				t.Fatal(err)
			}
			writeLog(t, log, synth.New(64).Events(10))
			c.WaitLine(60*time.Second, "event log is back")
			waitCaughtUp(t, store)
			c.Signal(syscall.SIGTERM)
			if code := c.Wait(30 * time.Second); code != 0 {
				t.Fatalf("exit %d:\n%s", code, c.Output())
			}
			verifyStore(t, store, log)
		})
	}
}

// A daemon that follows the log outlives its directory's removal (a
// re-clone): it waits, /healthz and "mirrord status" say so, the store is
// kept, and the log in the new directory is mirrored.
func TestRunOutlivesTheLogsDirectory(t *testing.T) {
	dir := shortDir(t)
	repo := filepath.Join(dir, "repo")
	log, store := filepath.Join(repo, "data.json"), filepath.Join(dir, "store")
	if err := os.Mkdir(repo, 0o755); err != nil {
		t.Fatal(err)
	}
	gen := synth.New(65)
	evs := gen.Events(20)
	writeLog(t, log, evs)
	c := startChild(t, "run", "--eventlog", log, "--store", store, "--log-format", "text", "--settle", "20ms")
	c.WaitLine(60*time.Second, "caught up; following the log")
	mark := c.Mark()
	if err := os.RemoveAll(repo); err != nil {
		t.Fatal(err)
	}
	c.WaitLineFrom(mark, 60*time.Second, "event log is missing", "waiting_for_dir="+repo)
	wantWaiting(t, log, store, repo)
	if r := mirrord(t, nil, "keys", "--store", store, "event:"); r.code != 0 || strings.Count(r.stdout, "\n") != len(evs) {
		t.Fatalf("the store while the log is gone: exit %d (%v), %d keys, want %d", r.code, r.err, strings.Count(r.stdout, "\n"), len(evs))
	}
	if err := os.Mkdir(repo, 0o755); err != nil {
		t.Fatal(err)
	}
	writeLog(t, log, append(evs, gen.Events(5)...))
	c.WaitLineFrom(mark, 60*time.Second, "event log is back")
	waitCaughtUp(t, store)
	c.Signal(syscall.SIGTERM)
	if code := c.Wait(30 * time.Second); code != 0 {
		t.Fatalf("exit %d:\n%s", code, c.Output())
	}
	verifyStore(t, store, log)
}

// wantWaiting checks that the daemon on store says it waits for log (and
// for the directory missingDir, unless it is empty): /healthz (healthy),
// and "mirrord status", both in the mirror's state and in the daemon's
// health.
func wantWaiting(t *testing.T, log, store, missingDir string) {
	t.Helper()
	want := "waiting for the log: " + log
	if missingDir != "" {
		want += " (directory " + missingDir + " does not exist)"
	}
	if code, body := unixGet(t, api.DefaultPath("", store), "/healthz"); code != http.StatusOK || body != want+"\n" {
		t.Fatalf("/healthz while the log is missing: %d %q, want 200 %q", code, body, want)
	}
	env := map[string]string{"MIRRORD_EVENTLOG": log, "MIRRORD_STORE": store}
	r := mirrord(t, env, "status")
	if r.code != 0 || strings.Count(r.stdout, want) != 2 {
		t.Fatalf("status while the log is missing: exit %d (%v), want %q twice:\n%s", r.code, r.err, want, r.stdout)
	}
}

// waitCaughtUp waits until the daemon on store reports itself caught up.
func waitCaughtUp(t *testing.T, store string) {
	t.Helper()
	testkit.Eventually(t, "the daemon catches up", func() error {
		if code, body := unixGet(t, api.DefaultPath("", store), "/healthz"); code != http.StatusOK || body != "caught up\n" {
			return fmt.Errorf("/healthz %d %q", code, body)
		}
		return nil
	})
}
