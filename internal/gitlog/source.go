package gitlog

import (
	"context"
	"fmt"
	"sync"
)

// Source is the file at a ref of whichever repository holds its path,
// for a caller that follows it: each Stat finds the repository again
// (it may appear, vanish or be replaced while the caller runs) and
// resolves the ref. Its methods may be called concurrently.
type Source struct {
	file, ref string
	opts      Options

	mu     sync.Mutex
	closed bool
	repo   *Repo
}

// NewSource returns a Source for file (the path as the work tree would
// have it, e.g. /home/u/app/repo/data.json) at ref (see RefName). The
// repository need not exist yet.
func NewSource(file, ref string, opts *Options) (*Source, error) {
	if _, err := RefName(ref); err != nil {
		return nil, err
	}
	if _, err := opts.gitPath(); err != nil {
		return nil, err
	}
	s := &Source{file: file, ref: ref}
	if opts != nil {
		s.opts = *opts
	}
	return s, nil
}

// current finds the repository and returns a Repo for it (nil if there
// is none), replacing the one held if it moved.
func (s *Source) current() (*Repo, error) {
	loc, found, err := Find(s.file)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	if s.repo != nil && (!found || s.repo.loc != loc) {
		s.repo.Close()
		s.repo = nil
	}
	if found && s.repo == nil {
		if s.repo, err = Open(loc, &s.opts); err != nil {
			return nil, err
		}
	}
	return s.repo, nil
}

// Stat finds the repository and returns the file at the ref now; state
// NoRepository when there is no repository yet. When the repository
// found is not the one before (removed, or made anew elsewhere), the old
// one's children are stopped: a Blob still open on it fails with
// ErrClosed.
func (s *Source) Stat(ctx context.Context) (Snapshot, error) {
	r, err := s.current()
	if err != nil {
		return Snapshot{}, err
	}
	if r == nil {
		full, _ := RefName(s.ref)
		return Snapshot{State: NoRepository, Ref: full}, nil
	}
	return r.Stat(ctx, s.ref)
}

// Open streams the blob of snap (from Stat, in state Present). The
// repository's objects are immutable: the content is the snapshot's,
// however the ref moved since.
func (s *Source) Open(ctx context.Context, snap Snapshot) (*Blob, error) {
	if snap.State != Present {
		return nil, fmt.Errorf("gitlog: nothing to open: %s", snap.State)
	}
	s.mu.Lock()
	r, closed := s.repo, s.closed
	s.mu.Unlock()
	switch {
	case closed:
		return nil, ErrClosed
	case r == nil:
		return nil, fmt.Errorf("gitlog: the repository of %s is gone", s.file)
	}
	b, err := r.OpenBlob(ctx, snap.Blob)
	if err == nil && b.Size() != snap.Size {
		b.Close()
		return nil, fmt.Errorf("gitlog: blob %s has %d bytes, its snapshot said %d", snap.Blob, b.Size(), snap.Size)
	}
	return b, err
}

// Watches returns what to watch for the file at the ref to change: the
// repository's Watches, or while there is none, the file's directory
// (or the deepest existing one above it). A repository created above an
// existing directory of the file is not seen by these watches.
func (s *Source) Watches() (Watches, error) {
	r, err := s.current()
	if err != nil {
		return nil, err
	}
	if r == nil {
		return missingWatches(s.file)
	}
	return r.Watches(s.ref)
}

// Close stops the git children. Blobs still open fail with ErrClosed.
func (s *Source) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if s.repo != nil {
		s.repo.Close()
		s.repo = nil
	}
	return nil
}
