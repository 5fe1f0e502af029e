package mirror

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mirrord/mirrord/eventlog"
)

// TestHugeApplyKeepsPinging: appending one event with 200k modifiers (a
// value under the 4 MiB progress step, so reading it pings nothing) keeps
// the heartbeat going while its modifiers are written, as the follow
// loop's watchdog needs.
func TestHugeApplyKeepsPinging(t *testing.T) {
	var beats atomic.Int64
	h := newHarness(t, func(o *Options) {
		o.Heartbeat = time.Hour // no ticker: only the work's own pings count
		o.OnHeartbeat = func() { beats.Add(1) }
	})
	h.appendEvents(h.newEvents(3)...)
	h.sync()
	const n = 200_000
	ev := h.newEvents(1)[0]
	ev.Modifiers = make([]eventlog.Modifier, n)
	for i := range ev.Modifiers {
		ev.Modifiers[i] = modifier(fmt.Sprintf("m%d", i), "x")
	}
	h.appendEvents(ev)
	before := beats.Load()
	h.sync()
	if got, want := beats.Load()-before, int64(n/aliveEvery); got < want {
		t.Fatalf("%d heartbeats while applying %d modifiers, want at least %d", got, n, want)
	}
	if r := h.verify(); r.Modifiers < n {
		t.Fatalf("verify counted %d modifiers, want at least %d", r.Modifiers, n)
	}
}
