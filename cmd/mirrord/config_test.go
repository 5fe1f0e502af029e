package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
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

// config.example.yaml documents every setting and the range of each
// bounded one, and mirrord accepts it.
func TestExampleConfigListsEverySetting(t *testing.T) {
	b, err := os.ReadFile("../../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range settings {
		if !strings.Contains(string(b), "\n"+s.key+":") {
			t.Errorf("config.example.yaml does not document %q", s.key)
		}
		if bd := s.bounds; bd != nil && !strings.Contains(strings.Join(strings.Fields(string(b)), " "), fmtDuration(bd.min)+" to "+fmtDuration(bd.max)) {
			t.Errorf("config.example.yaml does not give the range of %q, %s to %s", s.key, fmtDuration(bd.min), fmtDuration(bd.max))
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

// A value of every setting, given as a flag, an environment variable or a
// YAML value of the config file: accepted with the effective value that
// "mirrord config" prints and the source it names, or rejected (exit 2)
// with one line naming the setting, where its value came from and why.
func TestSettingValues(t *testing.T) {
	dir := t.TempDir()
	long := "/" + strings.Repeat("s", 107) // 108 bytes: one more than sun_path holds
	for _, tc := range []struct {
		key, value string
		want       string // the effective value, when accepted
		err        string // part of the error, when rejected
		flagErr    string // part of the error when the flag's own parser rejects the value first
		from       string // "file": a YAML type no flag or variable carries; "flag,env": not the file
	}{
		{key: "eventlog", value: "/var/lib/data.json", want: "/var/lib/data.json"},
		{key: "eventlog", value: "[a, b]", err: "want a string", from: "file"},
		{key: "git-ref", value: "master", want: "master"},
		{key: "git-ref", value: "refs/heads/main", want: "refs/heads/main"},
		{key: "git-ref", value: "HEAD", want: "HEAD"},
		{key: "git-ref", value: "bad..name", err: `ref "bad..name": has ".." or "@{"`},
		{key: "git-ref", value: "master.lock", err: `ref "master.lock": has a component ending with ".lock"`},
		{key: "git-ref", value: "[master]", err: "want a string", from: "file"},
		{key: "store", value: "/var/lib/mirrord", want: "/var/lib/mirrord"},
		{key: "store", value: "true", err: "want a string", from: "file"},
		{key: "log-level", value: "debug", want: "debug"},
		{key: "log-level", value: "loud", err: `"loud" is not one of debug, info, warn, error`},
		{key: "log-level", value: "[1, 2]", err: "want a string", from: "file"},
		{key: "log-format", value: "json", want: "json"},
		{key: "log-format", value: "xml", err: `"xml" is not one of auto, text, json`},
		{key: "log-format", value: "1", err: "want a string, got 1", from: "file"},
		{key: "settle", value: "50ms", want: "50ms"},
		{key: "settle", value: "30s", want: "30s"},
		{key: "settle", value: "0", err: "0s is outside 1ms to 30s"},
		{key: "settle", value: "-1s", err: "-1s is outside 1ms to 30s"},
		{key: "settle", value: "1m", err: "1m is outside 1ms to 30s"},
		{key: "settle", value: "5", err: "give a unit", flagErr: "missing unit"},
		{key: "settle", value: "soon", err: `"soon" is not a duration`, flagErr: "invalid argument"},
		{key: "settle", value: "0.5", err: "give a unit", from: "file"},
		{key: "settle", value: "[1s]", err: "is not a duration", from: "file"},
		{key: "debounce", value: "10ms", want: "10ms"},
		{key: "debounce", value: "1000h", err: "1000h is outside 1ms to 1s"},
		{key: "debounce", value: "0", err: "0s is outside 1ms to 1s"},
		{key: "debounce", value: "true", err: "true is not a duration", from: "file"},
		{key: "safety-check", value: "0", want: "0s"},
		{key: "safety-check", value: "5m", want: "5m"},
		{key: "safety-check", value: "10ms", err: "10ms is outside 1s to 24h"},
		{key: "safety-check", value: "48h", err: "48h is outside 1s to 24h"},
		{key: "safety-check", value: "[30s]", err: "is not a duration", from: "file"},
		{key: "max-value-size", value: "1MiB", want: "1MiB"},
		{key: "max-value-size", value: "1048576", want: "1MiB"},
		{key: "max-value-size", value: "2KB", want: "2000"},
		{key: "max-value-size", value: "0", err: `"0" is not a size`},
		{key: "max-value-size", value: "3GiB", err: `"3GiB" is not a size`},
		{key: "max-value-size", value: "1.5", err: `"1.5" is not a size`},
		{key: "max-value-size", value: "lots", err: `"lots" is not a size`},
		{key: "max-value-size", value: "-9000000000000000GiB", err: `"-9000000000000000GiB" is not a size`},
		{key: "max-value-size", value: "[1]", err: "is not a size", from: "file"},
		{key: "batch-size", value: "64KiB", want: "64KiB"},
		{key: "batch-size", value: "-4MiB", err: `"-4MiB" is not a size`},
		{key: "batch-size", value: "false", err: `"false" is not a size`, from: "file"},
		{key: "generators", value: "summary", want: "summary"},
		{key: "generators", value: "summary,hashtags", want: "summary,hashtags"},
		{key: "generators", value: "", want: `""`, from: "flag,env"},
		{key: "generators", value: "[]", want: `""`, from: "file"},
		{key: "generators", value: "[hashtags, summary]", want: "hashtags,summary", from: "file"},
		{key: "generators", value: "nope", err: `unknown generator "nope"`},
		{key: "generators", value: "[summary, 1]", err: "1 is not a name", from: "file"},
		{key: "generators", value: "5", err: "want a list of names, got 5", from: "file"},
		{key: "socket", value: "/run/mirrord/m.sock", want: "/run/mirrord/m.sock"},
		{key: "socket", value: long, err: "108 bytes; a unix socket's path holds at most 107"},
		{key: "socket", value: "[a, b]", err: "want a string", from: "file"},
		{key: "socket-group", value: "wheel", want: "wheel"},
		{key: "socket-group", value: "[wheel]", err: "want a string", from: "file"},
		{key: "metrics-listen", value: "127.0.0.1:9476", want: "127.0.0.1:9476"},
		{key: "metrics-listen", value: "localhost", err: `"localhost" is not host:port`},
		{key: "metrics-listen", value: "9476", err: "want a string, got 9476", from: "file"},
		{key: "stall-timeout", value: "5m", want: "5m"},
		{key: "stall-timeout", value: "0", err: "0s is outside 100ms to 24h"},
		{key: "stall-timeout", value: "48h", err: "48h is outside 100ms to 24h"},
		{key: "stall-timeout", value: "true", err: "true is not a duration", from: "file"},
		{key: "shutdown-timeout", value: "1m", want: "1m"},
		{key: "shutdown-timeout", value: "100ms", err: "100ms is outside 1s to 10m"},
		{key: "shutdown-timeout", value: "1h", err: "1h is outside 1s to 10m"},
		{key: "shutdown-timeout", value: "60", err: "60 is not a duration (give a unit", from: "file"},
	} {
		for _, from := range []string{"flag", "env", "file"} {
			if tc.from != "" && !strings.Contains(tc.from, from) {
				continue
			}
			t.Run(tc.key+"="+tc.value+"/"+from, func(t *testing.T) {
				env := map[string]string{}
				args := []string{"config"}
				var source string
				switch from {
				case "flag":
					args = append(args, "--"+tc.key, tc.value)
					source = "flag --" + tc.key
				case "env":
					env[envName(tc.key)] = tc.value
					source = "env " + envName(tc.key)
				case "file":
					file := writeFile(t, filepath.Join(dir, "c.yaml"), tc.key+": "+tc.value+"\n")
					args = append(args, "--config", file)
					source = "config file " + file
				}
				r := mirrord(t, env, args...)
				if tc.err == "" {
					v, src := configValue(t, r, tc.key)
					if src == "file" {
						src = "config file " + filepath.Join(dir, "c.yaml")
					}
					if v != tc.want || src != source {
						t.Fatalf("%s from %s; want %s from %s", v, src, tc.want, source)
					}
					return
				}
				want := []string{`setting "` + tc.key + `" (` + source + `)`, tc.err}
				if from == "flag" && tc.flagErr != "" {
					want = []string{"--" + tc.key, tc.flagErr}
				}
				for _, w := range want {
					if r.code != 2 || !strings.Contains(r.msg(), w) || strings.Contains(r.msg(), "\n") {
						t.Fatalf("exit %d, error %q; want exit 2 and one line with %q", r.code, r.msg(), w)
					}
				}
			})
		}
	}
}

// stall-timeout must exceed settle: a log left unchanged for less than
// settle is not yet reconciled, so a shorter stall-timeout reports a
// healthy daemon as stalled.
func TestStallTimeoutExceedsSettle(t *testing.T) {
	r := mirrord(t, nil, "config", "--settle", "2s", "--stall-timeout", "1s")
	if r.code != 2 || !strings.Contains(r.msg(), `setting "stall-timeout" (flag --stall-timeout): 1s is not more than settle (2s`) {
		t.Fatalf("exit %d, error %q", r.code, r.msg())
	}
	if r := mirrord(t, nil, "config", "--settle", "2s", "--stall-timeout", "3s"); r.code != 0 {
		t.Fatalf("exit %d, error %q", r.code, r.msg())
	}
}

// The default socket, {store}.sock, is checked against sun_path's limit
// where a daemon would listen on it (run, and config, which shows what run
// would use): a store path a few bytes too long would otherwise give a
// daemon whose socket no client reaches, and that cannot restart after a
// SIGKILL. A query command, which only tries the socket, still runs.
func TestDefaultSocketFitsSunPath(t *testing.T) {
	dir := t.TempDir()
	store := filepath.Join(dir, strings.Repeat("d", 103-len(dir))) // {store}.sock: 109 bytes
	log := writeFile(t, filepath.Join(dir, "data.json"), "")
	for _, cmd := range []string{"run", "config"} {
		r := mirrord(t, nil, cmd, "--eventlog", log, "--store", store)
		if r.code != 2 || !strings.Contains(r.msg(), `setting "socket" (default, beside setting "store" (flag --store)): `+store+".sock is 109 bytes") ||
			!strings.Contains(r.msg(), "at most 107") {
			t.Fatalf("%s: exit %d, error %q", cmd, r.code, r.msg())
		}
	}
	if _, err := os.Stat(store); !os.IsNotExist(err) {
		t.Fatalf("run created the store before refusing its socket: %v", err)
	}
	// A socket set apart from the store makes the store path fine.
	if r := mirrord(t, nil, "config", "--store", store, "--socket", filepath.Join(dir, "m.sock")); r.code != 0 {
		t.Fatalf("exit %d, error %q", r.code, r.msg())
	}
	r := mirrord(t, nil, "keys", "--store", store)
	if r.code != 1 || !strings.Contains(r.msg(), "does not exist") {
		t.Fatalf("keys: exit %d, error %q; want the absent store, not the socket", r.code, r.msg())
	}
	// Under systemd the default is in $RUNTIME_DIRECTORY, checked alike.
	runtimeDir := filepath.Join(dir, strings.Repeat("r", 107-len(dir)-len("/mirrord.sock")))
	r = mirrord(t, map[string]string{"RUNTIME_DIRECTORY": runtimeDir}, "config", "--store", filepath.Join(dir, "s"))
	if r.code != 2 || !strings.Contains(r.msg(), `setting "socket" (default, in $RUNTIME_DIRECTORY): `+runtimeDir+"/mirrord.sock is 108 bytes") {
		t.Fatalf("RUNTIME_DIRECTORY: exit %d, error %q", r.code, r.msg())
	}
}

// The config file is read through one open of a regular file of at most
// 1 MiB: a device would be read without end (--config /dev/zero grew to
// gigabytes) and a FIFO would hang the command, so each is refused with
// its path and its type, at once.
func TestConfigFileMustBeASmallRegularFile(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.yaml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	big := writeFile(t, filepath.Join(dir, "big.yaml"), "store: /x\n#"+strings.Repeat("x", 1<<20)+"\n")
	full := "store: /x\n"
	full += "#" + strings.Repeat("x", 1<<20-len(full)-2) + "\n"
	exact := writeFile(t, filepath.Join(dir, "exact.yaml"), full)
	for _, tc := range []struct{ name, path, msg string }{
		{"device", "/dev/zero", "config file /dev/zero: a character device, not a regular file"},
		{"fifo", fifo, "config file " + fifo + ": a FIFO, not a regular file"},
		{"directory", dir, "config file " + dir + ": a directory, not a regular file"},
		{"over 1 MiB", big, "config file " + big + ": larger than 1 MiB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := mirrordWithin(t, 10*time.Second, "config", "--config", tc.path)
			if r.code != 2 || !strings.Contains(r.msg(), tc.msg) {
				t.Fatalf("exit %d, error %q; want 2 and %q", r.code, r.msg(), tc.msg)
			}
		})
	}
	if v, _ := configValue(t, mirrordWithin(t, 10*time.Second, "config", "--config", exact), "store"); v != "/x" {
		t.Fatalf("a config file of exactly 1 MiB: store %s", v)
	}
}

// mirrordWithin runs a command line in process and fails the test if it
// has not returned within d (a read that blocks ignores the context).
func mirrordWithin(t *testing.T, d time.Duration, args ...string) result {
	t.Helper()
	done := make(chan result, 1)
	go func() { done <- mirrord(t, nil, args...) }()
	select {
	case r := <-done:
		return r
	case <-time.After(d):
		t.Fatalf("mirrord %s still running after %v", strings.Join(args, " "), d)
		return result{}
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

// Precedence holds for every kind of setting, not only for strings:
// flag > environment > file > default.
func TestPrecedenceOfEachKind(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ key, file, env, flag, def string }{
		{"settle", "1s", "2s", "3s", "300ms"},
		{"batch-size", "1MiB", "2MiB", "3MiB", "4MiB"},
		{"generators", "[summary]", "hashtags", "summary,hashtags", "hashtags,summary"},
		{"log-level", "warn", "error", "debug", "info"},
	} {
		t.Run(tc.key, func(t *testing.T) {
			file := writeFile(t, filepath.Join(dir, "c.yaml"), tc.key+": "+tc.file+"\n")
			env := map[string]string{envName(tc.key): tc.env}
			for _, step := range []struct {
				env   map[string]string
				args  []string
				value string
				src   string
			}{
				{nil, nil, tc.def, "default"},
				{nil, []string{"--config", file}, strings.Trim(tc.file, "[]"), "file"},
				{env, []string{"--config", file}, tc.env, "env " + envName(tc.key)},
				{env, []string{"--config", file, "--" + tc.key, tc.flag}, tc.flag, "flag --" + tc.key},
			} {
				v, src := configValue(t, mirrord(t, step.env, append([]string{"config"}, step.args...)...), tc.key)
				if v != step.value || src != step.src {
					t.Fatalf("%v %v: %s from %s; want %s from %s", step.env, step.args, v, src, step.value, step.src)
				}
			}
		})
	}
}
