package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mirrord/mirrord/api"
	"github.com/mirrord/mirrord/eventlog"
	"github.com/mirrord/mirrord/internal/synth"
	"github.com/mirrord/mirrord/internal/testkit"
	"github.com/prometheus/procfs"
)

// Hostile input at the daemon's level (issue 7, item 4): what only a
// whole process shows, its peak memory, and a log whose symlink is
// re-pointed under it. mirror/hostile_test.go holds the key-level cases.

var endlessMB = flag.Int("mirrord.endless", 128, "size in MiB (at least 128) of the endless line the daemon must read in bounded memory")

// procStatus reads a memory figure of /proc/pid/status, in bytes: VmHWM
// (the peak resident set) or VmRSS.
func procStatus(t *testing.T, pid int, field string) int64 {
	t.Helper()
	v, err := readProcStatus(pid, field)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// readProcStatus is procStatus for a goroutine other than the test's,
// which must not end the test itself.
func readProcStatus(pid int, field string) (int64, error) {
	p, err := procfs.NewProc(pid)
	if err != nil {
		return 0, err
	}
	st, err := p.NewStatus()
	if err != nil {
		return 0, err
	}
	switch field {
	case "VmHWM":
		return int64(st.VmHWM), nil
	case "VmRSS":
		return int64(st.VmRSS), nil
	}
	return 0, fmt.Errorf("procStatus: no field %s", field)
}

// waitExact waits until the daemon behind c has mirrored the whole log
// (its checkpoint at the log's end) and its verify passes.
func waitExact(t *testing.T, c *api.Client, what string) {
	t.Helper()
	// Beyond WaitLimit: one verify of the grown log may take 30s.
	testkit.EventuallyWithin(t, 60*time.Second, what+": the daemon matches the whole log", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		r, err := c.Verify(ctx)
		switch {
		case err != nil:
			return err
		case !r.OK() || r.Covered != r.LogSize:
			return fmt.Errorf("%s (covered %d of %d)", r.Summary(), r.Covered, r.LogSize)
		}
		return nil
	})
}

