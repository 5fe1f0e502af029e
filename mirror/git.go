package mirror

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mirrord/mirrord/internal/gitlog"
)

// Git mode (Options.GitRef): the log is the file as committed at a ref of
// the repository that holds Options.EventLog, read from git's objects;
// the work tree's copy is ignored. The application's recording devices
// commit each transaction in a temporary clone and push it into the
// repository's checked-out branch: their work tree's file never moves,
// the branch does.
//
// The engine is file mode's: each decision resolves the ref, and a blob
// other than the one mirrored is streamed into the spool (see spool),
// whose bytes are then tailed, reconciled or loaded as a file's would be.
// What stands for the file's identity is the blob: a ref that moved to a
// commit whose blob is the one mirrored (a commit that did not touch the
// log) reads nothing and writes nothing; a blob whose first Offset bytes
// hash as the checkpoint's prefix is a tail; anything else (a deletion, a
// force-push, a reset) a reconcile. A git object is complete and
// immutable: nothing settles, and nothing changes while it is read.
type gitMode struct {
	ref string // as configured (see gitlog.RefName)

	// src and spool exist while Run or Sync runs (attach); depth counts
	// the nested attachments (Resync's Sync).
	src   *gitlog.Source
	spool *spool
	depth int
	dir   string // where the spool is made

	// cur is the snapshot whose blob the spool holds and the decision in
	// hand applies; fill is what streaming it found.
	cur  gitlog.Snapshot
	fill fillResult
}

// attach starts what git mode reads with (the git children, the spool);
// the returned function stops it. In file mode both do nothing.
func (e *Engine) attach() (detach func(), err error) {
	g := e.git
	if g == nil {
		return func() {}, nil
	}
	if g.depth == 0 {
		src, err := gitlog.NewSource(e.path, g.ref, nil)
		if err != nil {
			return nil, err
		}
		sp, err := newSpool(g.dir)
		if err != nil {
			src.Close()
			return nil, err
		}
		g.src, g.spool, g.cur = src, sp, gitlog.Snapshot{}
	}
	g.depth++
	return func() {
		if g.depth--; g.depth == 0 {
			g.src.Close()
			g.spool.close()
			g.src, g.spool, g.cur = nil, nil, gitlog.Snapshot{}
		}
	}, nil
}

// gitStep is step in git mode: resolve the ref, and unless its blob is
// the one mirrored, bring the spool to it and decide on the spool.
func (e *Engine) gitStep(ctx context.Context) (stepResult, error) {
	g := e.git
	snap, err := g.src.Stat(ctx)
	if err != nil {
		return stepResult{}, fmt.Errorf("reading %s at %s: %w", e.path, g.ref, err)
	}
	e.updateStatus(func(s *Status) { s.Ref, s.Commit, s.Blob = snap.Ref, string(snap.Commit), string(snap.Blob) })
	if snap.State != gitlog.Present {
		return e.onMissing(snap.State.String()), nil
	}
	e.logBack()
	e.updateStatus(func(s *Status) {
		s.LogMissing, s.MissingSince, s.WaitingForDir, s.Missing = false, time.Time{}, "", ""
		s.LogSize = snap.Size
	})
	if e.mirrors(snap) {
		// A commit that did not touch the log: nothing to read, nothing
		// to write.
		return stepResult{action: actNone, caughtUp: true}, nil
	}
	if err := e.spoolBlob(ctx, snap); err != nil {
		return stepResult{}, err
	}
	st, err := fstat(g.spool.f)
	if err != nil {
		return stepResult{}, fmt.Errorf("git mode's copy of the log: %w", err)
	}
	return e.decide(ctx, g.spool.f, st)
}

// mirrors reports whether the store holds all of snap's blob already: the
// checkpoint was written from it, and reached its end.
func (e *Engine) mirrors(snap gitlog.Snapshot) bool {
	cp := e.cp
	return cp != nil && !e.bulk && !e.reconciling && cp.Blob == string(snap.Blob) && cp.Offset == snap.Size
}

