package mirror

import (
	"maps"
	"os"
	"path/filepath"
	"testing"

	"github.com/fsnotify/fsnotify"
)

// The file source's watch set, for each state its directories can be in:
// what is watched, for which names, and which directory the status says
// is waited for.
func TestFileSourceWatchSet(t *testing.T) {
	type want = map[string]map[string]eventKind // dir (relative) -> names
	for _, tc := range []struct {
		name    string
		setup   func(t *testing.T, root string)
		log     string // relative to root
		want    want
		missing string // relative to root; "" when the log's directory exists
	}{
		{"the log's directory exists", func(t *testing.T, root string) {
			mustDo(t, os.MkdirAll(filepath.Join(root, "repo"), 0o755))
		}, "repo/data.json", want{"repo": {"data.json": evChange}}, ""},
		{"the log exists", func(t *testing.T, root string) {
			writeLog(t, filepath.Join(root, "repo", "data.json"), nil)
		}, "repo/data.json", want{"repo": {"data.json": evChange}}, ""},
		{"two levels missing", func(*testing.T, string) {},
			"a/b/data.json", want{".": {"a": evPath}}, "a"},
		{"one level missing", func(t *testing.T, root string) {
			mustDo(t, os.Mkdir(filepath.Join(root, "a"), 0o755))
		}, "a/b/data.json", want{"a": {"b": evPath}}, "a/b"},
		{"a file in the way", func(t *testing.T, root string) {
			mustDo(t, os.WriteFile(filepath.Join(root, "a"), nil, 0o644))
		}, "a/b/data.json", want{".": {"a": evPath}}, "a"},
		{"a symlink into an existing directory", func(t *testing.T, root string) {
			writeLog(t, filepath.Join(root, "target", "repo", "data.json"), nil)
			mustDo(t, os.Symlink(filepath.Join(root, "target", "repo", "data.json"), filepath.Join(root, "data.json")))
		}, "data.json", want{".": {"data.json": evChange}, "target/repo": {"data.json": evChange}}, ""},
		{"a relative symlink into a missing directory", func(t *testing.T, root string) {
			mustDo(t, os.Mkdir(filepath.Join(root, "target"), 0o755))
			mustDo(t, os.Symlink("target/repo/data.json", filepath.Join(root, "data.json")))
		}, "data.json", want{".": {"data.json": evChange}, "target": {"repo": evPath}}, "target/repo"},
		{"a chain of symlinks", func(t *testing.T, root string) {
			writeLog(t, filepath.Join(root, "target", "data.json"), nil)
			mustDo(t, os.Symlink(filepath.Join(root, "target", "data.json"), filepath.Join(root, "link2")))
			mustDo(t, os.Symlink("link2", filepath.Join(root, "data.json")))
		}, "data.json", want{".": {"data.json": evChange}, "target": {"data.json": evChange}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root, err := filepath.EvalSymlinks(t.TempDir())
			mustDo(t, err)
			tc.setup(t, root)
			path := filepath.Join(root, tc.log)
			got := want{}
			set, err := (&fileSource{path: path}).watchSet()
			mustDo(t, err)
			for _, wd := range set {
				rel, err := filepath.Rel(root, wd.dir)
				mustDo(t, err)
				if got[rel] == nil {
					got[rel] = map[string]eventKind{}
				}
				maps.Copy(got[rel], wd.names)
			}
			if !maps.EqualFunc(got, tc.want, maps.Equal) {
				t.Fatalf("watch set %v, want %v", got, tc.want)
			}
			wantMissing := ""
			if tc.missing != "" {
				wantMissing = filepath.Join(root, tc.missing)
			}
			if m := missingDir(path); m != wantMissing {
				t.Fatalf("missingDir = %q, want %q", m, wantMissing)
			}
		})
	}
}

// What Run pays before every decision to keep its watches equal to the
// watch set when nothing changed (a few stats and a look at the
// watcher's list): small beside the decision's own open, fstat and read.
func BenchmarkWatchSetUpdate(b *testing.B) {
	for _, tc := range []struct{ name, log string }{
		{"log present", "repo/data.json"},
		{"directory missing", "a/b/data.json"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			root := b.TempDir()
			writeLog(b, filepath.Join(root, "repo", "data.json"), nil)
			w, err := fsnotify.NewWatcher()
			if err != nil {
				b.Fatal(err)
			}
			defer w.Close()
			d := dirWatch{w: w, src: &fileSource{path: filepath.Join(root, tc.log)}, dirs: map[string]*watched{}}
			if _, err := d.update(); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if changed, err := d.update(); err != nil || changed {
					b.Fatalf("update of an unchanged tree: changed %v, %v", changed, err)
				}
			}
		})
	}
}
