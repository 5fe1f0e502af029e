package kv

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// benchPrefix is the prefix of the bench store's keys.
const benchPrefix = "event:"

// benchStore is an in-memory store of n events of about 550 bytes (the
// size of a compacted event), loaded through an ingest as a resync does.
func benchStore(b *testing.B, n int) (*DB, []string) {
	b.Helper()
	db, err := Open("/bench", &Options{FS: vfs.NewMem()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("event:%016x", uint64(i)*0x9e3779b97f4a7c15)
	}
	sorted := slices.Sorted(slices.Values(keys))
	in := db.NewIngest(benchPrefix, PrefixEnd([]byte(benchPrefix)))
	f := in.File()
	value := []byte(`{"id":"x","description":"` + strings.Repeat("ü word ", 70) + `"}`)
	for _, k := range sorted {
		if err := f.Add([]byte(k), value); err != nil {
			b.Fatal(err)
		}
	}
	if err := in.Commit(b.Context()); err != nil {
		b.Fatal(err)
	}
	return db, keys
}

// BenchmarkGet: random events of a 20k-event store, decoded as
// json.RawMessage (checked to be JSON), as a generator reads them.
func BenchmarkGet(b *testing.B) {
	db, keys := benchStore(b, 20_000)
	benchGets(b, db, keys)
}

// benchGets times Gets of random keys of db, each of which must be there.
func benchGets(b *testing.B, db *DB, keys []string) {
	rng := rand.New(rand.NewPCG(1, 1))
	var v json.RawMessage
	b.ResetTimer()
	for range b.N {
		if found, err := db.Get(keys[rng.IntN(len(keys))], &v); !found || err != nil {
			b.Fatal(found, err)
		}
	}
}

// BenchmarkScan: the events of a 20k-event store, values checked.
func BenchmarkScan(b *testing.B) {
	db, keys := benchStore(b, 20_000)
	b.ResetTimer()
	for range b.N {
		n := 0
		if err := db.Scan(benchPrefix, func(string, json.RawMessage) error { n++; return nil }); err != nil || n != len(keys) {
			b.Fatal(n, err)
		}
	}
	b.ReportMetric(float64(len(keys)*b.N)/b.Elapsed().Seconds(), "keys/s")
}

// BenchmarkScanRaw: the same, unchecked (the engine's path).
func BenchmarkScanRaw(b *testing.B) {
	db, keys := benchStore(b, 20_000)
	b.ResetTimer()
	for range b.N {
		n := 0
		if err := db.ScanRaw([]byte(benchPrefix), func(_, _ []byte) error { n++; return nil }); err != nil || n != len(keys) {
			b.Fatal(n, err)
		}
	}
	b.ReportMetric(float64(len(keys)*b.N)/b.Elapsed().Seconds(), "keys/s")
}

// BenchmarkBatch: a batch of six puts, an append's share of writes.
func BenchmarkBatch(b *testing.B) {
	db, _ := benchStore(b, 1000)
	value := map[string]string{"value": "home"}
	b.ResetTimer()
	for i := range b.N {
		ops := make([]Op, 6)
		for j := range ops {
			ops[j] = PutOp(fmt.Sprintf("modifier:%08d:%d", i, j), value)
		}
		if err := db.Batch(ops); err != nil {
			b.Fatal(err)
		}
	}
}

// onDiskStore opens the store MIRRORD_BENCH_STORE names (one that
// `mirrord sync` loaded, say the benchmark's 1M-event store), to profile
// reads whose blocks are mostly not cached; the benchmark is skipped
// without it.
func onDiskStore(b *testing.B) *DB {
	path := os.Getenv("MIRRORD_BENCH_STORE")
	if path == "" {
		b.Skip("MIRRORD_BENCH_STORE names no store")
	}
	db, err := Open(path, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	return db
}

// BenchmarkScanOnDisk: Scan of every event of an on-disk store.
func BenchmarkScanOnDisk(b *testing.B) {
	db := onDiskStore(b)
	n := 0
	for b.Loop() {
		if err := db.Scan(benchPrefix, func(string, json.RawMessage) error { n++; return nil }); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "keys/s")
}

// BenchmarkGetOnDisk: Gets of random events of an on-disk store.
func BenchmarkGetOnDisk(b *testing.B) {
	db := onDiskStore(b)
	keys, err := db.Keys(benchPrefix)
	if err != nil || len(keys) == 0 {
		b.Fatal(len(keys), err)
	}
	benchGets(b, db, keys)
}
