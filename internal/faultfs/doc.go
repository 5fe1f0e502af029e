// Package faultfs holds the file-system faults that the tests of kv,
// mirror and the mirrord command inject through Pebble's errorfs: a full
// disk, a read-only file system, and the classification of operations
// they rest on, so that every package's tests mean the same by "the disk
// is full". It is imported by tests only.
package faultfs
