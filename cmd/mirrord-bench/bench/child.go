package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/mirrord/mirrord/eventlog"
	"github.com/mirrord/mirrord/generators"
	"github.com/mirrord/mirrord/kv"
	"github.com/mirrord/mirrord/mirror"
)

// childResult is what a child step reports on its stdout.
type childResult struct {
	Events  int           `json:"events"`
	Took    time.Duration `json:"took"`
	Puts    int           `json:"puts"`
	Deletes int           `json:"deletes"`
	Applies int           `json:"applies"`
	PeakRSS int64         `json:"peak_rss"` // VmHWM of the child, bytes
	// GenKeys are the keys the generators wrote catching up after it.
	GenKeys int64 `json:"gen_keys"`
}

// Child runs one step of the benchmark in this process and prints its
// result as JSON: the benchmark starts itself with ChildEnv set and these
// arguments, so that the step's peak memory is measured alone.
//
//	naive LOG STORE      the naive Go baseline
//	parse LOG            one read-and-parse of the log by mirrord's decoder
//	reconcile LOG STORE  bring STORE up to date with LOG (a rewrite)
func Child(args []string) int {
	res, err := child(args)
	res.PeakRSS = selfPeakRSS()
	if err != nil {
		fmt.Fprintln(os.Stderr, "mirrord-bench:", err)
		return 1
	}
	if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
		fmt.Fprintln(os.Stderr, "mirrord-bench:", err)
		return 1
	}
	return 0
}

func child(args []string) (childResult, error) {
	if len(args) == 0 {
		return childResult{}, errors.New("child: no step named")
	}
	need := func(n int) error {
		if len(args) != n+1 {
			return fmt.Errorf("child %s: want %d arguments, got %d", args[0], n, len(args)-1)
		}
		return nil
	}
	switch args[0] {
	case "naive":
		if err := need(2); err != nil {
			return childResult{}, err
		}
		start := time.Now()
		n, err := naiveLoad(args[1], args[2])
		return childResult{Events: n, Took: time.Since(start)}, err
	case "parse":
		if err := need(1); err != nil {
			return childResult{}, err
		}
		return parseLog(args[1])
	case "reconcile":
		if err := need(2); err != nil {
			return childResult{}, err
		}
		return reconcile(args[1], args[2])
	}
	return childResult{}, fmt.Errorf("child: unknown step %q", args[0])
}

// parseLog reads and parses the whole log with mirrord's decoder: every
// value found, validated and compacted, as a reconcile must. It is the
// floor a reconcile is measured against.
func parseLog(path string) (childResult, error) {
	f, err := os.Open(path)
	if err != nil {
		return childResult{}, err
	}
	defer f.Close()
	start := time.Now()
	dec := eventlog.NewDecoder(f, &eventlog.Options{BufferSize: 1 << 20})
	n := 0
	for {
		ent, err := dec.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return childResult{}, err
		}
		if ent.Kind == eventlog.KindEvent {
			n++
		}
	}
	return childResult{Events: n, Took: time.Since(start)}, nil
}

// reconcile opens the store and brings it up to date with the log, as
// `mirrord sync` does, and reports the keys the batches wrote; then the
// default generators catch up, and it reports the keys they wrote. The
// log was rewritten before this process started, so it has settled.
func reconcile(logPath, store string) (childResult, error) {
	db, err := kv.Open(store, nil)
	if err != nil {
		return childResult{}, err
	}
	defer db.Close()
	var res childResult
	eng, err := mirror.Open(db, &mirror.Options{
		EventLog: logPath,
		Settle:   time.Millisecond,
		Logger:   slog.New(slog.DiscardHandler),
		OnApply: func(a mirror.Applied) {
			res.Puts += a.Puts
			res.Deletes += a.Deletes
			res.Applies++
			res.Events = int(a.Events)
		},
	})
	if err != nil {
		return res, err
	}
	start := time.Now()
	err = eng.Sync(context.Background())
	res.Took = time.Since(start)
	if err != nil {
		return res, err
	}
	run, err := generators.NewRunner(db, &generators.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return res, err
	}
	if err := run.CatchUp(context.Background(), 1); err != nil {
		return res, err
	}
	for _, s := range run.Statuses() {
		res.GenKeys += s.Written
	}
	return res, nil
}
