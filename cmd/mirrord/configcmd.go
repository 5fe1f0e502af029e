package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

func (m *Main) configCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Print the effective configuration and where each setting comes from",
		Long: `Print every setting with its effective value and its source: a flag, the
environment, the config file, or the default. Useful to check what a service
will run with: mirrord config --config /etc/mirrord/config.yaml. It takes
every setting's flag, and checks what run checks.`,
		Args: cobra.NoArgs,
		RunE: m.action(nil, func(_ context.Context, e *env, _ []string) error {
			w := tabwriter.NewWriter(e.out, 0, 4, 2, ' ', 0)
			fmt.Fprintf(w, "SETTING\tVALUE\tSOURCE\n")
			for _, s := range settings {
				fmt.Fprintf(w, "%s\t%s\t%s\n", s.key, fmtValue(e.cfg.fieldOf(s.key)), e.cfg.sourceOf(s.key))
			}
			if e.cfg.File != "" {
				fmt.Fprintf(w, "\nconfig file: %s\n", e.cfg.File)
			}
			return w.Flush()
		}),
	}
	addFlags(cmd.Flags(), append(engineKeys, daemonKeys...)...)
	return cmd
}

// fmtValue writes a decoded setting as it may be given again: a path as
// resolved, a duration or a size with its unit, a list comma-separated;
// "" for the empty value.
func fmtValue(p any) string {
	var s string
	switch x := p.(type) {
	case *string:
		s = *x
	case *time.Duration:
		s = fmtDuration(*x)
	case *int:
		s = fmtSize(*x)
	case *[]string:
		s = strings.Join(*x, ",")
	default:
		panic(fmt.Sprintf("setting of type %T", p))
	}
	if s == "" {
		return `""`
	}
	return s
}
