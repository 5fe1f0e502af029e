package api

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// ErrInUse: another process serves the socket path.
var ErrInUse = errors.New("another mirrord is serving this socket")

// Listener is the daemon's unix socket.
type Listener struct {
	net.Listener
	path string
}

// Listen creates the unix socket at path with the given mode (0600 by
// default: only the daemon's user), owned by group when one is named
// (mode 0660 then). A socket file left by a crashed daemon is replaced; a
// socket another process answers on is an error (ErrInUse); any other file
// at path is never removed.
//
// The socket is created under a private temporary name, given its mode and
// group, and then linked into place, so it is never reachable with looser
// permissions, even for an instant.
func Listen(path, group string) (*Listener, error) {
	mode := os.FileMode(0o600)
	gid := -1
	if group != "" {
		g, err := user.LookupGroup(group)
		if err != nil {
			return nil, fmt.Errorf("socket group %q: %w", group, err)
		}
		if gid, err = strconv.Atoi(g.Gid); err != nil {
			return nil, fmt.Errorf("socket group %q: gid %q: %w", group, g.Gid, err)
		}
		mode = 0o660
	}
	if err := checkSocketDir(filepath.Dir(path)); err != nil {
		return nil, fmt.Errorf("socket %s: %w", path, err)
	}
	if err := clearStale(path); err != nil {
		return nil, err
	}
	// A short private name beside the socket (the whole path must fit in
	// the 108 bytes of a unix address).
	dir := filepath.Join(filepath.Dir(path), fmt.Sprintf(".ms%05d", rand.IntN(100000)))
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, fmt.Errorf("socket %s: %w", path, err)
	}
	defer os.RemoveAll(dir)
	tmp := filepath.Join(dir, "s")
	ln, err := net.Listen("unix", tmp)
	if err != nil {
		return nil, fmt.Errorf("socket %s: %w", path, err)
	}
	ul := ln.(*net.UnixListener)
	ul.SetUnlinkOnClose(false) // it will have another name; Close removes path
	fail := func(err error) (*Listener, error) {
		ul.Close()
		return nil, fmt.Errorf("socket %s: %w", path, err)
	}
	if err := os.Chmod(tmp, mode); err != nil {
		return fail(err)
	}
	if gid >= 0 {
		// Under the systemd unit the daemon's group is the socket's
		// (Group=), so the socket already has it: no chown, which the
		// unit's system call filter forbids.
		fi, err := os.Lstat(tmp)
		if err != nil {
			return fail(err)
		}
		if int(fi.Sys().(*syscall.Stat_t).Gid) != gid {
			if err := os.Chown(tmp, -1, gid); err != nil {
				return fail(err)
			}
		}
	}
	// link(2), unlike rename(2), fails when the name exists: of two
	// daemons starting at once, one gets the socket and the other an
	// error, instead of both believing they serve it.
	if err := os.Link(tmp, path); err != nil {
		ul.Close()
		if errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("%w: %s", ErrInUse, path)
		}
		return nil, fmt.Errorf("socket %s: %w", path, err)
	}
	if err := sameFile(tmp, path); err != nil {
		ln.Close()
		return nil, fmt.Errorf("socket %s: %w", path, err)
	}
	return &Listener{Listener: ln, path: path}, nil
}

// sameFile checks that path is the socket just linked from tmp, and ours:
// in a shared directory nothing else may stand at path.
func sameFile(tmp, path string) error {
	a, err := os.Lstat(tmp)
	if err != nil {
		return err
	}
	b, err := os.Lstat(path)
	if err != nil {
		return err
	}
	if !os.SameFile(a, b) || int(b.Sys().(*syscall.Stat_t).Uid) != os.Geteuid() {
		return errors.New("the socket was replaced as it was created")
	}
	return nil
}

// Path returns the socket's path.
func (l *Listener) Path() string { return l.path }

// Close stops listening and removes the socket file.
func (l *Listener) Close() error {
	err := l.Listener.Close()
	if rerr := os.Remove(l.path); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) && err == nil {
		err = rerr
	}
	return err
}

// clearStale removes a socket file nobody answers on.
func clearStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("socket %s: %w", path, err)
	}
	if fi.Mode()&fs.ModeSocket == 0 {
		return fmt.Errorf("socket %s: a file that is not a socket is in the way (not removing it)", path)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err == nil {
		defer conn.Close()
		return inUse(path, conn)
	}
	// Only a refused connection means nobody listens; a busy listener
	// (EAGAIN: its queue is full) or a timeout is alive.
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("%w: %s (%v)", ErrInUse, path, err)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("socket %s: removing a stale socket: %w", path, err)
	}
	return nil
}

// inUse is the error for a socket a process answers on, naming that
// process's user when it is not ours: someone else may have taken the
// path first.
func inUse(path string, conn net.Conn) error {
	uid, err := PeerUID(conn)
	if err != nil || uid == os.Geteuid() {
		return fmt.Errorf("%w: %s", ErrInUse, path)
	}
	return fmt.Errorf("%w: %s, by a process of uid %d (not us: uid %d); not starting in its place", ErrInUse, path, uid, os.Geteuid())
}

// DefaultPath is where the daemon's socket lives unless configured:
// $RUNTIME_DIRECTORY/mirrord.sock when systemd provides a runtime
// directory, otherwise beside the store ("{store}.sock").
func DefaultPath(runtimeDir, store string) string {
	if runtimeDir != "" {
		// systemd may list several directories, separated by ':'.
		for i := 0; i < len(runtimeDir); i++ {
			if runtimeDir[i] == ':' {
				runtimeDir = runtimeDir[:i]
				break
			}
		}
		return filepath.Join(runtimeDir, "mirrord.sock")
	}
	clean := filepath.Clean(store)
	return filepath.Join(filepath.Dir(clean), filepath.Base(clean)+".sock")
}
