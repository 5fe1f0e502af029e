package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/mirrord/mirrord/api"
	"github.com/mirrord/mirrord/generators"
	"github.com/mirrord/mirrord/internal/gitlog"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
	"golang.org/x/sys/unix"
)

// A setting is one configuration key. Its flag, its environment variable
// (MIRRORD_ plus the key upper-cased with '-' as '_') and its YAML key all
// share its name. Precedence: flag > environment > config file > default.
type setting struct {
	key   string
	def   any // string, time.Duration, int, bool or []string
	usage string
	// global settings are flags of every command; the others are flags of
	// the commands that use them (and valid in the file and environment
	// for all).
	global bool
	// choices are the values a string setting may take.
	choices []string
	// bounds is the range of a duration setting.
	bounds *bounds
}

// bounds is the range a duration setting must lie in, and why.
type bounds struct {
	min, max time.Duration
	off      bool   // 0 is allowed too, and turns the feature off
	why      string // the reason for the range, in the usage and the error
}

func (b *bounds) String() string {
	s := fmtDuration(b.min) + " to " + fmtDuration(b.max)
	if b.off {
		s += " (0 turns it off)"
	}
	return s + ": " + b.why
}

var settings = []setting{
	{key: "eventlog", def: "", usage: "path of the event log (data.json) to mirror", global: true},
	{key: "git-ref", def: "", global: true,
		usage: "mirror eventlog as committed at this ref (a branch: master) of the git repository that holds it, not the work tree's file; empty: the file itself"},
	{key: "store", def: "", usage: "directory of the mirror's Pebble store", global: true},
	{key: "log-level", def: "info", usage: "log level: debug, info, warn or error", global: true,
		choices: []string{"debug", "info", "warn", "error"}},
	{key: "log-format", def: "auto", usage: "log format: auto (colours on a terminal, plain under journald), text or json", global: true,
		choices: []string{"auto", "text", "json"}},
	{key: "settle", def: 300 * time.Millisecond, usage: "how long the log must stay unchanged before a full reconcile reads it",
		bounds: &bounds{min: time.Millisecond, max: 30 * time.Second,
			why: "a reconcile must never read a file caught mid-write, and a rewrite waits this long to be mirrored"}},
	{key: "debounce", def: 5 * time.Millisecond, usage: "shortest time between two applies while following (bursts coalesce)",
		bounds: &bounds{min: time.Millisecond, max: time.Second,
			why: "every apply while following may wait this long; a burst of writes coalesces well within a second"}},
	{key: "safety-check", def: 30 * time.Second, usage: "period of the check for changes inotify missed",
		bounds: &bounds{min: time.Second, max: 24 * time.Hour, off: true,
			why: "each check stats and fingerprints the log: more often is a busy loop, rarer is as good as off"}},
	{key: "max-value-size", def: "16MiB", usage: "largest value of the log; a larger one is skipped as invalid (bytes, or with KiB/MiB/GiB)"},
	{key: "batch-size", def: "4MiB", usage: "event data in one atomic batch while catching up (memory per batch versus batches per second)"},
	{key: "generators", def: generators.Names(), usage: "generators to run, by name (a list; empty for none)"},
	{key: "socket", def: "", global: true,
		usage: fmt.Sprintf("the daemon's unix socket, at most %d bytes (default: $RUNTIME_DIRECTORY/mirrord.sock under systemd, else {store}.sock beside the store)", sunPathMax)},
	{key: "socket-group", def: "", usage: "a group allowed to use the socket (mode 0660); default: the daemon's user only (0600)"},
	{key: "metrics-listen", def: "", usage: "a TCP address (host:port) serving /metrics and /healthz only; default: off"},
	{key: "stall-timeout", def: time.Minute, usage: "/healthz answers 503 once the log has been ahead of an unmoving checkpoint this long; more than settle",
		bounds: &bounds{min: 100 * time.Millisecond, max: 24 * time.Hour,
			why: "shorter reports every busy moment as a stall; a stall unnoticed for a day is no alarm"}},
	{key: "shutdown-timeout", def: 30 * time.Second, usage: "how long a SIGTERM (or a fatal error) may take to finish the batch in hand and close the store before mirrord exits anyway; also how long a starting daemon waits for a store another process holds",
		bounds: &bounds{min: time.Second, max: 10 * time.Minute,
			why: "closing the store takes a moment; a stop that takes longer is stuck, and systemd's TimeoutStopSec must exceed it"}},
}

// sunPathMax is the longest path of a unix socket: sun_path less its
// terminating NUL (107 bytes on Linux).
const sunPathMax = len(unix.RawSockaddrUnix{}.Path) - 1

// maxConfigSize bounds the config file, which is read whole.
const maxConfigSize = 1 << 20

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
		usage := s.usage
		if s.bounds != nil {
			usage += " (" + s.bounds.String() + ")"
		}
		usage += " (env " + envName(s.key) + ")"
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

