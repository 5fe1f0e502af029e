package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mirrord/mirrord/api"
	"github.com/mirrord/mirrord/generators"
	"github.com/mirrord/mirrord/internal/sdnotify"
	"github.com/mirrord/mirrord/kv"
	"github.com/mirrord/mirrord/mirror"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
)

func (m *Main) runCommand() *cobra.Command {
	var resync bool
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Mirror the event log and keep following it (the daemon)",
		Long: `Catch up with the event log, then follow it: every append, rewrite or
replacement of the file is mirrored into the store, exactly once, and the
generators are kept up to date.

While it runs, mirrord serves its store on a unix socket (the query commands
use it), tells systemd when it is ready (Type=notify) and pings its watchdog.
SIGHUP re-reads the configuration. On SIGINT or SIGTERM the batch in hand is
finished, the store is closed cleanly and mirrord exits 0; a second signal,
or a shutdown longer than shutdown-timeout, exits at once (the store stays
consistent anyway: every batch carries its own checkpoint).`,
		Args: cobra.NoArgs,
		RunE: m.action([]string{"eventlog", "store"}, func(ctx context.Context, e *env, _ []string) error {
			return m.serve(ctx, e, resync)
		}),
	}
	cmd.Flags().BoolVar(&resync, "resync", false, "rebuild the store from scratch before following")
	addFlags(cmd.Flags(), engineKeys...)
	addFlags(cmd.Flags(), daemonKeys...)
	return cmd
}

// daemon is one running "mirrord run": the engine, the generators, the
// API, and what ties them to systemd.
type daemon struct {
	m        *Main
	e        *env
	db       *kv.DB
	eng      *mirror.Engine
	server   *api.Server
	notify   *sdnotify.Notifier
	shutdown atomic.Int64 // shutdown-timeout, ns

	runnerMu   sync.Mutex
	runner     atomic.Pointer[generators.Runner]
	stopRunner func()

	statusMu    sync.Mutex
	lastStatus  time.Time
	statusTimer *time.Timer // a trailing STATUS= after a suppressed one
}

func (m *Main) serve(ctx context.Context, e *env, resync bool) (err error) {
	d := &daemon{m: m, e: e, notify: sdnotify.New(m.getenv)}
	d.shutdown.Store(int64(e.cfg.ShutdownTimeout))
	ctx, stop := m.signalContext(ctx, e.log, func() time.Duration { return time.Duration(d.shutdown.Load()) })
	defer stop()

	prog := newProgress(m.Stderr, e.log)
	wdInterval, wdOn := sdnotify.WatchdogInterval(m.getenv, os.Getpid())
	d.db, d.eng, err = m.openEngine(e, func(o *mirror.Options) {
		o.OnApply = d.applied
		o.OnProgress = prog.report
		o.Resync = resync // a newer or foreign store is then rebuilt, not refused
		if wdOn {
			// Pinged from the follow loop itself (and from progress within
			// a long step): a stuck loop lets the watchdog fire.
			o.Heartbeat = wdInterval
			o.OnHeartbeat = d.watchdog(wdInterval)
		}
	})
	if err != nil {
		return err
	}
	defer closeStore(d.db, &err)

	store, _ := filepath.Abs(e.cfg.Store)
	d.server = api.NewServer(api.Config{
		DB: d.db, Engine: d.eng, Runner: d.runner.Load, Store: store, Version: version(),
		MaxValueSize: e.cfg.MaxValueSize, StallTimeout: e.cfg.StallTimeout, Logger: e.log,
	})
	stopHTTP, err := d.listen()
	if err != nil {
		return err
	}
	defer stopHTTP()

	if resync {
		if err := d.eng.Resync(ctx); err != nil && ctx.Err() == nil {
			return err
		}
	}
	if ctx.Err() != nil {
		e.log.Info("stopped before following the log")
		return nil
	}
	if err := d.startRunner(ctx, e.cfg.Generators); err != nil {
		return err
	}
	defer d.stopGenerators()

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	reloadDone := make(chan struct{})
	go func() {
		defer close(reloadDone)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				d.reload(ctx)
			}
		}
	}()

	err = d.eng.Run(ctx, func() {
		var events, offset int64
		if cp := d.eng.Checkpoint(); cp != nil {
			events, offset = cp.Events, cp.Offset
		}
		e.log.Info("caught up; following the log", "path", d.eng.Path(), "events", events, "offset", offset)
		_ = d.notify.Ready(d.statusLine())
		if r := d.runner.Load(); r != nil {
			r.Notify()
		}
	})
	_ = d.notify.Stopping()
	d.stopStatus()
	<-reloadDone
	d.stopGenerators()
	if err == nil {
		events := int64(0)
		if cp := d.eng.Status().Checkpoint; cp != nil {
			events = cp.Events
		}
		e.log.Info("stopped; store closed", "events", events)
	}
	return err
}