// A log that grows one endless line (no newline, ever) is read while the
// daemon follows it, and at start, in bounded memory; once the line ends
// and an event follows, the line is one invalid entry and the event is
// mirrored. The daemon is the non-race build, so that its peak RSS means
// what it means in production.
func TestEndlessLineMemoryIsBounded(t *testing.T) {
	size := int64(max(*endlessMB, 128)) << 20
	dir := shortDir(t)
	log, store := filepath.Join(dir, "data.json"), filepath.Join(dir, "store")
	gen := synth.New(51)
	writeLog(t, log, gen.Events(20))
	c := startProcess(t, mirrordBinary(t), "run", "--eventlog", log, "--store", store, "--log-format", "text", "--log-level", "debug")
	c.WaitLine(60*time.Second, "caught up; following the log")
	client := api.NewClient(api.DefaultPath("", store))
	defer client.Close()
	base := procStatus(t, c.Cmd().Process.Pid, "VmHWM")

	// Stream the line in 1 MiB writes, as a runaway writer would.
	f, err := os.OpenFile(log, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	block := []byte(strings.Repeat("x", 1<<20))
	for n := int64(0); n < size; n += int64(len(block)) {
		if _, err := f.Write(block); err != nil {
			t.Fatal(err)
		}
	}
	// The daemon has read to the end (its status sees the whole size)
	// and keeps it as an incomplete tail: no apply, no invalid entry.
	testkit.EventuallyWithin(t, 60*time.Second, "the daemon looks at the grown log", func() error {
		st, err := client.Status(context.Background())
		if err == nil && st.Mirror.LogSize != fileSize(t, log) {
			err = fmt.Errorf("%+v", st)
		}
		return err
	})
	// Then the line ends, and an event follows.
	after := gen.Events(1)
	if _, err := f.Write(append([]byte("\n"), eventlog.Format(after)...)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	c.WaitLine(60*time.Second, "invalid entry")
	waitExact(t, client, "after the endless line")
	peak := procStatus(t, c.Cmd().Process.Pid, "VmHWM")
	t.Logf("following: peak RSS %d MiB before the line, %d MiB after a %d MiB line", base>>20, peak>>20, size>>20)
	// Holding the line, or a good part of it, would add its size.
	if peak > base+64<<20 {
		t.Errorf("peak RSS rose from %d MiB to %d MiB reading a %d MiB line", base>>20, peak>>20, size>>20)
	}
	c.Signal(syscall.SIGTERM)
	if code := c.Wait(30 * time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}

	// At start, a resync reads the same log from scratch: bounded too.
	r := startProcess(t, mirrordBinary(t), "sync", "--once", "--resync", "--eventlog", log, "--store", store, "--log-format", "json")
	if code := r.Wait(60 * time.Second); code != 0 {
		t.Fatalf("sync --resync: exit %d\n%s", code, r.Output())
	}
	// mirrord's own VmHWM: the rusage of a child counts the memory of
	// this (large, race-instrumented) test process at the exec.
	maxRSS := int64(-1)
	for _, line := range strings.Split(r.Output(), "\n") {
		var rec struct {
			Msg  string `json:"msg"`
			Peak *int64 `json:"peak_rss_mib"`
		}
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "the store is up to date" && rec.Peak != nil {
			maxRSS = *rec.Peak << 20
		}
	}
	if maxRSS < 0 {
		t.Fatalf("sync did not log its peak memory:\n%s", r.Output())
	}
	t.Logf("resync: peak RSS %d MiB", maxRSS>>20)
	if maxRSS > 120<<20 { // below the line's size: holding it would not fit
		t.Errorf("a resync of a log with a %d MiB line peaked at %d MiB", size>>20, maxRSS>>20)
	}
	verifyStore(t, store, log)
}

// The log is a symlink, re-pointed while the daemon follows: to another
// file (a replacement), to nothing (the log is missing: the store is kept
// as it is), and back to a file.
func TestSymlinkRepointedWhileFollowing(t *testing.T) {
	dir := shortDir(t)
	log, store := filepath.Join(dir, "data.json"), filepath.Join(dir, "store")
	gen := synth.New(52)
	targets := map[string][]*eventlog.Event{"a": gen.Events(30), "b": gen.Events(12), "c": gen.Events(7)}
	for name, evs := range targets {
		writeLog(t, filepath.Join(dir, name+".json"), evs)
	}
	point := func(target string) {
		t.Helper()
		tmp := filepath.Join(dir, "link.tmp")
		if err := os.Symlink(target, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, log); err != nil { // atomically, as a deploy does
			t.Fatal(err)
		}
	}
	point(filepath.Join(dir, "a.json"))
	c := startChild(t, "run", "--eventlog", log, "--store", store, "--settle", "30ms", "--log-format", "text")
	c.WaitLine(60*time.Second, "caught up; following the log")
	client := api.NewClient(api.DefaultPath("", store))
	defer client.Close()
	waitExact(t, client, "a")
	for _, step := range []struct {
		what, target string
		events       int // the store's events afterwards
	}{
		{"re-pointed to b", "b.json", 12},
		{"dangling", "gone.json", 12}, // missing: kept as it is
		{"re-pointed to c", "c.json", 7},
		{"back to a", "a.json", 30},
	} {
		mark := c.Mark()
		point(filepath.Join(dir, step.target))
		if step.target == "gone.json" {
			c.WaitLineFrom(mark, 30*time.Second, "missing")
		} else {
			waitExact(t, client, step.what)
		}
		// The status follows the commit that verify reads.
		testkit.Eventually(t, step.what+": the status", func() error {
			st, err := client.Status(context.Background())
			if err == nil && (st.Mirror.Checkpoint == nil || st.Mirror.Checkpoint.Events != int64(step.events)) {
				err = fmt.Errorf("status %+v, want %d events", st.Mirror.Checkpoint, step.events)
			}
			return err
		})
	}
	// An append to the target, in its own directory, is followed too.
	if err := eventlog.AppendFile(filepath.Join(dir, "a.json"), gen.Events(2)...); err != nil {
		t.Fatal(err)
	}
	waitExact(t, client, "append to a")
	c.Signal(syscall.SIGTERM)
	if code := c.Wait(30 * time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if r := verifyStore(t, store, log); r.Events != 32 {
		t.Fatalf("%d events, want 32", r.Events)
	}
}
