package api_test

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mirrord/mirrord/eventlog"
	"github.com/mirrord/mirrord/internal/testkit"
	"github.com/mirrord/mirrord/mirror"
)

// healthz returns /healthz's status and body, over the socket.
func (f *fixture) healthz() (int, string) {
	f.t.Helper()
	return httpDo(f.t, f.sock, "GET", "/healthz")
}

// healthIs is nil when /healthz answers code, and otherwise says what it
// answered; body, when not nil, receives the body either way.
func (f *fixture) healthIs(code int, body *string) error {
	got, b := f.healthz()
	if body != nil {
		*body = b
	}
	if got != code {
		return fmt.Errorf("%d %q", got, b)
	}
	return nil
}

func (f *fixture) wantHealth(code int, body string) {
	f.t.Helper()
	gotCode, gotBody := f.healthz()
	if gotCode != code || gotBody != body {
		f.t.Fatalf("/healthz = %d %q, want %d %q", gotCode, gotBody, code, body)
	}
}

func TestHealthCaughtUp(t *testing.T) {
	f := newFixture(t, fixtureOptions{events: 10, stall: 50 * time.Millisecond})
	f.wantHealth(http.StatusOK, "caught up\n")
	if ok, why := f.srv.Health(); !ok || why != "caught up" {
		t.Errorf("Health() = %v %q", ok, why)
	}
	// Caught up stays healthy however long nothing happens: no stall
	// without a log ahead of the checkpoint.
	deadline := time.Now().Add(200 * time.Millisecond)
	for time.Now().Before(deadline) {
		f.wantHealth(http.StatusOK, "caught up\n")
		time.Sleep(10 * time.Millisecond)
	}
}

func TestHealthStarting(t *testing.T) {
	f := newFixture(t, fixtureOptions{events: 3, noSync: true})
	f.wantHealth(http.StatusOK, "starting: nothing mirrored yet\n")
}

func TestHealthCatchingUpWithinStallTimeout(t *testing.T) {
	f := newFixture(t, fixtureOptions{events: 10, stall: time.Hour})
	f.appendEvents(3)
	for range 5 {
		f.wantHealth(http.StatusOK, "catching up\n")
	}
	f.sync()
	f.wantHealth(http.StatusOK, "caught up\n")
}

func TestHealthStall(t *testing.T) {
	f := newFixture(t, fixtureOptions{events: 10, stall: 50 * time.Millisecond})
	offset := f.eng.Checkpoint().Offset
	f.appendEvents(2)
	size := f.logSize()
	// The first look: catching up; the stall timer starts.
	f.wantHealth(http.StatusOK, "catching up\n")
	var body string
	testkit.Eventually(t, "/healthz turns 503 once the checkpoint has not moved for the stall timeout", func() error {
		return f.healthIs(http.StatusServiceUnavailable, &body)
	})
	want := fmt.Sprintf("stalled: the log is ahead of the checkpoint (offset %d, log %d bytes) and the checkpoint has not moved for ", offset, size)
	if !strings.HasPrefix(body, want) || !strings.HasSuffix(body, "s\n") {
		t.Errorf("stalled body %q, want it to start %q", body, want)
	}
	st, err := f.client.Status(testCtx(t, 5*time.Second))
	if err != nil || st.Healthy || !strings.HasPrefix(st.Health, "stalled: ") {
		t.Errorf("status while stalled: healthy %v %q (%v)", st.Healthy, st.Health, err)
	}
	// Catching up ends the stall at once.
	f.sync()
	f.wantHealth(http.StatusOK, "caught up\n")

	// A checkpoint that moves restarts the timer: a new stall is judged
	// from the new checkpoint.
	f.appendEvents(1)
	testkit.Eventually(t, "a second stall", func() error {
		return f.healthIs(http.StatusServiceUnavailable, nil)
	})
	f.sync()
	f.wantHealth(http.StatusOK, "caught up\n")

	// SetStallTimeout applies at once (a reload).
	f.appendEvents(1)
	f.srv.SetStallTimeout(time.Hour)
	f.srv.SetStallTimeout(0)  // ignored
	f.srv.SetStallTimeout(-1) // ignored
	for range 3 {
		f.wantHealth(http.StatusOK, "catching up\n")
	}
	f.srv.SetStallTimeout(20 * time.Millisecond)
	testkit.Eventually(t, "a stall after the timeout shrank", func() error {
		return f.healthIs(http.StatusServiceUnavailable, nil)
	})
}

