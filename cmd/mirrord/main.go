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
)

func main() {
	m := NewMain()
	err := m.Run(context.Background(), os.Args[1:])
	if err != nil && !isSilent(err) {
		fmt.Fprintf(os.Stderr, "mirrord: %v\n", err)
	}
	os.Exit(ExitCode(err))
}
