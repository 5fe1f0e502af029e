package api

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// ErrUntrusted: the process answering on the socket runs as a user who
// does not own the store, so what it says about the store is not believed.
var ErrUntrusted = errors.New("the socket's server is not trusted")

// PeerUID returns the user id of the process at the other end of a unix
// socket connection, as the kernel recorded it when the connection was
// made (SO_PEERCRED): the server cannot lie about it.
func PeerUID(c net.Conn) (int, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return -1, fmt.Errorf("peer credentials: %T is not a unix connection", c)
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return -1, err
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return -1, err
	}
	if credErr != nil {
		return -1, fmt.Errorf("peer credentials: %w", credErr)
	}
	return int(cred.Uid), nil
}

// TrustPeer decides whether a server running as uid peer may speak for a
// store owned by uid owner (negative: unknown) to a client running as
// self. Root is trusted (it could read the store anyway); otherwise the
// peer must be the store's owner, or, when the owner is unknown, the
// client itself. The error names both uids.
func TrustPeer(peer, owner, self int) error {
	switch {
	case peer == 0, peer == owner:
		return nil
	case owner < 0 && peer == self:
		return nil
	case owner < 0:
		return fmt.Errorf("%w: it runs as uid %d, and the store's owner is unknown (not you, uid %d, nor root)", ErrUntrusted, peer, self)
	}
	return fmt.Errorf("%w: it runs as uid %d, but the store belongs to uid %d", ErrUntrusted, peer, owner)
}

// StoreOwner returns the uid a client should trust to serve store through
// the socket at sock: the owner of the store directory; when the client
// cannot see it (the unit's store under /var/lib/private), the owner of
// the socket's directory provided nobody else can write there (the unit's
// RuntimeDirectory); otherwise -1 (unknown).
func StoreOwner(store, sock string) int {
	if fi, err := os.Stat(store); err == nil {
		return int(fi.Sys().(*syscall.Stat_t).Uid)
	}
	fi, err := os.Stat(filepath.Dir(sock))
	if err != nil || fi.Mode().Perm()&0o022 != 0 {
		return -1
	}
	return int(fi.Sys().(*syscall.Stat_t).Uid)
}

// checkSocketDir refuses to serve from a directory where another user
// could replace the socket: one owned by someone other than us or root,
// or writable by group or others without the sticky bit (in a sticky
// directory such as /tmp only the socket's owner may remove it).
func checkSocketDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("socket directory: %w", err)
	}
	owner := int(fi.Sys().(*syscall.Stat_t).Uid)
	if owner != 0 && owner != os.Geteuid() {
		return fmt.Errorf("socket directory %s belongs to uid %d (not us, uid %d, nor root): it could replace the socket", dir, owner, os.Geteuid())
	}
	if fi.Mode().Perm()&0o022 != 0 && fi.Mode()&fs.ModeSticky == 0 {
		return fmt.Errorf("socket directory %s is writable by others (mode %04o) and not sticky: another user could replace the socket", dir, fi.Mode().Perm())
	}
	return nil
}
