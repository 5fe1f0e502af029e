package kv

import (
	"errors"
	iofs "io/fs"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// vanishingDir removes the directory a file is about to be created in, the
// first gone times: as an ingest or sort that finished beside it would.
type vanishingDir struct {
	vfs.FS
	gone, creates int
}

func (v *vanishingDir) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	v.creates++
	if v.creates <= v.gone {
		if err := v.FS.RemoveAll(v.FS.PathDir(name)); err != nil {
			return nil, err
		}
	}
	return v.FS.Create(name, c)
}

// CreateTemp makes the directory it needs, and makes it again when it goes
// between that and the file's creation, up to three tries.
func TestCreateTemp(t *testing.T) {
	for _, tc := range []struct {
		name        string
		gone        int
		wantErr     error
		wantCreates int
	}{
		{"directory missing", 0, nil, 1},
		{"directory goes once", 1, nil, 2},
		{"directory goes twice", 2, nil, 3},
		{"directory keeps going", 3, iofs.ErrNotExist, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := &vanishingDir{FS: vfs.NewMem(), gone: tc.gone}
			path := fs.PathJoin("store", tempDirName, "f")
			f, err := CreateTemp(fs, path)
			if !errors.Is(err, tc.wantErr) || (err == nil) != (tc.wantErr == nil) {
				t.Fatalf("CreateTemp = %v, want %v", err, tc.wantErr)
			}
			if fs.creates != tc.wantCreates {
				t.Fatalf("%d creations tried, want %d", fs.creates, tc.wantCreates)
			}
			if err != nil {
				return
			}
			defer f.Close()
			if _, err := fs.Stat(path); err != nil {
				t.Fatalf("the file is not there: %v", err)
			}
		})
	}
}
