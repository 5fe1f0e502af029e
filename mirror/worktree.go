package mirror

import (
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
	"strings"

	"github.com/mirrord/mirrord/internal/gitlog"
)

// checkWorkTree says once, in file mode, when the log sits in a git work
// tree whose file is not the one committed at HEAD: on the application's
// recording devices each transaction is committed in a temporary clone
// and pushed into the branch, so the work tree's file stays as it was
// first checked out while the branch moves on. Git mode follows the
// branch. The hint goes to the log and to the status.
func (e *Engine) checkWorkTree(ctx context.Context) {
	if e.git != nil || e.hinted {
		return
	}
	e.hinted = true
	hint := staleWorkTree(ctx, e.path)
	if hint == "" {
		return
	}
	e.log.Warn(hint, "path", e.path)
	e.updateStatus(func(s *Status) { s.Hint = hint })
}

// staleWorkTree returns the hint when the file at path is in a git work
// tree whose HEAD has a commit with a file at that path of other content,
// and "" otherwise (no repository, no commit, an untracked file, no git
// program, or the same content). Sizes are compared first; equal ones
// have the file's object name computed (one read of it) and compared.
func staleWorkTree(ctx context.Context, path string) string {
	loc, found, err := gitlog.Find(path)
	if err != nil || !found || loc.Bare() {
		return ""
	}
	fi, err := os.Stat(path)
	if err != nil || !fi.Mode().IsRegular() {
		return ""
	}
	src, err := gitlog.NewSource(path, "HEAD", nil)
	if err != nil {
		return ""
	}
	defer src.Close()
	snap, err := src.Stat(ctx)
	if err != nil || snap.State != gitlog.Present {
		return ""
	}
	if fi.Size() == snap.Size {
		if id, err := blobID(path, len(snap.Blob)); err != nil || id == snap.Blob {
			return ""
		}
	}
	branch := strings.TrimPrefix(snap.Target, "refs/heads/")
	return fmt.Sprintf("the log is not the file committed at HEAD (%s, commit %.12s) of its git work tree; "+
		"if the application commits and pushes into this repository, the work tree is stale: set git-ref: %s to follow the branch",
		branch, snap.Commit, branch)
}

// blobID is the git object name of the file at path as a blob: the SHA-1
// (an ID of 40 hex digits) or SHA-256 (64) of "blob SIZE\0" and the
// content.
func blobID(path string, idLen int) (gitlog.ID, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	var h hash.Hash = sha1.New()
	if idLen == 2*sha256.Size {
		h = sha256.New()
	}
	fmt.Fprintf(h, "blob %d\x00", fi.Size())
	n, err := io.Copy(h, f)
	if err != nil {
		return "", err
	}
	if n != fi.Size() {
		return "", fmt.Errorf("%s changed while it was read", path)
	}
	return gitlog.ID(hex.EncodeToString(h.Sum(nil))), nil
}
