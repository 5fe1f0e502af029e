package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/mirrord/mirrord/generators"
	"github.com/mirrord/mirrord/kv"
	"github.com/mirrord/mirrord/mirror"
)

// follower is an in-process engine (and, when asked, the default
// generators) following a log into its store: what the append-latency
// rows (d), (h) and (k) time their appends against. Its engine's OnApply
// wakes whoever waits for an append to become readable.
type follower struct {
	db      *kv.DB
	run     *generators.Runner // nil without generators
	applied chan struct{}
	done    chan error
	running int
	cancel  context.CancelFunc
	// poll, when set, also looks for the value this often, besides after
	// each apply.
	poll time.Duration
}

// follow opens store and follows opts.EventLog into it (opts' Logger and
// OnApply are its own), with the default generators when gens is set, and
// returns once the engine has caught up. stop ends it.
func follow(ctx context.Context, store string, opts mirror.Options, gens bool) (_ *follower, err error) {
	db, err := kv.Open(store, nil)
	if err != nil {
		return nil, err
	}
	f := &follower{db: db, applied: make(chan struct{}, 1), done: make(chan error, 2)}
	ctx, f.cancel = context.WithCancel(ctx)
	defer func() {
		if err != nil {
			f.stop()
		}
	}()
	quiet := slog.New(slog.DiscardHandler)
	if gens {
		// Without generators there is no runner: one with none would drop
		// their state.
		if f.run, err = generators.NewRunner(db, &generators.Options{Logger: quiet}); err != nil {
			return nil, err
		}
	}
	opts.Logger = quiet
	opts.OnApply = func(mirror.Applied) {
		if f.run != nil {
			f.run.Notify()
		}
		select {
		case f.applied <- struct{}{}:
		default:
		}
	}
	eng, err := mirror.Open(db, &opts)
	if err != nil {
		return nil, err
	}
	ready := make(chan struct{})
	f.running++
	go func() { f.done <- eng.Run(ctx, func() { close(ready) }) }()
	if f.run != nil {
		f.running++
		go func() { f.run.Run(ctx); f.done <- nil }()
	}
	what := opts.EventLog
	if opts.GitRef != "" {
		what += " at " + opts.GitRef
	}
	select {
	case <-ready:
		return f, nil
	case err := <-f.done:
		f.running--
		return nil, fmt.Errorf("following %s: %v", what, err)
	case <-time.After(10 * time.Minute):
		return nil, errors.New("the engine did not catch up in 10 minutes")
	}
}

// stop ends the following and closes the store.
func (f *follower) stop() {
	f.cancel()
	for range f.running {
		<-f.done
	}
	f.db.Close()
}

// expect drops a stale apply signal: called before the timed append.
func (f *follower) expect() {
	select {
	case <-f.applied:
	default:
	}
}

// await waits until key is readable from the store, at most limit, and
// returns how long that was after t0 and the value (into val's space).
// after names the moment t0 was, for the error when limit passes.
func (f *follower) await(t0 time.Time, key, val []byte, limit time.Duration, id, after string) (time.Duration, []byte, error) {
	deadline := time.After(limit)
	var tick <-chan time.Time
	for {
		v, found, err := f.db.GetBytes(key, val[:0])
		if err != nil {
			return 0, val, err
		}
		if found {
			return time.Since(t0), v, nil
		}
		if f.poll > 0 {
			tick = time.After(f.poll)
		}
		select {
		case <-f.applied:
		case <-tick:
		case err := <-f.done:
			f.running--
			return 0, val, fmt.Errorf("following stopped: %v", err)
		case <-deadline:
			return 0, val, fmt.Errorf("event %s not visible %s after %s", id, limit, after)
		}
	}
}

// percentiles sorts ds (at least one) and returns its median, 99th
// percentile and maximum.
func percentiles(ds []time.Duration) (p50, p99, top time.Duration) {
	slices.Sort(ds)
	return ds[len(ds)/2], ds[len(ds)*99/100], ds[len(ds)-1]
}
