package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/mirrord/mirrord/api"
	"github.com/mirrord/mirrord/internal/ctxtime"
	"github.com/mirrord/mirrord/kv"
)

// unitSocket is where the systemd unit's daemon listens
// (RuntimeDirectory=mirrord).
const unitSocket = "/run/mirrord/mirrord.sock"

// socketPath is where the daemon listens: the socket setting, else
// $RUNTIME_DIRECTORY/mirrord.sock, else beside the store.
func (m *Main) socketPath(e *env) string {
	if e.cfg.Socket != "" {
		return e.cfg.Socket
	}
	return api.DefaultPath(m.getenv("RUNTIME_DIRECTORY"), e.cfg.Store)
}

// socketCandidates are the sockets a query command tries: where a daemon
// with this configuration listens, and, unless a socket is configured,
// the other default places (a shell has no $RUNTIME_DIRECTORY, the unit
// does).
func (m *Main) socketCandidates(e *env) []string {
	if e.cfg.Socket != "" {
		return []string{e.cfg.Socket}
	}
	var out []string
	for _, p := range []string{m.socketPath(e), api.DefaultPath("", e.cfg.Store), unitSocket} {
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

// access is how a query command reaches the store: through the daemon that
// serves it, or directly when no daemon runs.
type access struct {
	client *api.Client
	db     *kv.DB
}

// Close releases the store, or the client's connections; a second call
// does nothing.
func (a *access) Close() error {
	if a.client != nil {
		a.client.Close()
	}
	if a.db != nil {
		return a.db.Close()
	}
	return nil
}

// openAccess finds a daemon serving the configured store on one of the
// candidate sockets (waiting for one that is starting), or opens the store
// itself. When the store is locked and no daemon answers, the error says
// both.
func (m *Main) openAccess(ctx context.Context, e *env) (*access, error) {
	c, err := m.awaitDaemon(ctx, e)
	if err != nil {
		return nil, err
	}
	if c != nil {
		e.log.Debug("using the running daemon", "socket", c.Path())
		return &access{client: c}, nil
	}
	return m.openDirect(e)
}

// openDirect opens the store for a query, when no daemon serves it.
func (m *Main) openDirect(e *env) (*access, error) {
	db, err := openStore(e)
	if errors.Is(err, kv.ErrLocked) {
		return nil, fmt.Errorf("store %s is locked by another process, and no mirrord daemon serving it answers on %s",
			e.cfg.Store, strings.Join(m.socketCandidates(e), " or "))
	}
	if err != nil {
		return nil, err
	}
	return &access{db: db}, nil
}

// awaitDaemon returns a client of the daemon serving the store, or nil
// when none answers. A daemon that is starting (waiting for the store's
// lock) is waited for, rather than raced for the lock: it serves the store
// once it has opened it, or exits within its shutdown-timeout. A server
// that runs as a user who does not own the store is an error.
func (m *Main) awaitDaemon(ctx context.Context, e *env) (*api.Client, error) {
	deadline := time.Now().Add(e.cfg.ShutdownTimeout + 10*time.Second)
	for logged := false; ; logged = true {
		c, st, err := m.findDaemon(ctx, m.socketCandidates(e), e.cfg.Store)
		if err != nil || c == nil || !st.Starting || time.Now().After(deadline) {
			return c, err
		}
		c.Close()
		if !logged {
			e.log.Info("the daemon is starting; waiting for it", "socket", c.Path(), "daemon", st.Health)
		}
		if err := ctxtime.Sleep(ctx, 50*time.Millisecond); err != nil {
			return nil, err
		}
	}
}

// findDaemon returns a client of the daemon serving store on the first of
// sockets that has one, and its status; nil when none answers, and an
// error when a server that is not trusted answers.
func (m *Main) findDaemon(ctx context.Context, sockets []string, store string) (*api.Client, *api.StatusResponse, error) {
	for _, path := range sockets {
		c, st, err := daemonServing(ctx, path, store)
		if err != nil || c != nil {
			return c, st, err
		}
	}
	return nil, nil, nil
}

// daemonServing returns a client and the status when a daemon answers on
// path and serves store; an error when whoever answers runs as a user who
// does not own the store (its word about the store is not taken).
func daemonServing(ctx context.Context, path, store string) (*api.Client, *api.StatusResponse, error) {
	if fi, err := os.Stat(path); err != nil || fi.Mode()&fs.ModeSocket == 0 {
		return nil, nil, nil
	}
	c := api.NewClientFor(path, api.StoreOwner(store, path))
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := c.Status(ctx)
	if errors.Is(err, api.ErrUntrusted) {
		c.Close()
		return nil, nil, fmt.Errorf("not using the daemon that answers: %w", err)
	}
	if err != nil || !samePath(st.Store, store) {
		c.Close()
		return nil, nil, nil
	}
	return c, st, nil
}

// storeSockets are where a daemon on the configured store may listen: the
// candidates of a query, and the default places whatever the socket
// setting (a daemon started with another configuration).
func (m *Main) storeSockets(e *env) []string {
	out := m.socketCandidates(e)
	for _, p := range []string{api.DefaultPath(m.getenv("RUNTIME_DIRECTORY"), e.cfg.Store), api.DefaultPath("", e.cfg.Store), unitSocket} {
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

func samePath(a, b string) bool {
	norm := func(p string) string {
		if abs, err := filepath.Abs(p); err == nil {
			p = abs
		}
		if r, err := filepath.EvalSymlinks(p); err == nil {
			p = r
		}
		return p
	}
	return norm(a) == norm(b)
}
