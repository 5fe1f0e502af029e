package main

import (
	"runtime/debug"

	"github.com/prometheus/procfs"
)

// peakRSSMiB is this process's peak resident memory in MiB (VmHWM; 0 where
// unknown). It is logged when a sync ends, so that an operator sees what a
// resync of their log takes.
func peakRSSMiB() int64 {
	p, err := procfs.Self()
	if err != nil {
		return 0
	}
	st, err := p.NewStatus()
	if err != nil {
		return 0
	}
	return int64((st.VmHWM + 1<<19) >> 20)
}

// bulkMemory is the engine's BulkMemory hook in the real process (main
// sets it; tests running commands in process do not). A bulk load's
// buffers are most of the heap, and the collector's default headroom
// (GOGC=100: as much again as is live) lifted the peak RSS of a 1M-event
// load from 231 to 294 MiB, so the load runs at GOGC=50 (or lower, if
// already set lower). The buffers are garbage once it is done: they are
// handed back to the system at once, not over the scavenger's minutes, so
// that what runs next (the generators' rebuild, a daemon's following)
// does not add its peak to the load's. That costs one collection.
func bulkMemory() (done func()) {
	old := debug.SetGCPercent(50)
	if old >= 0 && old < 50 {
		debug.SetGCPercent(old)
	}
	return func() {
		if old < 0 || old >= 50 {
			debug.SetGCPercent(old)
		}
		debug.FreeOSMemory()
	}
}
