package main

import (
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/mirrord/mirrord/mirror"
	"github.com/schollz/progressbar/v3"
)

// progress shows a long read of the log (a first load, a resync, a large
// reconcile or catch-up): a progress bar on a terminal (bytes of the log,
// events per second, time left), or, without one (journald), a log line
// every few seconds.
type progress struct {
	mu       sync.Mutex
	w        io.Writer
	terminal bool
	log      *slog.Logger
	every    time.Duration
	bar      *progressbar.ProgressBar
	kind     string
	start    time.Time
	lastLine time.Time
	now      func() time.Time
}

func newProgress(w io.Writer, log *slog.Logger) *progress {
	return &progress{w: w, terminal: isTerminal(w), log: log, every: 5 * time.Second, now: time.Now}
}

var kindWords = map[string]string{"load": "loading the log", "reconcile": "reconciling the log", "tail": "catching up with the log"}

// report is the engine's OnProgress.
func (p *progress) report(r mirror.Progress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	if p.kind != r.Kind || p.start.IsZero() {
		p.kind, p.start, p.lastLine = r.Kind, now, now
		if p.terminal {
			p.bar = progressbar.NewOptions64(r.Total,
				progressbar.OptionSetWriter(p.w),
				progressbar.OptionSetDescription(kindWords[r.Kind]),
				progressbar.OptionShowBytes(true),
				progressbar.OptionSetPredictTime(true),
				progressbar.OptionSetElapsedTime(true),
				progressbar.OptionThrottle(100*time.Millisecond),
				progressbar.OptionClearOnFinish(),
			)
		}
	}
	elapsed := now.Sub(p.start)
	rate := 0.0
	if elapsed > 0 {
		rate = float64(r.Events) / elapsed.Seconds()
	}
	if p.bar != nil {
		p.bar.Describe(fmt.Sprintf("%s (%.0f events/s)", kindWords[r.Kind], rate))
		_ = p.bar.Set64(r.Done)
		if r.Finished {
			_ = p.bar.Finish()
			p.bar, p.start = nil, time.Time{}
		}
		return
	}
	if r.Finished {
		p.log.Info(kindWords[r.Kind]+": done", "bytes", r.Done, "events", r.Events, "events_per_second", int(rate),
			"took", elapsed.Round(time.Millisecond))
		p.start = time.Time{}
		return
	}
	if now.Sub(p.lastLine) < p.every {
		return
	}
	p.lastLine = now
	left := "unknown"
	if r.Done > 0 && r.Total > r.Done {
		left = time.Duration(float64(elapsed) * float64(r.Total-r.Done) / float64(r.Done)).Round(time.Second).String()
	}
	pct := 0.0
	if r.Total > 0 {
		pct = 100 * float64(r.Done) / float64(r.Total)
	}
	p.log.Info(kindWords[r.Kind], "percent", fmt.Sprintf("%.1f", pct), "bytes", r.Done, "of", r.Total,
		"events", r.Events, "events_per_second", int(rate), "left", left)
}
