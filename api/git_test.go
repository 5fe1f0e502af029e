package api_test

import (
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/mirrord/mirrord/eventlog"
	"github.com/mirrord/mirrord/internal/gittest"
	"github.com/mirrord/mirrord/internal/synth"
	"github.com/mirrord/mirrord/mirror"
	"github.com/mirrord/mirrord/schema"
)

// In git mode /v1/status names the ref, its commit and the log's blob
// there, and /v1/verify compares the store with the blob at the ref: equal
// once synced, equal over the part mirrored while the ref has moved on by
// an append, and different once the store is changed behind the engine.
func TestStatusAndVerifyInGitMode(t *testing.T) {
	gittest.Need(t)
	root := t.TempDir()
	var repo string
	var evs []*eventlog.Event
	f := newFixture(t, fixtureOptions{events: 0, engineMod: func(o *mirror.Options) {
		evs = synth.New(5).Events(30)
		repo = gittest.AppRepo(t, root, eventlog.Format(evs))
		o.EventLog, o.GitRef, o.TempDir = filepath.Join(repo, "data.json"), "master", t.TempDir()
	}})
	ctx := testCtx(t, 30*time.Second)
	st, err := f.client.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	commit, blob := gittest.Git(t, repo, "rev-parse", "master"), gittest.Git(t, repo, "rev-parse", "master:data.json")
	if m := st.Mirror; m.Ref != "refs/heads/master" || m.Commit != commit || m.Blob != blob || m.Checkpoint.Blob != blob || m.Checkpoint.Commit != commit {
		t.Fatalf("status: %+v", m)
	}
	r, err := f.client.Verify(ctx)
	if err != nil || !r.OK() || r.Events != 30 || r.Blob != blob || r.Commit != commit || r.Covered != r.LogSize {
		t.Fatalf("verify: %+v, %v", r, err)
	}
	// The ref moves on by an append the engine has not applied: what it
	// mirrored is still a prefix of the log at the ref.
	more := append(slices.Clone(evs), synth.New(5).Events(31)[30:]...)
	gittest.Push(t, repo, "master", eventlog.Format(more))
	r, err = f.client.Verify(ctx)
	if err != nil || !r.OK() || r.Covered >= r.LogSize || r.Events != 30 {
		t.Fatalf("verify with an append not applied: %+v, %v", r, err)
	}
	f.sync()
	if err := f.db.Put(string(schema.AppendEventKey(nil, []byte(evs[3].ID))), map[string]string{"id": "changed"}); err != nil {
		t.Fatal(err)
	}
	if r, err = f.client.Verify(ctx); err != nil || r.OK() || r.Differ != 1 || r.Events != 31 {
		t.Fatalf("verify after a change behind the engine: %+v, %v", r, err)
	}
}