// Config is the resolved configuration of one command. Each setting's
// field is tagged with its key: the decode fills it, and fieldOf finds it.
type Config struct {
	EventLog  string `mapstructure:"eventlog"`
	GitRef    string `mapstructure:"git-ref"`
	Store     string `mapstructure:"store"`
	LogLevel  string `mapstructure:"log-level"`
	LogFormat string `mapstructure:"log-format"`

	Settle       time.Duration `mapstructure:"settle"`
	Debounce     time.Duration `mapstructure:"debounce"`
	SafetyCheck  time.Duration `mapstructure:"safety-check"` // 0: off
	MaxValueSize int           `mapstructure:"max-value-size"`
	BatchSize    int           `mapstructure:"batch-size"`
	Generators   []string      `mapstructure:"generators"`

	Socket          string        `mapstructure:"socket"`
	SocketGroup     string        `mapstructure:"socket-group"`
	MetricsListen   string        `mapstructure:"metrics-listen"`
	StallTimeout    time.Duration `mapstructure:"stall-timeout"`
	ShutdownTimeout time.Duration `mapstructure:"shutdown-timeout"`

	// File is the config file that was read, or "".
	File string `mapstructure:"-"`
	// Warnings are problems that do not stop the command (an unknown
	// MIRRORD_ variable); they are logged once the logger exists.
	Warnings []string `mapstructure:"-"`

	v   *viper.Viper
	cmd *cobra.Command
}

// fieldOf returns a pointer to the field that holds the setting key.
func (c *Config) fieldOf(key string) any {
	rv := reflect.ValueOf(c).Elem()
	for i := range rv.NumField() {
		if rv.Type().Field(i).Tag.Get("mapstructure") == key {
			return rv.Field(i).Addr().Interface()
		}
	}
	panic("no Config field for setting " + key)
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

// sourceOf says where the effective value of a setting comes from, in
// viper's order of precedence.
func (c *Config) sourceOf(key string) string {
	if f := c.cmd.Flags().Lookup(key); f != nil && f.Changed {
		return "flag --" + key
	}
	if _, ok := os.LookupEnv(envName(key)); ok {
		return "env " + envName(key)
	}
	if c.v.InConfig(key) {
		return "file"
	}
	return "default"
}

// describe names a setting and where its value comes from, for an error.
func (c *Config) describe(key string) string {
	src := c.sourceOf(key)
	if src == "file" {
		src = "config file " + c.File
	}
	return fmt.Sprintf("setting %q (%s)", key, src)
}

// loadConfig resolves the configuration for cmd through viper: the
// defaults, the config file, the environment (MIRRORD_*) and the flags
// the command has, each bound in viper's order of precedence; then a
// strict decode into Config, and the checks of each value. Every error
// names the setting and where its value came from, and is a usage error
// (exit 2).
//
// Viper reads the environment of the process (it has no injectable
// lookup); so do the config file's path ($MIRRORD_CONFIG) and the check
// of unknown variables, so that all MIRRORD_ variables come from one
// place.
func (m *Main) loadConfig(cmd *cobra.Command) (*Config, error) {
	v := viper.New()
	for _, s := range settings {
		v.SetDefault(s.key, s.def)
		// Only the settings' flags: the command's other flags (--once,
		// --json, --config) are not settings, and the decode would
		// reject them as unknown keys.
		if f := cmd.Flags().Lookup(s.key); f != nil {
			if err := v.BindPFlag(s.key, f); err != nil {
				return nil, err
			}
		}
	}
	v.SetEnvPrefix("MIRRORD")
	v.SetEnvKeyReplacer(strings.NewReplacer("-", "_"))
	v.AllowEmptyEnv(true) // MIRRORD_GENERATORS= is the empty list
	v.AutomaticEnv()

	file, err := m.readConfig(cmd, v)
	if err != nil {
		return nil, usage(err)
	}
	c := &Config{File: file, Warnings: checkEnvironment(os.Environ()), v: v, cmd: cmd}
	if err := c.decode(); err != nil {
		return nil, usage(err)
	}
	if err := c.check(); err != nil {
		return nil, usage(err)
	}
	c.EventLog, c.Store, c.Socket = c.resolve("eventlog", c.EventLog), c.resolve("store", c.Store), c.resolve("socket", c.Socket)
	if err := c.checkSocket(m.getenv("RUNTIME_DIRECTORY")); err != nil {
		return nil, usage(err)
	}
	return c, nil
}

// readConfig reads the config file, if any, into v, and returns its path.
// A key that names no setting is an error: a misspelt key must not be
// silently ignored. (The decode would reject it too, but only this check
// can name it with a suggestion.)
func (m *Main) readConfig(cmd *cobra.Command, v *viper.Viper) (string, error) {
	file, explicit := m.configPath(cmd)
	if file == "" {
		return "", nil
	}
	b, err := readConfigFile(file)
	if !explicit && errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	// The file's keys are checked on their own: in v, a key nested under
	// a setting ("store: {path: x}") hides behind the setting's flag.
	fv := viper.New()
	for _, into := range []*viper.Viper{fv, v} {
		into.SetConfigType("yaml")
		if err := into.ReadConfig(bytes.NewReader(b)); err != nil {
			return "", fmt.Errorf("config file %s: %v", file, err)
		}
	}
	keys := fv.AllKeys()
	sort.Strings(keys)
	for _, k := range keys {
		if _, ok := lookupSetting(k); !ok {
			return "", fmt.Errorf("config file %s: unknown setting %q%s", file, k, suggest(k))
		}
	}
	return file, nil
}

// readConfigFile reads a config file through one open: a regular file of
// at most maxConfigSize bytes. A device would be read without end and a
// FIFO would block the command, so anything else is refused after an
// open that cannot block (O_NONBLOCK) and an fstat of what was opened.
func readConfigFile(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("config file %s: %s, not a regular file", path, fileType(fi.Mode()))
	}
	// The limit holds for what is read, not only for what fstat saw: the
	// file may grow in between.
	b, err := io.ReadAll(io.LimitReader(f, maxConfigSize+1))
	if err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	if len(b) > maxConfigSize {
		return nil, fmt.Errorf("config file %s: larger than 1 MiB, the most a config file may hold", path)
	}
	return b, nil
}

