package gitlog

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// header is cat-file's answer to a request: an object's name, type and
// size, or missing.
type header struct {
	ID      ID
	Type    string
	Size    int64
	Missing bool
}

// parseHeader reads cat-file --batch-check's answer to rev, its line end
// removed: "ID TYPE SIZE", or "REV missing".
func parseHeader(line []byte, rev string) (header, error) {
	if string(line) == rev+" missing" {
		return header{Missing: true}, nil
	}
	if string(line) == rev+" ambiguous" {
		return header{}, fmt.Errorf("git cat-file: %q is ambiguous", rev)
	}
	id, rest, ok := parseHexID(line)
	f := strings.Split(string(rest), " ")
	if !ok || len(f) != 3 || f[0] != "" {
		return header{}, fmt.Errorf("git cat-file: answered %q to %q", clip(line), rev)
	}
	switch f[1] {
	case "commit", "tree", "blob", "tag":
	default:
		return header{}, fmt.Errorf("git cat-file: unknown object type in %q", clip(line))
	}
	size, err := strconv.ParseInt(f[2], 10, 64)
	if err != nil || size < 0 || f[2][0] == '+' {
		return header{}, fmt.Errorf("git cat-file: bad size in %q", clip(line))
	}
	return header{ID: id, Type: f[1], Size: size}, nil
}

// gitEnv is the environment of git children: this process's, less what
// would point git at another repository or index than the one asked
// for, plus GIT_OPTIONAL_LOCKS=0 so that no command takes a lock that it
// could do without.
func gitEnv() []string {
	drop := map[string]bool{
		"GIT_DIR": true, "GIT_WORK_TREE": true, "GIT_COMMON_DIR": true, "GIT_INDEX_FILE": true,
		"GIT_OBJECT_DIRECTORY": true, "GIT_ALTERNATE_OBJECT_DIRECTORIES": true,
		"GIT_NAMESPACE": true, "GIT_PREFIX": true, "GIT_QUARANTINE_PATH": true,
		"GIT_CEILING_DIRECTORIES": true, "GIT_DISCOVERY_ACROSS_FILESYSTEM": true,
		"GIT_OPTIONAL_LOCKS": true,
	}
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if !drop[k] {
			env = append(env, kv)
		}
	}
	return append(env, "GIT_OPTIONAL_LOCKS=0")
}

// tailBuffer keeps the last bytes a child wrote to its standard error,
// for error messages.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

const stderrKeep = 2048

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > stderrKeep {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-stderrKeep:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.buf))
}

// child is a running git process: started by start, reaped once by
// stop.
type child struct {
	cmd    *exec.Cmd
	stderr *tailBuffer
	once   sync.Once
	err    error // Wait's
}

// start runs git with args against gitDir; stdin and stdout as given
// (nil is the null device).
func start(git, gitDir string, stdin io.Reader, stdout io.Writer, args ...string) (*child, error) {
	cmd := exec.Command(git, append([]string{"--git-dir=" + gitDir}, args...)...)
	cmd.Dir = gitDir
	cmd.Env = gitEnv()
	cmd.Stdin, cmd.Stdout = stdin, stdout
	c := &child{cmd: cmd, stderr: &tailBuffer{}}
	cmd.Stderr = c.stderr
	// Its own process group: a Ctrl-C meant for mirrord's terminal does
	// not kill the child under it; mirrord stops it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting git: %w", err)
	}
	return c, nil
}

// kill ends the child at once; stop still reaps it.
func (c *child) kill() { _ = c.cmd.Process.Kill() }

// stop waits for the child to end, killing it if it has not ended within
// grace, and returns how it ended. Every caller gets the same result.
func (c *child) stop(grace time.Duration) error {
	c.once.Do(func() {
		t := time.AfterFunc(grace, c.kill)
		c.err = c.cmd.Wait()
		t.Stop()
	})
	return c.err
}

// failure describes how a child ended, with what it said.
func (c *child) failure(err error) error {
	if msg := c.stderr.String(); msg != "" {
		return fmt.Errorf("%w: %s", err, msg)
	}
	return err
}

// batch is a long-lived "git cat-file" child in one of two modes:
// --batch-check answers an object's name, type and size; --batch also
// its content.
type batch struct {
	*child
	in     io.WriteCloser
	outF   *os.File
	out    *bufio.Reader
	served int // requests answered: one that dies after serving is restarted
}

// The two modes of a batch child.
const (
	modeCheck    = "--batch-check"
	modeContents = "--batch"
)

func startBatch(git, gitDir, mode string) (*batch, error) {
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return nil, err
	}
	c, err := start(git, gitDir, inR, outW, "cat-file", mode)
	inR.Close()
	outW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		return nil, err
	}
	return &batch{child: c, in: inW, outF: outR, out: bufio.NewReader(outR)}, nil
}

// errDied is a request that failed because the child ended.
var errDied = errors.New("a git cat-file batch child ended")

// ask sends one request and reads its answer. ctx being done kills the
// child, which ends the wait.
func (b *batch) ask(ctx context.Context, rev string) (header, error) {
	if err := ctx.Err(); err != nil {
		return header{}, err
	}
	defer context.AfterFunc(ctx, b.kill)()
	return b.request(ctx, rev)
}

// request is ask with ctx watched by the caller.
func (b *batch) request(ctx context.Context, rev string) (header, error) {
	if strings.ContainsAny(rev, "\n\x00") {
		return header{}, fmt.Errorf("git cat-file: %q cannot be asked: it has a newline or NUL", rev)
	}
	if _, err := io.WriteString(b.in, rev+"\n"); err != nil {
		return header{}, errDied
	}
	line, err := b.out.ReadSlice('\n')
	if err != nil {
		if ctx.Err() != nil {
			return header{}, ctx.Err()
		}
		return header{}, errDied
	}
	b.served++
	return parseHeader(bytes.TrimSuffix(line, []byte("\n")), rev)
}

// fetch reads blob id, of size bytes (as --batch-check said), whole from
// a --batch child. An answer of another size or type, or one that does
// not end where it should, is an error after which the child's answers
// cannot be trusted to match the requests.
func (b *batch) fetch(ctx context.Context, id ID, size int64) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	defer context.AfterFunc(ctx, b.kill)()
	h, err := b.request(ctx, string(id))
	switch {
	case err != nil:
		return nil, err
	case h.Missing:
		return nil, fmt.Errorf("blob %s is not there any more", id)
	case h.Type != "blob" || h.Size != size:
		return nil, fmt.Errorf("git cat-file: answered a %s of %d bytes for blob %s of %d", h.Type, h.Size, id, size)
	}
	data := make([]byte, size+1) // and the newline that ends the answer
	if _, err := io.ReadFull(b.out, data); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, errDied
	}
	if data[size] != '\n' {
		return nil, fmt.Errorf("git cat-file: blob %s does not end after its %d bytes", id, size)
	}
	return data[:size], nil
}

// close ends the child: end of input first, so that it exits by itself.
func (b *batch) close() error {
	b.in.Close()
	err := b.stop(2 * time.Second)
	b.outF.Close()
	return err
}
