package hugemem

import (
	"bytes"
	"os"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// advised reports whether the kernel gives transparent huge pages only to
// the memory advised for them (mode "madvise", the default of many
// distributions). Only then does advice change anything: in mode "always"
// Go's heap has them already (and taking the advice back would take them
// away), in "never" no one does.
var advised = sync.OnceValue(func() bool {
	mode, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled")
	return err == nil && bytes.Contains(mode, []byte("[madvise]"))
})

// advise sets (or takes back) the huge page advice on the whole huge pages
// within b. An error only means the buffer is ordinary memory, which it
// was anyway.
func advise(b []byte, huge bool) {
	if !advised() {
		return
	}
	from, to := aligned(uintptr(unsafe.Pointer(unsafe.SliceData(b))), len(b))
	if from == to {
		return
	}
	advice := unix.MADV_HUGEPAGE
	if !huge {
		advice = unix.MADV_NOHUGEPAGE
	}
	_ = unix.Madvise(b[from:to], advice)
}
