package gitlog

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Watch is a directory whose file events can mean that the followed
// file changed at its ref: git replaces a ref file, packed-refs or HEAD
// by writing NAME.lock and renaming it onto NAME, so a watch on the
// directory (not on the file, which the rename replaces) sees it.
type Watch struct {
	Dir string
	// Names are the entries of Dir whose events matter; nil means any.
	Names []string
}

// Watches is the set of directories to watch for one ref; see
// Repo.Watches and Source.Watches. It depends on the repository's state
// (which directories exist, where symbolic refs point): the caller
// computes it again after each event it concerns.
type Watches []Watch

// Concerns reports whether a file event on path (fsnotify's Event.Name)
// can mean that the ref moved or the repository changed shape: an event
// on one of a watch's names, or on a watched directory itself (removed
// or renamed). Lock files and other entries do not concern it, so a
// burst of ref updates is a few events to coalesce into one read at the
// latest commit.
func (ws Watches) Concerns(path string) bool {
	path = filepath.Clean(path)
	dir, base := filepath.Dir(path), filepath.Base(path)
	for _, w := range ws {
		if path == w.Dir || dir == w.Dir && (w.Names == nil || slices.Contains(w.Names, base)) {
			return true
		}
	}
	return false
}

// Dirs returns the directories to watch.
func (ws Watches) Dirs() []string {
	dirs := make([]string, len(ws))
	for i, w := range ws {
		dirs[i] = w.Dir
	}
	return dirs
}

// add merges a watch on dir for name ("" for any name).
func (ws Watches) add(dir, name string) Watches {
	for i := range ws {
		if ws[i].Dir != dir {
			continue
		}
		if ws[i].Names != nil && name != "" && !slices.Contains(ws[i].Names, name) {
			ws[i].Names = append(ws[i].Names, name)
		} else if name == "" {
			ws[i].Names = nil
		}
		return ws
	}
	w := Watch{Dir: dir}
	if name != "" {
		w.Names = []string{name}
	}
	return append(ws, w)
}

// addPath watches for rel (slash-separated, below base) to change: its
// own directory for its name if that directory exists, else the deepest
// existing directory on the way for the next component, so that its
// creation is seen (and the caller then watches deeper).
func (ws Watches) addPath(base, rel string) (Watches, error) {
	comps := strings.Split(rel, "/")
	dir := base
	for i, c := range comps {
		if i == len(comps)-1 {
			break
		}
		next := filepath.Join(dir, c)
		st, err := os.Stat(next)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return ws, err
		}
		if err != nil || !st.IsDir() {
			return ws.add(dir, c), nil
		}
		dir = next
	}
	return ws.add(dir, comps[len(comps)-1]), nil
}

// Watches returns what to watch for ref (see RefName) to move: the
// directory of each loose ref on its symbolic chain (HEAD, then the
// branch it points to, in the worktree's git directory or the common
// one as git keeps them), packed-refs in the common directory, and the
// work tree's .git entry.
func (r *Repo) Watches(ref string) (Watches, error) {
	full, err := RefName(ref)
	if err != nil {
		return nil, err
	}
	res, err := resolveRef(r.loc, full)
	if err != nil && len(res.Chain) == 0 {
		return nil, err
	}
	// A chain cut short by a bad ref file is still watched as far as it
	// goes: the file's repair is an event.
	var ws Watches
	packed := false
	for _, name := range res.Chain {
		if ws, err = ws.addPath(refDir(r.loc, name), name); err != nil {
			return nil, err
		}
		packed = packed || !perWorktree(name)
	}
	if packed {
		ws = ws.add(r.loc.CommonDir, "packed-refs")
	}
	if !r.loc.Bare() {
		ws = ws.add(r.loc.WorkTree, ".git")
	}
	return ws, nil
}

// missingWatches is what to watch while no repository holds file: its
// directory for any entry (a .git appearing, or the files of a bare
// repository being made there), or, if that directory does not exist,
// the deepest existing one above it for the next component on the way.
func missingWatches(file string) (Watches, error) {
	abs, err := filepath.Abs(file)
	if err != nil {
		return nil, err
	}
	dir := filepath.Dir(abs)
	var missing []string
	for {
		st, err := os.Stat(dir)
		if err == nil && st.IsDir() {
			break
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		up := filepath.Dir(dir)
		if up == dir {
			return nil, nil
		}
		missing = append(missing, filepath.Base(dir))
		dir = up
	}
	if len(missing) == 0 {
		return Watches{}.add(dir, ""), nil
	}
	return Watches{}.add(dir, missing[len(missing)-1]), nil
}