// A checkpoint that has not moved since long before the log last changed
// is stalled at the first look; a log that changed just now is given the
// stall timeout.
func TestHealthStalledAtFirstLook(t *testing.T) {
	past := func() time.Time { return time.Now().Add(-time.Hour) }
	f := newFixture(t, fixtureOptions{events: 5, stall: time.Minute, now: past})
	f.appendEvents(1)
	// The log was just written: catching up, not yet stalled.
	f.wantHealth(http.StatusOK, "catching up\n")

	g := newFixture(t, fixtureOptions{events: 5, stall: time.Minute, now: past})
	g.appendEvents(1)
	old := time.Now().Add(-50 * time.Minute)
	if err := os.Chtimes(g.logPath, old, old); err != nil {
		t.Fatal(err)
	}
	code, body := g.healthz()
	if code != http.StatusServiceUnavailable || !strings.HasPrefix(body, "stalled: ") {
		t.Fatalf("a checkpoint an hour old behind a log 50 minutes old: %d %q, want 503 at the first look", code, body)
	}
	if !strings.Contains(body, "has not moved for 1h0m0s") {
		t.Errorf("body %q does not say how long the checkpoint has not moved", body)
	}
}

// An incomplete value at the end of the log is the writer's business: it
// does not make the mirror look behind, however long it stays.
func TestHealthPendingTailIsNotAhead(t *testing.T) {
	past := func() time.Time { return time.Now().Add(-time.Hour) }
	f := newFixture(t, fixtureOptions{events: 5, stall: 20 * time.Millisecond, now: past})
	whole := eventlog.Format(f.gen.Events(1))
	f.appendRaw(string(whole[:len(whole)/2]))
	old := time.Now().Add(-50 * time.Minute)
	if err := os.Chtimes(f.logPath, old, old); err != nil {
		t.Fatal(err)
	}
	f.sync()
	st := f.eng.Status()
	if st.Pending == nil || st.Checkpoint.Offset >= f.logSize() {
		t.Fatalf("the engine does not report the incomplete tail: %+v", st)
	}
	// Were the half value counted as ahead, an hour-old checkpoint behind
	// a 50-minute-old log would be a stall at the first look.
	f.wantHealth(http.StatusOK, "caught up\n")
	deadline := time.Now().Add(150 * time.Millisecond)
	for time.Now().Before(deadline) {
		f.wantHealth(http.StatusOK, "caught up\n")
		time.Sleep(10 * time.Millisecond)
	}
	// Completed and mirrored: still caught up, nothing pending.
	f.appendRaw(string(whole[len(whole)/2:]))
	f.sync()
	if f.eng.Status().Pending != nil {
		t.Fatal("still pending after the value was completed")
	}
	f.wantHealth(http.StatusOK, "caught up\n")
}

// A missing log is waited for, healthy (its writer's business), however
// long it stays away, and not to be mistaken for a daemon starting.
func TestHealthLogMissing(t *testing.T) {
	f := newFixture(t, fixtureOptions{events: 5, stall: 10 * time.Millisecond})
	if err := os.Remove(f.logPath); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		f.wantHealth(http.StatusOK, "waiting for the log: "+f.logPath+"\n")
		time.Sleep(15 * time.Millisecond) // longer than the stall timeout: still healthy
	}
}

