package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mirrord/mirrord/api"
	"github.com/mirrord/mirrord/eventlog"
	"github.com/mirrord/mirrord/internal/synth"
	"github.com/mirrord/mirrord/internal/testkit"
)

// shortDir is a temporary directory with a short path: a unix socket's path
// must fit in 108 bytes, and t.TempDir() paths can be long.
func shortDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "md")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// The real daemon speaks systemd's notify protocol: READY=1 after its
// first catch-up, STATUS= lines, WATCHDOG=1 while it follows, STOPPING=1.
func TestSystemdNotifyReadyStatusWatchdog(t *testing.T) {
	dir := shortDir(t)
	log, store := filepath.Join(dir, "data.json"), filepath.Join(dir, "store")
	gen := synth.New(31)
	writeLog(t, log, gen.Events(50))
	sock := filepath.Join(dir, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := startChildEnv(t, []string{"NOTIFY_SOCKET=" + sock, "WATCHDOG_USEC=400000"},
		"run", "--eventlog", log, "--store", store)

	got := map[string]string{}
	appended := false
	readNotify(t, conn, got, 30*time.Second, func() bool {
		if got["READY"] == "1" && !appended {
			// A STATUS= line follows the next applied batch.
			appended = true
			if err := eventlog.AppendFile(log, gen.Events(1)...); err != nil {
				t.Fatal(err)
			}
		}
		return got["READY"] != "" && got["WATCHDOG"] != "" && strings.HasPrefix(got["STATUS"], "mirrored 51 events")
	})
	if got["READY"] != "1" || got["WATCHDOG"] != "1" {
		t.Fatalf("notifications %v", got)
	}
	c.Signal(syscall.SIGTERM)
	readNotify(t, conn, got, 10*time.Second, func() bool { return got["STOPPING"] == "1" })
	if code := c.Wait(30 * time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

// readNotify reads the notifications sent to conn into got (the last
// value of each variable) until done holds, which it checks after each
// datagram and once before the first.
func readNotify(t *testing.T, conn *net.UnixConn, got map[string]string, timeout time.Duration, done func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	buf := make([]byte, 4096)
	for !done() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v the notifications are %v", timeout, got)
		}
		_ = conn.SetReadDeadline(time.Now().Add(time.Second))
		n, err := conn.Read(buf)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(buf[:n]), "\n") {
			k, v, _ := strings.Cut(line, "=")
			got[k] = v
		}
	}
}

// A daemon whose log's directory does not exist yet is ready all the
// same (the log's absence is its writer's business: systemd must not
// restart it for that), and its status line says what it waits for.
func TestSystemdReadyWhileWaitingForTheLog(t *testing.T) {
	dir := shortDir(t)
	log, store := filepath.Join(dir, "repo", "data.json"), filepath.Join(dir, "store")
	sock := filepath.Join(dir, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := startChildEnv(t, []string{"NOTIFY_SOCKET=" + sock}, "run", "--eventlog", log, "--store", store)
	got := map[string]string{}
	readNotify(t, conn, got, 30*time.Second, func() bool { return got["READY"] == "1" })
	want := "waiting for the log: " + log + " (directory " + filepath.Join(dir, "repo") + " does not exist)"
	if got["STATUS"] != want {
		t.Fatalf("STATUS=%q with READY=1, want %q", got["STATUS"], want)
	}
	c.Signal(syscall.SIGTERM)
	if code := c.Wait(30 * time.Second); code != 0 {
		t.Fatalf("exit %d:\n%s", code, c.Output())
	}
}

// While the daemon holds the store, the query commands reach it through
// its socket and print what they print without a daemon.
func TestQueriesGoThroughTheDaemon(t *testing.T) {
	dir := shortDir(t)
	log, store := filepath.Join(dir, "data.json"), filepath.Join(dir, "store")
	writeLog(t, log, synth.New(32).Events(60))
	env := map[string]string{"MIRRORD_EVENTLOG": log, "MIRRORD_STORE": store}
	if r := mirrord(t, env, "sync", "--once"); r.code != 0 {
		t.Fatal(r.err)
	}
	direct := map[string]string{}
	queries := [][]string{{"keys", "event:"}, {"dump", "modifier:"}, {"dump", "generated:summary:2"}, {"get", "generated:summary:2024-01"}, {"verify"}}
	for _, q := range queries {
		r := mirrord(t, env, q...)
		if r.code != 0 {
			t.Fatalf("%v without a daemon: %v", q, r.err)
		}
		direct[strings.Join(q, " ")] = r.stdout
	}

	c := startChild(t, "run", "--eventlog", log, "--store", store)
	c.WaitLine(60*time.Second, "caught up; following the log")
	sock := api.DefaultPath("", store)
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("socket %s: %v %v", sock, fi, err)
	}
	for _, q := range queries {
		r := mirrord(t, env, q...)
		want := direct[strings.Join(q, " ")]
		if q[0] == "verify" {
			want = strings.SplitN(want, "\n", 2)[0] // the daemon's verify adds no note when caught up
		}
		if r.code != 0 || !strings.HasPrefix(r.stdout, want) {
			t.Fatalf("%v through the daemon: exit %d %v\n got %q\nwant %q", q, r.code, r.err, r.stdout, want)
		}
	}
	r := mirrord(t, env, "status")
	if r.code != 0 || !strings.Contains(r.stdout, "daemon      caught up") || !strings.Contains(r.stdout, "summary") {
		t.Fatalf("status through the daemon: %v\n%s", r.err, r.stdout)
	}
	r = mirrord(t, env, "get", "event:nope")
	if r.code != 1 || !strings.Contains(r.msg(), "no key") {
		t.Fatalf("get of a missing key through the daemon: exit %d %v", r.code, r.err)
	}
	r = mirrord(t, env, "generators", "rebuild", "summary")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "rebuilt summary") {
		t.Fatalf("rebuild through the daemon: %v %q", r.err, r.stdout)
	}
	c.Signal(syscall.SIGTERM)
	if code := c.Wait(30 * time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Fatalf("the socket outlived the daemon: %v", err)
	}
}

