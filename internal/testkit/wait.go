package testkit

import (
	"log/slog"
	"testing"
	"time"
)

// WaitLimit bounds Eventually: far beyond what any awaited condition
// takes, even on a loaded two-core machine, and far below the test
// binary's default timeout.
const WaitLimit = 30 * time.Second

// Eventually checks cond until it returns nil, and fails t with cond's
// last answer once WaitLimit has passed. what names the awaited state in
// that failure.
func Eventually(t testing.TB, what string, cond func() error) {
	t.Helper()
	EventuallyWithin(t, WaitLimit, what, cond)
}

// EventuallyWithin is Eventually with its own bound d.
func EventuallyWithin(t testing.TB, d time.Duration, what string, cond func() error) {
	t.Helper()
	if err := Poll(d, cond); err != nil {
		t.Fatalf("%s: not within %v: %v", what, d, err)
	}
}

// Poll checks cond until it returns nil (Poll returns nil) or d has
// passed (Poll returns cond's last error). It is Eventually for a test
// that must not fail at once, such as one that runs in a goroutine other
// than the test's. The pause between checks grows from 1ms to 20ms: a
// fast condition is seen at once, a slow one costs little CPU.
func Poll(d time.Duration, cond func() error) error {
	deadline := time.Now().Add(d)
	pause := time.Millisecond
	for {
		err := cond()
		if err == nil || !time.Now().Before(deadline) {
			return err
		}
		time.Sleep(pause)
		pause = min(2*pause, 20*time.Millisecond)
	}
}

// QuietLogger is a logger that discards every record: for the code
// under test, whose logs the test does not read.
func QuietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
