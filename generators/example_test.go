package generators_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/mirrord/mirrord/eventlog"
	"github.com/mirrord/mirrord/generators"
	"github.com/mirrord/mirrord/kv"
	"github.com/mirrord/mirrord/mirror"
	"github.com/mirrord/mirrord/schema"
)

// BEGIN README EXAMPLE

// typeCount keeps, for each event type, how many events have it:
// generated:types:{type} = n. Each change comes with the event as it was
// and as it is, so an edit or a deletion takes back what the old version
// counted: no bookkeeping of its own.
type typeCount struct{}

func (typeCount) Update(ctx context.Context, in *generators.Input, out *generators.Scope) error {
	return in.Changes(func(id string, before, after *eventlog.Event) error {
		if before != nil { // edited or deleted: take the old version back
			if err := add(out, before.Type, -1); err != nil {
				return err
			}
		}
		if after == nil { // deleted from the log
			return nil
		}
		return add(out, after.Type, +1)
	})
}

// add changes a type's count, deleting the key when it reaches zero.
func add(out *generators.Scope, typ string, delta int) error {
	var n int
	if _, err := out.Get(typ, &n); err != nil {
		return err
	}
	if n += delta; n == 0 {
		return out.Delete(typ)
	}
	return out.Put(typ, n)
}

func init() {
	generators.Register("types", func() generators.Generator { return typeCount{} })
}

// END README EXAMPLE

// A complete generator, run on a store mirrored from a small log.
func Example_writingAGenerator() {
	dir, _ := os.MkdirTemp("", "mirrord-example")
	defer os.RemoveAll(dir)
	logPath := filepath.Join(dir, "data.json")
	creator := eventlog.Creator{Name: "me", UUID: "u", Version: "1"}
	_ = eventlog.AppendFile(logPath,
		&eventlog.Event{ID: "a", Date: "2025-05-22T08:00:00+0200", Type: "food", Creator: creator},
		&eventlog.Event{ID: "b", Date: "2025-05-22T13:00:00+0200", Type: "food", Creator: creator},
		&eventlog.Event{ID: "c", Date: "2025-05-22T21:00:00+0200", Type: "sleep", Creator: creator},
	)

	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	db, err := kv.Open(filepath.Join(dir, "store"), &kv.Options{Logger: quiet})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer db.Close()
	ctx := context.Background()
	eng, _ := mirror.Open(db, &mirror.Options{EventLog: logPath, Logger: quiet})
	_ = eng.Sync(ctx)
	run, _ := generators.NewRunner(db, &generators.Options{Enabled: []string{"types"}, Logger: quiet})
	_ = run.CatchUp(ctx, 1)

	show := func() {
		var counts []string
		for _, typ := range []string{"food", "sleep", "walk"} {
			var n int
			if found, _ := db.Get(schema.GeneratedKey("types", typ), &n); found {
				counts = append(counts, fmt.Sprintf("%s: %d", typ, n))
			}
		}
		fmt.Println(strings.Join(counts, ", "))
	}
	show()
	// b becomes a walk; c is deleted (the application rewrites the log).
	_ = eventlog.RewriteFile(logPath, []*eventlog.Event{
		{ID: "a", Date: "2025-05-22T08:00:00+0200", Type: "food", Creator: creator},
		{ID: "b", Date: "2025-05-22T13:00:00+0200", Type: "walk", Creator: creator},
	})
	_ = eng.Sync(ctx)
	_ = run.CatchUp(ctx, 1)
	show()
	// Output:
	// food: 2, sleep: 1
	// food: 1, walk: 1
}
