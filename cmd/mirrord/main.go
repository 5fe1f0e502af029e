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
// rebuild of the hashtags generator at 264 MiB. With a limit the collector
// only works harder when the heap nears it; but a limit the live heap
// reaches makes it collect again and again for a megabyte each time. At
// 160 MiB a default sync of 10M small events did (its merge holds about
// 145 MiB live: the load's run cursors and both generators' spill budgets)
// and took 47–55 s, 5,800 collections; at 192 MiB, 24 s, peak RSS 207 MiB
// (a 1M-event resync peaks at 216 MiB instead of 180). A process-wide knob,
// so main sets it, not Main.Run (the tests run commands in process).
const memoryLimit = 192 << 20

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
