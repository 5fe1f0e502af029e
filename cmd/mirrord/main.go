// Command mirrord keeps an embedded Pebble store identical to an
// append-mostly JSON event log and serves the mirrored events and generated
// values. Run "mirrord --help" for the commands; the README has the whole
// picture.
//
// main only wires the process to Main.Run and maps the error to an exit
// code, so that every command can be tested in process.
package main

import (
	"context"
	"fmt"
	"os"
	"runtime/debug"
)

// memoryLimit is the soft limit on the Go heap when GOMEMLIMIT does not
// set one. mirrord's memory is bounded by design (sorter buffers, scope
// spills, a 32 MiB block cache), but Go lets the heap grow to twice what
// is live before collecting: a 1M-event resync peaked at 218 MiB and a
// rebuild of the hashtags generator at 264 MiB. With this limit the same
// resync peaks at 175 MiB in the same time; the collector only works
// harder when the heap nears it. A process-wide knob, so main sets it, not
// Main.Run (the tests run commands in process).
const memoryLimit = 160 << 20

func main() {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(memoryLimit)
	}
	m := NewMain()
	m.BulkMemory = bulkMemory
	err := m.Run(context.Background(), os.Args[1:])
	if err != nil && !isSilent(err) {
		fmt.Fprintf(os.Stderr, "mirrord: %v\n", err)
	}
	os.Exit(ExitCode(err))
}
