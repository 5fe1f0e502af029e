package kv

import (
	"errors"
	"io"
	"io/fs"
	"os"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// privateFS gives what the store creates on disk owner-only modes, 0600
// for files and 0700 for directories, whatever the process's umask: the
// store holds the whole event log, and the socket that serves it is 0600.
// Modes are set right after creation (before anything is written).
type privateFS struct{ vfs.FS }

func chmodNew(f vfs.File, name string, err error) (vfs.File, error) {
	if err != nil {
		return f, err
	}
	if err := os.Chmod(name, 0o600); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func (p privateFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := p.FS.Create(name, c)
	return chmodNew(f, name, err)
}

func (p privateFS) OpenReadWrite(name string, c vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	_, statErr := os.Lstat(name)
	f, err := p.FS.OpenReadWrite(name, c, opts...)
	if !errors.Is(statErr, fs.ErrNotExist) {
		return f, err // it existed: its mode is not ours to change
	}
	return chmodNew(f, name, err)
}

func (p privateFS) Lock(name string) (io.Closer, error) {
	l, err := p.FS.Lock(name)
	if err == nil {
		if err := os.Chmod(name, 0o600); err != nil {
			l.Close()
			return nil, err
		}
	}
	return l, err
}

// MkdirAll creates the directories missing on the way to dir 0700; one
// that exists keeps its mode.
func (p privateFS) MkdirAll(dir string, _ os.FileMode) error {
	_, statErr := os.Stat(dir)
	if err := p.FS.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if errors.Is(statErr, fs.ErrNotExist) {
		return os.Chmod(dir, 0o700)
	}
	return nil
}
