package kv

import (
	"fmt"
	"path/filepath"
	"reflect"
	"sync"
	"syscall"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// Pebble's lock on a store directory is taken per process and known by
// its path: a second Open in this process of a store it already holds,
// reached through another path (a symlink, "a/../store", a bind mount),
// would take the lock again, and the two handles would write the same
// files and release each other's lock. So this process also keeps its
// open stores by identity: the directory's device and inode on the
// operating system's file system, the file system and cleaned path on
// any other (tests' in-memory ones).

// storeID identifies a store directory in this process.
type storeID struct {
	fs       vfs.FS // nil for a directory identified by device and inode
	dev, ino uint64
	path     string
}

var stores = struct {
	mu   sync.Mutex
	open map[storeID]string // the path each was opened by
}{open: map[storeID]string{}}

// identify returns the identity of the existing directory path on fs.
func identify(fs vfs.FS, path string) (storeID, error) {
	info, err := fs.Stat(path) // follows symlinks
	if err != nil {
		return storeID{}, err
	}
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		return storeID{dev: uint64(st.Dev), ino: st.Ino}, nil
	}
	id := storeID{path: filepath.Clean(path)}
	if reflect.TypeOf(fs).Comparable() { // a map key; else the path alone
		id.fs = fs
	}
	return id, nil
}

// claim records that this process opens the store id through path, or
// fails with ErrLocked naming the path it is already open by. release
// forgets it.
func claim(id storeID, path string) (release func(), err error) {
	stores.mu.Lock()
	defer stores.mu.Unlock()
	if other, ok := stores.open[id]; ok {
		return nil, fmt.Errorf("%w: this process already has it open as %s", ErrLocked, other)
	}
	stores.open[id] = path
	return func() {
		stores.mu.Lock()
		delete(stores.open, id)
		stores.mu.Unlock()
	}, nil
}
