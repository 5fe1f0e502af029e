package mirror

import "syscall"

// ctime returns a stat's change time in nanoseconds.
func ctime(st *syscall.Stat_t) int64 { return st.Ctim.Nano() }
