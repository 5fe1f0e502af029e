package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func configValue(t *testing.T, r result, key string) (value, source string) {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("config: exit %d: %v", r.code, r.err)
	}
	for _, line := range strings.Split(r.stdout, "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == key {
			return f[1], strings.Join(f[2:], " ")
		}
	}
	t.Fatalf("no %s in config output:\n%s", key, r.stdout)
	return "", ""
}

func TestConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, filepath.Join(dir, "c.yaml"), "store: /from-file\nlog-level: warn\n")
	env := map[string]string{"MIRRORD_CONFIG": file}

	v, src := configValue(t, mirrord(t, env, "config"), "store")
	if v != "/from-file" || src != "file" {
		t.Fatalf("file only: %s from %s", v, src)
	}
	env["MIRRORD_STORE"] = "/from-env"
	v, src = configValue(t, mirrord(t, env, "config"), "store")
	if v != "/from-env" || src != "env MIRRORD_STORE" {
		t.Fatalf("env over file: %s from %s", v, src)
	}
	v, src = configValue(t, mirrord(t, env, "config", "--store", "/from-flag"), "store")
	if v != "/from-flag" || src != "flag --store" {
		t.Fatalf("flag over env: %s from %s", v, src)
	}
	v, src = configValue(t, mirrord(t, env, "config"), "log-format")
	if v != "auto" || src != "default" {
		t.Fatalf("default: %s from %s", v, src)
	}
	v, _ = configValue(t, mirrord(t, env, "config"), "log-level")
	if v != "warn" {
		t.Fatalf("file log-level: %s", v)
	}
	// --config beats MIRRORD_CONFIG.
	other := writeFile(t, filepath.Join(dir, "o.yaml"), "store: /other\n")
	delete(env, "MIRRORD_STORE")
	v, _ = configValue(t, mirrord(t, env, "config", "--config", other), "store")
	if v != "/other" {
		t.Fatalf("--config over MIRRORD_CONFIG: %s", v)
	}
}

func TestDefaultConfigPath(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, filepath.Join(dir, "config.yaml"), "store: /default-file\n")
	v, src := configValue(t, mirrordDefaultConfig(t, file, "config"), "store")
	if v != "/default-file" || src != "file" {
		t.Fatalf("default config file not read: %s from %s", v, src)
	}
	// Absent, it is silently skipped (unlike an explicit --config).
	v, _ = configValue(t, mirrordDefaultConfig(t, filepath.Join(dir, "absent.yaml"), "config"), "store")
	if v != `""` {
		t.Fatalf("store = %s with no config file", v)
	}
}

func TestConfigFileErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ name, content, msg string }{
		{"unknown key", "stroe: /x\n", `unknown setting "stroe" (did you mean "store"?)`},
		{"unrelated key", "colour: blue\n", `unknown setting "colour" (settings: `},
		{"nested unknown", "store:\n  path: /x\n", `unknown setting "store.path"`},
		{"bad yaml", "store: [unclosed\n", "c.yaml"},
		{"wrong type", "log-level: [1, 2]\n", `setting "log-level"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := writeFile(t, filepath.Join(dir, "c.yaml"), tc.content)
			r := mirrord(t, nil, "config", "--config", file)
			if r.code != 2 || !strings.Contains(r.msg(), tc.msg) {
				t.Fatalf("exit %d, error %q; want 2 and %q", r.code, r.msg(), tc.msg)
			}
		})
	}
}

// config.example.yaml documents every setting, and mirrord accepts it.
func TestExampleConfigListsEverySetting(t *testing.T) {
	b, err := os.ReadFile("../../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range settings {
		if !strings.Contains(string(b), "\n"+s.key+":") {
			t.Errorf("config.example.yaml does not document %q", s.key)
		}
	}
	r := mirrord(t, nil, "config", "--config", "../../config.example.yaml")
	if r.code != 0 {
		t.Fatalf("mirrord rejects config.example.yaml: %v", r.err)
	}
}

// An unknown MIRRORD_ variable is a warning (other tools share the
// prefix), with a suggestion; the command runs.
func TestUnknownEnvironmentVariableWarns(t *testing.T) {
	store := seedStore(t)
	r := mirrord(t, map[string]string{"MIRRORD_STROE": "x", "MIRRORD_AGENT_IMAGE": "y"}, "keys", "--store", store)
	if r.code != 0 {
		t.Fatalf("exit %d: %v", r.code, r.err)
	}
	if !strings.Contains(r.stderr, `MIRRORD_STROE names no setting of mirrord (did you mean "store"?)`) ||
		!strings.Contains(r.stderr, "MIRRORD_AGENT_IMAGE") {
		t.Fatalf("no warning naming the variables:\n%s", r.stderr)
	}
}

// Relative paths in a config file are relative to the file, not to the
// working directory (a service runs in "/"); from a flag, relative to the
// working directory.
func TestConfigFilePathsAreRelativeToTheFile(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, filepath.Join(dir, "c.yaml"), "store: data/store\neventlog: ../log.json\n")
	r := mirrord(t, nil, "config", "--config", file)
	if v, _ := configValue(t, r, "store"); v != filepath.Join(dir, "data/store") {
		t.Fatalf("store from the file resolves to %s", v)
	}
	if v, _ := configValue(t, r, "eventlog"); v != filepath.Join(filepath.Dir(dir), "log.json") {
		t.Fatalf("eventlog from the file resolves to %s", v)
	}
	if v, _ := configValue(t, mirrord(t, nil, "config", "--config", file, "--store", "rel"), "store"); v != "rel" {
		t.Fatalf("a flag's relative path became %s", v)
	}
}

// Any input is a size or an error, never a panic; a size is from 0 to
// 2 GiB (a negative number, multiplied, must not wrap round to a positive
// one), and reads back the same from its number of bytes and, when it is
// whole, from its KiB.
func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"16MiB", "1048576", "4 KiB", "2KB", "1GB", "2GiB", "3GiB", "0", "-1", "B", "1.5MiB", " 7 ", "9999999999999999999", "-9000000000000000GiB", "1MiBKiB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseSize(s)
		if err != nil {
			return
		}
		if n < 0 || n > 1<<31 {
			t.Fatalf("parseSize(%q) = %d, outside 0 to 2 GiB", s, n)
		}
		if m, err := parseSize(strconv.Itoa(n)); err != nil || m != n {
			t.Fatalf("parseSize(%q) = %d, but %d reads back as %d, %v", s, n, n, m, err)
		}
		if n%1024 == 0 {
			if m, err := parseSize(strconv.Itoa(n/1024) + "KiB"); err != nil || m != n {
				t.Fatalf("parseSize(%q) = %d, but %dKiB reads back as %d, %v", s, n, n/1024, m, err)
			}
		}
	})
}
