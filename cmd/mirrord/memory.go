package main

import "github.com/mirrord/mirrord/internal/procstat"

// peakRSSMiB is this process's peak resident memory in MiB (VmHWM; 0 where
// unknown). It is logged when a sync ends, so that an operator sees what a
// resync of their log takes.
func peakRSSMiB() int64 {
	n, err := procstat.Field("self", "VmHWM")
	if err != nil {
		return 0
	}
	return (n + 1<<19) >> 20
}
