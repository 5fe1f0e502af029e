// Package kv is mirrord's key-value store: the API of the original
// JavaScript module (put, get, del, keys, getAll, batch, close) on top of an
// embedded Pebble database, plus what a Go program needs for large data: a
// streaming Scan, consistent read snapshots and a low-level write batch.
//
// # Values
//
// Every value is JSON. Put and PutOp encode any Go value with encoding/json;
// Get decodes into the destination the caller passes.
//
// Reads trust what kv wrote: every write path checks its values (Put and
// PutOp encode them, the mirror engine's decoder validates what it puts
// through WriteBatch.PutRaw and Ingest), Pebble checksums every block it
// reads (a damaged one is ErrCorrupt), and Pebble's lock keeps every
// other writer out. So the reads that hand back bytes (Scan, ScanFrom,
// GetAll, Get into a *json.RawMessage or a nil destination, the byte-level
// reads, and the same on a Snapshot) return the value as stored, without
// checking it is JSON again; that check cost as much as the read itself.
// Get into any other destination decodes, and so checks, the value: one
// that is not JSON (written by something other than this package) is an
// ErrQuery matching ErrNotJSON and naming the key and the store.
//
// # Keys
//
// Keys are strings; kv gives them no shape. mirrord's key schema (event:,
// modifier:, generated:, mirrord:, and the escaping of segments) is package
// schema's.
//
// Prefix operations (Keys, GetAll, Scan) bound their range with the true
// successor of the prefix, so every key that starts with the prefix is
// found, whatever UTF-8 follows it.
//
// # Lifetime and errors
//
// A store directory is opened by one handle at a time: Pebble locks it
// against other processes, and this process knows its open stores by
// directory (device and inode), so a second Open, from another process or
// from this one through any path (a symlink, a/../store, a bind mount),
// fails at once with ErrLocked, which matches ErrInitialization. Close is
// safe to call twice; every call after Close returns an ErrQuery instead
// of the panic Pebble itself would raise. Every error is a *Error carrying
// the store path and the query that failed, and matches ErrInitialization
// or ErrQuery with errors.Is. Nothing the store starts outlives Close or a
// failed Open.
//
// # Failures the store cannot go on from
//
// A failed write, sync, creation or close of Pebble's write-ahead log or
// manifest (a full disk, an I/O error), a failed memtable flush, or an
// error Pebble reports as fatal is not an error of a call: Pebble cannot
// go on from it, and would panic in the middle of a commit or in one of
// its own goroutines. kv never recovers such a panic; it keeps Pebble from
// raising it, and calls Options.OnFatal instead, which ends the process
// (by default: one line through Options.Logger, exit status 1). The files
// then hold a consistent prefix of the batches, and reopening the store
// resumes from its last durable batch. Failures Pebble handles (an
// sstable of a compaction or an ingest, an ingest's link) stay errors of
// the call that met them.
package kv
