package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// idle measures (f): the CPU a following daemon (the real binary, with
// its default generators, socket and safety check) uses while nothing
// changes, and its resident memory, on the 1k-event log and on the
// largest: the memory of following must not grow with the log.
func (b *runner) idle(ctx context.Context) error {
	logs := []struct {
		events     int
		log, store string
	}{
		{1000, filepath.Join(b.work, "small.json"), filepath.Join(b.work, "small-store")},
		{b.cfg.Sizes[len(b.cfg.Sizes)-1], b.bigLog(), b.bigStore()},
	}
	var daemons []*daemon
	defer func() {
		for _, d := range daemons {
			d.stop()
		}
	}()
	// What a daemon does when it starts after a stop: its generators are
	// current (a first pass over a large store fills the block cache,
	// which says nothing about following).
	for _, l := range logs {
		b.progress("mirrord sync with generators on the %s-event log", countLabel(l.events))
		if _, err := b.mirrordSync(ctx, l.log, l.store, false, true); err != nil {
			return err
		}
	}
	for i, l := range logs {
		b.progress("starting a daemon on the %s-event log", countLabel(l.events))
		d, err := startDaemon(ctx, b.cfg.Mirrord, filepath.Join(b.work, fmt.Sprintf("d%d", i)), l.log, l.store)
		if err != nil {
			return err
		}
		daemons = append(daemons, d)
	}
	// Both catch up (generators included) before the clock starts.
	for _, d := range daemons {
		if err := d.quiesce(ctx); err != nil {
			return err
		}
	}
	b.progress("watching both daemons idle for %v", b.cfg.Idle)
	var before []time.Duration
	for _, d := range daemons {
		c, err := cpuTime(d.cmd.Process.Pid)
		if err != nil {
			return err
		}
		before = append(before, c)
	}
	select {
	case <-time.After(b.cfg.Idle):
	case <-ctx.Done():
		return ctx.Err()
	}
	for i, d := range daemons {
		c, err := cpuTime(d.cmd.Process.Pid)
		if err != nil {
			return err
		}
		r, err := rss(d.cmd.Process.Pid)
		if err != nil {
			return err
		}
		b.rep.Idle = append(b.rep.Idle, IdleRow{
			Events:       logs[i].events,
			CPUPerMinute: time.Duration(float64(c-before[i]) * float64(time.Minute) / float64(b.cfg.Idle)),
			RSS:          r,
		})
	}
	for _, d := range daemons {
		if err := d.stop(); err != nil {
			return err
		}
	}
	return nil
}

// daemon is a `mirrord run` child.
type daemon struct {
	cmd     *exec.Cmd
	stderr  *strings.Builder
	done    chan error
	stopped bool
	err     error
}

// startDaemon starts mirrord run and waits for its sd_notify READY=1 (the
// initial catch-up is done then), through a NOTIFY_SOCKET of our own.
func startDaemon(ctx context.Context, bin, dir, logPath, store string) (*daemon, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	notifyPath := filepath.Join(dir, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notifyPath, Net: "unixgram"})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	cmd := exec.Command(bin, "run", "--eventlog", logPath, "--store", store,
		"--socket", filepath.Join(dir, "mirrord.sock"), "--log-level", "warn", "--log-format", "text")
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+notifyPath)
	d := &daemon{cmd: cmd, stderr: &strings.Builder{}, done: make(chan error, 1)}
	cmd.Stderr = d.stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() { d.done <- cmd.Wait() }()
	ready := make(chan error, 1)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				ready <- err
				return
			}
			for _, line := range strings.Split(string(buf[:n]), "\n") {
				if line == "READY=1" {
					ready <- nil
					return
				}
			}
		}
	}()
	select {
	case err := <-ready:
		if err != nil {
			d.stop()
			return nil, err
		}
		return d, nil
	case err := <-d.done:
		d.stopped = true
		return nil, fmt.Errorf("mirrord run exited before it was ready: %v\n%s", err, d.stderr.String())
	case <-time.After(10 * time.Minute):
		d.stop()
		return nil, errors.New("mirrord run: not ready after 10 minutes")
	case <-ctx.Done():
		d.stop()
		return nil, ctx.Err()
	}
}

// quiesce waits until the daemon has used under 5 ms of CPU in each of
// two seconds in a row (it has caught up), at most five minutes.
func (d *daemon) quiesce(ctx context.Context) error {
	deadline := time.Now().Add(5 * time.Minute)
	last, err := cpuTime(d.cmd.Process.Pid)
	if err != nil {
		return err
	}
	still := 0
	for still < 2 {
		if time.Now().After(deadline) {
			return errors.New("mirrord run: still busy after 5 minutes")
		}
		select {
		case <-time.After(time.Second):
		case <-ctx.Done():
			return ctx.Err()
		}
		c, err := cpuTime(d.cmd.Process.Pid)
		if err != nil {
			return err
		}
		if c-last < 5*time.Millisecond {
			still++
		} else {
			still = 0
		}
		last = c
	}
	return nil
}

// stop sends SIGTERM and waits for the daemon to exit (SIGKILL after 30 s).
// Safe to call twice.
func (d *daemon) stop() error {
	if d.stopped {
		return d.err
	}
	d.stopped = true
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.done:
		if err != nil {
			d.err = fmt.Errorf("mirrord run: %v\n%s", err, d.stderr.String())
		}
	case <-time.After(30 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.done
		d.err = fmt.Errorf("mirrord run did not stop within 30 s of SIGTERM\n%s", d.stderr.String())
	}
	return d.err
}
