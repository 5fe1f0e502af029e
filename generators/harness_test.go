package generators

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/mirrord/mirrord/eventlog"
	"github.com/mirrord/mirrord/internal/testkit"
	"github.com/mirrord/mirrord/kv"
	"github.com/mirrord/mirrord/mirror"
	"github.com/mirrord/mirrord/schema"
)

// env is a log, a store, the mirror engine and a runner: the generators'
// whole world, with nothing mocked.
type env struct {
	t     testing.TB
	path  string
	fs    vfs.FS
	store string // the store's directory on fs
	db    *kv.DB
	eng   *mirror.Engine
	run   *Runner
	opts  Options
	evs   []*eventlog.Event // the log, in order
	// feed: the engine's bulk loads rebuild the generators beside them
	// (what sync --once wires).
	feed bool
}

func newEnv(t testing.TB, opts Options) *env {
	t.Helper()
	e := &env{t: t, path: filepath.Join(t.TempDir(), "data.json"), fs: vfs.NewMem(), opts: opts}
	if e.opts.Logger == nil {
		e.opts.Logger = testkit.QuietLogger()
	}
	if e.opts.RetryMin == 0 {
		e.opts.RetryMin = time.Millisecond
		e.opts.RetryMax = 20 * time.Millisecond
	}
	e.open()
	t.Cleanup(func() { e.db.Close() })
	return e
}

// open opens the store and the engine, closing the store first when it
// is open (everything written so far is then on disk).
func (e *env) open() {
	e.t.Helper()
	if e.db != nil {
		if err := e.db.Close(); err != nil {
			e.t.Fatal(err)
		}
	}
	if e.store == "" {
		e.store = "/store"
	}
	db, err := kv.Open(e.store, &kv.Options{FS: e.fs, Logger: testkit.QuietLogger()})
	if err != nil {
		e.t.Fatal(err)
	}
	e.db = db
	far := time.Now().Add(24 * time.Hour) // every file looks settled
	mo := &mirror.Options{EventLog: e.path, Logger: testkit.QuietLogger(), Now: func() time.Time { return far }}
	if e.feed {
		mo.LoadFeed = func() mirror.LoadFeed {
			if f := e.run.LoadFeed(); f != nil {
				return f
			}
			return nil
		}
	}
	e.eng, err = mirror.Open(db, mo)
	if err != nil {
		e.t.Fatal(err)
	}
	if e.run, err = NewRunner(db, &e.opts); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	e.t.Cleanup(cancel)
	return ctx
}

// write replaces the log with evs (the application's rewrite).
func (e *env) write(evs []*eventlog.Event) {
	e.t.Helper()
	if err := eventlog.RewriteFile(e.path, evs); err != nil {
		e.t.Fatal(err)
	}
	e.evs = evs
}

func (e *env) appendEvents(evs ...*eventlog.Event) {
	e.t.Helper()
	if err := eventlog.AppendFile(e.path, evs...); err != nil {
		e.t.Fatal(err)
	}
	e.evs = append(e.evs, evs...)
}

// sync mirrors the log and brings the generators up to date.
func (e *env) sync() {
	e.t.Helper()
	if err := e.eng.Sync(e.ctx()); err != nil {
		e.t.Fatalf("mirror Sync: %v", err)
	}
	if err := e.run.CatchUp(e.ctx(), 1); err != nil {
		e.t.Fatalf("CatchUp: %v", err)
	}
}

// winners is the log's events as the mirror holds them: the last
// occurrence of each id.
func (e *env) winners() map[string]*eventlog.Event {
	m := map[string]*eventlog.Event{}
	for _, ev := range e.evs {
		m[ev.ID] = ev
	}
	return m
}

// generated returns a generator's values, everything under
// generated:{name}:, as JSON by relative key.
func (e *env) generated(name string) map[string]json.RawMessage {
	e.t.Helper()
	out := map[string]json.RawMessage{}
	err := e.db.Scan(schema.GeneratorPrefix(name), func(k string, v json.RawMessage) error {
		p, err := schema.ParseKey(k)
		if err != nil {
			return err
		}
		out[p.Name] = append(json.RawMessage(nil), v...)
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

// all returns every key and value a generator holds: its values and its
// private state.
func (e *env) all(name string) map[string]string {
	e.t.Helper()
	out := map[string]string{}
	for _, prefix := range []string{schema.GeneratorPrefix(name), schema.StatePrefix(name)} {
		err := e.db.Scan(prefix, func(k string, v json.RawMessage) error {
			out[k] = string(v)
			return nil
		})
		if err != nil {
			e.t.Fatal(err)
		}
	}
	return out
}

func (e *env) status(name string) Status {
	for _, s := range e.run.Statuses() {
		if s.Name == name {
			return s
		}
	}
	e.t.Fatalf("no status for %s", name)
	return Status{}
}

func (e *env) feedLen() int {
	e.t.Helper()
	n := 0
	if err := schema.Changes(e.db, 0, func(schema.Change) error { n++; return nil }); err != nil {
		e.t.Fatal(err)
	}
	return n
}

// jsonEq compares two JSON values as values.
func jsonEq(a, b json.RawMessage) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return string(xa) == string(ya)
}
