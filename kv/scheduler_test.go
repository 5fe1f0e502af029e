package kv

import (
	"fmt"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/mirrord/mirrord/internal/testkit"
)

// Compactions still run under the tickless scheduler: a write load that
// fills level 0 gets compacted, without any periodic wake-up to notice.
func TestCompactionsRunUnderTheTicklessScheduler(t *testing.T) {
	db, err := Open("/store", &Options{FS: vfs.NewMem(), MemTableSize: 256 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	value := strings.Repeat("v", 1000)
	for i := range 40 {
		var ops []Op
		for j := range 500 {
			ops = append(ops, PutOp(fmt.Sprintf("event:%05d-%03d", (i*7919+j*104729)%100000, j), value))
		}
		if err := db.Batch(ops); err != nil {
			t.Fatal(err)
		}
	}
	testkit.Eventually(t, "a compaction", func() error {
		if m := db.pdb.Metrics(); m.Compact.Count == 0 || m.Levels[0].TablesCount >= 8 {
			return fmt.Errorf("%d compactions, %d tables in L0", m.Compact.Count, m.Levels[0].TablesCount)
		}
		return nil
	})
	keys, err := db.Keys("event:")
	if err != nil || len(keys) == 0 {
		t.Fatalf("keys after compaction: %d, %v", len(keys), err)
	}
}