// fileType names the type of a file that is not a regular file.
func fileType(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	}
	return "a special file"
}

// decode fills c from v, strictly: a key that is no setting, or a value of
// the wrong type for its setting, is an error naming the setting and its
// source. The hooks read each type as it may be written.
func (c *Config) decode() error {
	err := c.v.UnmarshalExact(c, func(dc *mapstructure.DecoderConfig) {
		dc.WeaklyTypedInput = false
		dc.DecodeHook = mapstructure.ComposeDecodeHookFunc(durationHook, sizeHook, listHook, stringHook)
	})
	if err != nil {
		// The first error is the one reported: an error is one line.
		var de *mapstructure.DecodeError
		if errors.As(err, &de) {
			key, _, _ := strings.Cut(de.Name(), "[")
			return fmt.Errorf("%s: %v", c.describe(key), de.Unwrap())
		}
		return fmt.Errorf("configuration: %v", strings.ReplaceAll(err.Error(), "\n", " "))
	}
	if c.Generators == nil {
		c.Generators = []string{} // nil would mean every generator
	}
	return nil
}

var (
	durationType = reflect.TypeFor[time.Duration]()
	sizeType     = reflect.TypeFor[int]() // every int setting is a size
	listType     = reflect.TypeFor[[]string]()
	stringType   = reflect.TypeFor[string]()
)

// durationHook reads a duration: a time.Duration (a default), or a string
// with a unit ("300ms", "30s"; from a flag, the environment or the file).
// A bare number is rejected rather than guessed, but for 0.
func durationHook(_, to reflect.Type, data any) (any, error) {
	if to != durationType {
		return data, nil
	}
	switch x := data.(type) {
	case time.Duration:
		return x, nil
	case string:
		if f, err := strconv.ParseFloat(strings.TrimSpace(x), 64); err == nil && f != 0 {
			return nil, fmt.Errorf("%q is not a duration (give a unit: 300ms, 30s)", x)
		}
		d, err := time.ParseDuration(strings.TrimSpace(x))
		if err != nil {
			return nil, fmt.Errorf("%q is not a duration (examples: 300ms, 30s)", x)
		}
		return d, nil
	case int, int64, uint64, float64:
		if reflect.ValueOf(x).IsZero() {
			return time.Duration(0), nil
		}
		return nil, fmt.Errorf("%v is not a duration (give a unit: 300ms, 30s)", x)
	}
	return nil, fmt.Errorf("%v is not a duration (examples: 300ms, 30s)", data)
}

// sizeHook reads a size: a positive number of bytes, or a string that
// parseSize reads ("16MiB", "1048576").
func sizeHook(_, to reflect.Type, data any) (any, error) {
	if to != sizeType {
		return data, nil
	}
	raw := fmt.Sprint(data)
	switch data.(type) {
	case string, int, int64, uint64:
		if n, err := parseSize(raw); err == nil && n > 0 {
			return n, nil
		}
	}
	return nil, fmt.Errorf("%q is not a size (examples: 16MiB, 1048576)", raw)
}

