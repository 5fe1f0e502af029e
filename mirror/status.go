package mirror

import (
	"fmt"
	"os"
	"time"

	"github.com/mirrord/mirrord/eventlog"
)

// Status is what the engine reports about itself (mirrord status, the
// socket API, systemd STATUS= lines).
type Status struct {
	Path string `json:"path"`
	// Checkpoint is the store's checkpoint (nil before the first load).
	Checkpoint *Checkpoint `json:"checkpoint,omitempty"`
	// LogSize is the log's size at the last decision; Lag is LogSize
	// minus the checkpoint's offset.
	LogSize int64 `json:"log_size"`
	Lag     int64 `json:"lag_bytes"`
	// LogMissing: the log did not exist at the last decision; the store is
	// kept as it is, and Run waits for the log to return. MissingSince is
	// when this absence was first seen: a routine git update removes the
	// file for milliseconds, so a short absence is no cause for alarm.
	LogMissing   bool      `json:"log_missing,omitempty"`
	MissingSince time.Time `json:"missing_since,omitzero"`
	// WaitingForDir is, while the log is missing because a directory on
	// its way does not exist (the application has not made its working
	// tree yet, or a user is re-cloning it), the first such directory.
	// Run watches its parent and takes the log up as soon as it appears.
	WaitingForDir string `json:"waiting_for_dir,omitempty"`
	// Missing says, in git mode, what is missing while LogMissing: "no
	// repository", "no such ref" or "no such file at the ref".
	Missing string `json:"missing,omitempty"`
	// Ref, Commit and Blob are, in git mode, the ref followed (its full
	// name), the commit it named at the last decision and the log's blob
	// in that commit. The checkpoint's Commit and Blob are those of the
	// content mirrored, which a later commit that did not touch the log
	// leaves as they were.
	Ref    string `json:"ref,omitempty"`
	Commit string `json:"commit,omitempty"`
	Blob   string `json:"blob,omitempty"`
	// Hint is advice about the configuration, said once at start: in file
	// mode, that the log's work tree looks stale (its file is not the one
	// committed at HEAD) and that the git-ref setting follows the branch.
	Hint string `json:"hint,omitempty"`
	// Resyncing: a resync or first load is in progress.
	Resyncing bool `json:"resyncing,omitempty"`
	// Reconciling: a reconcile spanning several batches is in progress.
	Reconciling bool `json:"reconciling,omitempty"`
	// Diverged says why the log is not a continuation of the checkpoint
	// (rewritten, replaced, truncated): the store does not reflect it
	// until a reconcile. Empty when the log continues the checkpoint.
	Diverged string `json:"diverged,omitempty"`
	// Pending describes an incomplete value at the end of the log.
	Pending *PendingTail `json:"pending,omitempty"`
	// Held counts deletions held because the log ends incomplete.
	Held int `json:"held_deletions,omitempty"`
	// Reconciles and Resyncs count the completed ones since the engine
	// started.
	Reconciles int64     `json:"reconciles"`
	Resyncs    int64     `json:"resyncs"`
	LastApply  Applied   `json:"last_apply,omitzero"`
	LastError  string    `json:"last_error,omitempty"`
	Updated    time.Time `json:"updated"`
}

// PendingTail is an incomplete value at the end of the log.
type PendingTail struct {
	Offset int64  `json:"offset"`
	Line   int    `json:"line"`
	Bytes  int64  `json:"bytes"`
	Reason string `json:"reason"`
}

// Status returns a snapshot of the engine's status. It is safe to call
// from any goroutine.
func (e *Engine) Status() Status {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.status
	if s.Checkpoint != nil {
		c := *s.Checkpoint
		s.Checkpoint = &c
	}
	if s.Pending != nil {
		p := *s.Pending
		s.Pending = &p
	}
	return s
}

// updateStatus applies fn to the status and refreshes the fields derived
// from the engine's state.
func (e *Engine) updateStatus(fn func(*Status)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	fn(&e.status)
	e.status.Path = e.path
	e.status.Resyncing = e.bulk
	if e.cp != nil {
		c := *e.cp
		c.State = nil
		e.status.Checkpoint = &c
		e.status.Lag = max(0, e.status.LogSize-c.Offset)
	}
	e.status.Updated = e.opts.Now()
}

func (e *Engine) setError(err error) {
	e.updateStatus(func(s *Status) {
		if err == nil {
			s.LastError = ""
		} else {
			s.LastError = err.Error()
		}
	})
}

// diverged says how the log stopped continuing the checkpoint: the same
// cheap check the engine makes on every change.
func diverged(f *os.File, st fileStat, cp *Checkpoint) (string, error) {
	switch {
	case cp.Offset == 0:
		return "", nil
	case !cp.sameFile(st):
		return "the log was replaced (another file now has its name)", nil
	case st.Size < cp.Offset:
		return fmt.Sprintf("the log shrank below the checkpoint (%d < %d bytes)", st.Size, cp.Offset), nil
	}
	tail, err := readTail(f, cp.Offset)
	if err != nil {
		return "", err
	}
	if eventlog.TailSum64(tail) != uint64(cp.TailSum) {
		return "the log was rewritten before the checkpoint", nil
	}
	return "", nil
}
