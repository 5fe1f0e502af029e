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

func (a *access) Close() error {
	if a.db != nil {
		return a.db.Close()
	}
	return nil
}

// openAccess finds a daemon serving the configured store on one of the
// candidate sockets, or opens the store itself. When the store is locked
// and no daemon answers, the error says both.
func (m *Main) openAccess(ctx context.Context, e *env) (*access, error) {
	tried := m.socketCandidates(e)
	for _, path := range tried {
		c, err := daemonServing(ctx, path, e.cfg.Store)
		if err != nil {
			return nil, err
		}
		if c != nil {
			e.log.Debug("using the running daemon", "socket", path)
			return &access{client: c}, nil
		}
	}
	db, err := openStore(e)
	if errors.Is(err, kv.ErrLocked) {
		return nil, fmt.Errorf("store %s is locked by another process, and no mirrord daemon serving it answers on %s",
			e.cfg.Store, strings.Join(tried, " or "))
	}
	if err != nil {
		return nil, err
	}
	return &access{db: db}, nil
}

// daemonServing returns a client when a daemon answers on path and serves
// store; an error when whoever answers runs as a user who does not own
// the store (its word about the store is not taken).
func daemonServing(ctx context.Context, path, store string) (*api.Client, error) {
	if fi, err := os.Stat(path); err != nil || fi.Mode()&fs.ModeSocket == 0 {
		return nil, nil
	}
	c := api.NewClientFor(path, api.StoreOwner(store, path))
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := c.Status(ctx)
	if errors.Is(err, api.ErrUntrusted) {
		return nil, fmt.Errorf("not using the daemon that answers: %w", err)
	}
	if err != nil || !samePath(st.Store, store) {
		return nil, nil
	}
	return c, nil
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
