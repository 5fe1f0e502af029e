package main

import (
	"os"
	"strconv"
	"strings"
)

// peakRSSMiB is this process's peak resident memory in MiB, from the
// kernel's VmHWM (Linux only; 0 elsewhere). It is logged when a sync ends,
// so that an operator sees what a resync of their log takes. (The rusage a
// parent gets is no substitute: on Linux it includes the memory of the
// process that started mirrord, as it stood when mirrord was exec'd.)
func peakRSSMiB() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0
			}
			return (kb + 512) >> 10
		}
	}
	return 0
}