// spoolBlob makes the spool hold snap's blob (unless it does already),
// hashing on the way the bytes the checkpoint says were mirrored.
func (e *Engine) spoolBlob(ctx context.Context, snap gitlog.Snapshot) error {
	g := e.git
	if g.spool.blob == snap.Blob {
		g.cur = snap
		return nil
	}
	if testHookGitRead != nil {
		testHookGitRead(snap)
	}
	// The checkpoint's prefix is hashed on the way, unless the spool holds
	// the checkpoint's own blob: comparing with it then says as much.
	var prefix int64
	if cp := e.cp; cp != nil && (cp.Blob == "" || g.spool.blob != gitlog.ID(cp.Blob)) {
		prefix = cp.Offset
	}
	b, err := g.src.Open(ctx, snap)
	if err != nil {
		return fmt.Errorf("reading %s at %s: %w", e.path, g.ref, err)
	}
	defer b.Close()
	res, err := g.spool.fill(ctx, b, snap.Blob, snap.Size, prefix)
	if err != nil {
		return fmt.Errorf("reading %s at %s (commit %s): %w", e.path, g.ref, snap.Commit, err)
	}
	g.cur, g.fill = snap, res
	e.log.Debug("read the log at the ref", "ref", snap.Ref, "commit", snap.Commit, "blob", snap.Blob,
		"size", snap.Size, "written", res.written)
	return nil
}

// testHookGitRead, when set by a test, runs as a blob starts being read.
var testHookGitRead func(gitlog.Snapshot)

// gitContinues is canTail in git mode: the blob in the spool continues
// the checkpoint if it is the blob the checkpoint was written from (an
// object never changes), or if it is at least as long and its first
// Offset bytes are the checkpoint's: the same bytes as the checkpoint's
// blob, which the spool held before, or bytes that hash as the
// checkpoint's prefix did (hashed while the blob was streamed, or now from
// the spool).
func (e *Engine) gitContinues(st fileStat) (bool, error) {
	g, cp := e.git, e.cp
	switch {
	case cp.Offset == 0 || cp.Blob != "" && cp.Blob == string(g.cur.Blob):
		return true, nil
	case st.Size < cp.Offset:
		return false, nil
	case cp.Blob != "" && string(g.fill.held) == cp.Blob:
		if g.fill.same < cp.Offset {
			e.log.Info("the log at the ref does not continue the checkpoint; reconciling", "ref", g.cur.Ref,
				"commit", g.cur.Commit, "offset", cp.Offset, "first_difference", g.fill.same)
			return false, nil
		}
		return true, nil
	}
	sum := g.fill.prefixSum
	if g.fill.prefixLen != cp.Offset {
		var err error
		if sum, err = hashPrefix(g.spool.f, cp.Offset); err != nil {
			return false, err
		}
		g.fill.prefixLen, g.fill.prefixSum = cp.Offset, sum
	}
	if sum != uint64(cp.PrefixSum) {
		e.log.Info("the log at the ref does not continue the checkpoint; reconciling", "ref", g.cur.Ref,
			"commit", g.cur.Commit, "offset", cp.Offset)
		return false, nil
	}
	return true, nil
}

// identify records in a checkpoint where its bytes came from: the file's
// identity, size and mtime in file mode; in git mode the ref, commit and
// blob (the ref is the identity: the spool's inode and mtime mean
// nothing beyond this process).
func (e *Engine) identify(cp *Checkpoint, st fileStat) {
	cp.Size = st.Size
	if e.git == nil {
		cp.Dev, cp.Ino, cp.MTime = st.Dev, st.Ino, st.MTime
		cp.Ref, cp.Commit, cp.Blob = "", "", ""
		return
	}
	cur := e.git.cur
	cp.Dev, cp.Ino, cp.MTime = 0, 0, 0
	cp.Ref, cp.Commit, cp.Blob = cur.Ref, string(cur.Commit), string(cur.Blob)
}

// gitPresent reports, for Resync, whether the log exists at the ref.
func (e *Engine) gitPresent(ctx context.Context) error {
	snap, err := e.git.src.Stat(ctx)
	switch {
	case err != nil:
		return fmt.Errorf("reading %s at %s: %w (the store is kept as it is)", e.path, e.git.ref, err)
	case snap.State != gitlog.Present:
		return fmt.Errorf("%w: %s at %s: %s (the store is kept as it is; resync once the log is back)", ErrLogMissing, e.path, e.git.ref, snap.State)
	}
	return nil
}

// fatal reports whether a decision's error is one that retrying cannot
// mend: the log's path names something other than a file, or the
// repository keeps its refs in a form this mirrord cannot read.
func fatal(err error) bool {
	return errors.Is(err, ErrNotRegular) || errors.Is(err, gitlog.ErrReftable)
}
