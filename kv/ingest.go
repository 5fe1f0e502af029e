package kv

import (
	"context"
	"errors"
	"fmt"
	iofs "io/fs"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/objstorage/objstorageprovider"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Ingest builds a new state of a whole key range as sorted sstables and
// puts it in place in one atomic step: everything in the range is replaced
// (Pebble's IngestAndExcise) by what was written, which lands directly in
// the bottom level: no write-ahead log, no memtable, no compaction. This is
// how a resync or a first load writes a large log at disk speed.
type Ingest struct {
	db    *DB
	start string
	end   []byte
	files []*IngestFile
	spans bool // from NewReplacement: each file replaces a range of its own
}

// NewIngest starts a replacement of every key in [start, end).
func (db *DB) NewIngest(start string, end []byte) *Ingest {
	return &Ingest{db: db, start: start, end: end}
}

// NewReplacement starts an ingest of several ranges that need not be
// adjacent: each file, started with Replace, replaces a range of its own,
// and Commit puts them all in place in one atomic step (a generator's
// values, its private state and its position, say, which lie apart).
// Keys outside those ranges are left alone.
func (db *DB) NewReplacement() *Ingest {
	return &Ingest{db: db, spans: true}
}

// Replace starts a sorted stream that replaces [start, end) of an ingest
// from NewReplacement: once committed the range holds exactly what was
// added to it (nothing, if nothing was). Ranges of one ingest must not
// overlap.
func (in *Ingest) Replace(start, end []byte) *IngestFile {
	f := &IngestFile{in: in, start: string(start), end: end, replace: true}
	in.files = append(in.files, f)
	return f
}

// sstSize is where an ingest stream starts a new sstable. (A variable so
// that tests can make streams of several.)
var sstSize uint64 = 64 << 20

// IngestFile is one sorted stream of an Ingest, written as one or more
// sstables. Streams of one Ingest must not overlap each other.
type IngestFile struct {
	in    *Ingest
	w     *sstable.Writer
	paths []string
	last  []byte
	err   error

	// A Replace stream: its range, and where the range deletion of the
	// sstable being written starts (each sstable deletes its own part of
	// the range, so that the stream's sstables do not overlap).
	replace    bool
	start      string
	end        []byte
	deleteFrom []byte
}

// File starts a new sorted stream.
func (in *Ingest) File() *IngestFile {
	f := &IngestFile{in: in}
	in.files = append(in.files, f)
	return f
}

func (f *IngestFile) roll() error {
	in := f.in
	if f.w != nil {
		if err := f.w.Close(); err != nil {
			return err
		}
		f.w = nil
	}
	db := in.db
	path := db.opts.FS.PathJoin(db.path, tempDirName, fmt.Sprintf("ingest-%d.sst", db.tmpSeq.Add(1)))
	file, err := CreateTemp(db.opts.FS, path)
	if err != nil {
		return err
	}
	wo := db.popts.MakeWriterOptions(6, db.pdb.TableFormat())
	wo.Compression = sstable.FastestCompression
	wo.DisableValueBlocks = true // unique keys: nothing to separate, nothing to buffer
	f.w = sstable.NewWriter(objstorageprovider.NewFileWritable(file), wo)
	f.paths = append(f.paths, path)
	return nil
}

// Add writes one key; keys must come in strictly increasing order, and
// value must be JSON.
func (f *IngestFile) Add(key, value []byte) error {
	if f.err != nil {
		return f.err
	}
	if f.last != nil && string(key) <= string(f.last) {
		f.err = fmt.Errorf("ingest: key %q after %q: not increasing", key, f.last)
		return f.err
	}
	start, end := f.in.start, f.in.end
	if f.replace {
		start, end = f.start, f.end
	}
	if string(key) < start || (end != nil && string(key) >= string(end)) {
		f.err = fmt.Errorf("ingest: key %q outside the range", key)
		return f.err
	}
	if f.w == nil || f.w.Raw().EstimatedSize() >= sstSize {
		if f.replace && f.w != nil {
			// This sstable deletes the range up to the key the next
			// one starts with.
			if f.err = f.w.DeleteRange(f.deleteFrom, key); f.err != nil {
				return f.err
			}
		}
		if f.err = f.roll(); f.err != nil {
			return f.err
		}
		if f.deleteFrom == nil {
			f.deleteFrom = []byte(f.start)
		} else {
			f.deleteFrom = append(f.deleteFrom[:0], key...)
		}
	}
	f.last = append(f.last[:0], key...)
	if f.err = f.w.Set(key, value); f.err != nil {
		return f.err
	}
	return nil
}

// Commit finishes every stream and replaces the range with them,
// atomically. The sstables become part of the store (or are removed on
// failure). The writes committed before it are made durable first, so the
// store's files always hold a prefix of what was acknowledged.
func (in *Ingest) Commit(ctx context.Context) error {
	query := fmt.Sprintf("INGEST %s..%s", in.start, in.end)
	if in.spans {
		query = fmt.Sprintf("INGEST %d ranges", len(in.files))
	}
	var paths []string
	for _, f := range in.files {
		if f.err == nil && f.replace {
			f.err = f.deleteRest()
		}
		if f.err != nil {
			in.Abort()
			return queryError(in.db.path, query, f.err)
		}
		if f.w != nil {
			if err := f.w.Close(); err != nil {
				in.Abort()
				return queryError(in.db.path, query, err)
			}
			f.w = nil
		}
		paths = append(paths, f.paths...)
	}
	ran := false
	err := in.db.write(query, func() error {
		ran = true
		// A failed write of Pebble's manifest from here on ends the
		// process (see fatal): whether the ingest took effect is then
		// known once the store is reopened, either state is consistent,
		// and Open removes what is left in bulk-tmp.
		// An ingest is durable once Pebble returns, while the writes
		// before it may still sit in the WAL's buffers (Sync is off by
		// default): sync them first, so that a crash never keeps the
		// ingest without what was acknowledged before it.
		if err := in.db.pdb.LogData(nil, pebble.Sync); err != nil {
			in.Abort()
			return err
		}
		var err error
		if in.spans {
			// The files' range deletions replace their ranges: they
			// delete what is older than the ingest, not what it brings.
			err = in.db.pdb.Ingest(ctx, paths)
		} else {
			span := pebble.KeyRange{Start: []byte(in.start), End: in.end}
			_, err = in.db.pdb.IngestAndExcise(ctx, paths, nil, nil, span)
		}
		if err != nil {
			in.Abort()
			return err
		}
		in.cleanup(paths) // Pebble linked them; the names we wrote can go
		return nil
	})
	if !ran {
		in.Abort() // the store is closed: Pebble never saw the files
	}
	return err
}

// deleteRest ends a Replace stream: its last sstable (or its only one,
// holding nothing else) deletes the rest of the range.
func (f *IngestFile) deleteRest() error {
	if f.w == nil {
		if err := f.roll(); err != nil {
			return err
		}
		f.deleteFrom = []byte(f.start)
	}
	return f.w.DeleteRange(f.deleteFrom, f.end)
}

// Abort removes whatever the ingest wrote.
func (in *Ingest) Abort() {
	var paths []string
	for _, f := range in.files {
		if f.w != nil {
			_ = f.w.Close()
			f.w = nil
		}
		paths = append(paths, f.paths...)
	}
	in.cleanup(paths)
}

// cleanup removes the ingest's files. The directory stays: another ingest
// (a generator's, beside a load) may be creating its files there, and
// Open removes it.
func (in *Ingest) cleanup(paths []string) {
	for _, p := range paths {
		_ = in.db.opts.FS.Remove(p)
	}
}

// CreateTemp creates the file at path, a path inside the directory that
// TempDir returns, creating that directory too: again if it went between
// the two, since an ingest or an external sort that finished removes it
// when empty. Ingests and the generators' spills create their files with
// it.
func CreateTemp(fs vfs.FS, path string) (vfs.File, error) {
	for try := 0; ; try++ {
		if err := fs.MkdirAll(fs.PathDir(path), 0o755); err != nil {
			return nil, err
		}
		f, err := fs.Create(path, vfs.WriteCategoryUnspecified)
		if err == nil || !errors.Is(err, iofs.ErrNotExist) || try == 2 {
			return f, err
		}
	}
}

// tempDirName is the directory inside the store that holds a bulk load's
// temporary files.
const tempDirName = "bulk-tmp"

// TempDir returns the file system and directory where a bulk load keeps
// its temporary files (an external sort's runs, say): inside the store, so
// on its disk, and removed by the next Open if a crash leaves any behind.
func (db *DB) TempDir() (vfs.FS, string) {
	return db.opts.FS, db.opts.FS.PathJoin(db.path, tempDirName)
}
