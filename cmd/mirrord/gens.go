package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"text/tabwriter"

	"github.com/mirrord/mirrord/generators"
	"github.com/spf13/cobra"
)

func (m *Main) generatorsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "generators",
		Short: "List generators, or rebuild one",
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "Show each generator: enabled, position in the change feed, lag, state, last error",
		Args:  cobra.NoArgs,
		RunE: m.action([]string{"store"}, func(ctx context.Context, e *env, _ []string) error {
			enabled, recorded, err := m.readGenerators(ctx, e)
			if err != nil {
				return err
			}
			printGenerators(e.out, enabled, recorded)
			return nil
		}),
	}
	addFlags(list.Flags(), "generators")
	rebuild := &cobra.Command{
		Use:   "rebuild NAME",
		Short: "Reset one generator and recompute its values from the whole mirror",
		Args:  cobra.ExactArgs(1),
		RunE: m.action([]string{"store"}, func(ctx context.Context, e *env, args []string) (err error) {
			name := args[0]
			if err := generators.CheckNames([]string{name}); err != nil {
				return usage(err)
			}
			if !slices.Contains(e.cfg.Generators, name) {
				return usage(fmt.Errorf("generator %q is not enabled (setting \"generators\": %v)", name, e.cfg.Generators))
			}
			a, err := m.openAccess(ctx, e)
			if err != nil {
				return err
			}
			defer a.Close()
			if a.client != nil {
				st, err := a.client.Rebuild(ctx, name)
				if err != nil {
					return err
				}
				fmt.Fprintf(e.out, "rebuilt %s: position %d\n", name, st.Position)
				return nil
			}
			db := a.db
			if err := generators.MarkRebuild(db, name); err != nil {
				return err
			}
			runner, err := generators.NewRunner(db, &generators.Options{Enabled: e.cfg.Generators, Logger: e.log})
			if err != nil {
				return err
			}
			if err := runner.CatchUp(ctx, 1); err != nil {
				return err
			}
			for _, s := range runner.Statuses() {
				if s.Name == name {
					fmt.Fprintf(e.out, "rebuilt %s: position %d\n", name, s.Position)
				}
			}
			return nil
		}),
	}
	addFlags(rebuild.Flags(), "generators")
	cmd.AddCommand(list, rebuild)
	return cmd
}

// readGenerators returns the generators enabled (those the daemon runs,
// when one serves the store) and the statuses recorded. Without a daemon
// it reads the store itself, which it holds for that read only, not while
// the list is printed.
func (m *Main) readGenerators(ctx context.Context, e *env) (enabled []string, recorded []generators.Status, err error) {
	a, err := m.openAccess(ctx, e)
	if err != nil {
		return nil, nil, err
	}
	defer a.Close()
	if a.client == nil {
		recorded, err = generators.ReadStatuses(a.db)
		return e.cfg.Generators, recorded, err
	}
	if recorded, err = a.client.Generators(ctx); err != nil {
		return nil, nil, err
	}
	for _, g := range recorded {
		enabled = append(enabled, g.Name)
	}
	return enabled, recorded, nil
}

// printGenerators prints the enabled generators and any other whose
// position the store still records.
func printGenerators(out io.Writer, enabled []string, recorded []generators.Status) {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	defer w.Flush()
	fmt.Fprintln(w, "NAME\tENABLED\tPOSITION\tLAG\tSTATE\tRETRIES\tLAST ERROR")
	byName := map[string]generators.Status{}
	for _, s := range recorded {
		byName[s.Name] = s
	}
	names := slices.Clone(enabled)
	for _, s := range recorded {
		if !slices.Contains(names, s.Name) {
			names = append(names, s.Name)
		}
	}
	slices.Sort(names)
	for _, n := range names {
		on := "no"
		if slices.Contains(enabled, n) {
			on = "yes"
		}
		s, ok := byName[n]
		if !ok {
			fmt.Fprintf(w, "%s\t%s\t-\t-\tnot run yet\t-\t\n", n, on)
			continue
		}
		lastErr := s.LastError
		if s.LastEvent != "" {
			lastErr = fmt.Sprintf("event %s: %s", s.LastEvent, lastErr)
		}
		fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%s\t%d\t%s\n", n, on, s.Position, s.Lag, s.State, s.Retries, lastErr)
	}
}
