package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mirrord/mirrord/api"
)

// The soak (issue 7, item 6): a writer appends and rewrites at a high
// rate while verify runs through the socket every so often; the daemon
// never diverges, and its memory and open file descriptors stay flat. A
// few seconds by default; -mirrord.soak=10m (or hours) for a real soak.

var soakFor = flag.Duration("mirrord.soak", 2*time.Second, "how long the soak test writes")

// soakStartup is how long after the writer starts the daemon's resources
// are not judged; minSamples is how many the sampler takes after it,
// however long that takes.
const (
	soakStartup = 500 * time.Millisecond
	minSamples  = 6
)

type soakSample struct {
	at       time.Duration
	rss, fds int64
}

// openFDs counts the open descriptors of process pid.
func openFDs(pid int) (int64, error) {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return int64(len(ents)), err
}

func TestSoak(t *testing.T) {
	dir := shortDir(t)
	log, store := filepath.Join(dir, "data.json"), filepath.Join(dir, "store")
	w := newLogWriter(t, log, 71, 200, 50*time.Millisecond)
	// The non-race build: its memory is what production's is, and a long
	// soak gets through more of the log.
	c := startProcess(t, mirrordBinary(t), "run", "--eventlog", log, "--store", store, "--settle", "20ms", "--safety-check", "1s")
	c.WaitLine(60*time.Second, "caught up")
	pid := c.Cmd().Process.Pid
	client := api.NewClient(api.DefaultPath("", store))
	defer client.Close()

	ctx, cancel := context.WithTimeout(context.Background(), *soakFor)
	defer cancel()
	start := time.Now()
	var (
		mu       sync.Mutex
		samples  []soakSample
		verifies int
		wg       sync.WaitGroup
	)
	errs := make(chan error, 2)
	wg.Add(2)
	go func() { // resources, every 50 ms, and at least minSamples after the start-up
		defer wg.Done()
		for n := 0; ctx.Err() == nil || n < minSamples; {
			// Errors go to errs: only the test's goroutine may end it.
			rss, err1 := readProcStatus(pid, "VmRSS")
			fds, err2 := openFDs(pid)
			if err := errors.Join(err1, err2); err != nil {
				errs <- fmt.Errorf("sampling the daemon: %w", err)
				return
			}
			s := soakSample{at: time.Since(start), rss: rss, fds: fds}
			mu.Lock()
			samples = append(samples, s)
			mu.Unlock()
			if s.at >= soakStartup {
				n++
			}
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	go func() { // verify through the socket, every 250 ms
		defer wg.Done()
		for ctx.Err() == nil {
			vctx, vcancel := context.WithTimeout(context.Background(), time.Minute)
			r, err := client.Verify(vctx)
			vcancel()
			if err != nil {
				errs <- fmt.Errorf("verify: %w", err)
				return
			}
			if !r.OK() {
				errs <- fmt.Errorf("verify during the soak: %s: missing %q extra %q differ %q bookkeeping %q",
					r.Summary(), r.MissingKeys, r.ExtraKeys, r.DifferKeys, r.BookkeepingKeys)
				return
			}
			mu.Lock()
			verifies++
			mu.Unlock()
			select {
			case <-ctx.Done():
			case <-time.After(250 * time.Millisecond):
			}
		}
	}()
	werr := w.run(ctx, 500*time.Microsecond, 100, 3000)
	cancel() // the samplers stop with the writer, also when it failed
	wg.Wait()
	if werr != nil {
		t.Fatal(werr)
	}
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	waitExact(t, client, "after the soak")
	t.Logf("%v: %d appends, %d rewrites, %d verifies, %d events in the log", *soakFor, w.appends.Load(), w.rewrites.Load(), verifies, len(uniqueIDs(w.evs)))
	if verifies < 2 {
		t.Fatalf("only %d verifies passed during the soak", verifies)
	}

	// Flat: the largest RSS and fd count of the last third of the samples
	// against the first third's (after the first half second, which is
	// the start-up). Thirds of the samples, not of the time: on a loaded
	// machine the sampler may be late, and a third of the time could hold
	// none.
	var post []soakSample
	for _, s := range samples {
		if s.at >= soakStartup {
			post = append(post, s)
		}
	}
	if len(post) < minSamples {
		t.Fatalf("%d resource samples after the start-up, want %d", len(post), minSamples)
	}
	var first, last soakSample
	third := len(post) / 3
	for _, s := range post[:third] {
		first.rss, first.fds = max(first.rss, s.rss), max(first.fds, s.fds)
	}
	for _, s := range post[len(post)-third:] {
		last.rss, last.fds = max(last.rss, s.rss), max(last.fds, s.fds)
	}
	t.Logf("RSS %d → %d MiB, open fds %d → %d", first.rss>>20, last.rss>>20, first.fds, last.fds)
	// Pebble's cache (32 MiB) and memtables fill as the store grows:
	// allow that, and a half again; a leak grows past it over a long run.
	if last.rss > first.rss*3/2+48<<20 {
		t.Errorf("RSS grew from %d MiB to %d MiB", first.rss>>20, last.rss>>20)
	}
	if last.fds > first.fds+16 {
		t.Errorf("open file descriptors grew from %d to %d", first.fds, last.fds)
	}
	c.Signal(syscall.SIGTERM)
	if code := c.Wait(30 * time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
}
