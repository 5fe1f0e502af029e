package api_test

import (
	"errors"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mirrord/mirrord/api"
)

// socketInfo returns the mode and group of the file at path.
func socketInfo(t *testing.T, path string) (fs.FileMode, int) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode(), int(fi.Sys().(*syscall.Stat_t).Gid)
}

// answers reports whether an HTTP server answers on the socket at path.
func answers(t *testing.T, path string) bool {
	t.Helper()
	hc, closeIdle := unixHTTPClient(path)
	defer closeIdle()
	hc.Timeout = 2 * time.Second
	resp, err := hc.Get("http://mirrord/")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return true
}

// serveHello serves a trivial handler on ln until the test ends.
func serveHello(t *testing.T, ln net.Listener) {
	t.Helper()
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("hello")) })}
	done := make(chan struct{})
	go func() { defer close(done); hs.Serve(ln) }()
	t.Cleanup(func() { hs.Close(); <-done })
}

func onlyEntry(t *testing.T, dir, name string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if len(names) != 1 || names[0] != name {
		t.Errorf("directory holds %q, want only %q (no temporary leftovers)", names, name)
	}
}

func TestListenOwnerOnly(t *testing.T) {
	checkGoroutines(t)
	dir := shortDir(t)
	path := filepath.Join(dir, "m.sock")
	// Whatever the umask, the socket is owner-only.
	old := syscall.Umask(0)
	ln, err := api.Listen(path, "")
	syscall.Umask(old)
	if err != nil {
		t.Fatal(err)
	}
	if ln.Path() != path {
		t.Errorf("Path() = %q, want %q", ln.Path(), path)
	}
	mode, _ := socketInfo(t, path)
	if mode&fs.ModeSocket == 0 || mode.Perm() != 0o600 {
		t.Errorf("socket mode %v, want a socket with 0600", mode)
	}
	onlyEntry(t, dir, "m.sock")
	serveHello(t, ln)
	if !answers(t, path) {
		t.Fatal("nothing answers on the new socket")
	}
	if err := ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Close: %v", err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("after Close the socket file is still there: %v", err)
	}
}

func TestListenGroup(t *testing.T) {
	checkGoroutines(t)
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	groups := []string{u.Gid}
	if os.Geteuid() == 0 {
		// root may give the socket to any group: also try one that is not
		// its own, so that the chown is seen to happen.
		for _, gid := range []string{"1", "2", "100"} {
			if gid != u.Gid {
				if _, err := user.LookupGroupId(gid); err == nil {
					groups = append(groups, gid)
					break
				}
			}
		}
	}
	for _, gid := range groups {
		g, err := user.LookupGroupId(gid)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(g.Name, func(t *testing.T) {
			dir := shortDir(t)
			path := filepath.Join(dir, "m.sock")
			ln, err := api.Listen(path, g.Name)
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			mode, got := socketInfo(t, path)
			if mode&fs.ModeSocket == 0 || mode.Perm() != 0o660 {
				t.Errorf("socket mode %v, want a socket with 0660", mode)
			}
			if want, _ := strconv.Atoi(g.Gid); got != want {
				t.Errorf("socket group %d, want %d (%s)", got, want, g.Name)
			}
			onlyEntry(t, dir, "m.sock")
		})
	}
}

