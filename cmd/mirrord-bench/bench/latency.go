package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/mirrord/mirrord/internal/synth"
	"github.com/mirrord/mirrord/mirror"
	"github.com/mirrord/mirrord/schema"
)

// appendGap separates the timed appends. A person appends events seconds
// apart; appends closer than the engine's debounce (5 ms) coalesce by
// design, and would measure the debounce, not the path.
const appendGap = 10 * time.Millisecond

// latencies measures (d) on a 1k-event log and on the largest one.
func (b *runner) latencies(ctx context.Context) error {
	small, err := synthLog(b.cfg.Dir, 1000)
	if err != nil {
		return err
	}
	smallLog := filepath.Join(b.work, "small.json")
	if err := copyFile(smallLog, small); err != nil {
		return err
	}
	for _, l := range []struct {
		events     int
		log, store string
	}{
		{1000, smallLog, filepath.Join(b.work, "small-store")},
		{b.cfg.Sizes[len(b.cfg.Sizes)-1], b.bigLog(), b.bigStore()},
	} {
		b.progress("append-to-visible latency on the %s-event log: %d appends", countLabel(l.events), b.cfg.Appends)
		row, err := appendLatency(ctx, l.log, l.store, b.cfg.Appends)
		if err != nil {
			return err
		}
		row.Events = l.events
		b.rep.Latency = append(b.rep.Latency, row)
	}
	return nil
}

// appendLatency follows the log with an in-process engine and times each
// append from the writer's write returning to the event being readable
// from the store.
func appendLatency(ctx context.Context, logPath, store string, appends int) (LatencyRow, error) {
	fl, err := follow(ctx, store, mirror.Options{EventLog: logPath}, false)
	if err != nil {
		return LatencyRow{}, err
	}
	defer fl.stop()
	f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return LatencyRow{}, err
	}
	defer f.Close()
	gen := synth.New(uint64(time.Now().UnixNano()))
	var (
		lat      = make([]time.Duration, 0, appends)
		buf, key []byte
		val      []byte
	)
	for range appends {
		ev := gen.Event()
		buf = append(ev.AppendJS(buf[:0]), '\n')
		key = schema.AppendEventKey(key[:0], ev.ID)
		fl.expect()
		// From the start of write(): timed from its return, an append to
		// a small log measured a few microseconds, because Go's scheduler
		// had run the engine's whole apply on the writer's P before it
		// resumed the writer. This includes the write itself.
		t0 := time.Now()
		if _, err := f.Write(buf); err != nil {
			return LatencyRow{}, err
		}
		d, v, err := fl.await(t0, key, val, 10*time.Second, ev.ID, "its append")
		if err != nil {
			return LatencyRow{}, err
		}
		lat, val = append(lat, d), v
		if !bytes.Contains(val, []byte(ev.ID)) {
			return LatencyRow{}, fmt.Errorf("event %s: the store holds another value", ev.ID)
		}
		time.Sleep(appendGap)
	}
	row := LatencyRow{Appends: appends}
	row.P50, row.P99, row.Max = percentiles(lat)
	return row, nil
}
