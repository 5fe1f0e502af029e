package procstat

import (
	"os"
	"runtime"
	"testing"
)

// Both figures are real (a Go test binary holds megabytes; the peak is
// updated lazily by the kernel, so it is not compared with the current
// size); a missing field is an error.
func TestField(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("/proc/{pid}/status is Linux's")
	}
	hwm, err := Field("self", "VmHWM")
	if err != nil {
		t.Fatal(err)
	}
	rss, err := Of(os.Getpid(), "VmRSS")
	if err != nil {
		t.Fatal(err)
	}
	if rss < 1<<20 || hwm < 1<<20 {
		t.Fatalf("VmHWM %d, VmRSS %d", hwm, rss)
	}
	if _, err := Field("self", "NoSuchField"); err == nil {
		t.Fatal("a missing field is not an error")
	}
}
