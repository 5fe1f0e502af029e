package mirror

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/mirrord/mirrord/eventlog"
)

// action is what one decision did or asks for.
type action int

const (
	actNone      action = iota // the store already equals the log
	actTail                    // applied what was appended
	actReconcile               // applied the difference with a rewritten or replaced log
	actMissing                 // the log does not exist: nothing done
	actSettle                  // the log changed too recently to reconcile: retry after wait
	actAgain                   // the log changed while being read: retry after wait
	actHeld                    // deletions held: the log ends in an incomplete value
)

func (a action) String() string {
	return [...]string{"none", "tail", "reconcile", "missing", "settle", "again", "held"}[a]
}

type stepResult struct {
	action action
	wait   time.Duration
	// caughtUp: the store reflects every complete value of the log as it
	// was read.
	caughtUp bool
}

// step is the engine's decision (see the package doc), made at start and
// on every change: the log is missing (keep the store), or it grew from
// the checkpoint with a matching fingerprint (tail), or anything else
// happened (reconcile).
func (e *Engine) step(ctx context.Context) (stepResult, error) {
	if err := ctx.Err(); err != nil {
		return stepResult{}, err
	}
	if e.git != nil {
		return e.gitStep(ctx)
	}
	f, err := openLog(e.path)
	if isNotExist(err) {
		return e.onMissing(""), nil
	}
	if err != nil {
		return stepResult{}, err
	}
	defer f.Close()
	st, err := fstat(f)
	if err != nil {
		return stepResult{}, fmt.Errorf("stat of the event log: %w", err)
	}
	e.logBack()
	e.updateStatus(func(s *Status) {
		s.LogMissing, s.MissingSince, s.WaitingForDir = false, time.Time{}, ""
		s.LogSize = st.Size
	})
	res, err := e.decide(ctx, f, st)
	if err == nil && res.caughtUp {
		e.known = st
	}
	return res, err
}

// decide makes the decision on the open log.
func (e *Engine) decide(ctx context.Context, f *os.File, st fileStat) (stepResult, error) {
	if e.cp == nil {
		if err := e.beginBulk("first load of an empty store"); err != nil {
			return stepResult{}, err
		}
	}
	if e.bulk && e.cp.Offset == 0 {
		return e.bulkLoad(ctx, f, st)
	}
	if !e.reconciling {
		if e.git == nil && e.writtenInPlace(st) {
			// The fingerprint of the tail window cannot see an edit
			// further back: once the writer is done, the whole prefix is
			// checked, as at start.
			if ok, wait := e.settled(st); !ok {
				return stepResult{action: actSettle, wait: wait}, nil
			}
			e.log.Debug("the log was written without growing; checking the whole of it", "path", e.path)
			e.doubt = true
		}
		ok, err := e.canTail(f, st)
		if err != nil {
			return stepResult{}, err
		}
		if ok {
			return e.tail(ctx, f, st)
		}
	}
	return e.reconcile(ctx, f, st)
}

// writtenInPlace reports whether the log was written without growing
// since the store last caught up with it: the same file, the same size,
// but a new mtime or ctime (an edit of the same length before the
// checkpoint, which moves neither the size nor, unless it falls in the
// last 4 KiB, the tail's fingerprint).
func (e *Engine) writtenInPlace(st fileStat) bool {
	k := e.known
	if e.doubt || e.cp.Offset == 0 || k.Ino == 0 {
		return false
	}
	return st.Dev == k.Dev && st.Ino == k.Ino && st.Size == k.Size &&
		(st.MTime != k.MTime || st.CTime != k.CTime)
}

// onMissing keeps the store as it is and says so: the log is missing,
// and, when a directory on its way is missing too, which one Run waits
// for. In git mode, what is missing says which of the repository, the
// ref or the file at the ref is.
func (e *Engine) onMissing(what string) stepResult {
	dir := missingDir(e.path)
	e.updateStatus(func(s *Status) {
		if !s.LogMissing {
			s.MissingSince = e.opts.Now()
		}
		s.LogMissing, s.WaitingForDir, s.Missing = true, dir, what
	})
	e.logGone(dir)
	return stepResult{action: actMissing}
}

// canTail reports whether the open log continues the checkpoint: same
// file, not shorter, and the bytes before the offset hash as they did.
// After any doubt the whole prefix is hashed, not only its tail.
func (e *Engine) canTail(f *os.File, st fileStat) (bool, error) {
	cp := e.cp
	if cp.Offset == 0 {
		return true, nil // nothing consumed: any file continues it
	}
	if e.git != nil {
		return e.gitContinues(st)
	}
	if !cp.sameFile(st) || st.Size < cp.Offset {
		return false, nil
	}
	tail, err := readTail(f, cp.Offset)
	if err != nil {
		return false, err
	}
	if eventlog.TailSum64(tail) != uint64(cp.TailSum) {
		return false, nil
	}
	if e.doubt {
		sum, err := hashPrefix(f, cp.Offset)
		if err != nil {
			return false, err
		}
		if sum != uint64(cp.PrefixSum) {
			e.log.Info("the log changed before the checkpoint", "offset", cp.Offset)
			return false, nil
		}
		e.doubt = false
		e.verified = st
	}
	return true, nil
}

// openLog opens the log for reading without ever blocking (a FIFO put in
// its place would block a plain open until a writer came) and refuses
// anything but a regular file.
func openLog(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		if isNotExist(err) {
			return nil, err
		}
		return nil, fmt.Errorf("opening the event log: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("stat of the event log: %w", err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%w: %s is %s", ErrNotRegular, path, describeType(fi.Mode()))
	}
	return f, nil
}

// describeType names what a path is when it is not a regular file.
func describeType(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe (FIFO)"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	default:
		return fmt.Sprintf("of type %s", m.Type())
	}
}

// readTail reads the TailSize bytes before off.
func readTail(f *os.File, off int64) ([]byte, error) {
	start := max(0, off-eventlog.TailSize)
	b := make([]byte, off-start)
	if _, err := f.ReadAt(b, start); err != nil {
		return nil, fmt.Errorf("reading the event log at %d: %w", start, err)
	}
	return b, nil
}

// hashPrefix hashes [0, n) of f.
func hashPrefix(f *os.File, n int64) (uint64, error) {
	d := xxhash.New()
	if _, err := io.Copy(d, io.NewSectionReader(f, 0, n)); err != nil {
		return 0, fmt.Errorf("reading the event log: %w", err)
	}
	return d.Sum64(), nil
}

// settled reports whether the log has been unchanged for the settle
// interval: by its mtime, or, when the clock and the mtime disagree, by
// what this engine observed. In git mode it always has.
func (e *Engine) settled(st fileStat) (bool, time.Duration) {
	if e.git != nil {
		return true, 0 // a git object is complete, and never changes
	}
	now := e.opts.Now()
	if age := now.Sub(time.Unix(0, st.MTime)); age >= e.opts.Settle {
		return true, 0
	}
	if e.seen != st {
		e.seen, e.seenAt = st, now
	}
	if d := now.Sub(e.seenAt); d < e.opts.Settle {
		return false, e.opts.Settle - d
	}
	return true, 0
}
