package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/mirrord/mirrord/kv"
	"github.com/spf13/cobra"
)

// Main is the program: the command tree over injectable standard streams
// and environment, so that tests run it in process.
type Main struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// Environ returns the environment as "KEY=value" strings, for the
	// variables systemd and the terminal set (RUNTIME_DIRECTORY,
	// NOTIFY_SOCKET, JOURNAL_STREAM...). mirrord's own MIRRORD_ variables
	// are read from the process environment, where viper reads the
	// settings. Default: os.Environ.
	Environ func() []string
	// DefaultConfigPath is read when neither --config nor MIRRORD_CONFIG
	// names a file, if it exists. Default: /etc/mirrord/config.yaml.
	DefaultConfigPath string
	// Exit ends the process at once (a second SIGTERM). Default: os.Exit.
	Exit func(int)
	// BulkMemory is the engine's hook around a bulk load (see
	// mirror.Options.BulkMemory): the process-wide collector settings that
	// main makes and an in-process test does not. Default: none.
	BulkMemory func() (done func())
}

// NewMain returns a Main wired to the process.
func NewMain() *Main {
	return &Main{
		Stdin:             os.Stdin,
		Stdout:            os.Stdout,
		Stderr:            os.Stderr,
		Environ:           os.Environ,
		DefaultConfigPath: "/etc/mirrord/config.yaml",
		Exit:              os.Exit,
	}
}

func (m *Main) exit(code int) {
	if m.Exit == nil {
		os.Exit(code)
	}
	m.Exit(code)
}

func (m *Main) getenv(k string) string {
	v, _ := m.lookupEnv(k)
	return v
}

// lookupEnv finds a variable in Environ, so that an empty value set on
// purpose still counts as set.
func (m *Main) lookupEnv(name string) (string, bool) {
	for _, kv := range m.environ() {
		if k, v, ok := strings.Cut(kv, "="); ok && k == name {
			return v, true
		}
	}
	return "", false
}

func (m *Main) environ() []string {
	if m.Environ == nil {
		return os.Environ()
	}
	return m.Environ()
}

// Run runs the command line args (without the program name).
func (m *Main) Run(ctx context.Context, args []string) error {
	root := m.rootCommand()
	root.SetArgs(args)
	root.SetIn(m.Stdin)
	root.SetOut(m.Stdout)
	root.SetErr(m.Stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err != nil {
		var u usageError
		var s silentError
		// An error raised before the command's body ran is cobra's own
		// verdict on the command line (unknown command, wrong number of
		// arguments): a usage error.
		if !errors.As(err, &u) && !errors.As(err, &s) && cmd != nil && !cmdRan(cmd) {
			return usage(err)
		}
	}
	return withWayOut(err)
}

// withWayOut adds to a corrupt-store error what to do about it: a damaged
// store cannot be repaired in place (nor read by --resync), but everything
// in it can be re-derived from the log.
func withWayOut(err error) error {
	var ke *kv.Error
	if errors.Is(err, kv.ErrCorrupt) && errors.As(err, &ke) {
		return fmt.Errorf("%w; move %s aside (or delete it): mirrord then rebuilds the store from the event log", err, ke.Path)
	}
	return err
}

// ranKey marks, in the command's annotations, that RunE was entered.
const ranKey = "mirrord.ran"

func cmdRan(cmd *cobra.Command) bool { return cmd.Annotations[ranKey] == "yes" }

func (m *Main) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "mirrord",
		Short: "Mirror an append-mostly JSON event log into an embedded key-value store",
		Long: `mirrord keeps an embedded Pebble store identical to an event log
(data.json): exactly once, pushed by file-system events, deletions included.

Every setting is a flag, an environment variable (MIRRORD_ and the name in
capitals, '-' as '_') and a key of the YAML config file (--config, else
$MIRRORD_CONFIG, else /etc/mirrord/config.yaml when it exists). Flags win
over the environment, which wins over the file.`,
		Version:       version(),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usage(err) })
	root.PersistentFlags().String("config", "", "config file (YAML; env MIRRORD_CONFIG; default /etc/mirrord/config.yaml when it exists)")
	addFlags(root.PersistentFlags(), globalKeys()...)
	root.SetVersionTemplate("mirrord {{.Version}}\n")

	root.AddCommand(
		m.versionCommand(),
		m.configCommand(),
		m.runCommand(),
		m.syncCommand(),
		m.verifyCommand(),
		m.statusCommand(),
		m.generatorsCommand(),
		m.getCommand(),
		m.keysCommand(),
		m.dumpCommand(),
	)
	return root
}

// env is what a command's body gets: its configuration and a logger.
type env struct {
	cfg   *Config
	log   *slog.Logger
	level *slog.LevelVar // the logger's level, which a reload may change
	out   io.Writer
	cmd   *cobra.Command
}

// action wraps a command body: it resolves the configuration, checks the
// settings the command requires, and builds the logger.
func (m *Main) action(required []string, body func(ctx context.Context, e *env, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		markRan(cmd)
		cfg, err := m.loadConfig(cmd)
		if err != nil {
			return err
		}
		if err := cfg.require(required...); err != nil {
			return err
		}
		e := &env{cfg: cfg, level: levelVar(cfg.LogLevel), out: cmd.OutOrStdout(), cmd: cmd}
		e.log = newLogger(m.Stderr, cfg.LogFormat, e.level, m.getenv)
		if cfg.File != "" {
			e.log.Debug("read config file", "path", cfg.File)
		}
		for _, w := range cfg.Warnings {
			e.log.Warn(w)
		}
		return body(cmd.Context(), e, args)
	}
}

func markRan(cmd *cobra.Command) {
	if cmd.Annotations == nil {
		cmd.Annotations = map[string]string{}
	}
	cmd.Annotations[ranKey] = "yes"
}
