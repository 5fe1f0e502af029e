package main

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/mirrord/mirrord/generators"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

// A setting is one configuration key. Its flag, its environment variable
// (MIRRORD_ plus the key upper-cased with '-' as '_') and its YAML key all
// share its name. Precedence: flag > environment > config file > default.
type setting struct {
	key   string
	def   any // string, time.Duration, int or bool
	usage string
	// global settings are flags of every command; the others are flags of
	// the commands that use them (and valid in the file and environment
	// for all).
	global bool
}

var settings = []setting{
	{key: "eventlog", def: "", usage: "path of the event log (data.json) to mirror", global: true},
	{key: "store", def: "", usage: "directory of the mirror's Pebble store", global: true},
	{key: "log-level", def: "info", usage: "log level: debug, info, warn or error", global: true},
	{key: "log-format", def: "auto", usage: "log format: auto (colours on a terminal, plain under journald), text or json", global: true},
	{key: "settle", def: 300 * time.Millisecond, usage: "how long the log must stay unchanged before a full reconcile reads it"},
	{key: "debounce", def: 5 * time.Millisecond, usage: "shortest time between two applies while following (bursts coalesce)"},
	{key: "safety-check", def: 30 * time.Second, usage: "period of the check for changes inotify missed; 0 turns it off"},
	{key: "max-value-size", def: "16MiB", usage: "largest value of the log; a larger one is skipped as invalid (bytes, or with KiB/MiB/GiB)"},
	{key: "batch-size", def: "4MiB", usage: "event data in one atomic batch while catching up (memory per batch versus batches per second)"},
	{key: "generators", def: generators.Names(), usage: "generators to run, by name (a list; empty for none)"},
	{key: "socket", def: "", usage: "the daemon's unix socket (default: $RUNTIME_DIRECTORY/mirrord.sock under systemd, else {store}.sock beside the store)", global: true},
	{key: "socket-group", def: "", usage: "a group allowed to use the socket (mode 0660); default: the daemon's user only (0600)"},
	{key: "metrics-listen", def: "", usage: "a TCP address (host:port) serving /metrics and /healthz only; default: off"},
	{key: "stall-timeout", def: time.Minute, usage: "/healthz answers 503 once the log has been ahead of an unmoving checkpoint this long"},
	{key: "shutdown-timeout", def: 30 * time.Second, usage: "how long a SIGTERM may take to finish the batch in hand and close the store before mirrord exits anyway"},
}

// daemonKeys are the settings of the daemon alone, flags of run.
var daemonKeys = []string{"socket-group", "metrics-listen", "stall-timeout", "shutdown-timeout"}

// engineKeys are the settings of the mirror engine, flags of run and sync.
var engineKeys = []string{"settle", "debounce", "safety-check", "max-value-size", "batch-size", "generators"}

func lookupSetting(key string) (setting, bool) {
	for _, s := range settings {
		if s.key == key {
			return s, true
		}
	}
	return setting{}, false
}

func envName(key string) string {
	return "MIRRORD_" + strings.ToUpper(strings.ReplaceAll(key, "-", "_"))
}

// addFlags registers the settings named by keys as flags of fs.
func addFlags(fs *pflag.FlagSet, keys ...string) {
	for _, k := range keys {
		s, ok := lookupSetting(k)
		if !ok {
			panic("unknown setting " + k)
		}
		usage := fmt.Sprintf("%s (env %s)", s.usage, envName(s.key))
		switch d := s.def.(type) {
		case string:
			fs.String(s.key, d, usage)
		case time.Duration:
			fs.Duration(s.key, d, usage)
		case int:
			fs.Int(s.key, d, usage)
		case bool:
			fs.Bool(s.key, d, usage)
		case []string:
			fs.StringSlice(s.key, d, usage)
		default:
			panic(fmt.Sprintf("setting %s: unsupported default %T", s.key, d))
		}
	}
}

func globalKeys() []string {
	var ks []string
	for _, s := range settings {
		if s.global {
			ks = append(ks, s.key)
		}
	}
	return ks
}

