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
	"github.com/mirrord/mirrord/internal/ctxtime"
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
	g        *group // every goroutine of the daemon runs in it
	db       *kv.DB
	eng      *mirror.Engine
	server   *api.Server
	notify   *sdnotify.Notifier
	shutdown atomic.Int64 // shutdown-timeout, ns

	// socket is the API's unix socket once it listens, and handler what
	// it serves: the starting answers while the daemon waits for the
	// store's lock, then the API.
	socket   *httpServer
	sockPath string
	handler  switchHandler

	// caughtUp is closed once the engine's first catch-up is done (a
	// resync, if asked, and the catch-up of Run): the generators' runner
	// starts then. Until then a load (the first, or a resync) is fed to
	// the built-in generators, which a running runner would not allow;
	// runnerStarted (set by the engine's goroutine, which runs every
	// load) says no further load may be.
	caughtUp      chan struct{}
	runnerStarted atomic.Bool

	// The runner's goroutine is owned by supervise, the only caller of
	// startRunner and stopGenerators; runner is read by the API (from
	// before it runs: it shows the generators fed by a first load).
	runner     atomic.Pointer[generators.Runner]
	stopRunner func()

	statusMu    sync.Mutex
	lastStatus  time.Time
	statusTimer *time.Timer // a trailing STATUS= after a suppressed one

	ready      atomic.Bool // READY=1 sent: no more start-timeout extensions
	extendMu   sync.Mutex
	lastExtend time.Time
}

// startExtension is how much longer systemd is asked to wait for READY=1
// each time a first load makes progress (EXTEND_TIMEOUT_USEC, at most
// once a second): a load that stops moving for this long still fails.
const startExtension = 90 * time.Second

// extendStart is called on the engine's progress and heartbeats.
func (d *daemon) extendStart() {
	if d.ready.Load() {
		return
	}
	d.extendMu.Lock()
	defer d.extendMu.Unlock()
	if time.Since(d.lastExtend) < time.Second {
		return
	}
	d.lastExtend = time.Now()
	_ = d.notify.ExtendTimeout(startExtension)
}

// serve is "mirrord run". Every part of the daemon (the engine, the API's
// servers, the generators and their reloads) runs under one group: the
// first that fails for good stops the others, and the daemon exits 1 with
// that error, within shutdown-timeout whatever is still running (systemd
// then restarts it).
func (m *Main) serve(ctx context.Context, e *env, resync bool) error {
	d := &daemon{m: m, e: e, notify: sdnotify.New(m.getenv), caughtUp: make(chan struct{})}
	d.shutdown.Store(int64(e.cfg.ShutdownTimeout))
	life := m.newLifetime(ctx, e.log, func() time.Duration { return time.Duration(d.shutdown.Load()) })
	defer life.stop()
	d.g = &group{l: life}
	if err := d.run(resync); err != nil {
		life.fail(err) // a failure to start stops what did start, within the same bound
	}
	return d.g.Wait() // what started before a signal (the socket, while waiting for the lock)
}

// run opens the store, starts the daemon's components and waits for them
// to stop; the store is closed after them.
func (d *daemon) run(resync bool) (err error) {
	if err := d.open(resync); err != nil || d.db == nil {
		return err // d.db is nil when a signal came while waiting for the lock
	}
	defer closeStore(d.db, &err)
	store, _ := filepath.Abs(d.e.cfg.Store)
	d.server = api.NewServer(api.Config{
		DB: d.db, Engine: d.eng, Runner: d.runner.Load, Store: store, Version: version(),
		MaxValueSize: d.e.cfg.MaxValueSize, StallTimeout: d.e.cfg.StallTimeout, Logger: d.e.log,
		Fatal: func(err error) { d.g.l.fail(err) },
	})
	// Prepared before the API serves the store (a failure here leaves no
	// API on a store about to close); run by supervise once the engine
	// has caught up.
	r, err := d.newRunner(d.e.cfg.Generators)
	if err != nil {
		return err
	}
	d.runner.Store(r)
	if err := d.listen(); err != nil {
		return err
	}
	d.g.Go("engine", func(ctx context.Context) error { return d.follow(ctx, resync) })
	d.g.Go("generators", d.supervise)
	if err := d.g.Wait(); err != nil {
		return err
	}
	events := int64(0)
	if cp := d.eng.Status().Checkpoint; cp != nil {
		events = cp.Events
	}
	d.e.log.Info("stopped; store closed", "events", events)
	return nil
}

