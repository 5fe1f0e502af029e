package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mirrord/mirrord/kv"
	"github.com/mirrord/mirrord/schema"
)

type result struct {
	stdout, stderr string
	code           int
	err            error
}

// newMain returns a Main over buffers, with the given environment
// (nothing is inherited from the test process) and a default config path
// that does not exist. The MIRRORD_ variables of env take effect only
// inside withEnv: mirrord reads its settings from the process
// environment.
func newMain(t *testing.T, env map[string]string) (*Main, *bytes.Buffer, *bytes.Buffer) {
	var out, errb bytes.Buffer
	var environ []string
	for k, v := range env {
		if !strings.HasPrefix(k, "MIRRORD_") { // see withEnv
			environ = append(environ, k+"="+v)
		}
	}
	return &Main{
		Stdin:             strings.NewReader(""),
		Stdout:            &out,
		Stderr:            &errb,
		Environ:           func() []string { return environ },
		DefaultConfigPath: filepath.Join(t.TempDir(), "absent.yaml"),
	}, &out, &errb
}

// runMain runs a command line on m, bounded in time.
func runMain(m *Main, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return m.Run(ctx, args)
}

// mirrord runs a command line in process, with env as its environment.
func mirrord(t *testing.T, env map[string]string, args ...string) result {
	t.Helper()
	m, out, errb := newMain(t, env)
	var err error
	withEnv(t, env, func() { err = runMain(m, args...) })
	return result{out.String(), errb.String(), ExitCode(err), err}
}

func mirrordDefaultConfig(t *testing.T, path string, args ...string) result {
	t.Helper()
	m, out, errb := newMain(t, nil)
	m.DefaultConfigPath = path
	var err error
	withEnv(t, nil, func() { err = runMain(m, args...) })
	return result{out.String(), errb.String(), ExitCode(err), err}
}

// withEnv runs fn with the MIRRORD_ variables of env, and no other, in the
// process environment, where viper reads the settings (it has no
// injectable lookup), and then puts back what was there. A child process
// started later sees the test process's own environment again. t.Setenv
// records each variable first, which refuses a parallel test (the
// environment is the process's) and restores it should fn not return.
func withEnv(t *testing.T, env map[string]string, fn func()) {
	t.Helper()
	names := map[string]bool{}
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "MIRRORD_") {
			names[k] = true
		}
	}
	for k := range env {
		if strings.HasPrefix(k, "MIRRORD_") {
			names[k] = true
		}
	}
	type saved struct {
		val string
		set bool
	}
	before := map[string]saved{}
	for k := range names {
		val, set := os.LookupEnv(k)
		before[k] = saved{val, set}
		t.Setenv(k, val)
		if val, ok := env[k]; ok {
			os.Setenv(k, val)
		} else {
			os.Unsetenv(k)
		}
	}
	defer func() {
		for k, s := range before {
			if s.set {
				os.Setenv(k, s.val)
			} else {
				os.Unsetenv(k)
			}
		}
	}()
	fn()
}

func (r result) msg() string {
	if r.err == nil {
		return ""
	}
	return r.err.Error()
}

func writeFile(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestExitCodesAndMessages(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		code int
		msg  string // substring of the error
	}{
		{"help", nil, []string{"--help"}, 0, ""},
		{"unknown command", nil, []string{"bogus"}, 2, `unknown command "bogus"`},
		{"unknown flag", nil, []string{"keys", "--bogus"}, 2, "unknown flag: --bogus"},
		{"wrong arg count", nil, []string{"get"}, 2, "accepts 1 arg"},
		{"missing store", nil, []string{"get", "k"}, 2, `missing required setting "store"`},
		{"bad log level", nil, []string{"keys", "--store", dir, "--log-level", "loud"}, 2, `"log-level"`},
		{"bad log format env", map[string]string{"MIRRORD_LOG_FORMAT": "xml"}, []string{"keys", "--store", dir}, 2, "MIRRORD_LOG_FORMAT"},
		{"store absent", nil, []string{"get", "k", "--store", filepath.Join(dir, "nope")}, 1, "does not exist"},
		{"config absent", nil, []string{"keys", "--config", filepath.Join(dir, "nope.yaml")}, 2, "nope.yaml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := mirrord(t, tc.env, tc.args...)
			if r.code != tc.code {
				t.Fatalf("exit %d, want %d (err %v)", r.code, tc.code, r.err)
			}
			if !strings.Contains(r.msg(), tc.msg) {
				t.Fatalf("error %q does not contain %q", r.msg(), tc.msg)
			}
			if strings.Contains(r.msg(), "\n") {
				t.Fatalf("error is more than one line: %q", r.msg())
			}
		})
	}
	// A query on an absent store must not create it.
	if _, err := os.Stat(filepath.Join(dir, "nope")); !os.IsNotExist(err) {
		t.Fatalf("a query created the store directory: %v", err)
	}
}

