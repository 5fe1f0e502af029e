package gitlog

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// Location is where a file lives in a git repository.
type Location struct {
	// GitDir is the repository's git directory: HEAD and the
	// per-worktree refs live here.
	GitDir string
	// CommonDir holds the objects, the shared refs and packed-refs. It is
	// GitDir except for a linked worktree (git worktree add).
	CommonDir string
	// WorkTree is the root of the work tree; "" for a bare repository.
	WorkTree string
	// Path is the file relative to WorkTree (to GitDir when bare), with
	// forward slashes, as it is named in the repository's trees.
	Path string
}

// Bare reports whether the repository has no work tree.
func (l Location) Bare() bool { return l.WorkTree == "" }

// Find returns the repository that contains file, found as git finds it
// from the file's directory: walking up, each directory is checked for a
// ".git" directory or file, then for being a git directory itself (a bare
// repository, such as repo.git for repo.git/data.json). Symbolic links in
// the directory's path are resolved first, as git sees the physical
// directory; the file itself need not exist.
//
// found is false, with no error, when there is no repository yet (the
// file's directory does not exist, or no directory above it is a
// repository): the caller waits for one. A ".git" file that cannot be
// followed is an error naming it.
func Find(file string) (loc Location, found bool, err error) {
	abs, err := filepath.Abs(file)
	if err != nil {
		return Location{}, false, err
	}
	base := filepath.Base(abs)
	if base == "." || base == string(filepath.Separator) {
		return Location{}, false, fmt.Errorf("%s: not a file path", file)
	}
	dir, err := filepath.EvalSymlinks(filepath.Dir(abs))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return Location{}, false, nil
		}
		return Location{}, false, err
	}
	for d := dir; ; {
		loc, ok, err := repoAt(d)
		if err != nil {
			return Location{}, false, err
		}
		if ok {
			root := loc.WorkTree
			if root == "" {
				root = loc.GitDir
			}
			rel, err := filepath.Rel(root, filepath.Join(dir, base))
			if err != nil {
				return Location{}, false, err
			}
			loc.Path = filepath.ToSlash(rel)
			if err := checkPath(loc.Path); err != nil {
				return Location{}, false, fmt.Errorf("%s: %w", file, err)
			}
			return loc, true, nil
		}
		up := filepath.Dir(d)
		if up == d {
			return Location{}, false, nil
		}
		d = up
	}
}

// checkPath refuses a path that git's trees cannot hold or that the
// cat-file protocol (one request a line) cannot carry.
func checkPath(p string) error {
	switch {
	case p == "." || strings.HasPrefix(p, "../"):
		return fmt.Errorf("%q is not inside the repository's tree", p)
	case strings.ContainsAny(p, "\n\x00"):
		return fmt.Errorf("the path %q has a newline or NUL", p)
	case p == ".git" || strings.HasPrefix(p, ".git/") || strings.Contains(p, "/.git/"):
		return fmt.Errorf("the path %q is inside a .git directory", p)
	}
	return nil
}

// repoAt reports the repository rooted at dir, if any: dir/.git (a
// directory, or a file naming one), else dir itself when it is a bare
// git directory.
func repoAt(dir string) (Location, bool, error) {
	dotgit := filepath.Join(dir, ".git")
	st, err := os.Stat(dotgit)
	switch {
	case err == nil && st.IsDir():
		if common, ok := gitDirCommon(dotgit); ok {
			return Location{GitDir: dotgit, CommonDir: common, WorkTree: dir}, true, nil
		}
	case err == nil && st.Mode().IsRegular():
		b, err := os.ReadFile(dotgit)
		if err != nil {
			return Location{}, false, err
		}
		target, err := parseGitFile(b)
		if err != nil {
			return Location{}, false, fmt.Errorf("%s: %w", dotgit, err)
		}
		if !filepath.IsAbs(target) {
			target = filepath.Join(dir, target)
		}
		common, ok := gitDirCommon(target)
		if !ok {
			return Location{}, false, fmt.Errorf("%s: %s is not a git directory", dotgit, target)
		}
		return Location{GitDir: filepath.Clean(target), CommonDir: common, WorkTree: dir}, true, nil
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return Location{}, false, err
	}
	if common, ok := gitDirCommon(dir); ok {
		return Location{GitDir: dir, CommonDir: common}, true, nil
	}
	return Location{}, false, nil
}

// gitDirCommon reports whether dir is a git directory, as git's
// is_git_directory decides (a HEAD file, objects and refs directories in
// the common directory), and returns its common directory: the one named
// by its commondir file, else dir itself.
func gitDirCommon(dir string) (string, bool) {
	if st, err := os.Stat(filepath.Join(dir, "HEAD")); err != nil || !st.Mode().IsRegular() {
		return "", false
	}
	common := dir
	if b, err := os.ReadFile(filepath.Join(dir, "commondir")); err == nil {
		c := strings.TrimRight(string(b), "\r\n")
		if c == "" {
			return "", false
		}
		if !filepath.IsAbs(c) {
			c = filepath.Join(dir, c)
		}
		common = filepath.Clean(c)
	}
	for _, sub := range []string{"objects", "refs"} {
		if st, err := os.Stat(filepath.Join(common, sub)); err != nil || !st.IsDir() {
			return "", false
		}
	}
	return common, true
}

// parseGitFile reads a ".git" file ("gitdir: PATH", as git worktree add
// and submodules write it) and returns PATH. Like git, it takes the rest
// of the file after "gitdir: " less its final line ends.
func parseGitFile(b []byte) (string, error) {
	rest, ok := bytes.CutPrefix(b, []byte("gitdir: "))
	if !ok {
		return "", errors.New(`not a .git file: it does not start with "gitdir: "`)
	}
	p := string(bytes.TrimRight(rest, "\r\n"))
	switch {
	case p == "":
		return "", errors.New(".git file names no directory")
	case strings.ContainsAny(p, "\r\n\x00"):
		return "", errors.New(".git file has a line end or NUL inside its path")
	}
	return p, nil
}
