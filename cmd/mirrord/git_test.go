package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mirrord/mirrord/eventlog"
	"github.com/mirrord/mirrord/internal/gittest"
	"github.com/mirrord/mirrord/internal/synth"
	"github.com/mirrord/mirrord/kv"
	"github.com/mirrord/mirrord/mirror"
	"github.com/mirrord/mirrord/schema"
)

// gitLogSize is the size of the log of evs, as committed.
func gitLogSize(evs []*eventlog.Event) int64 { return int64(len(eventlog.Format(evs))) }

// The daemon in git mode, as the application's recording device needs
// it: `mirrord run --eventlog <repo>/data.json --git-ref master` follows
// a repository into which transactions are pushed (appends, a delete, a
// force-push that drops commits, git gc), from its first load to a
// resync; status and verify, through the daemon and without it, speak of
// the ref, and the store equals the log at the ref.
func TestRunFollowsAGitRef(t *testing.T) {
	gittest.Need(t)
	root := t.TempDir()
	gen := synth.New(21)
	evs := gen.Events(40)
	repo := gittest.AppRepo(t, root, eventlog.Format(evs))
	log, store := filepath.Join(repo, "data.json"), filepath.Join(root, "store")
	args := []string{"--eventlog", log, "--git-ref", "master", "--store", store}
	c := startChild(t, append([]string{"run", "--log-level", "debug", "--log-format", "text"}, args...)...)
	c.WaitLine(60*time.Second, "caught up; following the log")

	// applied waits for the batch that brings the checkpoint to the end of
	// the log at the ref, of the kind given.
	applied := func(kind string, evs []*eventlog.Event) string {
		t.Helper()
		return c.WaitLine(30*time.Second, "applied a batch", "kind="+kind, fmt.Sprintf("offset=%d ", gitLogSize(evs)))
	}
	var commits []string
	var states [][]*eventlog.Event
	for range 3 {
		evs = append(slices.Clone(evs), gen.Events(2)...)
		commits = append(commits, gittest.Push(t, repo, "master", eventlog.Format(evs)))
		states = append(states, evs)
		applied("tail", evs)
	}
	// Through the daemon: the ref, its commit and blob.
	r := mirrord(t, nil, append([]string{"status", "--json"}, args...)...)
	var doc struct{ Mirror mirror.Status }
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &doc) != nil {
		t.Fatalf("status: exit %d %v\n%s", r.code, r.err, r.stdout)
	}
	st := doc.Mirror
	blob := gittest.Git(t, repo, "rev-parse", "master:data.json")
	if st.Ref != "refs/heads/master" || st.Commit != commits[2] || st.Blob != blob || st.Checkpoint.Blob != blob || st.Lag != 0 {
		t.Fatalf("status through the daemon: %+v", st)
	}
	if r := mirrord(t, nil, append([]string{"verify"}, args...)...); r.code != 0 || !strings.Contains(r.stdout, "compared with") {
		t.Fatalf("verify through the daemon: exit %d %v\n%s", r.code, r.err, r.stdout)
	}

	evs = append(slices.Clone(evs[:5]), evs[6:]...) // a delete: the application rewrites the log
	gittest.Push(t, repo, "master", eventlog.Format(evs))
	applied("reconcile", evs)
	gittest.Git(t, repo, "update-ref", "refs/heads/master", commits[0]) // a force-push back
	evs = states[0]
	applied("reconcile", evs)
	gittest.Git(t, repo, "gc", "-q", "--prune=now")
	evs = append(slices.Clone(evs), gen.Events(3)...)
	gittest.Push(t, repo, "master", eventlog.Format(evs))
	l := applied("tail", evs)

	// The generators followed the change feed: the summary counts every
	// event at the ref.
	_, seq, _ := strings.Cut(l, "seq=")
	seq, _, _ = strings.Cut(seq, " ")
	c.WaitLine(30*time.Second, "generator=summary", "position="+seq+" ")
	c.Signal(syscall.SIGTERM)
	if code := c.Wait(30 * time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM:\n%s", code, c.Output())
	}
	if n := summaryTotal(t, store); n != len(evs) {
		t.Fatalf("the summary generator counts %d events, the log at the ref has %d", n, len(evs))
	}
	// Without the daemon.
	r = mirrord(t, nil, append([]string{"status"}, args...)...)
	if r.code != 0 || !strings.Contains(r.stdout, "ref ") || !strings.Contains(r.stdout, "up to date") {
		t.Fatalf("status without the daemon: exit %d %v\n%s", r.code, r.err, r.stdout)
	}
	if r := mirrord(t, nil, append([]string{"verify"}, args...)...); r.code != 0 {
		t.Fatalf("verify without the daemon: exit %d %v\n%s", r.code, r.err, r.stdout)
	}
	// The work tree's file, as file mode reads it, is two transactions
	// and more behind: file mode says so.
	r = mirrord(t, nil, "status", "--eventlog", log, "--store", store)
	if !strings.Contains(r.stdout, "hint") || !strings.Contains(r.stdout, "git-ref: master") {
		t.Fatalf("file mode's status on the stale work tree gives no hint:\n%s", r.stdout)
	}
	// A resync rebuilds from the log at the ref.
	if r := mirrord(t, nil, append([]string{"sync", "--once", "--resync"}, args...)...); r.code != 0 {
		t.Fatalf("sync --resync: exit %d %v\n%s", r.code, r.err, r.stderr)
	}
	if r := mirrord(t, nil, append([]string{"verify"}, args...)...); r.code != 0 {
		t.Fatalf("verify after the resync: exit %d %v\n%s", r.code, r.err, r.stdout)
	}
	if n := summaryTotal(t, store); n != len(evs) {
		t.Fatalf("after the resync the summary generator counts %d events, the log at the ref has %d", n, len(evs))
	}
}

