package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/mirrord/mirrord/mirror"
)

// Without a terminal (journald), a long read is a log line every few
// seconds, with bytes, events per second and time left, and one at the end.
func TestProgressLinesWithoutATerminal(t *testing.T) {
	var logs bytes.Buffer
	p := newProgress(&bytes.Buffer{}, newLogger(&logs, "text", levelVar("info"), noEnv))
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p.now = func() time.Time { return now }
	total := int64(100 << 20)
	for i := int64(1); i <= 20; i++ {
		now = now.Add(time.Second)
		p.report(mirror.Progress{Kind: "load", Done: i * 4 << 20, Total: total, Events: i * 6000})
	}
	now = now.Add(time.Second)
	p.report(mirror.Progress{Kind: "load", Done: total, Total: total, Events: 150000, Finished: true})
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 4 { // reports over 20 s: a line 5, 10 and 15 s after the first, and the end
		t.Fatalf("%d lines:\n%s", len(lines), logs.String())
	}
	if !strings.Contains(lines[0], "loading the log") || !strings.Contains(lines[0], "percent=") ||
		!strings.Contains(lines[0], "events_per_second=") || !strings.Contains(lines[0], "left=") {
		t.Fatalf("progress line %q", lines[0])
	}
	if !strings.Contains(lines[3], "loading the log: done") || !strings.Contains(lines[3], "events=150000") {
		t.Fatalf("final line %q", lines[3])
	}
}

// On a terminal, a progress bar.
func TestProgressBarOnATerminal(t *testing.T) {
	var out bytes.Buffer
	p := newProgress(&out, newLogger(&bytes.Buffer{}, "text", levelVar("info"), noEnv))
	p.terminal = true
	p.report(mirror.Progress{Kind: "reconcile", Done: 10 << 20, Total: 40 << 20, Events: 1000})
	p.report(mirror.Progress{Kind: "reconcile", Done: 40 << 20, Total: 40 << 20, Events: 4000, Finished: true})
	if !strings.Contains(out.String(), "reconciling the log") || !strings.Contains(out.String(), "%") {
		t.Fatalf("no progress bar drawn: %q", out.String())
	}
}
