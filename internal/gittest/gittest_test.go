package gittest

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"
)

// goEnv returns what the go command says of its caches and settings.
func goEnv(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "env", "GOMODCACHE", "GOCACHE", "GOFLAGS", "GOPROXY").Output()
	if err != nil {
		t.Fatalf("go env: %v", err)
	}
	return string(out)
}

// Hermetic moves HOME for git, but the go command a test runs after it
// (to build mirrord) keeps the module and build caches and the settings
// it had: otherwise every test binary downloads and builds everything
// again.
func TestHermeticKeepsGoCaches(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command in PATH")
	}
	before := goEnv(t)
	home := os.Getenv("HOME")
	cleanup, err := Hermetic()
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	if os.Getenv("HOME") == home {
		t.Fatal("Hermetic left HOME as it was")
	}
	if after := goEnv(t); after != before {
		t.Fatalf("the go command's caches and settings moved with HOME:\nbefore:\n%safter:\n%s", before, after)
	}
}
