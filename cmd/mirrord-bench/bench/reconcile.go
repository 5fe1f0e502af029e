package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/mirrord/mirrord/eventlog"
)

// rewriteReconcile measures (e): the application deletes one event from
// the middle of the largest log by rewriting the file in place; mirrord
// reconciles. The figure is the reconcile's time as a ratio to one
// read-and-parse of the log by the same decoder, and the keys written:
// by the mirror, and by the default generators catching up after it.
// It leaves big.json and big-store for the steps after it.
func (b *runner) rewriteReconcile(ctx context.Context) error {
	n := b.cfg.Sizes[len(b.cfg.Sizes)-1]
	src, err := synthLog(b.cfg.Dir, n)
	if err != nil {
		return err
	}
	logPath, store := b.bigLog(), b.bigStore()
	if err := copyFile(logPath, src); err != nil {
		return err
	}
	b.progress("mirrord sync: loading the %s-event log (and its generators) for the steps that follow", countLabel(n))
	if _, err := b.mirrordSync(ctx, logPath, store, false, true); err != nil {
		return err
	}
	row := ReconcileRow{Events: n}
	var parses []time.Duration
	for i := range b.cfg.Runs {
		b.progress("read-and-parse of the %s-event log, run %d of %d", countLabel(n), i+1, b.cfg.Runs)
		r, _, err := b.childStep(ctx, "parse", logPath)
		if err != nil {
			return err
		}
		parses = append(parses, r.Took)
	}
	row.Parse = median(parses)

	b.progress("rewriting the log in place without its middle event")
	if err := deleteMiddleInPlace(logPath); err != nil {
		return err
	}
	b.progress("reconcile of the %s-event log", countLabel(n))
	r, p, err := b.childStep(ctx, "reconcile", logPath, store)
	if err != nil {
		return err
	}
	row.Took, row.MaxRSS, row.Keys, row.Applies = r.Took, p.MaxRSS, r.Puts+r.Deletes, r.Applies
	row.GenKeys = r.GenKeys
	row.EventsAfter = r.Events
	b.rep.Reconcile = &row
	return nil
}

func (b *runner) bigLog() string   { return filepath.Join(b.work, "big.json") }
func (b *runner) bigStore() string { return filepath.Join(b.work, "big-store") }

// deleteMiddleInPlace rewrites the log as the application does after a
// deletion: the same file (same inode), truncated and written again with
// every event but the middle one.
func deleteMiddleInPlace(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var spans [][2]int64
	dec := eventlog.NewDecoder(bytes.NewReader(data), nil)
	for {
		ent, err := dec.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if ent.Kind == eventlog.KindEvent {
			spans = append(spans, [2]int64{ent.Offset, ent.End})
		}
	}
	if len(spans) < 3 {
		return fmt.Errorf("%s: %d events; too few to delete one from the middle", path, len(spans))
	}
	mid := spans[len(spans)/2]
	end := mid[1]
	if end < int64(len(data)) && data[end] == '\n' {
		end++ // the newline that joined it to the next event
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	if _, err := f.Write(data[:mid[0]]); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data[end:]); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