// applied is the engine's OnApply: metrics, the generators' wake-up, and
// systemd's status line (at most once a second, the last one always).
func (d *daemon) applied(a mirror.Applied) {
	d.server.Applied(a)
	if r := d.runner.Load(); r != nil {
		r.Notify()
	}
	d.statusMu.Lock()
	defer d.statusMu.Unlock()
	if wait := time.Second - time.Since(d.lastStatus); wait > 0 {
		if d.statusTimer == nil {
			d.statusTimer = time.AfterFunc(wait, func() {
				d.statusMu.Lock()
				d.statusTimer = nil
				d.lastStatus = time.Now()
				d.statusMu.Unlock()
				_ = d.notify.Status(d.statusLine())
			})
		}
		return
	}
	d.lastStatus = time.Now()
	_ = d.notify.Status(d.statusLine())
}

// stopStatus cancels a trailing status update.
func (d *daemon) stopStatus() {
	d.statusMu.Lock()
	defer d.statusMu.Unlock()
	if d.statusTimer != nil {
		d.statusTimer.Stop()
		d.statusTimer = nil
	}
}

func (d *daemon) statusLine() string {
	st := d.eng.Status()
	if st.Checkpoint == nil {
		return "starting"
	}
	return fmt.Sprintf("mirrored %d events, lag %d B", st.Checkpoint.Events, st.Lag)
}

// watchdog returns the heartbeat function: WATCHDOG=1, at most four times
// per interval.
func (d *daemon) watchdog(interval time.Duration) func() {
	var mu sync.Mutex
	var last time.Time
	return func() {
		mu.Lock()
		defer mu.Unlock()
		if time.Since(last) < interval/4 {
			return
		}
		last = time.Now()
		_ = d.notify.Watchdog()
	}
}

// listen starts the API on the unix socket, and /metrics and /healthz on
// the TCP address when one is configured. The returned function stops
// both, giving requests in flight a few seconds.
func (d *daemon) listen() (func(), error) {
	path := d.m.socketPath(d.e)
	ln, err := api.Listen(path, d.e.cfg.SocketGroup)
	if err != nil {
		return nil, err
	}
	servers := []*http.Server{{Handler: d.server.Handler(), ReadHeaderTimeout: 10 * time.Second}}
	listeners := []net.Listener{ln}
	if addr := d.e.cfg.MetricsListen; addr != "" {
		tl, err := net.Listen("tcp", addr)
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("setting metrics-listen %q: %w", addr, err)
		}
		servers = append(servers, &http.Server{Handler: d.server.PublicHandler(), ReadHeaderTimeout: 10 * time.Second})
		listeners = append(listeners, tl)
		d.e.log.Info("serving /metrics and /healthz", "address", tl.Addr().String())
	}
	var wg sync.WaitGroup
	for i, srv := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Serve(listeners[i]); err != nil && !errors.Is(err, http.ErrServerClosed) {
				d.e.log.Error("API server stopped", "err", err)
			}
		}()
	}
	d.e.log.Info("serving the API", "socket", ln.Path())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		for _, srv := range servers {
			if err := srv.Shutdown(ctx); err != nil {
				srv.Close() // a slow client does not hold the store open
			}
		}
		wg.Wait()
		ln.Close()
	}, nil
}

