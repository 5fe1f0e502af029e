package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"

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
	return kv.Open(e.cfg.Store, &kv.Options{Logger: e.log})
}

func (m *Main) getCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "get KEY",
		Short: "Print the value stored under KEY",
		Long: `Print the value stored under KEY, as stored (JSON), followed by a newline.
Exit status 1 when the key does not exist.

Example: mirrord get "generated:summary:2025-01"`,
		Args: cobra.ExactArgs(1),
		RunE: m.action([]string{"store"}, func(_ context.Context, e *env, args []string) error {
			db, err := openStore(e)
			if err != nil {
				return err
			}
			defer db.Close()
			var v json.RawMessage
			found, err := db.Get(args[0], &v)
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

func (m *Main) keysCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "keys [PREFIX]",
		Short: "List the keys that start with PREFIX (every key when omitted), sorted",
		Args:  cobra.MaximumNArgs(1),
		RunE: m.action([]string{"store"}, func(_ context.Context, e *env, args []string) error {
			db, err := openStore(e)
			if err != nil {
				return err
			}
			defer db.Close()
			w := bufio.NewWriter(e.out)
			err = db.Scan(prefixArg(args), func(key string, _ json.RawMessage) error {
				_, err := fmt.Fprintln(w, key)
				return err
			})
			if err != nil {
				return err
			}
			return w.Flush()
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
		RunE: m.action([]string{"store"}, func(_ context.Context, e *env, args []string) error {
			db, err := openStore(e)
			if err != nil {
				return err
			}
			defer db.Close()
			w := bufio.NewWriter(e.out)
			var line []byte
			err = db.Scan(prefixArg(args), func(key string, value json.RawMessage) error {
				line = appendDumpLine(line[:0], key, value)
				_, err := w.Write(line)
				return err
			})
			if err != nil {
				return err
			}
			return w.Flush()
		}),
	}
}

func prefixArg(args []string) string {
	if len(args) == 0 {
		return ""
	}
	return args[0]
}

// appendDumpLine appends {"key":KEY,"value":VALUE}\n.
func appendDumpLine(dst []byte, key string, value []byte) []byte {
	k, _ := json.Marshal(key)
	dst = append(dst, `{"key":`...)
	dst = append(dst, k...)
	dst = append(dst, `,"value":`...)
	dst = append(dst, value...)
	return append(dst, "}\n"...)
}