// open opens the store and the engine on it. While another process holds
// the store's lock (a query command's read, most likely, racing this
// start), it waits for the lock, up to shutdown-timeout (see awaitLock).
// On a signal while it waits it returns nil with d.db nil.
func (d *daemon) open(resync bool) (err error) {
	tune := d.engineOptions(resync)
	wait := d.e.cfg.ShutdownTimeout
	deadline := time.Now().Add(wait)
	for pause := 10 * time.Millisecond; ; pause = min(2*pause, 100*time.Millisecond) {
		d.db, d.eng, err = d.m.openEngine(d.e, tune)
		switch {
		case !errors.Is(err, kv.ErrLocked):
			return err
		case time.Now().After(deadline):
			return fmt.Errorf("%w (waited %s, shutdown-timeout, for the lock)", err, wait)
		case d.socket == nil:
			if err := d.awaitLock(err); err != nil {
				return err
			}
		}
		if ctxtime.Sleep(d.g.l.ctx, pause) != nil {
			d.e.log.Info("stopped while waiting for the store's lock")
			return nil
		}
	}
}

// awaitLock begins the wait for the store's lock. A lock held by a daemon
// that serves the store is an error at once; otherwise the daemon says it
// waits, and opens its socket, whose answers say so too: a query then
// waits for the daemon rather than race it for the lock again.
func (d *daemon) awaitLock(locked error) error {
	c, _, err := d.m.findDaemon(d.g.l.ctx, d.m.storeSockets(d.e), d.e.cfg.Store)
	if err != nil {
		return fmt.Errorf("%w; %w", locked, err)
	}
	if c != nil {
		c.Close()
		return fmt.Errorf("%w; the mirrord daemon on %s serves it", locked, c.Path())
	}
	store, _ := filepath.Abs(d.e.cfg.Store)
	if err := d.listenSocket(api.StartingHandler(store, version(), "waiting for the store's lock (held by another process)")); err != nil {
		return err
	}
	d.e.log.Warn("the store is locked by another process; waiting for it", "store", d.e.cfg.Store, "up_to", d.e.cfg.ShutdownTimeout)
	return nil
}

// engineOptions returns the hooks the daemon adds to the engine's options.
func (d *daemon) engineOptions(resync bool) func(*mirror.Options) {
	prog := newProgress(d.m.Stderr, d.e.log)
	wdInterval, wdOn := sdnotify.WatchdogInterval(d.m.getenv, os.Getpid())
	return func(o *mirror.Options) {
		o.OnApply = d.applied
		o.OnProgress = func(p mirror.Progress) { prog.report(p); d.extendStart() }
		o.Resync = resync // a newer or foreign store is then rebuilt, not refused
		o.LoadFeed = d.loadFeed
		o.OnHeartbeat = d.extendStart
		if wdOn {
			// Pinged from the follow loop itself (and from progress within
			// a long step): a stuck loop lets the watchdog fire.
			o.Heartbeat = wdInterval
			ping := d.watchdog(wdInterval)
			o.OnHeartbeat = func() { ping(); d.extendStart() }
		}
	}
}

// follow runs the engine: the resync asked for, then the catch-up, then
// following the log until ctx is done.
func (d *daemon) follow(ctx context.Context, resync bool) error {
	defer func() {
		_ = d.notify.Stopping()
		d.stopStatus()
	}()
	if resync {
		if err := d.eng.Resync(ctx); err != nil && ctx.Err() == nil {
			return err
		}
	}
	if ctx.Err() != nil {
		d.e.log.Info("stopped before following the log")
		return nil
	}
	if err := d.eng.Run(ctx, d.onCaughtUp); err != nil || ctx.Err() != nil {
		return err
	}
	return errors.New("the engine stopped following the log") // Run returns nil only when ctx is done
}

// onCaughtUp is Run's ready: the log's first catch-up is done, or the log is
// missing and waited for (the daemon is ready either way: the log's
// absence is its writer's business). The generators start now.
func (d *daemon) onCaughtUp() {
	var events, offset int64
	st := d.eng.Status()
	if cp := st.Checkpoint; cp != nil {
		events, offset = cp.Events, cp.Offset
	}
	if st.LogMissing {
		d.e.log.Info("ready; waiting for the log", "path", st.Path, "waiting_for_dir", st.WaitingForDir, "events", events)
	} else {
		d.e.log.Info("caught up; following the log", "path", st.Path, "events", events, "offset", offset)
	}
	d.ready.Store(true)
	_ = d.notify.Ready(d.statusLine())
	if !d.runnerStarted.Swap(true) {
		close(d.caughtUp)
	}
}

