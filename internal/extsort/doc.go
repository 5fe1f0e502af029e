// Package extsort sorts more records than fit in memory: an external merge
// sort of (key, value, seq) records by key, then seq. Records fill a
// bounded buffer; a full buffer is radix-sorted and written out as a run
// file (MinLZ-compressed blocks) while the next one fills; the runs are
// merged with a k-way heap when read, whole (Each, MergeEach), by key
// range (MergeRange, SplitKeys, so that ranges can be written side by
// side) or as an iterator (MergeIter).
//
// The mirror's bulk load and reconcile use it to turn a log of any size
// into sorted streams in bounded memory; it knows nothing of events or
// stores, only of a vfs.FS and a directory for its runs.
package extsort
