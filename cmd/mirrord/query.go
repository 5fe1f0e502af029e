package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/mirrord/mirrord/api"
	"github.com/mirrord/mirrord/kv"
	"github.com/spf13/cobra"
)

// openStore opens the store for a query command. A store that does not
// exist is an error rather than a new empty store: a mistyped path must
// not create directories.
func openStore(e *env) (*kv.DB, error) {
	if _, err := os.Stat(e.cfg.Store); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("store %s does not exist (nothing has been mirrored there yet; run \"mirrord sync --once\" to create it)", e.cfg.Store)
	}
	return kv.Open(e.cfg.Store, storeOptions(e))
}

func (m *Main) getCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "get KEY",
		Short: "Print the value stored under KEY",
		Long: `Print the value stored under KEY, as stored (JSON), followed by a newline.
Exit status 1 when the key does not exist.

Example: mirrord get "generated:summary:2025-01"`,
		Args: cobra.ExactArgs(1),
		RunE: m.action([]string{"store"}, func(ctx context.Context, e *env, args []string) error {
			v, found, err := m.readValue(ctx, e, args[0])
			if err != nil {
				return err
			}
			if !found {
				return fmt.Errorf("no key %q in store %s", args[0], e.cfg.Store)
			}
			_, err = fmt.Fprintf(e.out, "%s\n", v)
			return err
		}),
	}
}

// readValue reads one key from the daemon, or from the store itself,
// which it then holds for that read only (not while the value is printed).
func (m *Main) readValue(ctx context.Context, e *env, key string) (v json.RawMessage, found bool, err error) {
	a, err := m.openAccess(ctx, e)
	if err != nil {
		return nil, false, err
	}
	defer a.Close()
	if a.client != nil {
		return a.client.Get(ctx, key)
	}
	found, err = a.db.Get(key, &v)
	return v, found, err
}

func (m *Main) keysCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "keys [PREFIX]",
		Short: "List the keys that start with PREFIX (every key when omitted), sorted",
		Args:  cobra.MaximumNArgs(1),
		RunE: m.action([]string{"store"}, func(ctx context.Context, e *env, args []string) error {
			return m.streamRange(ctx, e, prefixArg(args), false)
		}),
	}
}

func (m *Main) dumpCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "dump [PREFIX]",
		Short: `Print keys and values as JSON lines {"key":…,"value":…}, in key order`,
		Long: `Print every key that starts with PREFIX (every key when omitted) and its
value as one JSON object per line, {"key":"…","value":…}, in key order. The
value is printed as it is stored. The output streams: a large store is not
loaded into memory.`,
		Args: cobra.MaximumNArgs(1),
		RunE: m.action([]string{"store"}, func(ctx context.Context, e *env, args []string) error {
			return m.streamRange(ctx, e, prefixArg(args), true)
		}),
	}
}

func prefixArg(args []string) string {
	if len(args) == 0 {
		return ""
	}
	return args[0]
}

// streamRange prints the keys (or keys and values) under prefix, from the
// daemon when one serves the store, else from the store itself; the output
// is the same, and streams either way (so the store is held while the
// range is printed, and closed before the last of the output is flushed).
func (m *Main) streamRange(ctx context.Context, e *env, prefix string, values bool) error {
	a, err := m.openAccess(ctx, e)
	if err != nil {
		return err
	}
	defer a.Close()
	w := bufio.NewWriterSize(e.out, 64<<10)
	if a.client != nil {
		err = a.client.Stream(ctx, values, prefix, func(line []byte) error {
			if !values { // "key" -> key
				var k string
				if err := json.Unmarshal(line, &k); err != nil {
					return fmt.Errorf("daemon sent %q: %w", line, err)
				}
				line = append([]byte(k), '\n')
			}
			_, err := w.Write(line)
			return err
		})
	} else {
		var line []byte
		err = a.db.Scan(prefix, func(key string, value json.RawMessage) error {
			if values {
				line = api.AppendLine(line[:0], key, value, true)
			} else {
				line = append(append(line[:0], key...), '\n')
			}
			_, err := w.Write(line)
			return err
		})
	}
	if cerr := a.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return w.Flush()
}
