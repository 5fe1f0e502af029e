package mirror

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/mirrord/mirrord/kv"
	"github.com/mirrord/mirrord/schema"
)

// SchemaVersion is the layout of the store this mirrord writes. A store
// with a higher version was written by a newer mirrord and is refused.
const SchemaVersion = 1

type schemaRecord struct {
	Version int `json:"version"`
}

// Checkpoint is what the store knows about the log it mirrors. It is
// written in the same atomic batch as the data it covers, so data and
// checkpoint never disagree.
type Checkpoint struct {
	// Dev and Ino identify the file the data came from.
	Dev uint64 `json:"dev"`
	Ino uint64 `json:"ino"`
	// Offset is just past the last complete value applied; Line is the
	// line number there.
	Offset int64 `json:"offset"`
	Line   int   `json:"line"`
	// TailSum is the hash of the TailSize bytes before Offset (checked on
	// every change); PrefixSum the hash of [0, Offset) (checked at start
	// and after any doubt); State the hash state that lets a tail extend
	// PrefixSum.
	TailSum   hash64 `json:"tail_hash"`
	PrefixSum hash64 `json:"prefix_hash"`
	State     []byte `json:"state,omitempty"`
	// Seq is the last change-feed sequence number used.
	Seq uint64 `json:"seq"`
	// Counts of what the store holds, and of the invalid entries in
	// [0, Offset).
	Events    int64 `json:"events"`
	Modifiers int64 `json:"modifiers"`
	Invalid   int64 `json:"invalid"`
	// Size and MTime of the file when this checkpoint was written (in git
	// mode, Size is the blob's, and MTime, Dev and Ino are zero).
	Size      int64     `json:"size"`
	MTime     int64     `json:"mtime_ns"`
	AppliedAt time.Time `json:"applied_at"`
	// Ref, Commit and Blob say, in git mode, where [0, Offset) was read:
	// the blob of the log in the commit the ref named (the ref may have
	// moved since to commits that did not touch the log). Empty in file
	// mode.
	Ref    string `json:"ref,omitempty"`
	Commit string `json:"commit,omitempty"`
	Blob   string `json:"blob,omitempty"`
}

// hash64 is a 64-bit hash, stored as 16 hex digits: JSON numbers above
// 2^53 do not survive every reader.
type hash64 uint64

func (h hash64) MarshalJSON() ([]byte, error) {
	return []byte(fmt.Sprintf(`"%016x"`, uint64(h))), nil
}

func (h *hash64) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := strconv.ParseUint(s, 16, 64)
	if err != nil {
		return fmt.Errorf("hash %q: %w", s, err)
	}
	*h = hash64(v)
	return nil
}

// appendDigestValue appends a digest as the JSON value stored under
// mirrord:digest:{id}: "0123456789abcdef".
func appendDigestValue(dst []byte, h uint64) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for shift := 60; shift >= 0; shift -= 4 {
		dst = append(dst, hex[(h>>uint(shift))&0xF])
	}
	return append(dst, '"')
}

func parseDigestValue(v []byte) (uint64, bool) {
	if len(v) != 18 || v[0] != '"' || v[17] != '"' {
		return 0, false
	}
	h, err := strconv.ParseUint(string(v[1:17]), 16, 64)
	return h, err == nil
}

// fileStat is what a stat says about the log.
type fileStat struct {
	Dev, Ino uint64
	Size     int64
	MTime    int64 // ns
	// CTime (ns) moves with every write and every change of the file's
	// metadata, even where an edit leaves the mtime as it was (a tool that
	// restores it). Zero where the platform does not report it.
	CTime int64
}

func toFileStat(fi os.FileInfo) fileStat {
	st := fileStat{Size: fi.Size(), MTime: fi.ModTime().UnixNano()}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		st.Dev, st.Ino = uint64(sys.Dev), sys.Ino
		st.CTime = ctime(sys)
	}
	return st
}

// statFile stats the log, following a symlink: a re-pointed link is a
// different file.
func statFile(path string) (fileStat, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStat{}, err
	}
	return toFileStat(fi), nil
}

func fstat(f *os.File) (fileStat, error) {
	fi, err := f.Stat()
	if err != nil {
		return fileStat{}, err
	}
	return toFileStat(fi), nil
}

func (cp *Checkpoint) sameFile(st fileStat) bool {
	return cp.Dev == st.Dev && cp.Ino == st.Ino
}

func loadCheckpoint(db *kv.DB) (*Checkpoint, error) {
	var cp Checkpoint
	found, err := db.Get(schema.CheckpointKey, &cp)
	if err != nil || !found {
		return nil, err
	}
	return &cp, nil
}

type markerRecord struct {
	Started time.Time `json:"started"`
	Reason  string    `json:"reason,omitempty"`
}
