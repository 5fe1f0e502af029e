package gitlog

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
)

func TestConcerns(t *testing.T) {
	ws := Watches{
		{Dir: "/r/.git/refs/heads", Names: []string{"master"}},
		{Dir: "/r/.git", Names: []string{"packed-refs", "HEAD"}},
		{Dir: "/new"},
	}
	cases := []struct {
		path string
		want bool
	}{
		{"/r/.git/refs/heads/master", true},
		{"/r/.git/refs/heads/master.lock", false},
		{"/r/.git/refs/heads/side", false},
		{"/r/.git/refs/heads", true}, // the watched directory itself went
		{"/r/.git/packed-refs", true},
		{"/r/.git/packed-refs.lock", false},
		{"/r/.git/HEAD", true},
		{"/r/.git/index", false},
		{"/r/.git/objects/ab", false},
		{"/new/anything", true},
		{"/new/deeper/x", false},
		{"/r/.git/refs/heads/../heads/master", true},
	}
	for _, c := range cases {
		if got := ws.Concerns(c.path); got != c.want {
			t.Errorf("Concerns(%s) = %v", c.path, got)
		}
	}
}

// A ref in a directory that does not exist yet is watched from the
// deepest existing directory for the next component.
func TestWatchNestedRef(t *testing.T) {
	repo := appRepo(t, "x\n")
	loc, _, err := Find(filepath.Join(repo, "data.json"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := Open(loc, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	heads := filepath.Join(loc.CommonDir, "refs", "heads")
	ws, err := r.Watches("feature/deep/x")
	if err != nil {
		t.Fatal(err)
	}
	if !ws.Concerns(filepath.Join(heads, "feature")) || ws.Concerns(filepath.Join(heads, "master")) {
		t.Fatalf("before the directory exists: %+v", ws)
	}
	git(t, repo, "branch", "feature/deep/x")
	ws, _ = r.Watches("feature/deep/x")
	if !ws.Concerns(filepath.Join(heads, "feature", "deep", "x")) || ws.Concerns(filepath.Join(heads, "feature")) {
		t.Fatalf("once it exists: %+v", ws)
	}
}

// watcher is an fsnotify watcher on a Source's watches, closed at the
// test's end.
type watcher struct {
	t  *testing.T
	s  *Source
	w  *fsnotify.Watcher
	ws Watches

	markers int // made by until
}

func newWatcher(t *testing.T, s *Source) *watcher {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	wa := &watcher{t: t, s: s, w: w}
	wa.rewatch()
	return wa
}

// rewatch computes the Source's watches again and adds their
// directories, as the engine does after an event that concerns them.
func (wa *watcher) rewatch() {
	ws, err := wa.s.Watches()
	if err != nil {
		wa.t.Fatal(err)
	}
	for _, d := range ws.Dirs() {
		if err := wa.w.Add(d); err != nil {
			wa.t.Fatal(err)
		}
	}
	wa.ws = ws
}

// next returns the events up to and including the first that concerns
// the watches; the test fails if none comes within 10 seconds.
func (wa *watcher) next() (skipped []fsnotify.Event, concerning fsnotify.Event) {
	wa.t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev := <-wa.w.Events:
			if wa.ws.Concerns(ev.Name) {
				return skipped, ev
			}
			skipped = append(skipped, ev)
		case err := <-wa.w.Errors:
			wa.t.Fatal(err)
		case <-timeout:
			wa.t.Fatalf("no event concerning %+v in 10s; saw %v", wa.ws, skipped)
		}
	}
}

// until returns the events that op causes: inotify keeps one ordered
// queue, so after op a marker file made in dir (a watched directory)
// ends them.
func (wa *watcher) until(dir string, op func()) []fsnotify.Event {
	wa.t.Helper()
	op()
	wa.markers++
	marker := filepath.Join(dir, fmt.Sprintf("zz-test-marker-%d", wa.markers))
	if err := os.WriteFile(marker, nil, 0o644); err != nil {
		wa.t.Fatal(err)
	}
	defer os.Remove(marker)
	var evs []fsnotify.Event
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev := <-wa.w.Events:
			if ev.Name == marker && ev.Has(fsnotify.Create) {
				return evs
			}
			evs = append(evs, ev)
		case err := <-wa.w.Errors:
			wa.t.Fatal(err)
		case <-timeout:
			wa.t.Fatalf("no marker event in 10s; saw %v", evs)
		}
	}
}

