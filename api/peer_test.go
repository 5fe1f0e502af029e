package api_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mirrord/mirrord/api"
	"github.com/mirrord/mirrord/internal/gittest"
	"go.uber.org/goleak"
)

// foreignEnv makes the test binary, started as a child, serve a forged
// mirrord on the socket it names instead of running the tests: another
// local user's process, for the peer-credential tests.
const foreignEnv = "MIRRORD_API_TEST_FOREIGN_SOCKET"

// foreignUID is the user the foreign child runs as (nobody).
const foreignUID = 65534

// childMains are the roles the test binary plays as a child process,
// chosen by an environment variable.
var childMains = map[string]func(arg string){foreignEnv: serveForged}

// TestMain runs a child's role, or the tests, which fail when a
// goroutine outlives them: every goroutine has an owner that stops it.
func TestMain(m *testing.M) {
	for env, main := range childMains {
		if arg := os.Getenv(env); arg != "" {
			main(arg)
			return
		}
	}
	// Git is hermetic for the git mode's tests (the engine's git children
	// inherit the environment).
	cleanup, err := gittest.Hermetic()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	goleak.VerifyTestMain(m, goleak.Cleanup(func(int) { cleanup() }))
}

// serveForged answers every request as a daemon that claims to serve any
// store, until killed.
func serveForged(path string) {
	ln, err := net.Listen("unix", path)
	if err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
		os.Exit(2)
	}
	os.Stdout.WriteString("ready\n")
	_ = http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte(`{"store":"/forged","version":"evil"}`))
	}))
}

func TestTrustPeer(t *testing.T) {
	const self, owner, other = 1000, 1001, 1002
	for _, tc := range []struct {
		name              string
		peer, owner, self int
		ok                bool
		msg               string
	}{
		{"root serves", 0, owner, self, true, ""},
		{"the store's owner serves", owner, owner, self, true, ""},
		{"our own daemon, our store", self, self, self, true, ""},
		{"another user serves", other, owner, self, false, "runs as uid 1002, but the store belongs to uid 1001"},
		{"we are not trusted for a store we do not own", self, owner, self, false, "runs as uid 1000, but the store belongs to uid 1001"},
		{"owner unknown: ourselves", self, -1, self, true, ""},
		{"owner unknown: root", 0, -1, self, true, ""},
		{"owner unknown: someone else", other, -1, self, false, "runs as uid 1002, and the store's owner is unknown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := api.TrustPeer(tc.peer, tc.owner, tc.self)
			if tc.ok {
				if err != nil {
					t.Fatalf("TrustPeer(%d, %d, %d) = %v, want trusted", tc.peer, tc.owner, tc.self, err)
				}
				return
			}
			if !errors.Is(err, api.ErrUntrusted) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("TrustPeer(%d, %d, %d) = %v, want ErrUntrusted saying %q", tc.peer, tc.owner, tc.self, err, tc.msg)
			}
		})
	}
}

// TestClientAcceptsOwnDaemon: the client's peer check runs on a real
// socket and lets our own server through, whatever the store's owner
// parameter when it is us.
func TestClientAcceptsOwnDaemon(t *testing.T) {
	f := newFixture(t, fixtureOptions{events: 3})
	for _, owner := range []int{-1, os.Geteuid()} {
		c := api.NewClientFor(f.sock, owner)
		if _, err := c.Status(testCtx(t, 5*time.Second)); err != nil {
			t.Errorf("owner %d: our own daemon refused: %v", owner, err)
		}
		c.Close()
	}
	if got := api.StoreOwner(f.dir, f.sock); got != os.Geteuid() {
		t.Errorf("StoreOwner(%s) = %d, want our uid %d", f.dir, got, os.Geteuid())
	}
}

