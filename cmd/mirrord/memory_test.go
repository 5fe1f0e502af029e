package main

import (
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"github.com/mirrord/mirrord/eventlog"
	"github.com/mirrord/mirrord/internal/synth"
	"github.com/prometheus/procfs"
)

// A sync ends by logging the process's peak resident set, read from
// /proc/self/status: here the test process's, which holds megabytes, and
// no more than the peak read after the sync.
func TestSyncLogsPeakRSS(t *testing.T) {
	dir := t.TempDir()
	log, store := filepath.Join(dir, "data.json"), filepath.Join(dir, "store")
	// Written here, not by the process tests' helper, so that this test
	// stands alone.
	writeFile(t, log, string(eventlog.Format(synth.New(61).Events(10))))
	r := mirrord(t, nil, "sync", "--eventlog", log, "--store", store, "--log-format", "text")
	if r.code != 0 {
		t.Fatalf("sync: exit %d: %v", r.code, r.err)
	}
	m := regexp.MustCompile(`peak_rss_mib=(\d+)`).FindStringSubmatch(r.stderr)
	if m == nil {
		t.Fatalf("no peak_rss_mib in the sync's log:\n%s", r.stderr)
	}
	logged, _ := strconv.ParseInt(m[1], 10, 64)
	self, err := procfs.Self()
	if err != nil {
		t.Fatal(err)
	}
	st, err := self.NewStatus()
	if err != nil {
		t.Fatal(err)
	}
	if after := int64((st.VmHWM + 1<<19) >> 20); logged < 1 || logged > after {
		t.Fatalf("peak_rss_mib=%d; VmHWM after the sync is %d MiB", logged, after)
	}
}