// The ref's moves are seen through real inotify events, whatever git
// does to it (a push, pack-refs, gc, deletion, re-creation), and the
// moves of other refs are not.
func TestWatchesSeeRefMoves(t *testing.T) {
	noLeaks(t)
	repo := appRepo(t, "x\n")
	gitDir := filepath.Join(repo, ".git")
	side := git(t, repo, "rev-parse", "master")
	git(t, repo, "branch", "side")
	s := newSource(t, filepath.Join(repo, "data.json"), "master")
	wa := newWatcher(t, s)
	tree := git(t, repo, "rev-parse", "master^{tree}")
	ops := []struct {
		name     string
		op       func()
		state    State
		concerns bool // some event concerns master: its commit may have moved
	}{
		{"push", func() { transaction(t, repo, setData("x\ny\n")) }, Present, true},
		{"pack-refs", func() { git(t, repo, "pack-refs", "--all") }, Present, true},
		{"push after pack", func() { transaction(t, repo, setData("x\ny\nz\n")) }, Present, true},
		{"gc", func() { git(t, repo, "gc", "--quiet") }, Present, true},
		{"delete", func() { git(t, repo, "update-ref", "-d", "refs/heads/master") }, NoRef, true},
		{"re-create", func() { git(t, repo, "update-ref", "refs/heads/master", side) }, Present, true},
		{"side moves", func() {
			git(t, repo, "update-ref", "refs/heads/side", git(t, repo, "commit-tree", "-m", "side", tree))
		}, Present, false},
		{"objects written", func() { git(t, repo, "hash-object", "-w", "--stdin") }, Present, false},
	}
	for _, o := range ops {
		evs := wa.until(gitDir, o.op)
		concerns := false
		for _, e := range evs {
			concerns = concerns || wa.ws.Concerns(e.Name)
		}
		wa.rewatch()
		if snap := stat(t, s); concerns != o.concerns || snap.State != o.state {
			t.Fatalf("%s: concerns %v, now %+v; events %v", o.name, concerns, snap, evs)
		}
	}
	if got := stat(t, s).Commit; got != ID(side) {
		t.Fatalf("re-created at %s, want %s", got, side)
	}
}

// Following HEAD: its own file is watched, and once it points elsewhere
// (git symbolic-ref, as a checkout does) the new branch is.
func TestWatchesFollowHEAD(t *testing.T) {
	repo := appRepo(t, "x\n")
	git(t, repo, "branch", "side")
	s := newSource(t, filepath.Join(repo, "data.json"), "HEAD")
	wa := newWatcher(t, s)
	sideRef := filepath.Join(repo, ".git", "refs", "heads", "side")
	if wa.ws.Concerns(sideRef) {
		t.Fatalf("side concerns HEAD before it points there: %+v", wa.ws)
	}
	git(t, repo, "symbolic-ref", "HEAD", "refs/heads/side")
	if _, ev := wa.next(); filepath.Base(ev.Name) != "HEAD" {
		t.Fatalf("event %v", ev)
	}
	wa.rewatch()
	if snap := stat(t, s); snap.Target != "refs/heads/side" || !wa.ws.Concerns(sideRef) {
		t.Fatalf("after the switch: %+v, watches %+v", snap, wa.ws)
	}
	tree := git(t, repo, "rev-parse", "side^{tree}")
	moved := git(t, repo, "commit-tree", "-p", "side", "-m", "m", tree)
	git(t, repo, "update-ref", "refs/heads/side", moved)
	if _, ev := wa.next(); ev.Name != sideRef {
		t.Fatalf("event %v", ev)
	}
	if snap := stat(t, s); snap.Commit != ID(moved) {
		t.Fatalf("after side moved: %+v", snap)
	}
}
