package kv

import (
	"errors"
	"fmt"
	"strings"

	"github.com/cockroachdb/pebble/v2"
)

// The two kinds of failure, as in the original module. Every error this
// package returns is a *Error that matches exactly one of them with
// errors.Is.
var (
	// ErrInitialization: the store cannot be opened. Its directory cannot
	// be created, it is locked by another process or another handle in
	// this process, or it is not a store at all.
	ErrInitialization = errors.New("kv: cannot open store")
	// ErrQuery: an operation failed, a stored value is not valid JSON, or
	// the store is closed.
	ErrQuery = errors.New("kv: query failed")
)

// Causes that callers may want to tell apart, reachable with errors.Is
// through a *Error.
var (
	// ErrClosed: the DB or Snapshot was closed before the call.
	ErrClosed = errors.New("store is closed")
	// ErrLocked: another process or handle holds the store's lock.
	ErrLocked = errors.New("store is locked by another process or handle (is a mirrord daemon running on it?)")
	// ErrNotJSON: a stored value is not valid JSON.
	ErrNotJSON = errors.New("stored value is not valid JSON")
	// ErrFailed: the store met a failure it cannot go on from (a full
	// disk, an I/O error while it writes its log or manifest). Only
	// Options.OnFatal sees it: the process ends, and the files stay
	// consistent at the last durable batch.
	ErrFailed = errors.New("the store cannot go on (its files stay consistent at the last durable batch; a restart resumes from there)")
	// ErrNotStore: the directory holds files but no store.
	ErrNotStore = errors.New("directory is not empty and holds no store (refusing to create one among other files; choose an empty or new directory)")
	// ErrCorrupt: the store's files are damaged (a checksum mismatch, a
	// malformed manifest, a table of the wrong size or missing). Nothing
	// in the store can be trusted; the directory should be moved aside.
	ErrCorrupt = errors.New("store is corrupt")
)

// Error is the error type of every kv failure.
type Error struct {
	// Path is the store directory.
	Path string
	// Query is what was attempted: "OPEN", "PUT event:abc", "GET event:abc",
	// "KEYS event:*", "BATCH 3 ops", "CLOSE".
	Query string
	// Err is the cause; errors.Unwrap returns it.
	Err error

	kind error // ErrInitialization or ErrQuery
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s (store %s): %v", e.Query, e.Path, e.Err)
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is the kind of e (ErrInitialization or
// ErrQuery); causes are matched through Unwrap.
func (e *Error) Is(target error) bool { return target == e.kind }

func initError(path string, cause error) error {
	return &Error{Path: path, Query: "OPEN", Err: markCorrupt(cause), kind: ErrInitialization}
}

func queryError(path, query string, cause error) error {
	return &Error{Path: path, Query: query, Err: markCorrupt(cause), kind: ErrQuery}
}

// markCorrupt makes a corruption Pebble reports (on any read, not only at
// Open) match ErrCorrupt, so that callers can say what to do about it
// instead of passing on a checksum message.
func markCorrupt(cause error) error {
	if cause != nil && pebble.IsCorruptionError(cause) && !errors.Is(cause, ErrCorrupt) {
		return corruptError{cause}
	}
	return cause
}

// corruptError is a corruption reported by Pebble, matching ErrCorrupt and
// its cause. Its message is the first line of Pebble's: Pebble's carries
// a second line ("<corruption detail carrier>"), and every error mirrord
// prints is one line.
type corruptError struct{ cause error }

func (e corruptError) Error() string {
	msg, _, _ := strings.Cut(e.cause.Error(), "\n")
	return ErrCorrupt.Error() + ": " + msg
}

func (e corruptError) Unwrap() []error { return []error{ErrCorrupt, e.cause} }