func TestListenUnknownGroup(t *testing.T) {
	checkGoroutines(t)
	dir := shortDir(t)
	path := filepath.Join(dir, "m.sock")
	_, err := api.Listen(path, "no-such-group-mirrord-test")
	if err == nil || !strings.Contains(err.Error(), "no-such-group-mirrord-test") {
		t.Fatalf("Listen with an unknown group: %v, want an error naming the group", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("a failed Listen left %d entries in the directory", len(ents))
	}
}

func TestListenReplacesStaleSocket(t *testing.T) {
	checkGoroutines(t)
	t.Run("closed listener", func(t *testing.T) {
		dir := shortDir(t)
		path := filepath.Join(dir, "m.sock")
		old, err := net.Listen("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		old.(*net.UnixListener).SetUnlinkOnClose(false)
		old.Close() // a crashed daemon: the file stays, nobody listens
		if _, err := os.Lstat(path); err != nil {
			t.Fatalf("the stale socket file should exist: %v", err)
		}
		ln, err := api.Listen(path, "")
		if err != nil {
			t.Fatalf("Listen over a stale socket: %v", err)
		}
		defer ln.Close()
		serveHello(t, ln)
		if !answers(t, path) {
			t.Fatal("nothing answers on the socket that replaced the stale one")
		}
		onlyEntry(t, dir, "m.sock")
	})
	t.Run("socket node", func(t *testing.T) {
		dir := shortDir(t)
		path := filepath.Join(dir, "m.sock")
		if err := syscall.Mknod(path, syscall.S_IFSOCK|0o600, 0); err != nil {
			t.Fatalf("mknod: %v", err)
		}
		ln, err := api.Listen(path, "")
		if err != nil {
			t.Fatalf("Listen over a socket file nobody listens on: %v", err)
		}
		defer ln.Close()
		serveHello(t, ln)
		if !answers(t, path) {
			t.Fatal("nothing answers on the socket that replaced the stale one")
		}
	})
}

func TestListenRefusesLiveSocket(t *testing.T) {
	checkGoroutines(t)
	dir := shortDir(t)
	path := filepath.Join(dir, "m.sock")
	first, err := api.Listen(path, "")
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	serveHello(t, first)
	fiBefore, _ := os.Lstat(path)

	second, err := api.Listen(path, "")
	if err == nil {
		second.Close()
		t.Fatal("a second Listen on a live socket succeeded")
	}
	if !errors.Is(err, api.ErrInUse) {
		t.Fatalf("second Listen: %v, want ErrInUse", err)
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("the error %q does not name the socket", err)
	}
	fiAfter, err := os.Lstat(path)
	if err != nil || !os.SameFile(fiBefore, fiAfter) {
		t.Fatalf("the live socket file was touched: %v", err)
	}
	if !answers(t, path) {
		t.Fatal("the live socket stopped answering after a refused Listen")
	}
	onlyEntry(t, dir, "m.sock")
}

func TestListenRefusesOtherFiles(t *testing.T) {
	checkGoroutines(t)
	t.Run("regular file", func(t *testing.T) {
		dir := shortDir(t)
		path := filepath.Join(dir, "m.sock")
		if err := os.WriteFile(path, []byte("precious"), 0o644); err != nil {
			t.Fatal(err)
		}
		ln, err := api.Listen(path, "")
		if err == nil {
			ln.Close()
			t.Fatal("Listen replaced a regular file")
		}
		if errors.Is(err, api.ErrInUse) {
			t.Errorf("a regular file is not a daemon in use: %v", err)
		}
		if b, rerr := os.ReadFile(path); rerr != nil || string(b) != "precious" {
			t.Fatalf("the regular file was not left intact: %q, %v", b, rerr)
		}
		onlyEntry(t, dir, "m.sock")
	})
	t.Run("directory", func(t *testing.T) {
		dir := shortDir(t)
		path := filepath.Join(dir, "m.sock")
		if err := os.Mkdir(path, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(path, "x"), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		ln, err := api.Listen(path, "")
		if err == nil {
			ln.Close()
			t.Fatal("Listen replaced a directory")
		}
		if _, err := os.Stat(filepath.Join(path, "x")); err != nil {
			t.Fatalf("the directory was not left intact: %v", err)
		}
	})
	t.Run("missing directory", func(t *testing.T) {
		path := filepath.Join(shortDir(t), "nope", "m.sock")
		if ln, err := api.Listen(path, ""); err == nil {
			ln.Close()
			t.Fatal("Listen in a missing directory succeeded")
		}
	})
}

func TestListenerCloseRemovesSocket(t *testing.T) {
	checkGoroutines(t)
	dir := shortDir(t)
	path := filepath.Join(dir, "m.sock")
	ln, err := api.Listen(path, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := ln.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("socket file after Close: %v", err)
	}
	// The path is free again: a new daemon listens without complaint.
	ln2, err := api.Listen(path, "")
	if err != nil {
		t.Fatalf("Listen after Close: %v", err)
	}
	ln2.Close()
}

func TestDefaultPath(t *testing.T) {
	for _, c := range []struct{ runtime, store, want string }{
		{"/run/mirrord", "/var/lib/mirrord/store", "/run/mirrord/mirrord.sock"},
		{"/run/mirrord/", "/var/lib/mirrord/store", "/run/mirrord/mirrord.sock"},
		{"/run/a:/run/b", "/var/lib/mirrord/store", "/run/a/mirrord.sock"},
		{"/run/a:/run/b:/run/c", "", "/run/a/mirrord.sock"},
		{"", "/var/lib/mirrord/store", "/var/lib/mirrord/store.sock"},
		{"", "/var/lib/mirrord/store/", "/var/lib/mirrord/store.sock"},
		{"", "/var/lib/mirrord/x/../store", "/var/lib/mirrord/store.sock"},
		{"", "store", "store.sock"},
		{"", "./data/store", "data/store.sock"},
	} {
		if got := api.DefaultPath(c.runtime, c.store); got != c.want {
			t.Errorf("DefaultPath(%q, %q) = %q, want %q", c.runtime, c.store, got, c.want)
		}
	}
}