// startRunner starts the generators named, each in its own goroutine.
func (d *daemon) startRunner(ctx context.Context, names []string) error {
	d.runnerMu.Lock()
	defer d.runnerMu.Unlock()
	r, err := generators.NewRunner(d.db, &generators.Options{Enabled: names, Logger: d.e.log})
	if err != nil {
		return err
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Run(rctx)
	}()
	d.runner.Store(r)
	d.stopRunner = func() {
		cancel()
		<-done
	}
	r.Notify()
	return nil
}

func (d *daemon) stopGenerators() {
	d.runnerMu.Lock()
	defer d.runnerMu.Unlock()
	if d.stopRunner != nil {
		d.stopRunner()
		d.stopRunner = nil
	}
}

// reload re-reads the configuration (SIGHUP). The log level, the timings,
// the generator set and the two timeouts change at once; a change to any
// other setting is reported, and takes effect at the next start.
func (d *daemon) reload(ctx context.Context) {
	_ = d.notify.Reloading(monotonic())
	defer func() { _ = d.notify.Ready(d.statusLine()) }()
	old := d.e.cfg
	cfg, err := d.m.loadConfig(d.e.cmd)
	if err != nil {
		d.e.log.Error("reloading the configuration failed; keeping the running one", "err", err)
		return
	}
	var changed []string
	if cfg.LogLevel != old.LogLevel {
		d.e.level.Set(levelVar(cfg.LogLevel).Level())
		changed = append(changed, "log-level")
	}
	if cfg.Settle != old.Settle || cfg.Debounce != old.Debounce || cfg.SafetyCheck != old.SafetyCheck {
		safety := cfg.SafetyCheck
		if safety == 0 {
			safety = -1
		}
		d.eng.SetTimings(mirror.Timings{Settle: cfg.Settle, Debounce: cfg.Debounce, SafetyCheck: safety})
		changed = append(changed, "settle/debounce/safety-check")
	}
	if cfg.StallTimeout != old.StallTimeout {
		d.server.SetStallTimeout(cfg.StallTimeout)
		changed = append(changed, "stall-timeout")
	}
	if cfg.ShutdownTimeout != old.ShutdownTimeout {
		d.shutdown.Store(int64(cfg.ShutdownTimeout))
		changed = append(changed, "shutdown-timeout")
	}
	if !slices.Equal(cfg.Generators, old.Generators) {
		d.stopGenerators()
		if err := d.startRunner(ctx, cfg.Generators); err != nil {
			d.e.log.Error("restarting the generators failed; keeping the previous set", "err", err)
			cfg.Generators = old.Generators
			if err := d.startRunner(ctx, old.Generators); err != nil {
				d.e.log.Error("restarting the previous generators failed", "err", err)
			}
		} else {
			changed = append(changed, "generators")
		}
	}
	fixed := map[string]bool{
		"eventlog": cfg.EventLog != old.EventLog, "git-ref": cfg.GitRef != old.GitRef, "store": cfg.Store != old.Store,
		"log-format": cfg.LogFormat != old.LogFormat, "max-value-size": cfg.MaxValueSize != old.MaxValueSize,
		"batch-size": cfg.BatchSize != old.BatchSize, "socket": cfg.Socket != old.Socket,
		"socket-group": cfg.SocketGroup != old.SocketGroup, "metrics-listen": cfg.MetricsListen != old.MetricsListen,
	}
	var ignored []string
	for _, s := range settings {
		if fixed[s.key] {
			ignored = append(ignored, s.key)
		}
	}
	for _, k := range ignored {
		d.e.log.Warn("a changed setting cannot be applied while mirrord runs; restart it to apply", "setting", k)
	}
	// The running values of what could not change stay in force.
	cfg.EventLog, cfg.GitRef, cfg.Store, cfg.LogFormat, cfg.MaxValueSize = old.EventLog, old.GitRef, old.Store, old.LogFormat, old.MaxValueSize
	cfg.BatchSize, cfg.Socket, cfg.SocketGroup, cfg.MetricsListen = old.BatchSize, old.Socket, old.SocketGroup, old.MetricsListen
	d.e.cfg = cfg
	d.e.log.Info("configuration reloaded", "changed", changed, "not_applied", ignored)
}

// monotonic is the time since boot, as sd_notify's MONOTONIC_USEC wants it.
func monotonic() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}
