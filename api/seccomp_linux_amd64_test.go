package api_test

import (
	"errors"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"github.com/mirrord/mirrord/api"
	"golang.org/x/sys/unix"
)

// seccompEnv makes the test binary, as a child, forbid the chown family
// of system calls as the systemd unit does (SystemCallFilter=~@privileged
// kills the process with SIGSYS), then create the socket it names with
// the group it names ("path:group").
const seccompEnv = "MIRRORD_API_TEST_SECCOMP_LISTEN"

func init() { childMains[seccompEnv] = listenUnderFilter }

// listenUnderFilter is the child's side.
func listenUnderFilter(arg string) {
	path, group, _ := strings.Cut(arg, ":")
	if err := forbidChown(); err != nil {
		os.Stderr.WriteString("seccomp: " + err.Error() + "\n")
		os.Exit(3)
	}
	ln, err := api.Listen(path, group)
	if err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
		os.Exit(4)
	}
	ln.Close()
	os.Exit(0)
}

// forbidChown installs, on every thread, a seccomp filter that kills the
// process at chown, fchown, lchown or fchownat.
func forbidChown() error {
	stmt := func(code uint16, k uint32) unix.SockFilter { return unix.SockFilter{Code: code, K: k} }
	jeq := func(k uint32, jt uint8) unix.SockFilter {
		return unix.SockFilter{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: k, Jt: jt}
	}
	prog := []unix.SockFilter{
		stmt(unix.BPF_LD|unix.BPF_W|unix.BPF_ABS, 4), // arch
		jeq(unix.AUDIT_ARCH_X86_64, 1),
		stmt(unix.BPF_RET|unix.BPF_K, unix.SECCOMP_RET_ALLOW),
		stmt(unix.BPF_LD|unix.BPF_W|unix.BPF_ABS, 0), // syscall number
		jeq(unix.SYS_CHOWN, 4),
		jeq(unix.SYS_FCHOWN, 3),
		jeq(unix.SYS_LCHOWN, 2),
		jeq(unix.SYS_FCHOWNAT, 1),
		stmt(unix.BPF_RET|unix.BPF_K, unix.SECCOMP_RET_ALLOW),
		stmt(unix.BPF_RET|unix.BPF_K, unix.SECCOMP_RET_KILL_PROCESS),
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return err
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	_, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(&fprog)))
	if errno != 0 {
		return errno
	}
	return nil
}

// listenChild runs Listen(path, group) in a child under the filter and
// returns how it ended.
func listenChild(t *testing.T, path, group string) (*exec.ExitError, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), seccompEnv+"="+path+":"+group)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	return ee, string(out)
}

// TestSocketGroupWithoutChown: with the daemon's own group as the socket
// group (the unit's Group=), the socket is created without any chown, so
// the unit's system call filter does not kill the daemon; a group that
// still needs a chown is killed by the same filter, which shows the
// filter is real.
func TestSocketGroupWithoutChown(t *testing.T) {
	own, err := user.LookupGroupId(strconv.Itoa(os.Getegid()))
	if err != nil {
		t.Skipf("our group has no name: %v", err)
	}
	dir := shortDir(t)
	path := filepath.Join(dir, "g.sock")
	if ee, out := listenChild(t, path, own.Name); ee != nil {
		t.Fatalf("Listen with socket group %s (our own) under a filter forbidding chown: %v\n%s", own.Name, ee, out)
	}

	// Control: another group needs a chown, and the filter kills it.
	var other *user.Group
	for _, gid := range []string{"65534", "1", "2", "100"} {
		if g, err := user.LookupGroupId(gid); err == nil && gid != own.Gid {
			other = g
			break
		}
	}
	if other == nil {
		t.Skip("no second group to check the filter with")
	}
	ee, out := listenChild(t, filepath.Join(dir, "o.sock"), other.Name)
	if ee == nil {
		t.Fatalf("Listen with group %s (a chown) survived the filter: the filter does not work\n%s", other.Name, out)
	}
	ws, _ := ee.Sys().(syscall.WaitStatus)
	if !ws.Signaled() || ws.Signal() != syscall.SIGSYS {
		t.Fatalf("Listen with group %s ended with %v, want killed by SIGSYS\n%s", other.Name, ee, out)
	}
}
