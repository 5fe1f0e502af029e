package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/mirrord/mirrord/generators"
	"github.com/mirrord/mirrord/kv"
	"github.com/mirrord/mirrord/mirror"
	"github.com/spf13/cobra"
)

// openEngine opens the store (creating it when needed) and the engine on
// it; tune (may be nil) adds hooks to the engine's options. The caller
// closes the store.
func (m *Main) openEngine(e *env, tune func(*mirror.Options)) (*kv.DB, *mirror.Engine, error) {
	db, err := kv.Open(e.cfg.Store, storeOptions(e))
	if err != nil {
		return nil, nil, err
	}
	safety := e.cfg.SafetyCheck
	if safety == 0 {
		safety = -1 // off
	}
	opts := &mirror.Options{
		EventLog:     e.cfg.EventLog,
		GitRef:       e.cfg.GitRef,
		Settle:       e.cfg.Settle,
		Debounce:     e.cfg.Debounce,
		SafetyCheck:  safety,
		MaxValueSize: e.cfg.MaxValueSize,
		ChunkBytes:   e.cfg.BatchSize,
		Logger:       e.log,
		BulkMemory:   m.BulkMemory,
	}
	if tune != nil {
		tune(opts)
	}
	eng, err := mirror.Open(db, opts)
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	return db, eng, nil
}

// storeOptions are the store's options for every command. A failure the
// store cannot go on from (kv.Options.OnFatal: a full disk or an I/O
// error while Pebble writes its log or manifest) ends the process at once
// with one line, as every mirrord error, and exit status 1: the store
// stays consistent at its last durable batch, and the restart (the
// service manager's, or the user's) resumes from there.
func storeOptions(e *env) *kv.Options {
	return &kv.Options{Logger: e.log, FS: testStoreFS, OnFatal: func(err error) {
		fmt.Fprintf(e.cmd.ErrOrStderr(), "mirrord: %v\n", err)
		os.Exit(exitFailure)
	}}
}

// testStoreFS, when a test sets it, is the file system the store is
// opened on (Pebble's errorfs, to make a disk full or read-only); nil is
// the operating system's.
var testStoreFS vfs.FS

// closeStore closes the store, reporting a failure unless the command
// already failed.
func closeStore(db *kv.DB, err *error) {
	if cerr := db.Close(); cerr != nil && *err == nil {
		*err = cerr
	}
}

func (m *Main) syncCommand() *cobra.Command {
	var resync bool
	cmd := &cobra.Command{
		Use:   "sync --once",
		Short: "Bring the store up to date with the event log, then exit",
		Long: `Bring the store up to date with the event log as it stands once it stops
changing (a rewrite in progress is waited for), then exit 0.

If the log does not exist the store is kept as it is: mirrord warns and exits
0, or exits 1 when nothing was ever mirrored (a wrong path, most likely). If
the log ends in an incomplete value while a reconcile would delete events,
the deletions are held and mirrord exits 1 saying where the log is cut.`,
		Args: cobra.NoArgs,
		RunE: m.action([]string{"eventlog", "store"}, func(ctx context.Context, e *env, _ []string) (err error) {
			ctx, stop := m.signalContext(ctx, e.log, nil)
			defer stop()
			prog := newProgress(m.Stderr, e.log)
			var runner *generators.Runner
			db, eng, err := m.openEngine(e, func(o *mirror.Options) {
				o.OnProgress = prog.report
				o.Resync = resync // a newer or foreign store is then rebuilt, not refused
				// A load (the first, or a resync) rebuilds the built-in
				// generators beside it, from its own output.
				o.LoadFeed = func() mirror.LoadFeed {
					if f := runner.LoadFeed(); f != nil {
						return f
					}
					return nil
				}
			})
			if err != nil {
				return err
			}
			defer closeStore(db, &err)
			if runner, err = generators.NewRunner(db, &generators.Options{Enabled: e.cfg.Generators, Logger: e.log}); err != nil {
				return err
			}
			if resync {
				err = eng.Resync(ctx)
			} else {
				err = eng.Sync(ctx)
			}
			switch {
			case errors.Is(err, mirror.ErrLogMissing) && resync:
				return err // the resync did not happen; the store is untouched
			case errors.Is(err, mirror.ErrLogMissing) && eng.Checkpoint() != nil && eng.Checkpoint().Offset > 0:
				e.log.Warn("the event log is missing; the store is kept as it is", "path", eng.Path())
				return nil
			case errors.Is(err, mirror.ErrLogMissing):
				return fmt.Errorf("nothing to mirror: %s does not exist", eng.Path())
			case err != nil && ctx.Err() != nil:
				return fmt.Errorf("interrupted; the store is consistent at offset %d", eng.Checkpoint().Offset)
			case err != nil:
				return err
			}
			// Then the generators (those not rebuilt beside a load), so
			// that a one-shot run leaves the generated values current too.
			if err := runner.CatchUp(ctx, 3); err != nil {
				return fmt.Errorf("the mirror is up to date, but a generator is not: %w", err)
			}
			cp := eng.Checkpoint()
			args := []any{"events", cp.Events, "modifiers", cp.Modifiers, "invalid", cp.Invalid,
				"offset", cp.Offset, "generators", len(e.cfg.Generators)}
			if mib := peakRSSMiB(); mib > 0 {
				args = append(args, "peak_rss_mib", mib)
			}
			e.log.Info("the store is up to date", args...)
			return nil
		}),
	}
	cmd.Flags().Bool("once", true, "catch up once and exit (the only mode of sync; to keep following the log use run)")
	cmd.Flags().BoolVar(&resync, "resync", false, "rebuild the store from scratch")
	addFlags(cmd.Flags(), engineKeys...)
	return cmd
}

// signalContext cancels the returned context on the first SIGINT or
// SIGTERM, so that the command finishes the batch in hand and closes the
// store; a second signal exits at once, and so does a shutdown that takes
// longer than timeout() (nil: no bound). See lifetime.
func (m *Main) signalContext(ctx context.Context, log *slog.Logger, timeout func() time.Duration) (context.Context, func()) {
	l := m.newLifetime(ctx, log, timeout)
	return l.ctx, l.stop
}
