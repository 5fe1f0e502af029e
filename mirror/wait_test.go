package mirror

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// waitLimit bounds every wait of the tests: far beyond what any awaited
// condition takes, even on a loaded machine, and far below the test
// binary's timeout.
const waitLimit = 20 * time.Second

// waitFor is the one wait the tests share: it checks cond until it
// returns nil, and fails t with cond's last answer once waitLimit has
// passed. It polls a condition the test can see; it never sleeps in the
// hope that something happened.
func waitFor(t testing.TB, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: after %v: %v", what, waitLimit, err)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// eventually waits until the store holds exactly the model's ids (read
// through a snapshot, as an in-process reader would).
func (h *harness) eventually(what string) {
	h.t.Helper()
	want := h.modelIDs()
	slices.Sort(want)
	waitFor(h.t, what, func() error {
		if got := h.storedIDs(); !slices.Equal(got, want) {
			return fmt.Errorf("the store holds %d events, want %d", len(got), len(want))
		}
		return nil
	})
}

// eventuallyVerified waits until Verify finds the store equal to the log.
func (h *harness) eventuallyVerified(what string) {
	h.t.Helper()
	waitFor(h.t, what, func() error {
		r, err := Verify(h.t.Context(), h.db, h.path, 0)
		switch {
		case err != nil:
			return err
		case !r.OK():
			return fmt.Errorf("%s", r.Summary())
		}
		return nil
	})
}

// waitStatus waits until the engine's status satisfies cond.
func (h *harness) waitStatus(what string, cond func(Status) bool) {
	h.t.Helper()
	waitFor(h.t, what, func() error {
		if s := h.e.Status(); !cond(s) {
			return fmt.Errorf("status %+v", s)
		}
		return nil
	})
}
