package gitlog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// ErrClosed is returned by a Repo, Source or Blob used after Close.
var ErrClosed = errors.New("gitlog: closed")

// Options configures a Repo or a Source. A nil *Options means the
// defaults.
type Options struct {
	// Git is the git program: a path, or a name looked up in PATH.
	// "" means "git".
	Git string
}

// gitPath validates opts and returns the git program's path.
func (o *Options) gitPath() (string, error) {
	name := "git"
	if o != nil && o.Git != "" {
		name = o.Git
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("gitlog: the git program: %w", err)
	}
	return p, nil
}

// State says whether a Snapshot found the file, and if not, what is
// missing. Every state but Present is one to wait in: the repository,
// ref or file may appear later.
type State int

const (
	// Present: the file exists at the ref.
	Present State = iota
	// NoRepository: no repository holds the file's path (yet).
	NoRepository
	// NoRef: the ref does not exist, or is a symbolic ref to one that
	// does not (an unborn branch).
	NoRef
	// NoFile: the ref's commit has no file at the path.
	NoFile
)

// String names the state for logs and status.
func (s State) String() string {
	switch s {
	case Present:
		return "present"
	case NoRepository:
		return "no repository"
	case NoRef:
		return "no such ref"
	case NoFile:
		return "no such file at the ref"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// Snapshot is the file at a ref at one moment.
type Snapshot struct {
	State State
	// Ref is the ref followed, by its full name; Target is the ref that
	// held the commit, at the end of its symbolic refs (Ref itself
	// unless it is symbolic).
	Ref, Target string
	// Commit is the commit the ref named ("" in state NoRef or
	// NoRepository); an annotated tag is peeled to it.
	Commit ID
	// Blob and Size are the file's content's object name and length in
	// bytes (state Present only).
	Blob ID
	Size int64
}

// Repo reads refs and objects of one repository without writing to it.
// Refs are read from the files; objects are looked up by one long-lived
// "git cat-file --batch-check" child (started on first use, restarted
// if it dies); a small blob is read whole by a long-lived "git cat-file
// --batch" child, a larger one streamed by a "git cat-file blob" child of
// its own. Its methods may be called concurrently.
type Repo struct {
	loc Location
	git string

	req sync.Mutex // one request at a time to the batch children

	mu     sync.Mutex // guards what follows
	closed bool
	check  *batch // --batch-check
	cat    *batch // --batch
	blobs  map[*Blob]struct{}
}

// smallBlob is the size up to which a blob is read whole by the
// long-lived --batch child rather than streamed by a child of its own.
// Starting a git process costs a few milliseconds, as much as reading a
// 1k-event log (680 KB) and more than half of an append's latency on it;
// a blob this small costs as little memory, and git's own memory for it
// (a delta chain of versions this small) stays small in the long-lived
// child. Above it the child of its own streams the blob through a pipe,
// and what inflating a large deltified blob costs git (hundreds of MB)
// is given back when that child exits.
const smallBlob = 2 << 20

// Open returns a Repo for loc (as Find returns it). It starts nothing:
// git children start when needed.
func Open(loc Location, opts *Options) (*Repo, error) {
	git, err := opts.gitPath()
	if err != nil {
		return nil, err
	}
	if loc.GitDir == "" || loc.CommonDir == "" {
		return nil, errors.New("gitlog: Open: the location has no git directory")
	}
	if err := checkPath(loc.Path); err != nil || loc.Path == "" {
		return nil, fmt.Errorf("gitlog: Open: the location's path %q: %v", loc.Path, err)
	}
	return &Repo{loc: loc, git: git, blobs: map[*Blob]struct{}{}}, nil
}

// Location returns where the Repo reads.
func (r *Repo) Location() Location { return r.loc }

// Close stops the git children: the batch child, and those of Blobs
// still open, whose reads then fail with ErrClosed. It waits for them to
// end.
func (r *Repo) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	children := []*batch{r.check, r.cat}
	r.check, r.cat = nil, nil
	blobs := r.blobs
	r.blobs = nil
	r.mu.Unlock()
	for bl := range blobs {
		bl.abort()
	}
	for _, b := range children {
		if b != nil {
			// A request under way fails as its child ends.
			b.kill()
			_ = b.close()
		}
	}
	return nil
}

// ask sends rev to the --batch-check child.
func (r *Repo) ask(ctx context.Context, rev string) (header, error) {
	var h header
	err := r.use(ctx, modeCheck, func(b *batch) (err error) {
		h, err = b.ask(ctx, rev)
		return err
	})
	return h, err
}

// fetch reads the blob id of size bytes whole from the --batch child.
func (r *Repo) fetch(ctx context.Context, id ID, size int64) ([]byte, error) {
	var data []byte
	err := r.use(ctx, modeContents, func(b *batch) (err error) {
		data, err = b.fetch(ctx, id, size)
		return err
	})
	return data, err
}

// use runs one request on the batch child of mode, starting it if need
// be; a child that dies after serving requests is replaced once.
func (r *Repo) use(ctx context.Context, mode string, request func(*batch) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r.req.Lock()
	defer r.req.Unlock()
	for {
		b, err := r.batch(mode)
		if err != nil {
			return err
		}
		err = request(b)
		if err == nil {
			return nil
		}
		// Dead, killed, or an answer out of protocol (after which its
		// lines cannot be trusted to match the requests): reap it; the
		// next request starts another.
		served := b.served
		r.mu.Lock()
		slot := r.slot(mode)
		if *slot == b {
			*slot = nil
		}
		closed := r.closed
		r.mu.Unlock()
		b.kill()
		werr := b.close()
		switch {
		case closed:
			return ErrClosed
		case ctx.Err() != nil:
			return ctx.Err()
		case !errors.Is(err, errDied):
			return fmt.Errorf("gitlog: %s: %w", r.loc.GitDir, err)
		case served == 0:
			// A fresh child that died at once (not a repository, git
			// broken): another would too.
			return fmt.Errorf("gitlog: %s: %w", r.loc.GitDir, b.failure(fmt.Errorf("%w (%v)", errDied, werr)))
		}
	}
}

// slot is where the batch child of mode is kept; r.mu must be held.
func (r *Repo) slot(mode string) **batch {
	if mode == modeContents {
		return &r.cat
	}
	return &r.check
}

// batch returns the running batch child of mode, starting one if needed.
func (r *Repo) batch(mode string) (*batch, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, ErrClosed
	}
	slot := r.slot(mode)
	if *slot == nil {
		b, err := startBatch(r.git, r.loc.GitDir, mode)
		if err != nil {
			return nil, err
		}
		*slot = b
	}
	return *slot, nil
}

