package faultfs

import (
	"io/fs"
	"syscall"

	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// IsWriteOp reports whether an operation changes the disk: creating,
// linking, renaming, writing, syncing or flushing a file, or making a
// directory. Removals are not: they free space.
func IsWriteOp(k errorfs.OpKind) bool {
	switch k {
	case errorfs.OpCreate, errorfs.OpLink, errorfs.OpReuseForWrite, errorfs.OpMkdirAll, errorfs.OpRename,
		errorfs.OpFileWrite, errorfs.OpFileWriteAt, errorfs.OpFilePreallocate,
		errorfs.OpFileSync, errorfs.OpFileSyncData, errorfs.OpFileSyncTo, errorfs.OpFileFlush:
		return true
	}
	return false
}

// IsSyncOp reports whether an operation syncs a file.
func IsSyncOp(k errorfs.OpKind) bool {
	return k == errorfs.OpFileSync || k == errorfs.OpFileSyncData || k == errorfs.OpFileSyncTo
}

// DiskFull fails what a full disk fails, creating and writing files, with
// ENOSPC. Removals pass (they free space), renames pass (they allocate
// nothing), and syncs pass: the blocks they flush were allocated by the
// writes, and Pebble panics, in whatever goroutine, when a directory sync
// fails.
func DiskFull(op errorfs.Op) error {
	if IsWriteOp(op.Kind) && !IsSyncOp(op.Kind) && op.Kind != errorfs.OpRename {
		return &fs.PathError{Op: "write", Path: op.Path, Err: syscall.ENOSPC}
	}
	return nil
}

// ReadOnly fails what a read-only file system fails, every write,
// removal, rename and lock, with EROFS.
func ReadOnly(op errorfs.Op) error {
	switch {
	case IsWriteOp(op.Kind), op.Kind == errorfs.OpRemove, op.Kind == errorfs.OpRemoveAll, op.Kind == errorfs.OpLock:
		return &fs.PathError{Op: "open", Path: op.Path, Err: syscall.EROFS}
	}
	return nil
}
