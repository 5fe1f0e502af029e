package mirror

import (
	"time"
)

// absence is one spell of the log being missing. A routine git update
// removes the file for milliseconds before putting the new one in place;
// that is not worth a warning. An absence is therefore reported at debug
// level, and as a warning only once it has lasted Settle (Run arms a timer
// when it starts and stops it when the log returns: nothing polls); only
// the end of an absence that was warned about is an info line.
type absence struct {
	since  time.Time // zero: the log is present
	warned bool
	// timer fires when an absence has lasted Settle; set while Run follows
	// the log (Sync reports a missing log to its caller instead).
	timer *time.Timer
}

// logGone records that the log is missing (again).
func (e *Engine) logGone(waitingFor string) {
	a := &e.absence
	if !a.since.IsZero() {
		return
	}
	a.since = e.opts.Now()
	e.log.Debug("event log is missing", e.missingArgs(waitingFor)...)
	if a.timer != nil {
		a.timer.Reset(e.opts.Settle)
	}
}

// logBack records that the log exists.
func (e *Engine) logBack() {
	a := &e.absence
	if a.since.IsZero() {
		return
	}
	if a.timer != nil {
		a.timer.Stop()
	}
	after := e.opts.Now().Sub(a.since).Round(time.Millisecond)
	if a.warned {
		e.log.Info("event log is back", "path", e.path, "after", after)
	} else {
		e.log.Debug("event log is back", "path", e.path, "after", after)
	}
	a.since, a.warned = time.Time{}, false
}

// absenceOutlasted is called when the absence timer fires: the log has
// been missing for Settle, which no routine replacement takes.
func (e *Engine) absenceOutlasted() {
	a := &e.absence
	if a.since.IsZero() || a.warned {
		return
	}
	a.warned = true
	e.log.Warn("event log is missing; keeping the store as it is until it returns",
		e.missingArgs(e.Status().WaitingForDir)...)
}

// missingArgs are the log line's attributes of an absence: the path, and
// the directory waited for, or, in git mode, the ref and what is missing.
func (e *Engine) missingArgs(waitingFor string) []any {
	args := []any{"path", e.path}
	if e.git != nil {
		args = append(args, "ref", e.git.ref, "missing", e.Status().Missing)
	}
	if waitingFor != "" {
		args = append(args, "waiting_for_dir", waitingFor)
	}
	return args
}
