// Package ctxtime holds the one wait that every retry and back-off loop in
// mirrord needs: a sleep that a context can cut short.
//
// time.Sleep cannot be interrupted, so a loop that sleeps with it keeps a
// stopping daemon waiting for the whole pause; this package's Sleep returns
// as soon as the context is done, which lets Close and a cancelled start
// stop their goroutines promptly.
package ctxtime

import (
	"context"
	"time"
)

// Sleep waits for d, or until ctx is done, whichever comes first. It returns
// nil when the full pause has passed and ctx's error when ctx ended it.
//
// A ctx that is already done wins even when d is zero or negative, so a loop
// that calls Sleep between attempts always notices cancellation; with a live
// ctx, a d of zero or less returns nil at once.
func Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
