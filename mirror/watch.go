package mirror

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/mirrord/mirrord/internal/ctxtime"
)

// Run catches up with the log, calls ready (which may be nil), then
// follows the log until ctx is done, and returns nil then. Changes are
// pushed by inotify on the log's directory (a watch on the file itself
// would be lost when git replaces it), in git mode on the directories of
// the ref's files; nothing polls except the safety check. A batch in hand
// when ctx is cancelled is finished first: the store is always at a
// checkpoint. The git children of git mode run while Run does.
//
// A log that does not exist, even one whose directory does not exist yet,
// is waited for: Run watches the nearest existing ancestor and takes the
// log up as soon as its directory and the file appear. A directory
// deleted or replaced under it (a re-clone) is noticed from its own
// events, and watched again.
//
// Errors while following (an unreadable log, a failed write) are logged,
// kept in the status and retried with backoff. Run returns an error when
// it cannot start watching, when the initial catch-up fails, when the
// log's path names something other than a regular file (ErrNotRegular),
// or, in git mode, when the repository keeps its refs in a reftable
// (ErrReftable).
// (A store that fails for good ends the process: kv.Options.OnFatal.)
// Every goroutine and
// timer it starts is stopped when it returns.
func (e *Engine) Run(ctx context.Context, ready func()) error {
	if err := e.checkRefused(); err != nil {
		return err
	}
	detach, err := e.attach()
	if err != nil {
		return err
	}
	defer detach()
	var src source = &fileSource{path: e.path}
	if e.git != nil {
		src = &gitSource{src: e.git.src}
	}
	f, err := e.newFollower(src)
	if err != nil {
		return err
	}
	defer f.close()
	e.checkWorkTree(ctx)
	if stop, err := f.catchUp(ctx); stop {
		return err
	}
	if ready != nil {
		ready()
	}
	return f.readEvents(ctx)
}

// follower is Run's state: the watches on the source, the timers, and
// whether a decision is due.
type follower struct {
	e    *Engine
	w    *fsnotify.Watcher
	dirs dirWatch

	// timer is the next decision: after the debounce interval, a settle
	// wait or a backoff.
	timer    *time.Timer
	timerSet bool
	safety   *time.Ticker // nil when the safety check is off
	safetyC  <-chan time.Time
	beat     *time.Ticker // nil without a heartbeat
	beatC    <-chan time.Time

	dirty     bool      // a decision is due
	last      time.Time // when the last decision was made
	backoff   time.Duration
	watchFail string // the last error putting the watches in place
}

var errWatcherStopped = errors.New("file watcher stopped")

// newFollower starts watching src. A directory that does not exist is no
// error (its nearest existing ancestor is watched instead); anything else
// that keeps the watches from being put in place is.
func (e *Engine) newFollower(src source) (*follower, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("starting the file watcher: %w", err)
	}
	f := &follower{e: e, w: w, dirs: dirWatch{w: w, src: src, dirs: map[string]*watched{}}}
	if _, err := f.dirs.update(); err != nil {
		w.Close()
		return nil, err
	}
	f.timer = time.NewTimer(time.Hour)
	f.timer.Stop()
	e.absence.timer = time.NewTimer(time.Hour)
	e.absence.timer.Stop()
	if !e.absence.since.IsZero() && !e.absence.warned {
		e.absence.timer.Reset(e.opts.Settle) // missing since a Sync before Run
	}
	f.resetSafety()
	return f, nil
}

// close stops every timer and the watcher (whose Close waits for its
// goroutine).
func (f *follower) close() {
	f.timer.Stop()
	f.e.absence.timer.Stop()
	f.e.absence.timer = nil
	if f.safety != nil {
		f.safety.Stop()
	}
	if f.beat != nil {
		f.beat.Stop()
	}
	f.w.Close()
}

// catchUp decides until the store has caught up with the log (or the log
// is missing): it settles and retries what asks for it. stop says Run
// must return, with err.
func (f *follower) catchUp(ctx context.Context) (stop bool, err error) {
	for {
		res, err := f.e.step(ctx)
		if ctx.Err() != nil {
			return true, nil
		}
		if err != nil {
			f.e.setError(err)
			return true, err
		}
		if res.action != actSettle && res.action != actAgain {
			return false, nil
		}
		if ctxtime.Sleep(ctx, res.wait) != nil {
			return true, nil
		}
	}
}

