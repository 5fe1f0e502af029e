// Package bench measures mirrord against what it replaces, in one run on
// one machine: a full resync by the real mirrord binary, the same work by
// a naive Go pipeline (encoding/json and Pebble batches of 1000 events) and
// by the original Node.js module when node is installed; the latency from
// an append to the event being readable; a rewrite reconcile against one
// read-and-parse of the log; a following daemon's idle cost; and kv reads.
//
// Absolute times drift between runs on shared machines, so every
// comparison is a ratio of figures taken in the same run. Each heavy step
// runs in a child process of its own, so that its peak RSS (from the
// kernel's rusage) is its own and not the benchmark's.
//
// The command is cmd/mirrord-bench; its --quick mode is the smoke run the
// tests also use.
package bench
