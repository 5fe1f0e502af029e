package sdnotify

import (
	"net"
	"path/filepath"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestSendsToTheSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	n := New(env(map[string]string{"NOTIFY_SOCKET": path}))
	if !n.Enabled() {
		t.Fatal("not enabled with NOTIFY_SOCKET set")
	}
	if err := n.Ready("caught up"); err != nil {
		t.Fatal(err)
	}
	if err := n.Watchdog(); err != nil {
		t.Fatal(err)
	}
	if err := n.ExtendTimeout(90 * time.Second); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 256)
	for _, want := range []string{"READY=1\nSTATUS=caught up", "WATCHDOG=1", "EXTEND_TIMEOUT_USEC=90000000"} {
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		k, err := conn.Read(buf)
		if err != nil || string(buf[:k]) != want {
			t.Fatalf("got %q, %v; want %q", buf[:k], err, want)
		}
	}
}

func TestNoSocketIsANoOp(t *testing.T) {
	n := New(env(nil))
	if n.Enabled() || n.Ready("x") != nil || n.Watchdog() != nil {
		t.Fatal("a notifier without NOTIFY_SOCKET must do nothing")
	}
}

func TestWatchdogInterval(t *testing.T) {
	if d, ok := WatchdogInterval(env(map[string]string{"WATCHDOG_USEC": "20000000"}), 7); !ok || d != 10*time.Second {
		t.Fatalf("WatchdogInterval = %v, %v", d, ok)
	}
	if _, ok := WatchdogInterval(env(map[string]string{"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": "8"}), 7); ok {
		t.Fatal("a watchdog meant for another pid is on")
	}
	if _, ok := WatchdogInterval(env(nil), 7); ok {
		t.Fatal("watchdog on without WATCHDOG_USEC")
	}
}
