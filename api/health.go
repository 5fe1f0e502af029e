package api

import (
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"sync"
	"time"
)

// Waiting is the health of a daemon whose log at path does not exist:
// "waiting for the log: " and the path, then, when dir (a directory on the
// way to the log, mirror.Status.WaitingForDir) is not empty, that it does
// not exist either: the daemon waits for it first.
func Waiting(path, dir string) string {
	if dir == "" {
		return "waiting for the log: " + path
	}
	return "waiting for the log: " + path + " (directory " + dir + " does not exist)"
}

// healthTracker remembers since when the log has been ahead of an
// unchanged checkpoint, as seen by successive health checks.
type healthTracker struct {
	mu     sync.Mutex
	offset int64
	since  time.Time // zero: not behind
}

// Health reports whether the daemon is healthy, and why not:
//
//   - the last apply failed: unhealthy;
//   - the log is ahead of the checkpoint (beyond an incomplete value at its
//     end, which is the writer's business) and the checkpoint has not moved
//     for longer than the stall timeout: unhealthy, a stall that would
//     otherwise look healthy;
//   - otherwise healthy: "waiting for the log: <path>" while the log does
//     not exist, or a directory on its way (see Waiting; the store is kept
//     as it is: the log's absence is its writer's business, and no restart
//     of the daemon would mend it),
//     "starting: nothing mirrored yet" before the first load, "catching
//     up" or "caught up".
func (s *Server) Health() (bool, string) {
	st := s.cfg.Engine.Status()
	if st.LastError != "" {
		return false, "the last apply failed: " + st.LastError
	}
	fi, err := os.Stat(st.Path)
	if st.LogMissing || errors.Is(err, fs.ErrNotExist) {
		return true, Waiting(st.Path, st.WaitingForDir)
	}
	cp := st.Checkpoint
	if cp == nil {
		return true, "starting: nothing mirrored yet"
	}
	if err != nil {
		return false, fmt.Sprintf("cannot stat the log: %v", err)
	}
	ahead := fi.Size() - cp.Offset
	// An incomplete value at the very end is the writer's business, not a
	// stall; once the log has grown past it, it no longer excuses anything.
	if p := st.Pending; p != nil && p.Offset >= cp.Offset && p.Offset+p.Bytes >= fi.Size() {
		ahead = p.Offset - cp.Offset
	}
	stall := time.Duration(s.stall.Load())
	now := time.Now()
	h := &s.health
	h.mu.Lock()
	defer h.mu.Unlock()
	if ahead <= 0 && fi.Size() >= cp.Offset {
		h.since = time.Time{}
		return true, "caught up"
	}
	if h.since.IsZero() || h.offset != cp.Offset {
		h.offset, h.since = cp.Offset, now
		// A checkpoint that has not moved since long before the log last
		// changed is stalled even at the first look.
		if lastMove := cp.AppliedAt; !lastMove.IsZero() && now.Sub(lastMove) > stall && now.Sub(fi.ModTime()) > stall {
			h.since = lastMove
		}
	}
	if d := now.Sub(h.since); d > stall {
		what := "is ahead of"
		if fi.Size() < cp.Offset {
			what = "has shrunk below"
		}
		return false, fmt.Sprintf("stalled: the log %s the checkpoint (offset %d, log %d bytes) and the checkpoint has not moved for %s",
			what, cp.Offset, fi.Size(), d.Round(time.Second))
	}
	return true, "catching up"
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	ok, why := s.Health()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if !ok {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	fmt.Fprintln(w, why)
}
