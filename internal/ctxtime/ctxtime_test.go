package ctxtime

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestSleep(t *testing.T) {
	live := func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) }
	cancelled := func() (context.Context, context.CancelFunc) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		return ctx, cancel
	}
	expired := func() (context.Context, context.CancelFunc) {
		return context.WithDeadline(context.Background(), time.Unix(0, 0))
	}
	for _, tc := range []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
		d    time.Duration
		want error
	}{
		{"live ctx, pause passes", live, time.Millisecond, nil},
		{"live ctx, zero pause", live, 0, nil},
		{"live ctx, negative pause", live, -time.Second, nil},
		{"cancelled ctx, long pause", cancelled, time.Hour, context.Canceled},
		{"cancelled ctx wins over a zero pause", cancelled, 0, context.Canceled},
		{"cancelled ctx wins over a negative pause", cancelled, -time.Second, context.Canceled},
		{"expired deadline, long pause", expired, time.Hour, context.DeadlineExceeded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := tc.ctx()
			defer cancel()
			if got := Sleep(ctx, tc.d); !errors.Is(got, tc.want) || (got == nil) != (tc.want == nil) {
				t.Fatalf("Sleep(%v) = %v, want %v", tc.d, got, tc.want)
			}
		})
	}
}

// TestSleepStopsWhenCancelled proves a pause in progress ends when its
// context does, rather than running to its full length.
func TestSleepStopsWhenCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		close(started)
		done <- Sleep(ctx, time.Hour)
	}()
	<-started
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Sleep = %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Sleep(ctx, 1h) still waiting 10s after ctx was cancelled")
	}
}