// Config is the resolved configuration of one command.
type Config struct {
	EventLog  string
	Store     string
	LogLevel  string
	LogFormat string

	Settle       time.Duration
	Debounce     time.Duration
	SafetyCheck  time.Duration // 0: off
	MaxValueSize int
	BatchSize    int
	Generators   []string

	Socket          string
	SocketGroup     string
	MetricsListen   string
	StallTimeout    time.Duration
	ShutdownTimeout time.Duration

	// File is the config file that was read, or "".
	File string
	// Warnings are problems that do not stop the command (an unknown
	// MIRRORD_ variable); they are logged once the logger exists.
	Warnings []string

	v         *viper.Viper
	cmd       *cobra.Command
	lookupEnv func(string) (string, bool)
}

// resolve makes a relative path from the config file relative to the
// file's directory (a service's working directory is "/"); paths from
// flags and the environment stay relative to the working directory.
func (c *Config) resolve(key, path string) string {
	if path == "" || filepath.IsAbs(path) || c.sourceOf(key) != "file" {
		return path
	}
	return filepath.Join(filepath.Dir(c.File), path)
}

// sourceOf says where the effective value of a setting comes from.
func (c *Config) sourceOf(key string) string {
	if f := c.cmd.Flags().Lookup(key); f != nil && f.Changed {
		return "flag --" + key
	}
	if _, ok := c.lookupEnv(envName(key)); ok {
		return "env " + envName(key)
	}
	if c.v.InConfig(key) {
		return "file"
	}
	return "default"
}

// loadConfig resolves the configuration for cmd: defaults, then the config
// file, then the environment, then the flags the user set; then validates.
// Every error names the setting and is a usage error (exit 2).
func (m *Main) loadConfig(cmd *cobra.Command) (*Config, error) {
	v := viper.New()
	for _, s := range settings {
		v.SetDefault(s.key, s.def)
	}

	file, explicit := m.configPath(cmd)
	if file != "" {
		if err := checkConfigFile(file); err != nil {
			if !explicit && errors.Is(err, fs.ErrNotExist) {
				file = ""
			} else {
				return nil, usage(err)
			}
		}
	}
	if file != "" {
		v.SetConfigFile(file)
		v.SetConfigType("yaml")
		if err := v.ReadInConfig(); err != nil {
			return nil, usage(fmt.Errorf("config file %s: %v", file, err))
		}
	}

	// The environment and then the flags the user set are applied as
	// overrides, in that order, so the later wins. (Viper's AutomaticEnv
	// would read os.Getenv directly; this keeps Main's environment
	// injectable for tests.)
	warnings := checkEnvironment(m.environ())
	for _, s := range settings {
		if val, ok := m.lookupEnv(envName(s.key)); ok {
			v.Set(s.key, val)
		}
	}
	for _, s := range settings {
		if f := cmd.Flags().Lookup(s.key); f != nil && f.Changed {
			v.Set(s.key, f.Value.String())
		}
	}

	c := &Config{File: file, Warnings: warnings, v: v, cmd: cmd, lookupEnv: m.lookupEnv}
	var err error
	if c.EventLog, err = getString(v, "eventlog"); err != nil {
		return nil, err
	}
	if c.Store, err = getString(v, "store"); err != nil {
		return nil, err
	}
	c.EventLog, c.Store = c.resolve("eventlog", c.EventLog), c.resolve("store", c.Store)
	if c.LogLevel, err = getChoice(v, "log-level", "debug", "info", "warn", "error"); err != nil {
		return nil, err
	}
	if c.LogFormat, err = getChoice(v, "log-format", "auto", "text", "json"); err != nil {
		return nil, err
	}
	if c.Settle, err = getDuration(v, "settle"); err != nil {
		return nil, err
	}
	if c.Settle == 0 {
		return nil, usage(fmt.Errorf("%s: must be greater than 0 (a reconcile must never read a file caught mid-write)", source(v, "settle")))
	}
	if c.Debounce, err = getDuration(v, "debounce"); err != nil {
		return nil, err
	}
	if c.SafetyCheck, err = getDuration(v, "safety-check"); err != nil {
		return nil, err
	}
	if c.MaxValueSize, err = getSize(v, "max-value-size"); err != nil {
		return nil, err
	}
	if c.BatchSize, err = getSize(v, "batch-size"); err != nil {
		return nil, err
	}
	if c.Generators, err = getList(v, "generators"); err != nil {
		return nil, err
	}
	if err := generators.CheckNames(c.Generators); err != nil {
		return nil, usage(fmt.Errorf("%s: %v", source(v, "generators"), err))
	}
	if c.Socket, err = getString(v, "socket"); err != nil {
		return nil, err
	}
	c.Socket = c.resolve("socket", c.Socket)
	if c.SocketGroup, err = getString(v, "socket-group"); err != nil {
		return nil, err
	}
	if c.MetricsListen, err = getString(v, "metrics-listen"); err != nil {
		return nil, err
	}
	if c.MetricsListen != "" {
		if _, _, err := net.SplitHostPort(c.MetricsListen); err != nil {
			return nil, usage(fmt.Errorf("%s: %q is not host:port", source(v, "metrics-listen"), c.MetricsListen))
		}
	}
	if c.StallTimeout, err = getDuration(v, "stall-timeout"); err != nil {
		return nil, err
	}
	if c.ShutdownTimeout, err = getDuration(v, "shutdown-timeout"); err != nil {
		return nil, err
	}
	if c.StallTimeout == 0 || c.ShutdownTimeout == 0 {
		return nil, usage(fmt.Errorf("stall-timeout and shutdown-timeout must be greater than 0"))
	}
	return c, nil
}