func seedStore(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "store")
	db, err := kv.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Batch([]kv.Op{
		kv.PutOp(schema.EventKey("b"), map[string]any{"id": "b", "n": 2}),
		kv.PutOp(schema.EventKey("a"), map[string]any{"id": "a"}),
		kv.PutOp(schema.EventKey("я"), map[string]any{"id": "я"}),
		kv.PutOp(schema.ModifierKey("a", "x:y"), map[string]string{"value": "1"}),
		kv.PutOp(schema.GeneratedKey("summary", "2025-01"), map[string]int{"count": 3}),
	})
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestGetKeysDump(t *testing.T) {
	store := seedStore(t)
	env := map[string]string{"MIRRORD_STORE": store}

	r := mirrord(t, env, "get", "generated:summary:2025-01")
	if r.code != 0 || r.stdout != `{"count":3}`+"\n" {
		t.Fatalf("get: exit %d out %q err %v", r.code, r.stdout, r.err)
	}
	r = mirrord(t, env, "get", "event:missing")
	if r.code != 1 || !strings.Contains(r.msg(), `no key "event:missing"`) {
		t.Fatalf("get missing: exit %d err %v", r.code, r.err)
	}

	r = mirrord(t, env, "keys", "event:")
	if r.code != 0 || r.stdout != "event:a\nevent:b\nevent:я\n" {
		t.Fatalf("keys: exit %d out %q err %v", r.code, r.stdout, r.err)
	}
	r = mirrord(t, env, "keys")
	if n := strings.Count(r.stdout, "\n"); r.code != 0 || n != 5 {
		t.Fatalf("keys (all): %d lines, exit %d", n, r.code)
	}

	r = mirrord(t, env, "dump")
	if r.code != 0 {
		t.Fatalf("dump: %v", r.err)
	}
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	wantKeys := []string{"event:a", "event:b", "event:я", "generated:summary:2025-01", "modifier:a:x%3Ay"}
	if len(lines) != len(wantKeys) {
		t.Fatalf("dump: %d lines, want %d:\n%s", len(lines), len(wantKeys), r.stdout)
	}
	for i, line := range lines {
		var rec struct {
			Key   string          `json:"key"`
			Value json.RawMessage `json:"value"`
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("dump line %q is not JSON: %v", line, err)
		}
		if rec.Key != wantKeys[i] {
			t.Fatalf("dump line %d key %q, want %q", i, rec.Key, wantKeys[i])
		}
	}
	r = mirrord(t, env, "dump", "modifier:")
	if r.stdout != `{"key":"modifier:a:x%3Ay","value":{"value":"1"}}`+"\n" {
		t.Fatalf("dump modifier: %q", r.stdout)
	}
}

func TestQueryOnLockedStore(t *testing.T) {
	store := seedStore(t)
	db, err := kv.Open(store, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	r := mirrord(t, map[string]string{"MIRRORD_STORE": store}, "keys")
	if r.code != 1 || !strings.Contains(r.msg(), "locked") || !strings.Contains(r.msg(), store) {
		t.Fatalf("locked store: exit %d err %q", r.code, r.msg())
	}
}

func TestVersionAndCompletion(t *testing.T) {
	r := mirrord(t, nil, "version")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "mirrord ") || !strings.Contains(r.stdout, "pebble") {
		t.Fatalf("version: %q %v", r.stdout, r.err)
	}
	r = mirrord(t, nil, "--version")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "mirrord ") {
		t.Fatalf("--version: %q %v", r.stdout, r.err)
	}
	for _, sh := range []string{"bash", "zsh", "fish"} {
		r = mirrord(t, nil, "completion", sh)
		if r.code != 0 || !strings.Contains(r.stdout, "mirrord") {
			t.Fatalf("completion %s: exit %d", sh, r.code)
		}
	}
}
