package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mirrord/mirrord/api"
	"github.com/mirrord/mirrord/internal/synth"
	"github.com/mirrord/mirrord/internal/testkit"
	"github.com/mirrord/mirrord/kv"
)

// A short-lived reader never stops a daemon from starting: the daemon
// waits for the store's lock, up to shutdown-timeout.

var raceStarts = flag.Int("mirrord.starts", 300, "daemon starts raced by status calls in TestStatusRacingDaemonStarts")

// syncedStore is a log of n events and a store that mirrors it.
func syncedStore(t *testing.T, n int) (log, store string) {
	t.Helper()
	dir := shortDir(t)
	log, store = filepath.Join(dir, "data.json"), filepath.Join(dir, "store")
	writeLog(t, log, synth.New(71).Events(n))
	if r := mirrord(t, nil, "sync", "--eventlog", log, "--store", store); r.code != 0 {
		t.Fatalf("sync: exit %d: %v", r.code, r.err)
	}
	return log, store
}

// A daemon that finds the store locked says so once and waits; its socket
// says so too, and a query waits for the daemon rather than race it for
// the lock; once the lock is free the daemon starts and answers it.
func TestDaemonWaitsForTheStoreLock(t *testing.T) {
	log, store := syncedStore(t, 20)
	db, err := kv.Open(store, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := startChild(t, "run", "--eventlog", log, "--store", store, "--log-format", "text", "--shutdown-timeout", "60s")
	c.WaitLine(60*time.Second, "the store is locked by another process; waiting for it", "up_to=1m0s")
	env := map[string]string{"MIRRORD_EVENTLOG": log, "MIRRORD_STORE": store}
	if r := mirrord(t, env, "status"); r.code != 0 || !strings.Contains(r.stdout, "starting: waiting for the store's lock") {
		t.Fatalf("status while the daemon waits: exit %d (%v):\n%s", r.code, r.err, r.stdout)
	}
	m, out, _ := newMain(t, nil)
	stderr := &syncWriter{w: &strings.Builder{}}
	m.Stderr = stderr
	keys := make(chan error, 1)
	go func() { keys <- runMain(m, "keys", "--store", store, "event:") }()
	testkit.Eventually(t, "the query waits for the daemon", logged(stderr, "the daemon is starting; waiting for it"))
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-keys; err != nil || strings.Count(out.String(), "\n") != 20 {
		t.Fatalf("keys through the daemon once it started: %v\n%s", err, out)
	}
	c.WaitLine(60*time.Second, "caught up; following the log")
	if n := strings.Count(c.Output(), "waiting for it"); n != 1 {
		t.Fatalf("the wait was logged %d times:\n%s", n, c.Output())
	}
	c.Signal(syscall.SIGTERM)
	if code := c.Wait(30 * time.Second); code != 0 {
		t.Fatalf("exit %d:\n%s", code, c.Output())
	}
}

// logged is a condition for testkit.Eventually: what w (a
// strings.Builder behind a syncWriter) holds contains sub.
func logged(w *syncWriter, sub string) func() error {
	return func() error {
		w.mu.Lock()
		defer w.mu.Unlock()
		if s := w.w.(*strings.Builder).String(); !strings.Contains(s, sub) {
			return fmt.Errorf("not yet logged: %q", s)
		}
		return nil
	}
}

// The wait is bounded: a lock held for longer than shutdown-timeout is an
// error, on one line saying how long it waited.
func TestDaemonWaitForTheStoreLockIsBounded(t *testing.T) {
	log, store := syncedStore(t, 5)
	db, err := kv.Open(store, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	c := startChild(t, "run", "--eventlog", log, "--store", store, "--log-format", "text", "--shutdown-timeout", "1s")
	if code := c.Wait(60 * time.Second); code != 1 {
		t.Fatalf("exit %d, want 1:\n%s", code, c.Output())
	}
	wantOneErrorLine(t, c.Output(), "mirrord: ", store, "locked", "waited 1s")
}

// The reported race: "mirrord status" in a loop while the daemon starts
// opens the store itself until the daemon's socket answers. Every start
// must succeed. (-mirrord.starts sets how many; each start is the
// non-race build of mirrord, the status calls run in process.)
func TestStatusRacingDaemonStarts(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the daemon many times")
	}
	log, store := syncedStore(t, 50)
	bin := mirrordBinary(t)
	m, out, errb := newMain(t, nil)
	// viaDaemon: the status came from the daemon, and the daemon serves
	// the store (it no longer waits for its lock).
	status := func() (viaDaemon bool) {
		out.Reset()
		errb.Reset()
		err := runMain(m, "status", "--eventlog", log, "--store", store)
		return err == nil && !strings.Contains(out.String(), "no daemon runs on this store") &&
			!strings.Contains(out.String(), "starting: waiting for the store's lock")
	}
	direct := 0
	for i := range *raceStarts {
		c := startProcess(t, bin, "run", "--eventlog", log, "--store", store, "--log-format", "text")
		deadline := time.Now().Add(60 * time.Second)
		for !status() {
			direct++
			if c.Exited() {
				t.Fatalf("start %d of %d: the daemon exited (status %d) while status ran:\n%s", i+1, *raceStarts, c.Wait(time.Second), c.Output())
			}
			if time.Now().After(deadline) {
				t.Fatalf("start %d: no status from the daemon after a minute; the last:\n%s%s\ndaemon:\n%s", i+1, out, errb, c.Output())
			}
		}
		c.Signal(syscall.SIGTERM)
		if code := c.Wait(30 * time.Second); code != 0 {
			t.Fatalf("start %d: exit %d:\n%s", i+1, code, c.Output())
		}
	}
	t.Logf("%d starts; %d status calls read the store directly meanwhile", *raceStarts, direct)
	if direct == 0 {
		t.Fatal("no status call raced a start: the test proves nothing")
	}
}

// A signal while the daemon waits for the lock stops it cleanly: exit 0,
// its socket gone, nothing left running (in process, so that TestMain's
// goleak sees the socket's server stop too).
func TestSignalWhileWaitingForTheLock(t *testing.T) {
	log, store := syncedStore(t, 5)
	db, err := kv.Open(store, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	m, _, _ := newMain(t, nil)
	stderr := &syncWriter{w: &strings.Builder{}}
	m.Stderr = stderr
	m.Exit = func(code int) { t.Errorf("exited (%d) instead of returning", code) }
	done := make(chan error, 1)
	go func() {
		done <- runMain(m, "run", "--eventlog", log, "--store", store, "--log-format", "text", "--shutdown-timeout", "60s")
	}()
	testkit.Eventually(t, "the daemon waits for the lock", logged(stderr, "waiting for it"))
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run after SIGTERM while waiting: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the daemon did not stop on SIGTERM while waiting for the lock")
	}
	if _, err := os.Lstat(api.DefaultPath("", store)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the socket is still there: %v", err)
	}
}

// gateWriter blocks the first Write until released, as a pager waiting
// for its user blocks the output of the command piped into it.
type gateWriter struct {
	once     sync.Once
	writing  chan struct{} // closed by the first Write
	released chan struct{}
	buf      bytes.Buffer
}

func (g *gateWriter) Write(p []byte) (int, error) {
	g.once.Do(func() {
		close(g.writing)
		<-g.released
	})
	return g.buf.Write(p)
}

// A query that reads the store itself (no daemon serves it) holds it for
// its read only: while its output is blocked, the store is free for a
// daemon to open.
func TestQueriesReleaseTheStoreBeforePrinting(t *testing.T) {
	log, store := syncedStore(t, 20)
	r := mirrord(t, nil, "keys", "--store", store, "event:")
	key, _, _ := strings.Cut(r.stdout, "\n")
	if r.code != 0 || key == "" {
		t.Fatalf("keys: exit %d (%v): %q", r.code, r.err, r.stdout)
	}
	for _, args := range [][]string{{"status"}, {"verify"}, {"get", key}, {"generators", "list"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			m, _, errb := newMain(t, nil)
			out := &gateWriter{writing: make(chan struct{}), released: make(chan struct{})}
			m.Stdout = out
			done := make(chan error, 1)
			go func() { done <- runMain(m, append(args, "--eventlog", log, "--store", store)...) }()
			select {
			case <-out.writing:
			case err := <-done:
				t.Fatalf("returned without printing: %v\n%s", err, errb)
			case <-time.After(30 * time.Second):
				close(out.released)
				t.Fatal("printed nothing in 30s")
			}
			db, err := kv.Open(store, nil)
			if err == nil {
				err = db.Close()
			}
			close(out.released)
			if err != nil {
				t.Errorf("the store while the query prints: %v", err)
			}
			if err := <-done; err != nil {
				t.Fatalf("%s: %v\n%s", args, err, errb)
			}
		})
	}
}