// Stat resolves ref (see RefName) and looks up the file's blob in its
// commit. A missing ref or file is a State, not an error; a ref to an
// object that is not there or not a commit is an error.
func (r *Repo) Stat(ctx context.Context, ref string) (Snapshot, error) {
	full, err := RefName(ref)
	if err != nil {
		return Snapshot{}, err
	}
	snap := Snapshot{Ref: full}
	res, err := resolveRef(r.loc, full)
	if err != nil {
		return snap, err
	}
	snap.Target = res.Chain[len(res.Chain)-1]
	if res.ID == "" {
		snap.State = NoRef
		return snap, nil
	}
	h, err := r.ask(ctx, string(res.ID)+"^{commit}")
	if err != nil {
		return snap, err
	}
	if h.Missing {
		return snap, r.notCommit(ctx, snap.Target, res.ID)
	}
	snap.Commit = h.ID
	h, err = r.ask(ctx, string(snap.Commit)+":"+r.loc.Path)
	switch {
	case err != nil:
		return snap, err
	case h.Missing:
		snap.State = NoFile
	case h.Type == "blob":
		snap.State, snap.Blob, snap.Size = Present, h.ID, h.Size
	default:
		return snap, fmt.Errorf("gitlog: %s in commit %s is a %s, not a file", r.loc.Path, snap.Commit, h.Type)
	}
	return snap, nil
}

