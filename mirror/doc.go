// Package mirror is mirrord's engine: it keeps a kv store identical to an
// event log, exactly once, through anything the writing application or git
// does to the file, and through a crash at any instant.
//
// # Checkpoint
//
// Every batch the engine writes carries, in the same atomic Pebble batch as
// the data, a Checkpoint: the file's identity (device, inode), the offset
// just past the last complete value applied, fingerprints of the bytes
// before it (a hash of the last 4 KiB, and a hash of the whole prefix), the
// change-feed sequence number and the store's counts. Data and checkpoint
// therefore never disagree: a crash leaves the store at some earlier
// checkpoint, and the next start continues from there.
//
// # The decision
//
// At start and on every change the engine decides: the log is missing
// (keep the store, wait); it continues the checkpoint (same file, not
// shorter, fingerprint matches: tail, applying only what was appended);
// or anything else happened (rewrite, truncation, replacement by rename,
// an edit before the offset): reconcile, which reads the whole log
// and writes only the difference, found by comparing each event's digest
// with the one the store keeps under mirrord:digest:{id}. A reconcile reads
// only a log that has settled, and never deletes while the log ends in an
// incomplete value, so a half-written rewrite never empties the mirror.
//
// # Following
//
// Run watches the log's directory with fsnotify, applies at once after a
// quiet spell and coalesces bursts, falls back to a whole-prefix check
// after an overflow or a watcher error, and runs a low-frequency safety
// check for what inotify can miss. Nothing else polls. A log whose
// directory does not exist yet is a missing log: Run watches the nearest
// existing ancestor and walks down as directories appear; a directory
// deleted or replaced under it (a re-clone) is noticed from its own
// events and watched again. A write that leaves the log's size as it was
// but moves its mtime or ctime (an edit of the same length before the
// checkpoint) has the whole prefix checked once the log settles. An
// absence shorter than the settle interval (git replacing the file) is
// logged at debug level only.
//
// # Git mode
//
// With Options.GitRef set, the log is the file as committed at that ref of
// the repository that holds Options.EventLog (the application's recording
// devices push each transaction into the branch; their work tree's file
// never moves). Each decision resolves the ref; a blob other than the one
// mirrored is streamed from git into a private, unlinked spool file,
// which the decision above then reads as it reads the file: the blob is
// the file's identity (the same blob: nothing to do; its prefix hashes as
// the checkpoint's: tail; anything else: reconcile), there is no settling
// (a git object is complete and immutable), and the checkpoint records
// the ref, commit and blob. Run watches the directories of the ref's files
// instead of the log's. The repository is only read.
//
// # Change feed
//
// Each batch that changes events records their ids under
// mirrord:changes:{seq}, in the same batch, for the generators, each with
// its before-image: the event as the store held it before the batch (null
// for a new id). A resync or first load records one Reset entry instead,
// when it completes.
package mirror
