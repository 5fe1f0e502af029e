package mirror

import (
	"fmt"
	"slices"

	"github.com/mirrord/mirrord/internal/testkit"
)

// eventually waits until the store holds exactly the model's ids (read
// through a snapshot, as an in-process reader would).
func (h *harness) eventually(what string) {
	h.t.Helper()
	want := h.modelIDs()
	slices.Sort(want)
	testkit.Eventually(h.t, what, func() error {
		if got := h.storedIDs(); !slices.Equal(got, want) {
			return fmt.Errorf("the store holds %d events, want %d", len(got), len(want))
		}
		return nil
	})
}

// eventuallyVerified waits until Verify finds the store equal to the log.
func (h *harness) eventuallyVerified(what string) {
	h.t.Helper()
	testkit.Eventually(h.t, what, func() error {
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
	testkit.Eventually(h.t, what, func() error {
		if s := h.e.Status(); !cond(s) {
			return fmt.Errorf("status %+v", s)
		}
		return nil
	})
}