// listHook reads a list of names: a YAML list of strings, or a
// comma-separated string (from a flag or the environment); an empty
// string is the empty list.
func listHook(_, to reflect.Type, data any) (any, error) {
	if to != listType {
		return data, nil
	}
	switch x := data.(type) {
	case []string:
		return x, nil
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("%v is not a name", e)
			}
			out = append(out, s)
		}
		return out, nil
	case string:
		out := []string{}
		for _, s := range strings.Split(strings.Trim(strings.TrimSpace(x), "[]"), ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("want a list of names, got %v", data)
}

// stringHook accepts only a string where a string is wanted: a number or
// a list given for a path or a name is a mistake, not something to
// convert.
func stringHook(_, to reflect.Type, data any) (any, error) {
	if to != stringType {
		return data, nil
	}
	if _, ok := data.(string); !ok {
		return nil, fmt.Errorf("want a string, got %v", data)
	}
	return data, nil
}

// check checks each decoded value against its setting's choices and
// bounds, and the settings that depend on one another.
func (c *Config) check() error {
	for _, s := range settings {
		switch p := c.fieldOf(s.key).(type) {
		case *string:
			if s.choices != nil && !slices.Contains(s.choices, *p) {
				return fmt.Errorf("%s: %q is not one of %s", c.describe(s.key), *p, strings.Join(s.choices, ", "))
			}
		case *time.Duration:
			if b := s.bounds; b != nil && !(b.off && *p == 0) && (*p < b.min || *p > b.max) {
				return fmt.Errorf("%s: %s is outside %s", c.describe(s.key), fmtDuration(*p), b)
			}
		}
	}
	if c.GitRef != "" {
		if _, err := gitlog.RefName(c.GitRef); err != nil {
			return fmt.Errorf("%s: %v", c.describe("git-ref"), err)
		}
	}
	if err := generators.CheckNames(c.Generators); err != nil {
		return fmt.Errorf("%s: %v", c.describe("generators"), err)
	}
	if c.MetricsListen != "" {
		if _, _, err := net.SplitHostPort(c.MetricsListen); err != nil {
			return fmt.Errorf("%s: %q is not host:port", c.describe("metrics-listen"), c.MetricsListen)
		}
	}
	if c.StallTimeout <= c.Settle {
		return fmt.Errorf("%s: %s is not more than settle (%s): a log is only reconciled once it has been unchanged for settle, and a shorter stall-timeout calls the wait a stall",
			c.describe("stall-timeout"), fmtDuration(c.StallTimeout), fmtDuration(c.Settle))
	}
	return nil
}

// checkSocket refuses a socket path the kernel cannot bind: set, for every
// command; derived from the store, for the commands that run the daemon
// (they have its flags), which would otherwise listen where no client
// reaches, and fail at every restart after a SIGKILL. A query command only
// tries the default socket, and opens the store when none answers.
func (c *Config) checkSocket(runtimeDir string) error {
	if n := len(c.Socket); n > sunPathMax {
		return fmt.Errorf("%s: %s is %d bytes; a unix socket's path holds at most %d", c.describe("socket"), c.Socket, n, sunPathMax)
	}
	if c.Socket != "" || c.Store == "" || c.cmd.Flags().Lookup("shutdown-timeout") == nil {
		return nil
	}
	path := api.DefaultPath(runtimeDir, c.Store)
	if n := len(path); n > sunPathMax {
		beside := "beside " + c.describe("store")
		if runtimeDir != "" {
			beside = "in $RUNTIME_DIRECTORY"
		}
		return fmt.Errorf("setting \"socket\" (default, %s): %s is %d bytes; a unix socket's path holds at most %d: set \"socket\" to a shorter path",
			beside, path, n, sunPathMax)
	}
	return nil
}

// configPath returns the config file to read and whether the user named
// it: --config, else $MIRRORD_CONFIG, else the default path when it exists.
func (m *Main) configPath(cmd *cobra.Command) (string, bool) {
	if f := cmd.Flags().Lookup("config"); f != nil && f.Changed {
		return f.Value.String(), true
	}
	if p := os.Getenv("MIRRORD_CONFIG"); p != "" {
		return p, true
	}
	return m.DefaultConfigPath, false
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

// parseSize reads a number of bytes or a number with a unit: KiB, MiB,
// GiB (powers of 1024) or KB, MB, GB (powers of 1000); from 0 to 2 GiB.
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

// fmtSize writes a size as parseSize reads it: in the largest binary unit
// that divides it, else in bytes.
func fmtSize(n int) string {
	for _, u := range []struct {
		suffix string
		mult   int
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n != 0 && n%u.mult == 0 {
			return strconv.Itoa(n/u.mult) + u.suffix
		}
	}
	return strconv.Itoa(n)
}

// fmtDuration writes a duration without time.Duration's trailing zero
// units: 1m, not 1m0s; 24h, not 24h0m0s.
func fmtDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
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
