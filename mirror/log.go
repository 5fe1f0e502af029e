package mirror

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/mirrord/mirrord/internal/gitlog"
	"github.com/mirrord/mirrord/kv"
	"github.com/mirrord/mirrord/schema"
)

// Log says where the log is read, for the functions that read it without
// an engine (VerifyLog, ReadLogStatus): the file at Path, or, when GitRef
// is set, that file as committed at GitRef of the repository that holds
// Path (git mode; see Options.GitRef).
type Log struct {
	Path   string
	GitRef string
	// TempDir is where git mode copies the blob it reads ("": the
	// system's temporary directory; SpoolDir names the store's).
	TempDir string
}

// atRef is the log at a ref, copied to a spool: for verify, which reads
// values back by offset.
type atRef struct {
	src   *gitlog.Source
	spool *spool
	snap  gitlog.Snapshot
}

func (a *atRef) close() {
	a.spool.close()
	a.src.Close()
}

// openAtRef reads the blob at log's ref into a new spool. A log missing
// at the ref (no repository, ref or file) is ErrLogMissing.
func openAtRef(ctx context.Context, log Log) (*atRef, error) {
	path, err := filepath.Abs(log.Path)
	if err != nil {
		return nil, err
	}
	src, err := gitlog.NewSource(path, log.GitRef, nil)
	if err != nil {
		return nil, err
	}
	a := &atRef{src: src}
	ok := false
	defer func() {
		if !ok {
			a.close()
		}
	}()
	if a.snap, err = src.Stat(ctx); err != nil {
		return nil, fmt.Errorf("reading %s at %s: %w", path, log.GitRef, err)
	}
	if a.snap.State != gitlog.Present {
		return nil, fmt.Errorf("%w: %s at %s: %s", ErrLogMissing, path, log.GitRef, a.snap.State)
	}
	if a.spool, err = newSpool(log.TempDir); err != nil {
		return nil, err
	}
	b, err := src.Open(ctx, a.snap)
	if err != nil {
		return nil, fmt.Errorf("reading %s at %s: %w", path, log.GitRef, err)
	}
	defer b.Close()
	if _, err := a.spool.fill(ctx, b, a.snap.Blob, a.snap.Size, 0); err != nil {
		return nil, fmt.Errorf("reading %s at %s (commit %s): %w", path, log.GitRef, a.snap.Commit, err)
	}
	ok = true
	return a, nil
}

// ReadStatus reports on a store no engine is running on: its checkpoint
// and markers, and the log as it stands now.
func ReadStatus(db kv.Reader, path string) (Status, error) {
	return ReadLogStatus(context.Background(), db, Log{Path: path})
}

// ReadLogStatus is ReadStatus of the log as the engine reads it: in git
// mode, the ref's commit and blob, without reading the blob. In file
// mode, the hint of a stale work tree is looked for too (see
// Status.Hint).
func ReadLogStatus(ctx context.Context, db kv.Reader, log Log) (Status, error) {
	s := Status{Path: log.Path, Updated: time.Now()}
	var cp Checkpoint
	found, err := db.Get(schema.CheckpointKey, &cp)
	if err != nil {
		return s, err
	}
	if found {
		cp.State = nil
		s.Checkpoint = &cp
	}
	if s.Resyncing, err = db.Get(schema.ResyncMarkerKey, nil); err != nil {
		return s, err
	}
	if s.Reconciling, err = db.Get(schema.ReconcileMarkerKey, nil); err != nil {
		return s, err
	}
	if log.GitRef != "" {
		return s, readGitStatus(ctx, &s, log)
	}
	s.Hint = staleWorkTree(ctx, log.Path)
	return s, readFileStatus(&s, log.Path)
}

// readFileStatus adds to s what the file says now.
func readFileStatus(s *Status, path string) error {
	f, err := openLog(path)
	switch {
	case isNotExist(err):
		s.LogMissing, s.WaitingForDir = true, missingDir(path)
		return nil
	case err != nil:
		return err
	}
	defer f.Close()
	st, err := fstat(f)
	if err != nil {
		return err
	}
	s.LogSize = st.Size
	if s.Checkpoint != nil {
		s.Lag = max(0, st.Size-s.Checkpoint.Offset)
		s.Diverged, err = diverged(f, st, s.Checkpoint)
	}
	return err
}

// readGitStatus adds to s what the ref says now. Whether a blob other
// than the checkpoint's continues it is known only once it is read; a
// shorter one cannot.
func readGitStatus(ctx context.Context, s *Status, log Log) error {
	path, err := filepath.Abs(log.Path)
	if err != nil {
		return err
	}
	src, err := gitlog.NewSource(path, log.GitRef, nil)
	if err != nil {
		return err
	}
	defer src.Close()
	snap, err := src.Stat(ctx)
	if err != nil {
		return fmt.Errorf("reading %s at %s: %w", path, log.GitRef, err)
	}
	s.Ref, s.Commit, s.Blob = snap.Ref, string(snap.Commit), string(snap.Blob)
	if snap.State != gitlog.Present {
		s.LogMissing, s.Missing, s.WaitingForDir = true, snap.State.String(), missingDir(path)
		return nil
	}
	s.LogSize = snap.Size
	if cp := s.Checkpoint; cp != nil {
		s.Lag = max(0, snap.Size-cp.Offset)
		if cp.Blob != string(snap.Blob) && snap.Size < cp.Offset {
			s.Diverged = fmt.Sprintf("the log at the ref shrank below the checkpoint (%d < %d bytes)", snap.Size, cp.Offset)
		}
	}
	return nil
}