// configPath returns the config file to read and whether the user named
// it: --config, else $MIRRORD_CONFIG, else the default path when it exists.
func (m *Main) configPath(cmd *cobra.Command) (string, bool) {
	if f := cmd.Flags().Lookup("config"); f != nil && f.Changed {
		return f.Value.String(), true
	}
	if p := m.getenv("MIRRORD_CONFIG"); p != "" {
		return p, true
	}
	return m.DefaultConfigPath, false
}

// checkConfigFile reads the file's keys on their own and rejects any that
// is not a setting: a misspelt key must not be silently ignored.
func checkConfigFile(path string) error {
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	fv := viper.New()
	fv.SetConfigFile(path)
	fv.SetConfigType("yaml")
	if err := fv.ReadInConfig(); err != nil {
		return fmt.Errorf("config file %s: %v", path, err)
	}
	for _, k := range fv.AllKeys() {
		if _, ok := lookupSetting(k); !ok {
			return fmt.Errorf("config file %s: unknown setting %q%s", path, k, suggest(k))
		}
	}
	return nil
}

// checkEnvironment reports MIRRORD_ variables that name no setting. They
// are warnings, not errors: other programs called mirrord (MetalBear's,
// for one) use the same prefix, and their variables must not stop the
// daemon. A misspelt key in the config file, which only mirrord reads, is
// an error.
func checkEnvironment(environ []string) []string {
	var warnings []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, "MIRRORD_") || name == "MIRRORD_CONFIG" {
			continue
		}
		known := false
		for _, s := range settings {
			if envName(s.key) == name {
				known = true
				break
			}
		}
		if !known {
			key := strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(name, "MIRRORD_"), "_", "-"))
			warnings = append(warnings, fmt.Sprintf("environment variable %s names no setting of mirrord%s; ignored", name, suggest(key)))
		}
	}
	return warnings
}

