package main

import (
	"context"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

func (m *Main) configCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "config",
		Short: "Print the effective configuration and where each setting comes from",
		Long: `Print every setting with its effective value and its source: a flag, the
environment, the config file, or the default. Useful to check what a service
will run with: mirrord config --config /etc/mirrord/config.yaml`,
		Args: cobra.NoArgs,
		RunE: m.action(nil, func(_ context.Context, e *env, _ []string) error {
			w := tabwriter.NewWriter(e.out, 0, 4, 2, ' ', 0)
			fmt.Fprintf(w, "SETTING\tVALUE\tSOURCE\n")
			for _, s := range settings {
				val := fmt.Sprint(e.cfg.v.Get(s.key))
				switch s.key { // paths as resolved
				case "eventlog":
					val = e.cfg.EventLog
				case "store":
					val = e.cfg.Store
				}
				if val == "" {
					val = `""`
				}
				fmt.Fprintf(w, "%s\t%s\t%s\n", s.key, val, e.cfg.sourceOf(s.key))
			}
			if e.cfg.File != "" {
				fmt.Fprintf(w, "\nconfig file: %s\n", e.cfg.File)
			}
			return w.Flush()
		}),
	}
}
