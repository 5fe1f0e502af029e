package mirror

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/fsnotify/fsnotify"
)

// dirWatch is the set of directories a watcher has in place, kept equal
// to a source's watch set.
type dirWatch struct {
	w   *fsnotify.Watcher
	src source
	// dirs are the directories watched, by the path given to the watcher
	// (which names their events), each with its identity and the names in
	// it that matter.
	dirs map[string]*watched
}

type watched struct {
	dev, ino uint64
	names    map[string]eventKind
	others   eventKind // what an event on any other name means
}

// maxRewatch bounds the rounds of update: a directory tree that changes
// on every look is left to its next event (or the safety check).
const maxRewatch = 16

// update makes the watches equal to the source's watch set. Each round
// computes the set, puts the watches in place, and computes it again: a
// directory created after the first look but before its parent was
// watched is then found by the second look, because from the moment the
// parent is watched its creation is an event. It returns whether a
// directory on the way changed since the last update (a directory waited
// for appeared, or one was replaced): what it holds must then be read
// again.
func (d *dirWatch) update() (changed bool, err error) {
	for range maxRewatch {
		set, err := d.src.watchSet()
		if err != nil {
			return changed, err
		}
		c, err := d.install(set)
		if err != nil {
			return changed, err
		}
		if !c {
			return changed, nil
		}
		changed = true
	}
	return changed, nil
}

// install puts the watches of set in place, removing those it no longer
// lists, and reports whether anything changed. A directory already
// watched under another path (a symlinked directory) is watched once: its
// names are merged under the first path, the one its events carry.
func (d *dirWatch) install(set []watchDir) (changed bool, err error) {
	// The watcher drops a watch by itself when its directory is deleted or
	// moved away: forget those, so that they are put back.
	have := map[string]bool{}
	for _, p := range d.w.WatchList() {
		have[p] = true
	}
	for p := range d.dirs {
		if !have[p] {
			delete(d.dirs, p)
			changed = true
		}
	}
	next := map[string]*watched{}
	byID := map[[2]uint64]string{}
	for _, wd := range set {
		dev, ino, err := dirID(wd.dir)
		if err != nil {
			// Gone since the set was computed: the next round looks again.
			changed = true
			continue
		}
		if p, ok := byID[[2]uint64{dev, ino}]; ok {
			next[p].merge(wd)
			continue
		}
		byID[[2]uint64{dev, ino}] = wd.dir
		if n, ok := next[wd.dir]; ok { // the same path listed twice
			n.merge(wd)
			continue
		}
		n := &watched{dev: dev, ino: ino, names: make(map[string]eventKind, len(wd.names))}
		n.merge(wd)
		next[wd.dir] = n
	}
	for p, old := range d.dirs {
		if n, ok := next[p]; !ok || n.dev != old.dev || n.ino != old.ino {
			// No longer wanted, or another directory now has its name: the
			// watch follows the old one (an error means it went with it).
			_ = d.w.Remove(p)
			delete(d.dirs, p)
			changed = true
		}
	}
	for p, n := range next {
		old, ok := d.dirs[p]
		if ok {
			if !sameNames(old.names, n.names) || old.others != n.others {
				old.names, old.others = n.names, n.others
				changed = true
			}
			continue
		}
		if err := d.w.Add(p); err != nil {
			if isNotExist(err) {
				changed = true // gone meanwhile: the next round looks again
				continue
			}
			return changed, fmt.Errorf("watching %s: %w", p, err)
		}
		d.dirs[p] = n
		changed = true
	}
	return changed, nil
}

// merge adds wd's names to w's, each with the stronger of its kinds.
func (w *watched) merge(wd watchDir) {
	for n, k := range wd.names {
		w.names[n] = max(w.names[n], k)
	}
	w.others = max(w.others, wd.others)
}

func sameNames(a, b map[string]eventKind) bool {
	if len(a) != len(b) {
		return false
	}
	for n, k := range a {
		if bk, ok := b[n]; !ok || bk != k {
			return false
		}
	}
	return true
}

// dirID returns the identity of an existing directory.
func dirID(dir string) (dev, ino uint64, err error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return 0, 0, err
	}
	if !fi.IsDir() {
		return 0, 0, &os.PathError{Op: "watch", Path: dir, Err: syscall.ENOTDIR}
	}
	st := toFileStat(fi)
	return st.Dev, st.Ino, nil
}

// classify says what an event means to the source: an event on a watched
// directory itself (deleted, moved away, replaced: inotify's
// IN_DELETE_SELF and IN_MOVE_SELF, or the parent's report of them) asks
// for the watches to be put in place again; an event on a listed name
// means what the source listed it for; anything else is not ours.
func (d *dirWatch) classify(ev fsnotify.Event) eventKind {
	if _, ok := d.dirs[ev.Name]; ok {
		return evPath
	}
	if w, ok := d.dirs[filepath.Dir(ev.Name)]; ok {
		if k, ok := w.names[filepath.Base(ev.Name)]; ok {
			return k
		}
		return w.others
	}
	return evNone
}