// suggest returns ` (did you mean "store"?)` for the nearest setting name.
func suggest(key string) string {
	best, bestD := "", 4
	for _, s := range settings {
		if d := editDistance(key, s.key); d < bestD {
			best, bestD = s.key, d
		}
	}
	if best == "" {
		keys := make([]string, 0, len(settings))
		for _, s := range settings {
			keys = append(keys, s.key)
		}
		sort.Strings(keys)
		return fmt.Sprintf(" (settings: %s)", strings.Join(keys, ", "))
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func source(v *viper.Viper, key string) string {
	if v.InConfig(key) {
		return fmt.Sprintf("setting %q (config file %s)", key, v.ConfigFileUsed())
	}
	return fmt.Sprintf("setting %q (--%s / %s)", key, key, envName(key))
}

func getString(v *viper.Viper, key string) (string, error) {
	switch x := v.Get(key).(type) {
	case string:
		return x, nil
	case nil:
		return "", nil
	default:
		return "", usage(fmt.Errorf("%s: want a string, got %v", source(v, key), x))
	}
}

func getChoice(v *viper.Viper, key string, choices ...string) (string, error) {
	s, err := getString(v, key)
	if err != nil {
		return "", err
	}
	if !slices.Contains(choices, s) {
		return "", usage(fmt.Errorf("%s: %q is not one of %s", source(v, key), s, strings.Join(choices, ", ")))
	}
	return s, nil
}

// getDuration accepts a duration (from a flag) or a string with a unit
// ("300ms", "30s"); a bare number is rejected rather than guessed.
func getDuration(v *viper.Viper, key string) (time.Duration, error) {
	switch x := v.Get(key).(type) {
	case time.Duration: // from a YAML file decoded by a hook, or a test
		if x < 0 {
			return 0, usage(fmt.Errorf("%s: must not be negative", source(v, key)))
		}
		return x, nil
	case string:
		d, err := time.ParseDuration(x)
		if err != nil {
			return 0, usage(fmt.Errorf("%s: %q is not a duration (examples: 300ms, 30s, 0 to disable)", source(v, key), x))
		}
		if d < 0 {
			return 0, usage(fmt.Errorf("%s: must not be negative", source(v, key)))
		}
		return d, nil
	case int:
		if x == 0 {
			return 0, nil
		}
	}
	return 0, usage(fmt.Errorf("%s: %v is not a duration (give a unit: 300ms, 30s)", source(v, key), v.Get(key)))
}

// getList accepts a YAML list, or a comma-separated string (from a flag or
// the environment); an empty string is the empty list.
func getList(v *viper.Viper, key string) ([]string, error) {
	var out []string
	switch x := v.Get(key).(type) {
	case []string:
		out = x
	case []any:
		for _, e := range x {
			s, ok := e.(string)
			if !ok {
				return nil, usage(fmt.Errorf("%s: %v is not a name", source(v, key), e))
			}
			out = append(out, s)
		}
	case string:
		x = strings.Trim(strings.TrimSpace(x), "[]") // pflag's String() of a slice
		for _, s := range strings.Split(x, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
	case nil:
	default:
		return nil, usage(fmt.Errorf("%s: want a list of names, got %v", source(v, key), x))
	}
	if out == nil {
		out = []string{}
	}
	return out, nil
}

// getSize accepts a number of bytes or a number with a unit: KiB, MiB,
// GiB (powers of 1024) or KB, MB, GB (powers of 1000).
func getSize(v *viper.Viper, key string) (int, error) {
	raw := fmt.Sprint(v.Get(key))
	n, err := parseSize(raw)
	if err != nil || n <= 0 {
		return 0, usage(fmt.Errorf("%s: %q is not a size (examples: 16MiB, 1048576)", source(v, key), raw))
	}
	return n, nil
}

func parseSize(s string) (int, error) {
	s = strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   int
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}}
	mult := 1
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.Atoi(s)
	// A negative number is no size, and multiplied it could wrap round
	// to a positive one.
	if err != nil || n < 0 || n > (1<<31)/mult {
		return 0, fmt.Errorf("not a size")
	}
	return n * mult, nil
}

// require checks that every setting named is set.
func (c *Config) require(keys ...string) error {
	for _, k := range keys {
		var val string
		switch k {
		case "eventlog":
			val = c.EventLog
		case "store":
			val = c.Store
		}
		if val == "" {
			return usage(fmt.Errorf("missing required setting %q: give --%s, set %s, or put %q in the config file", k, k, envName(k), k+": ..."))
		}
	}
	return nil
}
