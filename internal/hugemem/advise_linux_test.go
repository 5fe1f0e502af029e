package hugemem

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"strings"
	"testing"
	"unsafe"
)

// TestAdviceReachesTheKernel reads the process's memory map back: after
// Alloc the huge pages within the buffer are advised for huge pages
// (VmFlags "hg"), after Release they are not ("nh"). Only where the kernel
// gives huge pages to advised memory alone, the case Alloc is for.
func TestAdviceReachesTheKernel(t *testing.T) {
	if !advised() {
		t.Skip("transparent huge pages are not in madvise mode here")
	}
	b := Alloc(3 * Min)
	from, to := aligned(uintptr(unsafe.Pointer(unsafe.SliceData(b))), len(b))
	addr := uintptr(unsafe.Pointer(&b[from]))
	if flags := vmFlags(t, addr); !flags["hg"] || flags["nh"] {
		t.Fatalf("after Alloc, the range at %#x has flags %v, want hg", addr, flags)
	}
	if flags := vmFlags(t, addr+uintptr(to-from)-1); !flags["hg"] {
		t.Fatalf("after Alloc, the end of the range has flags %v, want hg", flags)
	}
	Release(b)
	if flags := vmFlags(t, addr); flags["hg"] || !flags["nh"] {
		t.Fatalf("after Release, the range at %#x has flags %v, want nh", addr, flags)
	}
}

// vmFlags returns the VmFlags of the mapping of /proc/self/smaps that holds
// addr.
func vmFlags(t *testing.T, addr uintptr) map[string]bool {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Skip(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	in := false
	for sc.Scan() {
		line := sc.Text()
		if lo, hi, ok := mapRange(line); ok {
			in = lo <= addr && addr < hi
			continue
		}
		if in && strings.HasPrefix(line, "VmFlags:") {
			flags := map[string]bool{}
			for _, f := range bytes.Fields([]byte(line[len("VmFlags:"):])) {
				flags[string(f)] = true
			}
			return flags
		}
	}
	t.Fatalf("no mapping holds %#x", addr)
	return nil
}

// mapRange parses the "lo-hi perms ..." line that starts a mapping.
func mapRange(line string) (lo, hi uintptr, ok bool) {
	r, _, found := strings.Cut(line, " ")
	los, his, dash := strings.Cut(r, "-")
	if !found || !dash {
		return 0, 0, false
	}
	l, err1 := strconv.ParseUint(los, 16, 64)
	h, err2 := strconv.ParseUint(his, 16, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return uintptr(l), uintptr(h), true
}
