package mirror

import (
	"io/fs"
	"os"
	"path/filepath"

	"github.com/mirrord/mirrord/internal/gitlog"
)

// A source is what Run follows, as seen from the file system: for its
// current state, the directories to watch and, in each, the names whose
// events concern it. The watch set is both what Run watches and the filter
// of what it hears (see dirWatch.classify): the log's file (fileSource),
// or the ref files of the repository that holds it (gitSource), each
// with its own set and so its own filter, through the same event loop.
type source interface {
	// watchSet computes what to watch now, from the file system as it
	// stands. It is called again whenever a watched directory, or a name
	// on the way to one that does not exist yet, changes.
	watchSet() ([]watchDir, error)
}

// watchDir is one directory to watch, with the names in it that matter,
// and what an event on any other name means (evNone: nothing).
type watchDir struct {
	dir    string
	names  map[string]eventKind
	others eventKind
}

// eventKind is what an event means to the source.
type eventKind int

const (
	evNone   eventKind = iota // not ours
	evChange                  // what the source reads changed: decide again
	evPath                    // a directory on the way appeared, went or was replaced: watch again, then decide
)

// fileSource is the log as a file, possibly through a symlink.
type fileSource struct {
	path string // absolute
}

// watchSet watches the log's directory for the log's name, and, when the
// log is a symlink, the directory of what it points to for the target's
// name (a write to the target is reported there, not beside the link). A
// directory that does not exist yet is stood in for by its nearest
// existing ancestor, watched for the name of the next directory down: the
// application creates its working tree on its first sync, and a user
// re-clones it to fix a stuck device.
func (s *fileSource) watchSet() ([]watchDir, error) {
	files := []string{s.path}
	if t := linkTarget(s.path); t != s.path {
		files = append(files, t)
	}
	set := make([]watchDir, 0, len(files))
	for _, f := range files {
		dir, name := filepath.Dir(f), filepath.Base(f)
		kind := evChange
		if anc, next := existingAncestor(dir); anc != dir {
			dir, name, kind = anc, next, evPath
		}
		set = append(set, watchDir{dir: dir, names: map[string]eventKind{name: kind}})
	}
	return set, nil
}

// gitSource is the log as committed at a ref: what gitlog says to watch
// for the ref to move (the directories of its loose refs, whose updates
// are a lock file renamed onto the ref; packed-refs; HEAD when the ref is
// symbolic; the work tree's .git), or, while there is no repository, the
// log's directory (or the nearest existing one on its way). Every event it
// lists may change the watch set itself (HEAD now names another branch, a
// refs directory appeared, packed-refs replaced the loose ref), so each is
// evPath: the watches are put in place again, then the ref resolved.
type gitSource struct {
	src *gitlog.Source
}

func (s *gitSource) watchSet() ([]watchDir, error) {
	ws, err := s.src.Watches()
	if err != nil {
		return nil, err
	}
	set := make([]watchDir, 0, len(ws))
	for _, w := range ws {
		wd := watchDir{dir: w.Dir, names: make(map[string]eventKind, len(w.Names))}
		if w.Names == nil {
			wd.others = evPath
		}
		for _, n := range w.Names {
			wd.names[n] = evPath
		}
		set = append(set, wd)
	}
	return set, nil
}

// maxLinks bounds the symlinks followed, as the kernel does (ELOOP).
const maxLinks = 40

// linkTarget returns the file the symlink path points to, following a
// chain of links, even when the target does not exist (EvalSymlinks then
// fails, but its directory must still be waited for). A path that is not
// a symlink is its own target, with its directory's symlinks resolved
// where that directory exists.
func linkTarget(path string) string {
	if t, err := filepath.EvalSymlinks(path); err == nil {
		return t
	}
	p := path
	for range maxLinks {
		fi, err := os.Lstat(p)
		if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			break
		}
		t, err := os.Readlink(p)
		if err != nil {
			break
		}
		if !filepath.IsAbs(t) {
			t = filepath.Join(resolvedDir(p), t)
		}
		p = filepath.Clean(t)
	}
	if p == path {
		return path
	}
	return filepath.Join(resolvedDir(p), filepath.Base(p))
}

// resolvedDir is p's directory with its symlinks resolved, or as written
// when it does not exist.
func resolvedDir(p string) string {
	d := filepath.Dir(p)
	if r, err := filepath.EvalSymlinks(d); err == nil {
		return r
	}
	return d
}

// existingAncestor returns dir when it is an existing directory, and
// otherwise its nearest ancestor that is one, with the name of the next
// directory down towards dir. Something that is not a directory in the way
// (a file named like the directory) counts as missing: it must be
// replaced by a directory before the log can exist.
func existingAncestor(dir string) (anc, next string) {
	d := filepath.Clean(dir)
	for {
		if fi, err := os.Stat(d); err == nil && fi.IsDir() {
			return d, next
		}
		parent := filepath.Dir(d)
		if parent == d {
			return d, next // the root: always there in practice
		}
		d, next = parent, filepath.Base(d)
	}
}

// missingDir returns the first directory on the way to the log (through a
// symlink, to its target) that does not exist, or "" when the log's
// directory exists.
func missingDir(path string) string {
	dir := filepath.Dir(linkTarget(path))
	anc, next := existingAncestor(dir)
	if anc == dir {
		return ""
	}
	return filepath.Join(anc, next)
}
