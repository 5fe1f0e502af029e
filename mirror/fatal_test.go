package mirror

import (
	"context"
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mirrord/mirrord/internal/testkit"
)

// Something other than a regular file at the log's path is a
// misconfiguration that no wait cures: Run ends with an error naming the
// path (the daemon then exits non-zero), at start or while following, and
// the store keeps what it had. Nothing Run started outlives it.
func TestRunEndsOnANonRegularLog(t *testing.T) {
	kinds := []struct {
		name string
		make func(t *testing.T, path string)
	}{
		{"directory", func(t *testing.T, path string) {
			mustDo(t, os.Remove(path))
			mustDo(t, os.Mkdir(path, 0o755))
		}},
		{"FIFO", func(t *testing.T, path string) {
			mustDo(t, syscall.Mkfifo(path+".fifo", 0o644))
			mustDo(t, os.Rename(path+".fifo", path))
		}},
	}
	for _, k := range kinds {
		t.Run(k.name+" at start", func(t *testing.T) {
			h := newFollowHarness(t, ".", nil)
			h.appendEvents(h.newEvents(5)...)
			h.sync()
			k.make(t, h.path)
			ctx, cancel := context.WithTimeout(context.Background(), testkit.WaitLimit)
			defer cancel()
			checkNotRegular(t, h, h.e.Run(ctx, func() { t.Error("Run was ready on a log that is not a file") }))
			noFollowerLeft(t)
		})
		t.Run(k.name+" while following", func(t *testing.T) {
			h := newFollowHarness(t, ".", nil)
			h.appendEvents(h.newEvents(5)...)
			r := h.run()
			h.eventually("initial catch-up")
			k.make(t, h.path)
			select {
			case err := <-r.done:
				r.stopped = true
				checkNotRegular(t, h, err)
				noFollowerLeft(t)
			case <-time.After(testkit.WaitLimit):
				t.Fatalf("Run still running %v after the log became a %s", testkit.WaitLimit, k.name)
			}
		})
	}
}

func checkNotRegular(t *testing.T, h *harness, err error) {
	t.Helper()
	if !errors.Is(err, ErrNotRegular) || !strings.Contains(err.Error(), h.path) {
		t.Fatalf("Run returned %v, want ErrNotRegular naming %s", err, h.path)
	}
	if s := h.e.Status(); s.LastError == "" {
		t.Fatalf("the status does not carry the error: %+v", s)
	}
	h.wantIDs(h.modelIDs()...)
}