// A socket left by a crashed daemon is replaced; a live one is refused.
func TestStaleAndLiveSockets(t *testing.T) {
	dir := shortDir(t)
	log, store := filepath.Join(dir, "data.json"), filepath.Join(dir, "store")
	writeLog(t, log, synth.New(33).Events(5))
	sock := api.DefaultPath("", store)
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close() // a stale socket file, as a killed daemon leaves it
	c := startChild(t, "run", "--eventlog", log, "--store", store)
	c.WaitLine(60*time.Second, "caught up")

	// Another daemon on another store with the same socket: refused.
	other := startChild(t, "run", "--eventlog", log, "--store", filepath.Join(dir, "other"), "--socket", sock)
	if code := other.Wait(30 * time.Second); code != 1 || !strings.Contains(other.Output(), "another mirrord is serving this socket") {
		t.Fatalf("second daemon on a live socket: exit %d\n%s", code, other.Output())
	}
	c.Signal(syscall.SIGTERM)
	c.Wait(30 * time.Second)
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// The TCP listener serves /metrics and /healthz and nothing else; health
// turns 503 on a stall (deletions held while the log is ahead).
func TestMetricsAndHealthOverTCP(t *testing.T) {
	dir := shortDir(t)
	log, store := filepath.Join(dir, "data.json"), filepath.Join(dir, "store")
	evs := synth.New(34).Events(40)
	writeLog(t, log, evs)
	c := startChild(t, "run", "--eventlog", log, "--store", store, "--metrics-listen", "127.0.0.1:0",
		"--stall-timeout", "500ms", "--settle", "20ms")
	line := c.WaitLine(60*time.Second, "serving /metrics and /healthz")
	addr := regexp.MustCompile(`address=(\S+)`).FindStringSubmatch(line)
	if addr == nil {
		t.Fatalf("no address in %q", line)
	}
	base := "http://" + addr[1]
	c.WaitLine(60*time.Second, "caught up")

	if code, body := httpGet(t, base+"/healthz"); code != 200 || !strings.Contains(body, "caught up") {
		t.Fatalf("healthz: %d %q", code, body)
	}
	code, body := httpGet(t, base+"/metrics")
	if code != 200 || !regexp.MustCompile(`(?m)^mirrord_events 40$`).MatchString(body) ||
		!strings.Contains(body, "mirrord_apply_duration_seconds_bucket") ||
		!strings.Contains(body, `mirrord_generator_position{generator="summary"}`) ||
		!strings.Contains(body, "process_open_fds") {
		t.Fatalf("metrics: %d\n%s", code, body)
	}
	if code, _ := httpGet(t, base+"/v1/dump"); code != 404 {
		t.Fatalf("the TCP listener serves /v1/dump: %d", code)
	}

	// A rewrite deleting an event, cut mid-value: the deletion is held,
	// the checkpoint stops while the log is ahead: a stall.
	full := eventlog.Format(evs[1:])
	if err := os.WriteFile(log, full[:len(full)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "healthz reports the stall", func() error {
		if code, body := httpGet(t, base+"/healthz"); code != 503 || !strings.Contains(body, "stalled") {
			return fmt.Errorf("%d %q", code, body)
		}
		return nil
	})
	c.Signal(syscall.SIGTERM)
	c.Wait(30 * time.Second)
}

// SIGHUP re-reads the configuration: the log level and the generator set
// change at once; a setting that cannot change while running is reported.
func TestReloadOnSIGHUP(t *testing.T) {
	dir := shortDir(t)
	log, store := filepath.Join(dir, "data.json"), filepath.Join(dir, "store")
	gen := synth.New(35)
	writeLog(t, log, gen.Events(20))
	cfg := filepath.Join(dir, "c.yaml")
	write := func(content string) {
		if err := os.WriteFile(cfg, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	base := "eventlog: " + log + "\nstore: " + store + "\nlog-format: text\n"
	write(base + "log-level: info\ngenerators: [summary]\n")
	c := startChild(t, "run", "--config", cfg)
	c.WaitLine(60*time.Second, "caught up")
	write(base + "log-level: debug\ngenerators: [summary, hashtags]\nbatch-size: 1MiB\n")
	c.Signal(syscall.SIGHUP)
	l := c.WaitLine(30*time.Second, "configuration reloaded")
	if !strings.Contains(l, "changed=\"[log-level generators]\"") || !strings.Contains(l, "not_applied=[batch-size]") {
		t.Fatalf("reload line %q", l)
	}
	// The new generator's rebuild may be logged before the reload line
	// (20 events take 2 ms); before the reload no hashtags generator ran.
	c.WaitLine(30*time.Second, "generator rebuilt", "generator=hashtags")
	if !strings.Contains(c.Output(), "cannot be applied while mirrord runs") {
		t.Fatalf("the fixed setting was not reported:\n%s", c.Output())
	}
	if err := eventlog.AppendFile(log, gen.Events(1)...); err != nil {
		t.Fatal(err)
	}
	c.WaitLine(30*time.Second, "DBG applied a batch") // debug now on
	c.Signal(syscall.SIGTERM)
	if code := c.Wait(30 * time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

// A shutdown that takes longer than shutdown-timeout exits anyway.
func TestShutdownTimeout(t *testing.T) {
	exited := make(chan int, 1)
	m := &Main{Exit: func(code int) { exited <- code }}
	ctx, stop := m.signalContext(context.Background(), newLogger(io.Discard, "text", levelVar("info"), noEnv),
		func() time.Duration { return 100 * time.Millisecond })
	defer stop()
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-ctx.Done()
	select {
	case code := <-exited:
		if code != exitFailure {
			t.Fatalf("exit code %d", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a shutdown past its timeout did not exit")
	}
}

// The unit passes systemd's own checks: verify reports nothing, and the
// security exposure is at most 1.0 (it is 0.4).
func TestSystemdUnit(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed (.ci/run installs it)")
	}
	unit, err := os.ReadFile("../../systemd/mirrord.service")
	if err != nil {
		t.Fatal(err)
	}
	// verify checks that ExecStart exists: point it at a real build.
	dir := t.TempDir()
	local := filepath.Join(dir, "mirrord.service")
	if err := os.WriteFile(local, bytes.ReplaceAll(unit, []byte("/usr/local/bin/mirrord"), []byte(mirrordBinary(t))), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", local).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	out, err = exec.Command(analyze, "security", "--offline=true", "../../systemd/mirrord.service").CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`Overall exposure level for mirrord.service: ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no exposure level in:\n%s", out)
	}
	if level, _ := strconv.ParseFloat(string(m[1]), 64); level > 1.0 {
		t.Fatalf("exposure %.1f, want 1.0 or lower:\n%s", level, out)
	}
	for _, want := range []string{"Type=notify", "Restart=on-failure", "WatchdogSec=", "StateDirectory=mirrord", "RuntimeDirectory=mirrord", "PrivateTmp=yes", "ProtectHome=read-only", "RestrictAddressFamilies=AF_UNIX", "CapabilityBoundingSet=\n"} {
		if !bytes.Contains(unit, []byte(want)) {
			t.Errorf("the unit lacks %q", want)
		}
	}
}