// loadFeed is the engine's LoadFeed: a load before the runner starts (the
// first, or a resync) rebuilds the built-in generators beside it, from its
// own output, as "sync" does; a later one leaves them to the running
// runner, which rebuilds them from the store.
func (d *daemon) loadFeed() mirror.LoadFeed {
	r := d.runner.Load()
	if r == nil || d.runnerStarted.Load() {
		return nil
	}
	if f := r.LoadFeed(); f != nil {
		return f
	}
	return nil // not a typed nil
}

// supervise runs the generators once the engine has caught up, and
// re-reads the configuration on SIGHUP (a SIGHUP before then waits).
func (d *daemon) supervise(ctx context.Context) error {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	select {
	case <-ctx.Done():
		return nil
	case <-d.caughtUp:
	}
	d.startRunner(ctx, d.runner.Load())
	defer d.stopGenerators()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-hup:
			d.reload(ctx)
		}
	}
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
	if st.LogMissing {
		return api.Waiting(st.Path, st.WaitingForDir)
	}
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

// httpServer is one of the API's servers on its listener.
type httpServer struct {
	what string // "the API on <socket>", "metrics-listen <address>"
	srv  *api.HTTPServer
	ln   net.Listener
}

// serve serves until ctx is done, then gives requests in flight a few
// seconds (a slow client does not hold the store open). A listener that
// fails before then is a fatal error.
func (h httpServer) serve(ctx context.Context) error {
	defer h.ln.Close()
	done := make(chan error, 1)
	go func() { done <- h.srv.Serve() }()
	select {
	case err := <-done:
		return fmt.Errorf("serving %s: %w", h.what, err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := h.srv.Shutdown(sctx); err != nil {
		h.srv.Close()
	}
	<-done
	return nil
}

// switchHandler serves the handler set last.
type switchHandler struct{ h atomic.Pointer[http.Handler] }

func (s *switchHandler) set(h http.Handler) { s.h.Store(&h) }

func (s *switchHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	(*s.h.Load()).ServeHTTP(w, r)
}

// listenSocket makes the API's unix socket serve h, opening it (and
// starting its server in the group) the first time.
func (d *daemon) listenSocket(h http.Handler) error {
	d.handler.set(h)
	if d.socket != nil {
		return nil
	}
	ln, err := api.Listen(d.m.socketPath(d.e), d.e.cfg.SocketGroup)
	if err != nil {
		return err
	}
	srv, err := api.NewHTTPServer("socket", &d.handler, ln, d.e.log, nil)
	if err != nil {
		ln.Close()
		return err
	}
	d.sockPath = ln.Path()
	d.socket = &httpServer{what: "the API on " + ln.Path(), ln: ln, srv: srv}
	d.g.Go(d.socket.what, d.socket.serve)
	return nil
}

// listen serves the API on the unix socket, and /metrics and /healthz on
// the TCP address when one is configured.
func (d *daemon) listen() error {
	if err := d.listenSocket(d.server.Handler()); err != nil {
		return err
	}
	if addr := d.e.cfg.MetricsListen; addr != "" {
		tl, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("setting metrics-listen %q: %w", addr, err)
		}
		srv, err := api.NewHTTPServer("metrics", d.server.PublicHandler(), tl, d.e.log, nil)
		if err != nil {
			tl.Close()
			return err
		}
		h := httpServer{what: "metrics-listen " + tl.Addr().String(), ln: tl, srv: srv}
		d.g.Go(h.what, h.serve)
		d.e.log.Info("serving /metrics and /healthz", "address", tl.Addr().String())
	}
	d.e.log.Info("serving the API", "socket", d.sockPath)
	return nil
}

// newRunner prepares the generators named on the store.
func (d *daemon) newRunner(names []string) (*generators.Runner, error) {
	return generators.NewRunner(d.db, &generators.Options{Enabled: names, Logger: d.e.log})
}

// startRunner runs r's generators, each in its own goroutine, until
// stopGenerators.
func (d *daemon) startRunner(ctx context.Context, r *generators.Runner) {
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
}

// stopGenerators stops the runner and waits for its goroutines.
func (d *daemon) stopGenerators() {
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
		if r, err := d.newRunner(cfg.Generators); err == nil {
			d.startRunner(ctx, r)
			changed = append(changed, "generators")
		} else {
			d.e.log.Error("restarting the generators failed; keeping the previous set", "err", err)
			cfg.Generators = old.Generators
			if r, err := d.newRunner(old.Generators); err == nil {
				d.startRunner(ctx, r)
			} else {
				d.e.log.Error("restarting the previous generators failed", "err", err)
			}
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