// notCommit explains why a ref's object did not peel to a commit.
func (r *Repo) notCommit(ctx context.Context, ref string, id ID) error {
	h, err := r.ask(ctx, string(id))
	switch {
	case err != nil:
		return err
	case h.Missing:
		return fmt.Errorf("gitlog: ref %s names %s, which is not in %s", ref, id, r.loc.CommonDir)
	}
	return fmt.Errorf("gitlog: ref %s names a %s (%s), not a commit", ref, h.Type, id)
}

// OpenBlob streams the blob id (a Snapshot's Blob) from a "git cat-file
// blob" child, without holding it in memory, or reads it whole from the
// long-lived --batch child when it is small (see smallBlob). ctx bounds
// the whole read: once it is done, reads fail with its error and the
// child is killed. The caller must Close the Blob.
func (r *Repo) OpenBlob(ctx context.Context, id ID) (*Blob, error) {
	h, err := r.ask(ctx, string(id))
	switch {
	case err != nil:
		return nil, err
	case h.Missing:
		return nil, fmt.Errorf("gitlog: blob %s is not in %s", id, r.loc.CommonDir)
	case h.Type != "blob":
		return nil, fmt.Errorf("gitlog: %s is a %s, not a blob", id, h.Type)
	case h.Size <= smallBlob:
		return r.openSmall(ctx, h)
	}
	out, outW, err := blobPipe()
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		out.Close()
		outW.Close()
		return nil, ErrClosed
	}
	c, err := start(r.git, r.loc.GitDir, nil, outW, "cat-file", "blob", string(id))
	outW.Close()
	if err != nil {
		out.Close()
		return nil, err
	}
	bl := &Blob{id: h.ID, size: h.Size, repo: r, child: c, out: out, ctx: ctx}
	bl.stopCtx = context.AfterFunc(ctx, c.kill)
	r.blobs[bl] = struct{}{}
	return bl, nil
}

// openSmall reads the small blob h whole from the --batch child: the
// Blob serves it from memory, with a streamed Blob's rules (ctx, Close,
// the Repo's Close).
func (r *Repo) openSmall(ctx context.Context, h header) (*Blob, error) {
	data, err := r.fetch(ctx, h.ID, h.Size)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, ErrClosed
	}
	bl := &Blob{id: h.ID, size: h.Size, repo: r, mem: data, ctx: ctx, stopCtx: func() bool { return false }}
	r.blobs[bl] = struct{}{}
	return bl, nil
}

// blobPipeSize is the size asked for the pipe a blob is streamed
// through.
const blobPipeSize = 1 << 20

// blobPipe makes the pipe a blob is streamed through. Its read end is
// blocking: git's inflating is slower than the reader, which would
// otherwise park in Go's poller and be woken for every few kilobytes (half
// of the reader's CPU time on a 680 MB blob); a blocked read holds one
// thread instead, and ends when the child's end closes. The pipe is of
// 1 MiB rather than 64 KiB, a sixteenth of the reads for a large blob; if
// that is refused (a lower fs.pipe-max-size), the default pipe does.
func blobPipe() (r, w *os.File, err error) {
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC); err != nil {
		return nil, nil, fmt.Errorf("gitlog: making a pipe: %w", err)
	}
	_, _ = unix.FcntlInt(uintptr(fds[0]), unix.F_SETPIPE_SZ, blobPipeSize)
	return os.NewFile(uintptr(fds[0]), "|0"), os.NewFile(uintptr(fds[1]), "|1"), nil
}

// Blob is the content of one blob, streamed from a git child (or, when
// small, read already). It is an io.ReadCloser; it is not safe for
// concurrent use.
type Blob struct {
	id   ID
	size int64
	n    int64 // bytes read so far
	repo *Repo

	mem     []byte // a small blob's content, read whole; nil when streamed
	child   *child // the streaming child, nil for a small blob
	out     *os.File
	ctx     context.Context
	stopCtx func() bool

	mu      sync.Mutex // guards aborted against Repo.Close
	aborted bool
	err     error // sticky: the read's end, io.EOF when whole
}