// summaryTotal adds up the summary generator's counts in the store.
func summaryTotal(t *testing.T, store string) int {
	t.Helper()
	db, err := kv.Open(store, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	total := 0
	err = db.Scan(schema.GeneratorPrefix("summary"), func(k string, v json.RawMessage) error {
		if p, _ := schema.ParseKey(k); !strings.HasPrefix(p.Name, ".") {
			var m struct{ Count int }
			if err := json.Unmarshal(v, &m); err != nil {
				return err
			}
			total += m.Count
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return total
}

// verifyGitStore runs mirrord verify in git mode (exit 0 only when the
// store equals the log at master).
func verifyGitStore(t *testing.T, log, store string) {
	t.Helper()
	c := startProcess(t, mirrordBinary(t), "verify", "--eventlog", log, "--git-ref", "master", "--store", store)
	if code := c.Wait(2 * time.Minute); code != 0 {
		t.Fatalf("verify in git mode: exit %d\n%s", code, c.Output())
	}
}

// committer makes commits on master until stopped, as the application's
// transactions arrive: appends of a few events, and now and then a delete
// (a rewrite). It returns the last log committed.
type committer struct {
	stop chan struct{}
	done chan struct{}
	mu   sync.Mutex
	evs  []*eventlog.Event
	n    int
	err  error
}

func startCommitter(repo string, evs []*eventlog.Event, seed uint64) *committer {
	c := &committer{stop: make(chan struct{}), done: make(chan struct{}), evs: evs}
	rng, gen := rand.New(rand.NewPCG(seed, 3)), synth.New(seed)
	go func() {
		defer close(c.done)
		for {
			select {
			case <-c.stop:
				return
			default:
			}
			c.mu.Lock()
			next := slices.Clone(c.evs)
			c.mu.Unlock()
			if rng.IntN(5) == 0 && len(next) > 10 {
				i := rng.IntN(len(next))
				next = append(next[:i], next[i+1:]...)
			} else {
				next = append(next, gen.Events(1+rng.IntN(20))...)
			}
			if _, err := gittest.CommitErr(repo, "refs/heads/master", map[string][]byte{"data.json": eventlog.Format(next)}); err != nil {
				c.mu.Lock()
				c.err = err
				c.mu.Unlock()
				return
			}
			c.mu.Lock()
			c.evs, c.n = next, c.n+1
			c.mu.Unlock()
		}
	}()
	return c
}

func (c *committer) finish(t *testing.T) int {
	t.Helper()
	close(c.stop)
	<-c.done
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		t.Fatal(c.err)
	}
	return c.n
}

// SIGKILL at random moments of a daemon in git mode while commits arrive
// (appends, and deletes that rewrite the log): each restart converges, and
// the store equals the log at the ref.
func TestCrashInGitModeWhileCommitsArrive(t *testing.T) {
	if testing.Short() {
		t.Skip("crash tests run real processes; skipped with -short")
	}
	gittest.Need(t)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 2))
	gen := synth.New(seed)
	root := t.TempDir()
	evs := gen.Events(3000)
	repo := gittest.AppRepo(t, root, eventlog.Format(evs))
	log, store := filepath.Join(repo, "data.json"), filepath.Join(root, "store")
	run := append([]string{"run"}, syncArgs(log, store, "--git-ref", "master")[2:]...)
	mirrordBinary(t)
	kills, commits := 0, 0
	for i := 0; i < *crashKills; i++ {
		c := startCommitter(repo, evs, rng.Uint64())
		if killAfterBatches(t, rng, 1+rng.IntN(8), run...) {
			kills++
		}
		commits += c.finish(t)
		evs = c.evs
		runBinary(t, syncArgs(log, store, "--git-ref", "master")...)
		verifyGitStore(t, log, store)
	}
	t.Logf("%d of %d runs killed while following %d commits", kills, *crashKills, commits)
	if kills < *crashKills/2 {
		t.Fatalf("only %d of %d kills landed while mirrord ran", kills, *crashKills)
	}
}