// startForeign starts the test binary as uid nobody serving a forged
// daemon on path, and waits until it listens. It needs root (to start a
// process as another user); without it the test is skipped, the
// decision itself being covered by TestTrustPeer.
func startForeign(t *testing.T, path string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("starting a process as another user needs root")
	}
	// The test binary sits in a directory only we may enter: nobody runs
	// a copy.
	binDir := shortDir(t)
	if err := os.Chmod(binDir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(binDir, "forged")
	src, err := os.Open(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	dst, err := os.OpenFile(bin, os.O_CREATE|os.O_WRONLY, 0o755)
	if err == nil {
		_, err = io.Copy(dst, src)
		if cerr := dst.Close(); err == nil {
			err = cerr
		}
	}
	src.Close()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), foreignEnv+"="+path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: foreignUID, Gid: foreignUID}}
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	ready := make(chan bool, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		ready <- line == "ready\n"
	}()
	select {
	case ok := <-ready:
		if !ok {
			t.Fatal("the foreign server did not start")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the foreign server did not start within 10s")
	}
}

// stickyDir returns a directory like /tmp: world-writable and sticky.
func stickyDir(t *testing.T) string {
	t.Helper()
	dir := shortDir(t)
	if err := os.Chmod(dir, 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestClientRefusesForeignServer: another user who bound the socket path
// first (the quick start's socket beside a store in /tmp) is not
// believed; the error names that user and the store's owner.
func TestClientRefusesForeignServer(t *testing.T) {
	path := filepath.Join(stickyDir(t), "store.sock")
	startForeign(t, path)
	store := t.TempDir() // ours
	c := api.NewClientFor(path, api.StoreOwner(store, path))
	defer c.Close()
	_, err := c.Status(testCtx(t, 5*time.Second))
	if !errors.Is(err, api.ErrUntrusted) {
		t.Fatalf("Status through another user's server: %v, want ErrUntrusted", err)
	}
	for _, want := range []string{path, "uid 65534", "the store belongs to uid 0"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	// The same server is believed about a store it owns: the check is
	// the peer's real uid, not a refusal of everything foreign.
	c2 := api.NewClientFor(path, foreignUID)
	defer c2.Close()
	if _, err := c2.Status(testCtx(t, 5*time.Second)); err != nil {
		t.Errorf("Status from the store owner's server: %v", err)
	}
}

// TestListenRefusesForeignServer: the daemon does not start in place of
// another user's server, and says whose.
func TestListenRefusesForeignServer(t *testing.T) {
	path := filepath.Join(stickyDir(t), "store.sock")
	startForeign(t, path)
	ln, err := api.Listen(path, "")
	if err == nil {
		ln.Close()
		t.Fatal("Listen took the socket of another user's server")
	}
	if !errors.Is(err, api.ErrInUse) || !strings.Contains(err.Error(), "uid 65534") {
		t.Fatalf("Listen: %v, want ErrInUse naming uid 65534", err)
	}
}

// TestListenSocketDirectory: a socket is served only from a directory
// nobody else can write, or a sticky one (the quick start's /tmp).
func TestListenSocketDirectory(t *testing.T) {
	for _, tc := range []struct {
		name  string
		mode  os.FileMode
		owner int // -1: ours
		err   string
	}{
		{"private", 0o700, -1, ""},
		{"sticky like /tmp", 0o777 | os.ModeSticky, -1, ""},
		{"world-writable", 0o777, -1, "writable by others (mode 0777) and not sticky"},
		{"group-writable", 0o770, -1, "writable by others (mode 0770) and not sticky"},
		{"another user's", 0o755, foreignUID, "belongs to uid 65534"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := shortDir(t)
			if err := os.Chmod(dir, tc.mode); err != nil {
				t.Fatal(err)
			}
			if tc.owner >= 0 {
				if os.Geteuid() != 0 {
					t.Skip("giving a directory to another user needs root")
				}
				if err := os.Chown(dir, tc.owner, -1); err != nil {
					t.Fatal(err)
				}
			}
			path := filepath.Join(dir, "m.sock")
			ln, err := api.Listen(path, "")
			if tc.err == "" {
				if err != nil {
					t.Fatalf("Listen in a %s directory: %v", tc.name, err)
				}
				ln.Close()
				return
			}
			if err == nil {
				ln.Close()
				t.Fatalf("Listen served from a %s directory", tc.name)
			}
			if !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), dir) {
				t.Errorf("Listen: %v, want it to name %s and say %q", err, dir, tc.err)
			}
		})
	}
}