// readEvents is the follow loop: it makes a decision when one is due,
// then waits for the next thing to happen.
func (f *follower) readEvents(ctx context.Context) error {
	e := f.e
	if e.opts.Heartbeat > 0 && e.opts.OnHeartbeat != nil {
		f.beat = time.NewTicker(e.opts.Heartbeat)
		f.beatC = f.beat.C
		e.alive()
	}
	for {
		if f.dirty {
			if err := f.decide(ctx); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-f.w.Events:
			if !ok {
				return errWatcherStopped
			}
			f.handleEvent(ev)
		case err, ok := <-f.w.Errors:
			if !ok {
				return errWatcherStopped
			}
			f.watchErr(err)
		case err := <-e.testWatchErrors:
			f.watchErr(err)
		case <-f.timer.C:
			f.timerSet = false
			f.dirty = true
		case <-f.safetyC:
			f.safetyCheck()
		case <-e.absence.timer.C:
			e.absenceOutlasted()
		case <-f.beatC:
			e.alive()
		case t := <-e.retime:
			e.applyTimings(t)
			f.resetSafety()
			e.log.Info("timings changed", "settle", e.opts.Settle, "debounce", e.opts.Debounce, "safety_check", e.opts.SafetyCheck)
		}
	}
}

// handleEvent marks a decision due for an event that concerns the source,
// and first puts the watches in place again when a directory on the way
// appeared, went or was replaced: the next event may already be in the
// new directory.
func (f *follower) handleEvent(ev fsnotify.Event) {
	switch f.dirs.classify(ev) {
	case evChange:
		f.dirty = true
	case evPath:
		f.rewatch()
		f.dirty = true
	}
}

// rewatch makes the watches equal to the source's current watch set. A
// failure is logged once (and its end too); meanwhile the safety check
// covers what the missing watch would have reported.
func (f *follower) rewatch() {
	changed, err := f.dirs.update()
	switch {
	case err != nil && err.Error() != f.watchFail:
		f.e.log.Warn("cannot watch the log's directory (in git mode, its repository's refs); the safety check will catch its changes", "path", f.e.path, "err", err)
		f.watchFail = err.Error()
	case err == nil && f.watchFail != "":
		f.e.log.Info("watching the log's directory again", "path", f.e.path)
		f.watchFail = ""
	}
	if changed {
		f.dirty = true
	}
}

// decide makes the decision that is due, unless the debounce interval
// asks to wait: the first change after a quiet spell applies at once, a
// burst becomes one apply. It returns an error only when Run must end.
func (f *follower) decide(ctx context.Context) error {
	e := f.e
	if wait := e.opts.Debounce - time.Since(f.last); wait > 0 {
		f.arm(wait)
		return nil
	}
	// A symlink re-pointed, or a directory replaced unseen: what to watch
	// is looked at before every decision (a few stats).
	f.rewatch()
	f.dirty = false
	f.last = time.Now()
	res, err := e.step(ctx)
	switch {
	case ctx.Err() != nil:
		return nil
	case fatal(err):
		// The log's path is not a file at all, or its repository cannot be
		// read: retrying is futile. Run ends with the error, so that the
		// daemon exits non-zero. (A store that cannot go on ends the
		// process itself: kv.Options.OnFatal.)
		e.setError(err)
		return err
	case err != nil:
		f.backoff = min(max(2*f.backoff, 500*time.Millisecond), 30*time.Second)
		e.log.Error("applying the log failed; retrying", "err", err, "retry_in", f.backoff)
		e.setError(err)
		f.arm(f.backoff)
	default:
		if f.backoff > 0 {
			e.log.Info("applying the log works again")
		}
		f.backoff = 0
		e.setError(nil) // a decision that succeeds clears a past failure
		if res.action == actSettle || res.action == actAgain {
			f.arm(res.wait)
		}
	}
	return nil
}

func (f *follower) arm(d time.Duration) {
	if f.timerSet {
		f.timer.Stop()
	}
	f.timer.Reset(d)
	f.timerSet = true
}

// watchErr: after an overflow or any watcher error, events may have been
// lost, so the next decision hashes the whole prefix, not only its tail
// (and looks again at what to watch, as every decision does).
func (f *follower) watchErr(err error) {
	if errors.Is(err, fsnotify.ErrEventOverflow) {
		f.e.log.Warn("file events overflowed; checking the whole log")
	} else {
		f.e.log.Warn("file watcher error; checking the whole log", "err", err)
	}
	f.e.doubt = true
	f.dirty = true
}

// safetyCheck catches what inotify can miss (a write through a hard link
// elsewhere, a directory replaced by a rename of one of its ancestors):
// the decision it asks for looks at the watches again, and a log changed
// since its prefix was last verified whole is verified whole again.
//
// In git mode the decision resolves the ref and compares its blob with
// the one mirrored: a blob is immutable, so that is the whole check.
func (f *follower) safetyCheck() {
	if f.e.git == nil {
		if st, err := statFile(f.e.path); err == nil && st != f.e.verified {
			f.e.doubt = true
		}
	}
	f.dirty = true
}

func (f *follower) resetSafety() {
	if f.safety != nil {
		f.safety.Stop()
		f.safety, f.safetyC = nil, nil
	}
	if f.e.opts.SafetyCheck > 0 {
		f.safety = time.NewTicker(f.e.opts.SafetyCheck)
		f.safetyC = f.safety.C
	}
}
