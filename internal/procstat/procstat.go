// Package procstat reads a process's memory figures from Linux's
// /proc/{pid}/status: what mirrord logs as its peak memory, and what the
// benchmark and the tests measure. A child's rusage is no substitute: on
// Linux it counts the parent's memory as it stood when the child was
// exec'd.
package procstat

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Field returns a "Name:  N kB" field of /proc/{pid}/status (pid "self"
// for this process), such as "VmHWM" (peak resident set) or "VmRSS", in
// bytes.
func Field(pid, name string) (int64, error) {
	path := "/proc/" + pid + "/status"
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("%s: %s: %v", path, name, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("%s: no %s", path, name)
}

// Of is Field of a process by its id.
func Of(pid int, name string) (int64, error) { return Field(strconv.Itoa(pid), name) }