// ID is the blob's object name.
func (b *Blob) ID() ID { return b.id }

// Size is the blob's length in bytes, known before it is read.
func (b *Blob) Size() int64 { return b.size }

// Read reads the blob's content. It returns io.EOF after exactly Size
// bytes; a child that ends early or fails is an error naming the blob.
func (b *Blob) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if err := b.ctx.Err(); err != nil {
		// What the pipe still holds is not read: the read has ended.
		b.err = b.fail(fmt.Errorf("gitlog: reading blob %s: %w", b.id, err))
		return 0, b.err
	}
	if b.child == nil {
		return b.readMem(p)
	}
	if rem := b.size - b.n; int64(len(p)) > rem+1 {
		// Ask for one byte more than is left: a longer stream shows.
		p = p[:rem+1]
	}
	n, err := b.out.Read(p)
	b.n += int64(n)
	switch {
	case b.n > b.size:
		b.err = b.fail(fmt.Errorf("gitlog: blob %s is longer than its size %d", b.id, b.size))
		return n - int(b.n-b.size), b.err
	case err == io.EOF:
		b.err = b.finish()
		return n, b.err
	case err != nil:
		b.err = b.fail(fmt.Errorf("gitlog: reading blob %s: %w", b.id, err))
		return n, b.err
	}
	return n, nil
}

// readMem is Read of a small blob.
func (b *Blob) readMem(p []byte) (int, error) {
	if b.wasAborted() {
		b.err = b.fail(ErrClosed)
		return 0, b.err
	}
	if b.n == b.size {
		b.release()
		b.err = io.EOF
		return 0, b.err
	}
	n := copy(p, b.mem[b.n:])
	b.n += int64(n)
	return n, nil
}

// finish reaps the child at the end of its output and judges the read.
func (b *Blob) finish() error {
	werr := b.child.stop(time.Second)
	b.release()
	if b.wasAborted() {
		return ErrClosed
	}
	if werr != nil || b.n != b.size {
		msg := fmt.Errorf("gitlog: blob %s ended after %d of %d bytes (git: %v)", b.id, b.n, b.size, werr)
		if werr == nil {
			msg = fmt.Errorf("gitlog: blob %s ended after %d of %d bytes: %w", b.id, b.n, b.size, io.ErrUnexpectedEOF)
		}
		return b.child.failure(msg)
	}
	return io.EOF
}

// fail ends the read with err, stopping the child.
func (b *Blob) fail(err error) error {
	if b.child != nil {
		b.child.kill()
		_ = b.child.stop(time.Second)
	}
	b.release()
	if b.wasAborted() {
		return ErrClosed
	}
	return err
}

func (b *Blob) wasAborted() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.aborted
}

// release closes the pipe (drops a small blob's content) and forgets the
// Blob in its Repo.
func (b *Blob) release() {
	b.stopCtx()
	if b.out != nil {
		b.out.Close()
	}
	b.mem = nil
	b.repo.mu.Lock()
	delete(b.repo.blobs, b)
	b.repo.mu.Unlock()
}

// abort is Repo.Close's end of the Blob: the child is killed and
// reaped; the Blob's owner still calls Close, which returns nil.
func (b *Blob) abort() {
	b.mu.Lock()
	b.aborted = true
	b.mu.Unlock()
	if b.child == nil {
		return // a small blob: its next read sees aborted
	}
	b.child.kill()
	_ = b.child.stop(time.Second)
	b.stopCtx()
	b.out.Close()
}

// Close stops the child if the blob was not read to its end. It returns
// nil; a read's error was Read's to report.
func (b *Blob) Close() error {
	if b.err == nil {
		b.fail(ErrClosed)
		b.err = ErrClosed
	}
	return nil
}
