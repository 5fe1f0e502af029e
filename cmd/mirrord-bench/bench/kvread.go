package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/mirrord/mirrord/kv"
	"github.com/mirrord/mirrord/schema"
)

// kvGets is how many random Gets are timed (a tenth of it in a Quick run,
// which must stay quick under the race detector too).
const kvGets = 100_000

// kvHot is the working set of the cached Gets.
const kvHot = 4096

// timeGets times n Gets of the keys next picks, each of which must be in
// the store, and returns the durations sorted; it stops when ctx is done.
func timeGets(ctx context.Context, db *kv.DB, n int, next func() string) ([]time.Duration, error) {
	lat := make([]time.Duration, n)
	var v json.RawMessage
	for i := range lat {
		if i%1000 == 0 && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		k := next()
		t0 := time.Now()
		found, err := db.Get(k, &v)
		lat[i] = time.Since(t0)
		if err != nil {
			return nil, err
		}
		if !found {
			return nil, fmt.Errorf("kv: a scanned key is missing: %s", k)
		}
	}
	slices.Sort(lat)
	return lat, nil
}

// kvReads measures (g) on the largest store, as a generator would read
// it: Get of random events through kv's own API (the value decoded as
// JSON), a Scan over event:, and the store's size on disk against the
// log's.
func (b *runner) kvReads(ctx context.Context) error {
	b.progress("kv reads on the %s-event store", countLabel(b.cfg.Sizes[len(b.cfg.Sizes)-1]))
	db, err := kv.Open(b.bigStore(), nil)
	if err != nil {
		return err
	}
	defer db.Close()
	var row KVRow

	var keys []string
	start := time.Now()
	err = db.Scan(schema.PrefixEvent, func(key string, value json.RawMessage) error {
		keys = append(keys, key)
		return ctx.Err()
	})
	if err != nil {
		return err
	}
	row.ScanTook = time.Since(start)
	row.Scanned = len(keys)

	gets := kvGets
	if b.cfg.Quick {
		gets = kvGets / 10
	}
	rng := rand.New(rand.NewPCG(1, 2))
	lat, err := timeGets(ctx, db, gets, func() string { return keys[rng.IntN(len(keys))] })
	if err != nil {
		return err
	}
	row.GetP50, row.GetP99 = lat[len(lat)/2], lat[len(lat)*99/100]

	// The same Gets on a working set the block cache holds (4096 events,
	// about 16 MiB of blocks, read once before): what kv and Pebble cost
	// when no block has to be read and decompressed.
	hot := make([]string, kvHot)
	var v json.RawMessage
	for i := range hot {
		hot[i] = keys[rng.IntN(len(keys))]
		if _, err := db.Get(hot[i], &v); err != nil {
			return err
		}
	}
	if lat, err = timeGets(ctx, db, gets, func() string { return hot[rng.IntN(len(hot))] }); err != nil {
		return err
	}
	row.CachedGetP50 = lat[len(lat)/2]
	if row.StoreBytes, err = dirSize(b.bigStore()); err != nil {
		return err
	}
	if row.LogBytes, err = fileSize(b.bigLog()); err != nil {
		return err
	}
	b.rep.KV = &row
	return nil
}
