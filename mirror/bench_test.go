package mirror

import (
	"bufio"
	"context"

	"os"
	"path/filepath"
	"testing"

	"github.com/mirrord/mirrord/eventlog"
	"github.com/mirrord/mirrord/internal/synth"
	"github.com/mirrord/mirrord/internal/testkit"
	"github.com/mirrord/mirrord/kv"
)

// writeSynthLog writes n synthetic events to path and returns its size.
func writeSynthLog(b *testing.B, path string, n int) int64 {
	b.Helper()
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	enc := eventlog.NewEncoder(w)
	g := synth.New(7)
	for range n {
		if err := enc.Encode(g.Event()); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	st, _ := f.Stat()
	f.Close()
	return st.Size()
}

// BenchmarkBulkLoad is a first load (the resync path) of 100k events
// into an empty store on disk: decode, external sort, sstable ingest.
// Profile it with -cpuprofile to see where a resync spends its time.
func BenchmarkBulkLoad(b *testing.B) {
	dir := b.TempDir()
	logPath := filepath.Join(dir, "data.json")
	size := writeSynthLog(b, logPath, 100_000)
	b.SetBytes(size)
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		store := filepath.Join(dir, "store", string(rune('a'+i%26)))
		os.RemoveAll(store)
		db, err := kv.Open(store, nil)
		if err != nil {
			b.Fatal(err)
		}
		e, err := Open(db, &Options{EventLog: logPath, Logger: testkit.QuietLogger()})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if err := e.Sync(context.Background()); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		db.Close()
		os.RemoveAll(store)
		b.StartTimer()
	}
}

// BenchmarkTailApply is one appended event applied to a store that
// follows a 10k-event log: the path of every append.
func BenchmarkTailApply(b *testing.B) {
	dir := b.TempDir()
	logPath := filepath.Join(dir, "data.json")
	writeSynthLog(b, logPath, 10_000)
	db, err := kv.Open(filepath.Join(dir, "store"), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	e, err := Open(db, &Options{EventLog: logPath, Logger: testkit.QuietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if err := e.Sync(ctx); err != nil {
		b.Fatal(err)
	}
	f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	g := synth.New(8)
	var buf []byte
	b.ResetTimer()
	for range b.N {
		buf = append(g.Event().AppendJS(buf[:0]), '\n')
		if _, err := f.Write(buf); err != nil {
			b.Fatal(err)
		}
		if _, err := e.step(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
}
