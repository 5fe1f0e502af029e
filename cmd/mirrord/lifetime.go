package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

// lifetime is how a command ends. Its context is cancelled by the first
// SIGINT or SIGTERM, or by the first fatal error (fail); from then on a
// second signal, or a stop that takes longer than timeout(), ends the
// process at once, whatever goroutines are still running. The store stays
// consistent either way: every batch carries its own checkpoint.
type lifetime struct {
	m       *Main
	log     *slog.Logger
	timeout func() time.Duration // nil: no bound

	ctx    context.Context
	cancel context.CancelFunc
	sigs   chan os.Signal

	once  sync.Once
	err   error         // the first fatal error, set before fatal is closed
	fatal chan struct{} // closed by the first fail

	done    chan struct{} // closed by stop
	stopped chan struct{} // closed when the watching goroutine has returned
}

// newLifetime starts watching for the signals; stop releases them.
func (m *Main) newLifetime(ctx context.Context, log *slog.Logger, timeout func() time.Duration) *lifetime {
	l := &lifetime{
		m: m, log: log, timeout: timeout,
		sigs:  make(chan os.Signal, 2),
		fatal: make(chan struct{}), done: make(chan struct{}), stopped: make(chan struct{}),
	}
	l.ctx, l.cancel = context.WithCancel(ctx)
	signal.Notify(l.sigs, syscall.SIGINT, syscall.SIGTERM)
	go l.watch()
	return l
}

// fail records err as the reason the command stops, unless another error
// came first, and cancels the context. It reports whether err was the
// first.
func (l *lifetime) fail(err error) bool {
	first := false
	l.once.Do(func() {
		l.err, first = err, true
		close(l.fatal)
		l.cancel()
	})
	return first
}

// Err returns the first fatal error, or nil.
func (l *lifetime) Err() error {
	select {
	case <-l.fatal:
		return l.err
	default:
		return nil
	}
}

// stop releases the signals and waits for the watching goroutine.
func (l *lifetime) stop() {
	signal.Stop(l.sigs)
	close(l.done)
	l.cancel()
	<-l.stopped
}

// watch cancels the context on the first signal, then bounds the stop.
func (l *lifetime) watch() {
	defer close(l.stopped)
	select {
	case sig := <-l.sigs:
		l.log.Info("signal received; finishing the batch in hand (send it again to exit at once)", "signal", sig.String())
		l.cancel()
	case <-l.fatal:
	case <-l.done:
		return
	}
	var bound <-chan time.Time
	if l.timeout != nil {
		t := time.NewTimer(l.timeout())
		defer t.Stop()
		bound = t.C
	}
	select {
	case sig := <-l.sigs:
		l.exitNow(slog.LevelWarn, "second signal", "signal", sig.String())
	case <-bound:
		l.exitNow(slog.LevelError, "shutting down took longer than shutdown-timeout", "timeout", l.timeout())
	case <-l.done:
	}
}

// exitNow ends the process. When a fatal error is why it was stopping,
// that error is the one line it prints (as main would have), with why it
// did not wait any longer; otherwise why is logged.
func (l *lifetime) exitNow(level slog.Level, why string, args ...any) {
	if err := l.Err(); err != nil {
		w := l.m.Stderr
		if w == nil {
			w = os.Stderr
		}
		fmt.Fprintf(w, "mirrord: %v (%s; exited at once)\n", withWayOut(err), why)
	} else {
		l.log.Log(context.Background(), level, why+"; exiting at once (the store is consistent at its last checkpoint)", args...)
	}
	l.m.exit(exitFailure)
}

// group runs a daemon's components, each in its own goroutine, under one
// lifetime: the first that fails stops them all (its error is the one the
// command returns), and so does a signal. A component returns nil when
// its context is done, and only then.
type group struct {
	l  *lifetime
	wg sync.WaitGroup
}

// Go runs fn in a goroutine the group owns.
func (g *group) Go(name string, fn func(ctx context.Context) error) {
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		if err := fn(g.l.ctx); err != nil && !g.l.fail(err) {
			// A consequence of the first failure, most likely; the first
			// is the one reported.
			g.l.log.Debug("also stopped with an error", "component", name, "err", err)
		}
	}()
}

// Wait waits for every component and returns the first error.
func (g *group) Wait() error {
	g.wg.Wait()
	return g.l.Err()
}
