package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mirrord/mirrord/api"
	"github.com/mirrord/mirrord/generators"
	"github.com/mirrord/mirrord/kv"
	"github.com/mirrord/mirrord/mirror"
	"github.com/spf13/cobra"
)

func (m *Main) verifyCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Check that the store equals what the event log says (exit 0 only then)",
		Long: `Re-derive the events and modifiers the store should hold from the event log
and compare them with the store. Exit 0 when they are identical; exit 1 with a
summary of the missing, extra and differing keys otherwise. Values are
compared as JSON: key order and number spelling do not matter. With
git-ref, the log is the file as committed at that ref.`,
		Args: cobra.NoArgs,
		RunE: m.action([]string{"eventlog", "store"}, func(ctx context.Context, e *env, _ []string) (err error) {
			a, err := m.openAccess(ctx, e)
			if err != nil {
				return err
			}
			defer a.Close()
			var r *mirror.Report
			if a.client != nil {
				r, err = a.client.Verify(ctx)
			} else {
				r, err = mirror.VerifyLog(ctx, a.db, logOf(e.cfg, a.db), e.cfg.MaxValueSize)
			}
			if cerr := a.Close(); err == nil { // not held while the report prints
				err = cerr
			}
			if err != nil {
				return err
			}
			if r.Blob != "" {
				fmt.Fprintf(e.out, "compared with %s at %s (commit %s, blob %s)\n", e.cfg.EventLog, r.Ref, r.Commit, r.Blob)
			}
			printReport(e.out, r)
			if a.client != nil && r.Covered < r.LogSize {
				fmt.Fprintf(e.out, "note: the running daemon has mirrored %d of the log's %d bytes; that part was compared\n", r.Covered, r.LogSize)
			}
			if !r.OK() {
				return silentError{exitFailure}
			}
			return nil
		}),
	}
	addFlags(cmd.Flags(), "max-value-size")
	return cmd
}

func printReport(w io.Writer, r *mirror.Report) {
	fmt.Fprintln(w, r.Summary())
	list := func(what string, n int, keys []string) {
		if n == 0 {
			return
		}
		fmt.Fprintf(w, "%s (%d):\n", what, n)
		for _, k := range keys {
			fmt.Fprintf(w, "  %s\n", k)
		}
		if n > len(keys) {
			fmt.Fprintf(w, "  ... and %d more\n", n-len(keys))
		}
	}
	list("missing from the store", r.Missing, r.MissingKeys)
	list("in the store but not in the log", r.Extra, r.ExtraKeys)
	list("different in the store", r.Differ, r.DifferKeys)
	list("bookkeeping out of step (run mirrord sync --once --resync)", r.Bookkeeping, r.BookkeepingKeys)
	if r.Pending != nil {
		fmt.Fprintf(w, "note: the log ends in an incomplete value at offset %d (line %d), not expected in the store yet\n", r.Pending.Offset, r.Pending.Line)
	}
}

func (m *Main) statusCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the checkpoint, counts and lag of the store",
		Args:  cobra.NoArgs,
		RunE: m.action([]string{"eventlog", "store"}, func(ctx context.Context, e *env, _ []string) error {
			v, err := m.readStatus(ctx, e)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(e.out)
				enc.SetIndent("", "  ")
				return enc.Encode(statusJSON{Store: e.cfg.Store, Mirror: v.mirror, Generators: v.gens,
					Health: v.health, Daemon: v.daemon, Starting: v.starting})
			}
			if v.starting {
				fmt.Fprintf(e.out, "%-12s%s\n%-12s%s\n", "store", e.cfg.Store, "daemon", strings.TrimPrefix(v.health, "daemon: "))
				return nil
			}
			printStatus(e.out, e.cfg.Store, v.mirror, v.daemon)
			fmt.Fprintf(e.out, "%-12s%s\n", "daemon", strings.TrimPrefix(v.health, "daemon: "))
			fmt.Fprintln(e.out)
			printGenerators(e.out, e.cfg.Generators, v.gens)
			return nil
		}),
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the status as JSON")
	addFlags(cmd.Flags(), "generators")
	return cmd
}

// statusView is what "mirrord status" shows.
type statusView struct {
	mirror mirror.Status
	gens   []generators.Status
	health string
	daemon bool // a daemon answered
	// starting: the daemon does not serve the store yet (it waits for
	// the store's lock); nothing else is known.
	starting bool
}

// statusJSON is "status --json": the shape of the API's /v1/status (the
// engine's status under "mirror"), with daemon saying whether a daemon
// answered; every name snake_case, durations in seconds.
type statusJSON struct {
	Store      string              `json:"store"`
	Mirror     mirror.Status       `json:"mirror"`
	Generators []generators.Status `json:"generators"`
	Health     string              `json:"health"`
	Daemon     bool                `json:"daemon"`
	Starting   bool                `json:"starting,omitempty"`
}

