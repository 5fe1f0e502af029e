package mirror

import (
	"bytes"
	"os"
	"testing"

	"github.com/mirrord/mirrord/eventlog"
)

// An edit that keeps the log's size, made in place before the checkpoint
// and far outside the last 4 KiB that the tail's fingerprint covers, is
// still a change: its write moved the mtime, so once the log settles the
// whole prefix is checked and the edit mirrored. The safety check is off:
// only the write's own event can have done it.
func TestSameSizeEditBeforeTheCheckpoint(t *testing.T) {
	h := newFollowHarness(t, ".", nil)
	evs := h.newEvents(300)
	evs[0].Description = "edit me"
	h.appendEvents(evs...)
	h.age()
	r := h.run()
	h.eventuallyVerified("initial catch-up")
	cp := h.e.Status().Checkpoint

	b, err := os.ReadFile(h.path)
	mustDo(t, err)
	at := bytes.Index(b, []byte(`"edit me"`))
	if at < 0 || int64(at) >= cp.Offset-eventlog.TailSize {
		t.Fatalf("the edit at %d is not before the tail window (checkpoint at %d)", at, cp.Offset)
	}
	f, err := os.OpenFile(h.path, os.O_WRONLY, 0)
	mustDo(t, err)
	_, err = f.WriteAt([]byte(`"edit mE"`), int64(at))
	mustDo(t, err)
	mustDo(t, f.Close())
	h.evs[0].Description = "edit mE"

	h.eventuallyVerified("a same-size edit of the first event")
	r.stop(t)
	h.verify()
	if now := h.e.Checkpoint(); now.Offset != cp.Offset || now.Ino != cp.Ino {
		t.Fatalf("the checkpoint moved from %d to %d", cp.Offset, now.Offset)
	}
}
