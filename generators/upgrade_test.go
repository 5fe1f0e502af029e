package generators

import (
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/mirrord/mirrord/eventlog"
	"github.com/mirrord/mirrord/internal/testkit"
	"github.com/mirrord/mirrord/mirror"
	"github.com/mirrord/mirrord/schema"
)

// The store in testdata/upgrade was made by the release before the
// generators kept their state apart (see its README): an index under
// generated:{name}:.…, hashtags lower-cased and as lists, positions
// without a version. Opened by the present code, its generators are
// rebuilt into the present layout without a resync and without a write
// to the mirror's own keys; verify passes before and after.
func TestUpgradeOfAPresentStore(t *testing.T) {
	dir := t.TempDir()
	copyTree(t, "testdata/upgrade/store", filepath.Join(dir, "store"))
	copyTree(t, "testdata/upgrade/data.json", filepath.Join(dir, "data.json"))
	e := &env{t: t, path: filepath.Join(dir, "data.json"), fs: vfs.Default, store: filepath.Join(dir, "store"),
		opts: Options{Enabled: []string{"summary", "hashtags"}, Logger: testkit.QuietLogger()}}
	e.evs = readLog(t, e.path)
	e.open()
	t.Cleanup(func() { e.db.Close() })

	// What the present release left.
	for _, name := range []string{"summary", "hashtags"} {
		n := 0
		for k := range e.generated(name) {
			if strings.HasPrefix(k, ".") {
				n++
			}
		}
		if n == 0 {
			t.Fatalf("setup: the fixture's %s has no index entries among its values", name)
		}
		if sts, _ := ReadStatuses(e.db); len(sts) != 2 || sts[0].State != "rebuild pending" {
			t.Fatalf("the old positions are not seen as due for a rebuild: %+v", sts)
		}
	}
	mirrorKeys := func() map[string]string {
		out := map[string]string{}
		for _, prefix := range []string{schema.PrefixEvent, schema.PrefixModifier, schema.PrefixDigest, schema.CheckpointKey} {
			if err := e.db.Scan(prefix, func(k string, v json.RawMessage) error { out[k] = string(v); return nil }); err != nil {
				t.Fatal(err)
			}
		}
		return out
	}
	verify := func(when string) {
		rep, err := mirror.Verify(e.ctx(), e.db, e.path, 0)
		if err != nil || !rep.OK() {
			t.Fatalf("verify %s the upgrade: %v %+v", when, err, rep)
		}
	}
	verify("before")
	before := mirrorKeys()

	// The generators alone, as a start does before following.
	if err := e.run.CatchUp(e.ctx(), 1); err != nil {
		t.Fatal(err)
	}
	if after := mirrorKeys(); !equalMaps(before, after) {
		t.Fatal("the upgrade changed the mirror's own keys")
	}
	verify("after")
	checkSummary(t, e)
	checkHashtags(t, e)
	for _, name := range []string{"summary", "hashtags"} {
		for k := range e.generated(name) {
			if strings.HasPrefix(k, ".") {
				t.Fatalf("%s still holds the old index entry %q among its values", name, k)
			}
		}
		var p position
		if _, err := e.db.Get(schema.GeneratorStateKey(name), &p); err != nil || p.Rebuild || p.Version != registeredVersionOf(t, name) {
			t.Fatalf("%s's position after the upgrade: %+v (%v)", name, p, err)
		}
	}
	// And it goes on from there: the log is still followed.
	e.appendEvents(&eventlog.Event{ID: "upgraded", Date: "2025-06-01T10:00:00+0200", Type: "diary", Input: "#After-upgrade",
		Creator: eventlog.Creator{Name: "n", UUID: "u", Version: "v"}})
	e.sync()
	checkSummary(t, e)
	checkHashtags(t, e)
	verify("after an append")
}

func registeredVersionOf(t *testing.T, name string) int {
	v, ok := registeredVersion(name)
	if !ok {
		t.Fatalf("%s is not registered", name)
	}
	return v
}

// readLog returns the events of the log at path, in order.
func readLog(t *testing.T, path string) []*eventlog.Event {
	t.Helper()
	d, err := eventlog.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var evs []*eventlog.Event
	for {
		ent, err := d.Next()
		if errors.Is(err, io.EOF) {
			return evs
		}
		if err != nil {
			t.Fatal(err)
		}
		if ent.Kind != eventlog.KindEvent {
			continue
		}
		ev, err := ent.Event()
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev)
	}
}

// copyTree copies a file, or a directory's files, to dst.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	st, err := os.Stat(src)
	if err != nil {
		t.Fatal(err)
	}
	if !st.IsDir() {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, ent := range ents {
		copyTree(t, filepath.Join(src, ent.Name()), filepath.Join(dst, ent.Name()))
	}
}