// readStatus asks the daemon serving the store (at once, even while it
// starts), or reads the store itself when none does; the store is then
// held for that read only, not while the status is printed.
func (m *Main) readStatus(ctx context.Context, e *env) (v statusView, err error) {
	c, st, err := m.findDaemon(ctx, m.socketCandidates(e), e.cfg.Store)
	if err != nil {
		return v, err
	}
	if c != nil {
		c.Close()
		v = statusView{mirror: st.Mirror, gens: st.Generators, health: "daemon: " + st.Health, daemon: true, starting: st.Starting}
		if !st.Healthy {
			v.health = "daemon: UNHEALTHY: " + st.Health
		}
		return v, nil
	}
	a, err := m.openDirect(e)
	if err != nil {
		return v, err
	}
	defer a.Close()
	v.health = "no daemon runs on this store"
	if v.mirror, err = mirror.ReadLogStatus(ctx, a.db, logOf(e.cfg, a.db)); err != nil {
		return v, err
	}
	v.gens, err = generators.ReadStatuses(a.db)
	return v, err
}

// logOf is where the configured log is read, for the commands that read
// it without the daemon: in git mode, a blob to copy goes to the store's
// temporary directory.
func logOf(cfg *Config, db *kv.DB) mirror.Log {
	path, _ := filepath.Abs(cfg.EventLog)
	return mirror.Log{Path: path, GitRef: cfg.GitRef, TempDir: mirror.SpoolDir(db)}
}

// printStatus prints the mirror's part of the status; daemon says whether
// a daemon follows the log (and so waits for a missing one).
func printStatus(out io.Writer, store string, s mirror.Status, daemon bool) {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	defer w.Flush()
	switch {
	case s.LogMissing && s.Missing != "":
		fmt.Fprintf(w, "log\t%s at %s (missing: %s)\n", s.Path, s.Ref, s.Missing)
	case s.LogMissing && s.WaitingForDir != "":
		fmt.Fprintf(w, "log\t%s (missing: no directory %s)\n", s.Path, s.WaitingForDir)
	case s.LogMissing:
		fmt.Fprintf(w, "log\t%s (missing)\n", s.Path)
	case s.Ref != "":
		fmt.Fprintf(w, "log\t%s at %s (%d bytes)\n", s.Path, s.Ref, s.LogSize)
	default:
		fmt.Fprintf(w, "log\t%s (%d bytes)\n", s.Path, s.LogSize)
	}
	if s.Commit != "" {
		fmt.Fprintf(w, "ref\t%s: commit %s, blob %s\n", s.Ref, s.Commit, s.Blob)
	}
	fmt.Fprintf(w, "store\t%s\n", store)
	if s.Hint != "" {
		fmt.Fprintf(w, "hint\t%s\n", s.Hint)
	}
	cp := s.Checkpoint
	switch {
	case cp == nil && s.LogMissing && daemon:
		fmt.Fprintf(w, "state\t%s\n", api.Waiting(s.Path, s.WaitingForDir))
		return
	case cp == nil:
		fmt.Fprintf(w, "state\tnothing mirrored yet (run mirrord sync --once)\n")
		return
	}
	if cp.Blob != "" {
		fmt.Fprintf(w, "checkpoint\toffset %d (line %d) of blob %s (commit %s), change %d\n", cp.Offset, cp.Line, cp.Blob, cp.Commit, cp.Seq)
	} else {
		fmt.Fprintf(w, "checkpoint\toffset %d (line %d) of file %d:%d, change %d\n", cp.Offset, cp.Line, cp.Dev, cp.Ino, cp.Seq)
	}
	fmt.Fprintf(w, "last apply\t%s (%s ago)\n", cp.AppliedAt.Local().Format(time.DateTime), time.Since(cp.AppliedAt).Round(time.Second))
	fmt.Fprintf(w, "mirrored\t%d events, %d modifiers\n", cp.Events, cp.Modifiers)
	fmt.Fprintf(w, "invalid\t%d entries skipped in the log\n", cp.Invalid)
	if s.Diverged != "" {
		fmt.Fprintf(w, "lag\tunknown\n")
	} else {
		fmt.Fprintf(w, "lag\t%d bytes\n", s.Lag)
	}
	state := "up to date"
	switch {
	case s.Resyncing:
		state = "resync or first load in progress (not complete)"
	case s.Reconciling:
		state = "reconcile in progress (not complete)"
	case s.LogMissing && daemon:
		state = api.Waiting(s.Path, s.WaitingForDir) + "; the store is kept as it is"
	case s.LogMissing:
		state = "log missing; store kept as it is"
	case s.Diverged != "":
		state = "not up to date: " + s.Diverged + "; the daemon reconciles it (or run mirrord sync --once)"
	case s.Blob != "" && s.Blob != cp.Blob:
		state = "behind the ref: its blob is not the one mirrored (is the daemon running?)"
	case s.Lag > 0:
		state = "behind the log (is the daemon running?)"
	}
	fmt.Fprintf(w, "state\t%s\n", state)
}
