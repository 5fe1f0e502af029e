package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mirrord/mirrord/internal/synth"
)

// TestFirstLoadExtendsStartTimeout: while a first load of a log larger
// than a few progress steps (4 MiB each) runs, the daemon asks systemd
// for more start time (EXTEND_TIMEOUT_USEC) on a real notify socket,
// before READY=1.
func TestFirstLoadExtendsStartTimeout(t *testing.T) {
	dir := shortDir(t)
	log, store := filepath.Join(dir, "data.json"), filepath.Join(dir, "store")
	gen := synth.New(77)
	writeLog(t, log, gen.Events(60_000))
	if fi, err := os.Stat(log); err != nil || fi.Size() < 12<<20 {
		t.Fatalf("setup: the log is %v bytes (%v), want at least 12 MiB", fi.Size(), err)
	}
	sock := filepath.Join(dir, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := startChildEnv(t, []string{"NOTIFY_SOCKET=" + sock}, "run", "--eventlog", log, "--store", store)

	var extends []string
	buf := make([]byte, 4096)
	deadline := time.Now().Add(3 * time.Minute)
	for ready := false; !ready; {
		if time.Now().After(deadline) {
			t.Fatalf("no READY=1 within 3 minutes; extensions %q\n%s", extends, c.Output())
		}
		_ = conn.SetReadDeadline(time.Now().Add(time.Second))
		n, err := conn.Read(buf)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(buf[:n]), "\n") {
			switch {
			case line == "READY=1":
				ready = true
			case strings.HasPrefix(line, "EXTEND_TIMEOUT_USEC="):
				extends = append(extends, line)
			}
		}
	}
	if len(extends) == 0 {
		t.Fatalf("the first load of a 12+ MiB log sent no EXTEND_TIMEOUT_USEC before READY=1\n%s", c.Output())
	}
	if extends[0] != "EXTEND_TIMEOUT_USEC=90000000" {
		t.Errorf("extension %q, want 90s", extends[0])
	}
	t.Logf("%d extensions before READY=1", len(extends))
}
