package mirror

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Run catches up with the log, calls ready (which may be nil), then
// follows the log until ctx is done, and returns nil then. Changes are
// pushed by inotify on the log's directory (a watch on the file itself
// would be lost when git replaces it); nothing polls except the safety
// check. A batch in hand when ctx is cancelled is finished first: the
// store is always at a checkpoint.
//
// Errors while following (an unreadable log, a failed write) are logged,
// kept in the status and retried with backoff; only a failure to start
// watching or a failure of the initial catch-up is returned.
func (e *Engine) Run(ctx context.Context, ready func()) error {
	if err := e.checkRefused(); err != nil {
		return err
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("starting the file watcher: %w", err)
	}
	defer w.Close()
	watched := map[string]bool{}
	watch := func(dir string) error {
		if watched[dir] {
			return nil
		}
		if err := w.Add(dir); err != nil {
			return fmt.Errorf("watching %s: %w", dir, err)
		}
		watched[dir] = true
		return nil
	}
	if err := watch(filepath.Dir(e.path)); err != nil {
		return err
	}
	// A symlinked log is also watched where it points, so that writes to
	// the target are seen; a re-pointed link shows up in its own directory.
	target := e.path
	followLink := func() {
		if t, err := filepath.EvalSymlinks(e.path); err == nil && t != target {
			if err := watch(filepath.Dir(t)); err != nil {
				e.log.Warn("cannot watch the log's symlink target; the safety check will catch its changes", "target", t, "err", err)
			}
			target = t
		}
	}
	followLink()

	// The initial catch-up: settle and retry until it is done.
	for {
		res, err := e.step(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		if res.action == actSettle || res.action == actAgain {
			if sleep(ctx, res.wait) != nil {
				return nil
			}
			continue
		}
		break
	}
	if ready != nil {
		ready()
	}

	var (
		timer    = time.NewTimer(time.Hour)
		timerSet bool
		safety   <-chan time.Time
		dirty    bool
		last     = time.Now()
		backoff  time.Duration
	)
	timer.Stop()
	defer timer.Stop()
	arm := func(d time.Duration) {
		if timerSet {
			timer.Stop()
		}
		timer.Reset(d)
		timerSet = true
	}
	var safetyTicker *time.Ticker
	resetSafety := func() {
		if safetyTicker != nil {
			safetyTicker.Stop()
			safetyTicker, safety = nil, nil
		}
		if e.opts.SafetyCheck > 0 {
			safetyTicker = time.NewTicker(e.opts.SafetyCheck)
			safety = safetyTicker.C
		}
	}
	resetSafety()
	defer func() {
		if safetyTicker != nil {
			safetyTicker.Stop()
		}
	}()
	// After an overflow or any watcher error, events may have been lost:
	// the next decision hashes the whole prefix, not only its tail.
	watchErr := func(err error) {
		if errors.Is(err, fsnotify.ErrEventOverflow) {
			e.log.Warn("file events overflowed; checking the whole log")
		} else {
			e.log.Warn("file watcher error; checking the whole log", "err", err)
		}
		e.doubt = true
	}
	var heartbeat <-chan time.Time
	if e.opts.Heartbeat > 0 && e.opts.OnHeartbeat != nil {
		t := time.NewTicker(e.opts.Heartbeat)
		defer t.Stop()
		heartbeat = t.C
		e.alive()
	}
	for {
		if dirty {
			if wait := e.opts.Debounce - time.Since(last); wait > 0 {
				arm(wait)
			} else {
				dirty = false
				last = time.Now()
				followLink()
				res, err := e.step(ctx)
				switch {
				case ctx.Err() != nil:
					return nil
				case err != nil:
					backoff = min(max(2*backoff, 500*time.Millisecond), 30*time.Second)
					e.log.Error("applying the log failed; retrying", "err", err, "retry_in", backoff)
					e.setError(err)
					arm(backoff)
				default:
					if backoff > 0 {
						e.log.Info("applying the log works again")
					}
					backoff = 0
					e.setError(nil) // a decision that succeeds clears a past failure
					if res.action == actSettle || res.action == actAgain {
						arm(res.wait)
					}
				}
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return errors.New("file watcher stopped")
			}
			if ev.Name == e.path || ev.Name == target {
				dirty = true
			}
		case err := <-e.testWatchErrors:
			watchErr(err)
			dirty = true
		case err, ok := <-w.Errors:
			if !ok {
				return errors.New("file watcher stopped")
			}
			watchErr(err)
			dirty = true
		case <-timer.C:
			timerSet = false
			dirty = true
		case <-safety:
			if st, err := statFile(e.path); err == nil && st != e.verified {
				e.doubt = true // changed since last verified whole
			}
			dirty = true
		case <-heartbeat:
			e.alive()
		case t := <-e.retime:
			e.applyTimings(t)
			resetSafety()
			e.log.Info("timings changed", "settle", e.opts.Settle, "debounce", e.opts.Debounce, "safety_check", e.opts.SafetyCheck)
		}
	}
}