// Before anything was mirrored, a missing log (the engine reports it) is
// "waiting for the log", not "starting", in /healthz and /v1/status; when
// a directory on its way is missing too, they name it.
func TestHealthWaitingForTheLogAtStart(t *testing.T) {
	for _, tc := range []struct {
		name string
		log  string // the engine's log, under the fixture's directory
		dir  string // the missing directory named, "" for none
	}{
		{"the log", "data.json", ""},
		{"its directory", "repo/data.json", "repo"},
		{"two directories", "home/repo/data.json", "home"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, fixtureOptions{events: 3, noSync: true, engineMod: func(o *mirror.Options) {
				o.EventLog = filepath.Join(filepath.Dir(o.EventLog), tc.log)
			}})
			log := f.eng.Path()
			if err := os.Remove(f.logPath); err != nil {
				t.Fatal(err)
			}
			if err := f.eng.Sync(testCtx(t, 10*time.Second)); !errors.Is(err, mirror.ErrLogMissing) {
				t.Fatalf("Sync of a missing log: %v", err)
			}
			if !f.eng.Status().LogMissing || f.eng.Checkpoint() != nil {
				t.Fatalf("the engine does not report the log missing before the first load: %+v", f.eng.Status())
			}
			want := "waiting for the log: " + log
			if tc.dir != "" {
				want += " (directory " + filepath.Join(f.dir, tc.dir) + " does not exist)"
			}
			f.wantHealth(http.StatusOK, want+"\n")
			st, err := f.client.Status(testCtx(t, 5*time.Second))
			if err != nil || !st.Healthy || st.Health != want {
				t.Fatalf("status: healthy %v %q (%v), want %q", st.Healthy, st.Health, err, want)
			}
			// The log appears: the first load, then caught up.
			if err := os.MkdirAll(filepath.Dir(log), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := eventlog.RewriteFile(log, f.events); err != nil {
				t.Fatal(err)
			}
			f.sync()
			f.wantHealth(http.StatusOK, "caught up\n")
		})
	}
}

// A failed apply makes the daemon unhealthy, with the engine's error; the
// other endpoints report the closed store as unavailable.
func TestHealthFailedApply(t *testing.T) {
	f := newFixture(t, fixtureOptions{events: 5, stall: time.Hour})
	stop := f.runEngine()
	f.wantHealth(http.StatusOK, "caught up\n")
	if err := f.db.Close(); err != nil {
		t.Fatal(err)
	}
	f.appendEvents(2) // the engine sees it and fails to write it
	var body string
	testkit.Eventually(t, "/healthz reports the failed apply", func() error {
		return f.healthIs(http.StatusServiceUnavailable, &body)
	})
	if !strings.HasPrefix(body, "the last apply failed: ") || !strings.Contains(body, "store is closed") {
		t.Errorf("body %q, want the engine's error", body)
	}
	if st := f.eng.Status(); st.LastError == "" || !strings.Contains(body, st.LastError) {
		t.Errorf("body %q does not carry the engine's LastError %q", body, st.LastError)
	}
	stop()

	// The rest of the API says the store is closed, as a 503.
	ctx := testCtx(t, 5*time.Second)
	if _, _, err := f.client.Get(ctx, "event:x"); err == nil || !strings.Contains(err.Error(), "store is closed") {
		t.Errorf("Get on a closed store: %v, want the server's message", err)
	}
	if code, _ := httpDo(t, f.sock, "GET", "/v1/get?key=x"); code != http.StatusServiceUnavailable {
		t.Errorf("GET /v1/get on a closed store: %d, want 503", code)
	}
	if code, _ := httpDo(t, f.sock, "GET", "/v1/keys"); code != http.StatusServiceUnavailable {
		t.Errorf("GET /v1/keys on a closed store: %d, want 503", code)
	}
	if err := f.client.Stream(ctx, true, "", func([]byte) error { return nil }); err == nil || !strings.Contains(err.Error(), "store is closed") {
		t.Errorf("Stream on a closed store: %v", err)
	}
	if _, err := f.client.Verify(ctx); err == nil || !strings.Contains(err.Error(), "store is closed") {
		t.Errorf("Verify on a closed store: %v", err)
	}
	// Status still answers, and says why the daemon is unhealthy.
	st, err := f.client.Status(ctx)
	if err != nil || st.Healthy || !strings.HasPrefix(st.Health, "the last apply failed") {
		t.Errorf("status: %+v, %v", st, err)
	}
}
