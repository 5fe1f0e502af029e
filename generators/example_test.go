package generators_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/mirrord/mirrord/eventlog"
	"github.com/mirrord/mirrord/generators"
	"github.com/mirrord/mirrord/kv"
	"github.com/mirrord/mirrord/mirror"
	"github.com/mirrord/mirrord/schema"
)

// BEGIN README EXAMPLE

// typeCount keeps, for each event type, how many events have it:
// generated:types:{type} = n. It remembers each event's type under
// ".type:{id}" so that an edit or a deletion can take it back.
type typeCount struct{}

func (typeCount) Update(ctx context.Context, in *generators.Input, out *generators.Scope) error {
	return in.Events(func(id string, ev *eventlog.Event) error {
		var old string
		if _, err := out.Get(".type:"+id, &old); err != nil {
			return err
		}
		if old != "" {
			if err := add(out, old, -1); err != nil {
				return err
			}
		}
		if ev == nil { // deleted from the log
			return out.Delete(".type:" + id)
		}
		if err := add(out, ev.Type, +1); err != nil {
			return err
		}
		return out.Put(".type:"+id, ev.Type)
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

	for _, typ := range []string{"food", "sleep"} {
		var n int
		_, _ = db.Get(schema.GeneratedKey("types", typ), &n)
		fmt.Printf("%s: %d\n", typ, n)
	}
	// Output:
	// food: 2
	// sleep: 1
}
