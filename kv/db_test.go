package kv

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/mirrord/mirrord/internal/testkit"
)

func openMem(t testing.TB) *DB {
	t.Helper()
	db, err := Open("/store", &Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func mustPut(t *testing.T, db *DB, key string, value any) {
	t.Helper()
	if err := db.Put(key, value); err != nil {
		t.Fatal(err)
	}
}

func TestOpenCreatesDirectoryAndParentsWithNilOptions(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b", "store")
	db, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		t.Fatalf("store directory not created: %v", err)
	}
	if db.Path() != dir {
		t.Fatalf("Path() = %q", db.Path())
	}
}

func TestPutGetDel(t *testing.T) {
	db := openMem(t)
	type ev struct {
		ID  string `json:"id"`
		N   int    `json:"n"`
		Mod map[string]string
	}
	in := ev{ID: "abc", N: 7, Mod: map[string]string{"k": "v"}}
	mustPut(t, db, "event:abc", in)

	var out ev
	found, err := db.Get("event:abc", &out)
	if err != nil || !found || !reflect.DeepEqual(in, out) {
		t.Fatalf("Get = %+v, %v, %v", out, found, err)
	}
	var raw json.RawMessage
	if found, err := db.Get("event:abc", &raw); err != nil || !found || !json.Valid(raw) {
		t.Fatalf("Get raw = %s, %v, %v", raw, found, err)
	}

	found, err = db.Get("event:missing", &out)
	if err != nil || found {
		t.Fatalf("missing key: found=%v err=%v, want false, nil", found, err)
	}

	if err := db.Del("event:abc"); err != nil {
		t.Fatal(err)
	}
	if found, err := db.Get("event:abc", nil); err != nil || found {
		t.Fatalf("after Del: found=%v err=%v", found, err)
	}
	if err := db.Del("event:never-existed"); err != nil {
		t.Fatalf("Del of a missing key: %v", err)
	}
}

func TestPutUnencodableValue(t *testing.T) {
	db := openMem(t)
	err := db.Put("k", math.Inf(1))
	if !errors.Is(err, ErrQuery) {
		t.Fatalf("Put(+Inf) err = %v, want ErrQuery", err)
	}
	if found, _ := db.Get("k", nil); found {
		t.Fatalf("a failed Put stored something")
	}
}

func TestKeysSortedAndUnicodeSafeBounds(t *testing.T) {
	db := openMem(t)
	keys := []string{"event:b", "event:a", "event:я", "event:😀", "event:\u00ff", "eventz", "event", "modifier:a:x", "f"}
	for _, k := range keys {
		mustPut(t, db, k, k)
	}
	got, err := db.Keys("event:")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"event:a", "event:b", "event:\u00ff", "event:я", "event:😀"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Keys(event:) = %q, want %q", got, want)
	}
	all, err := db.Keys("")
	if err != nil || len(all) != len(keys) {
		t.Fatalf("Keys(\"\") = %q, %v", all, err)
	}
	for i := 1; i < len(all); i++ {
		if all[i-1] >= all[i] {
			t.Fatalf("Keys not sorted: %q", all)
		}
	}
	vals, err := db.GetAll("event:")
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range vals {
		var s string
		if err := json.Unmarshal(v, &s); err != nil || s != want[i] {
			t.Fatalf("GetAll[%d] = %s, want %q", i, v, want[i])
		}
	}
}

func TestBatchIsAtomic(t *testing.T) {
	db := openMem(t)
	mustPut(t, db, "keep", 1)
	err := db.Batch([]Op{
		PutOp("a", 1),
		DelOp("keep"),
		PutOp("b", func() {}), // cannot be encoded
	})
	if !errors.Is(err, ErrQuery) {
		t.Fatalf("Batch err = %v, want ErrQuery", err)
	}
	var kerr *Error
	if !errors.As(err, &kerr) || kerr.Query != "BATCH 3 ops" {
		t.Fatalf("Batch error = %#v, want Query BATCH 3 ops", err)
	}
	if found, _ := db.Get("a", nil); found {
		t.Fatal("failed batch applied its first op")
	}
	if found, _ := db.Get("keep", nil); !found {
		t.Fatal("failed batch applied its delete")
	}

	if err := db.Batch([]Op{PutOp("a", 1), DelOp("keep"), PutOp("b", "x")}); err != nil {
		t.Fatal(err)
	}
	got, _ := db.Keys("")
	if !reflect.DeepEqual(got, []string{"a", "b"}) {
		t.Fatalf("after batch keys = %q", got)
	}
	if err := db.Batch([]Op{PutOp("", 1)}); !errors.Is(err, ErrQuery) {
		t.Fatalf("empty key in batch: %v", err)
	}
}

func TestErrorCarriesPathQueryAndCause(t *testing.T) {
	db := openMem(t)
	// A value that is not JSON, written straight into Pebble.
	if err := db.pdb.Set([]byte("event:abc"), []byte("not json{"), nil); err != nil {
		t.Fatal(err)
	}
	var st struct{ A int }
	_, err := db.Get("event:abc", &st)
	var kerr *Error
	if !errors.As(err, &kerr) {
		t.Fatalf("Get err = %v, want *Error", err)
	}
	if !errors.Is(err, ErrQuery) || errors.Is(err, ErrInitialization) {
		t.Fatalf("Get err kind wrong: %v", err)
	}
	if kerr.Path != "/store" || kerr.Query != "GET event:abc" {
		t.Fatalf("Error{Path: %q, Query: %q}", kerr.Path, kerr.Query)
	}
	if !errors.Is(errors.Unwrap(err), ErrNotJSON) {
		t.Fatalf("errors.Unwrap(err) = %v, want ErrNotJSON", errors.Unwrap(err))
	}
	if msg := err.Error(); !strings.Contains(msg, "event:abc") || !strings.Contains(msg, "/store") {
		t.Fatalf("message %q does not name key and path", msg)
	}
	// Snapshot reads decode the same way.
	snap, err := db.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	if _, err := snap.Get("event:abc", &st); !errors.Is(err, ErrNotJSON) || !strings.Contains(err.Error(), "event:abc") {
		t.Fatalf("Snapshot.Get into a struct: %v", err)
	}
	// Valid JSON of the wrong type is a query error too, but not ErrNotJSON.
	mustPut(t, db, "n", "text")
	var n int
	if _, err := db.Get("n", &n); !errors.Is(err, ErrQuery) || errors.Is(err, ErrNotJSON) {
		t.Fatalf("type mismatch: %v", err)
	}
}

// Reads that return values as bytes trust what kv wrote (see the package
// doc): they hand back what is stored, exactly, without checking it is
// JSON again.
func TestRawReadsReturnValuesAsStored(t *testing.T) {
	db := openMem(t)
	stored := []byte("not json{")
	if err := db.pdb.Set([]byte("event:abc"), stored, nil); err != nil {
		t.Fatal(err)
	}
	snap, err := db.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	for _, r := range []struct {
		name string
		r    Reader
	}{{"DB", db}, {"Snapshot", snap}} {
		var raw json.RawMessage
		if found, err := r.r.Get("event:abc", &raw); !found || err != nil || !bytes.Equal(raw, stored) {
			t.Fatalf("%s.Get into a RawMessage = %q, %v, %v", r.name, raw, found, err)
		}
		if found, err := r.r.Get("event:abc", nil); !found || err != nil {
			t.Fatalf("%s.Get(nil) = %v, %v", r.name, found, err)
		}
		all, err := r.r.GetAll("event:")
		if err != nil || len(all) != 1 || !bytes.Equal(all[0], stored) {
			t.Fatalf("%s.GetAll = %q, %v", r.name, all, err)
		}
		var scanned []byte
		err = r.r.Scan("event:", func(_ string, v json.RawMessage) error { scanned = append(scanned, v...); return nil })
		if err != nil || !bytes.Equal(scanned, stored) {
			t.Fatalf("%s.Scan = %q, %v", r.name, scanned, err)
		}
	}
}

func TestCloseTwiceAndEveryCallAfterClose(t *testing.T) {
	db, err := Open("/s", &Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := db.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	wb := db.NewWriteBatch()
	wb.Put("k", 1)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	fn := func(string, json.RawMessage) error { return nil }
	calls := map[string]error{
		"Put":          db.Put("k", 1),
		"Del":          db.Del("k"),
		"Batch":        db.Batch([]Op{PutOp("k", 1)}),
		"Scan":         db.Scan("", fn),
		"Commit":       wb.Commit(),
		"Snap.Scan":    snap.Scan("", fn),
		"Snap.Close":   snap.Close(),
		"NewSnapshot":  func() error { _, err := db.Snapshot(); return err }(),
		"Get":          func() error { _, err := db.Get("k", nil); return err }(),
		"Keys":         func() error { _, err := db.Keys(""); return err }(),
		"GetAll":       func() error { _, err := db.GetAll(""); return err }(),
		"Snap.Get":     func() error { _, err := snap.Get("k", nil); return err }(),
		"Snap.Keys":    func() error { _, err := snap.Keys(""); return err }(),
		"Snap.GetAll":  func() error { _, err := snap.GetAll(""); return err }(),
		"ScanFrom":     db.ScanFrom("", "x", fn),
		"Snap.ScanFro": snap.ScanFrom("", "x", fn),
	}
	for name, err := range calls {
		if name == "Snap.Close" {
			if err != nil {
				t.Errorf("Snapshot.Close after DB.Close: %v", err)
			}
			continue
		}
		if !errors.Is(err, ErrQuery) || !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrQuery/ErrClosed", name, err)
		}
	}
}

func TestSecondOpenFailsAtOnce(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	start := time.Now()
	_, err = Open(dir, nil)
	if !errors.Is(err, ErrInitialization) || !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v, want ErrInitialization/ErrLocked", err)
	}
	if !strings.Contains(err.Error(), dir) {
		t.Fatalf("lock error %q does not name the path", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("second Open took %v, want at once", d)
	}
	// The same in memory.
	fs := vfs.NewMem()
	m, err := Open("/m", &Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := Open("/m", &Options{FS: fs}); !errors.Is(err, ErrLocked) {
		t.Fatalf("second in-memory Open: %v", err)
	}
}

// Pebble's lock is per process and knows a store by its path: this
// process holds one handle per store, whatever path reaches it (a
// symlink, a/../store), and Close gives it back.
func TestOneHandlePerStoreWhateverThePath(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	store := filepath.Join(dir, "store")
	db, err := Open(store, nil)
	if err != nil {
		t.Fatal(err)
	}
	mustPut(t, db, "k", 1)
	if err := os.Symlink(store, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "a"), 0o755); err != nil {
		t.Fatal(err)
	}
	others := []string{filepath.Join(dir, "link"), "a/../store", "store", store + "/"}
	for _, other := range others {
		_, err := Open(other, nil)
		if !errors.Is(err, ErrInitialization) || !errors.Is(err, ErrLocked) {
			t.Fatalf("Open(%q) of a store open as %q: %v, want ErrInitialization/ErrLocked", other, store, err)
		}
		if msg := err.Error(); !strings.Contains(msg, "(store "+other+")") || !strings.Contains(msg, "already has it open as "+store) {
			t.Fatalf("the error %q does not name both %s and %s", msg, other, store)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// Reopened after Close, through another path; a second Close of the
	// first handle gives back nothing of the second's.
	db2, err := Open("a/../store", nil)
	if err != nil {
		t.Fatalf("reopen after Close: %v", err)
	}
	defer db2.Close()
	if err := db.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := Open(store, nil); !errors.Is(err, ErrLocked) {
		t.Fatalf("Open while the reopened handle holds the store: %v", err)
	}
	var v int
	if found, err := db2.Get("k", &v); !found || err != nil || v != 1 {
		t.Fatalf("the reopened store: %v %v %v", v, found, err)
	}

	// In memory, the file system and the cleaned path tell stores apart.
	mem := vfs.NewMem()
	m, err := Open("/m", &Options{FS: mem})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := Open("/x/../m", &Options{FS: mem}); !errors.Is(err, ErrLocked) {
		t.Fatalf("in memory, /x/../m while /m is open: %v", err)
	}
	other, err := Open("/m", &Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatalf("/m on another in-memory file system: %v", err)
	}
	if err := other.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestOpenBelowRegularFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Open(filepath.Join(file, "store"), nil)
	if !errors.Is(err, ErrInitialization) {
		t.Fatalf("Open below a file: %v, want ErrInitialization", err)
	}
	var kerr *Error
	if !errors.As(err, &kerr) || kerr.Query != "OPEN" || kerr.Path != filepath.Join(file, "store") {
		t.Fatalf("Open error = %#v", err)
	}
}

func TestOpenRefusesDirectoryWithOtherFiles(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Open(dir, nil)
	if !errors.Is(err, ErrInitialization) || !errors.Is(err, ErrNotStore) {
		t.Fatalf("Open of a foreign directory: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "notes.txt")); err != nil || string(b) != "mine" {
		t.Fatalf("foreign file touched: %q %v", b, err)
	}
}

func TestReopenKeepsData(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	mustPut(t, db, "event:x", map[string]string{"id": "x"})
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v map[string]string
	if found, err := db.Get("event:x", &v); !found || err != nil || v["id"] != "x" {
		t.Fatalf("after reopen: %v %v %v", v, found, err)
	}
}

func TestScanStreamsStopsAndNeverLeaksIterators(t *testing.T) {
	db := openMem(t)
	for _, k := range []string{"p:1", "p:2", "p:3", "q:1"} {
		mustPut(t, db, k, k)
	}
	var seen []string
	stop := errors.New("enough")
	err := db.Scan("p:", func(k string, v json.RawMessage) error {
		seen = append(seen, k)
		if k == "p:2" {
			return stop
		}
		return nil
	})
	if err != stop {
		t.Fatalf("Scan returned %v, want the callback's error unchanged", err)
	}
	if !reflect.DeepEqual(seen, []string{"p:1", "p:2"}) {
		t.Fatalf("seen %q", seen)
	}
	seen = nil
	if err := db.ScanFrom("p:", "p:2", func(k string, _ json.RawMessage) error { seen = append(seen, k); return nil }); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(seen, []string{"p:2", "p:3"}) {
		t.Fatalf("ScanFrom seen %q", seen)
	}
	// A panicking callback must not leak the iterator: Close would report
	// "leaked iterators" (or Pebble would panic) if it did.
	func() {
		defer func() { _ = recover() }()
		_ = db.Scan("p:", func(string, json.RawMessage) error { panic("boom") })
	}()
	// Reads inside a callback are allowed.
	err = db.Scan("p:", func(k string, _ json.RawMessage) error {
		_, err := db.Get(k, nil)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("Close after scans: %v", err)
	}
}

// The keys a Scan hands its callback are strings the callback may keep:
// carved from shared blocks (see keyArena), they must not change as the
// Scan goes on, whatever their lengths.
func TestScanKeysCanBeKept(t *testing.T) {
	db := openMem(t)
	var want []string
	var ops []Op
	for i := range 3000 {
		k := fmt.Sprintf("p:%05d:%s", i, strings.Repeat("k", i%300)) // some longer than a block's share
		want = append(want, k)
		ops = append(ops, PutOp(k, i))
	}
	if err := db.Batch(ops); err != nil {
		t.Fatal(err)
	}
	slices.Sort(want)
	var kept []string
	if err := db.Scan("p:", func(k string, _ json.RawMessage) error { kept = append(kept, k); return nil }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(kept, want) {
		t.Fatalf("the kept keys changed: %d kept, %d written", len(kept), len(want))
	}
}

func TestCloseWaitsForScanInFlight(t *testing.T) {
	db, err := Open("/s", &Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	mustPut(t, db, "a", 1)
	mustPut(t, db, "b", 2)
	inside := make(chan struct{})
	release := make(chan struct{})
	scanErr := make(chan error, 1)
	var nested error
	go func() {
		scanErr <- db.Scan("", func(k string, _ json.RawMessage) error {
			if k == "a" {
				close(inside)
				<-release
				// Close is now waiting; a nested read is refused, not deadlocked.
				_, nested = db.Get("a", nil)
			}
			return nil
		})
	}()
	<-inside
	closed := make(chan error, 1)
	go func() { closed <- db.Close() }()
	// Close cannot finish while the scan is inside its callback.
	select {
	case <-closed:
		t.Fatal("Close returned while a scan was in flight")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if err := <-scanErr; err != nil {
		t.Fatalf("scan in flight: %v", err)
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if !errors.Is(nested, ErrClosed) {
		t.Fatalf("nested read during Close: %v, want ErrClosed", nested)
	}
}

func TestSnapshotIsConsistent(t *testing.T) {
	db := openMem(t)
	mustPut(t, db, "event:a", 1)
	mustPut(t, db, "modifier:a:x", 1)
	snap, err := db.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	if err := db.Batch([]Op{DelOp("event:a"), DelOp("modifier:a:x"), PutOp("event:b", 2)}); err != nil {
		t.Fatal(err)
	}
	got, err := snap.Keys("")
	if err != nil || !reflect.DeepEqual(got, []string{"event:a", "modifier:a:x"}) {
		t.Fatalf("snapshot keys = %q, %v", got, err)
	}
	var n int
	if found, err := snap.Get("event:a", &n); !found || err != nil || n != 1 {
		t.Fatalf("snapshot Get = %d %v %v", n, found, err)
	}
	vals, err := snap.GetAll("modifier:")
	if err != nil || len(vals) != 1 {
		t.Fatalf("snapshot GetAll = %s %v", vals, err)
	}
	var raw []string
	err = snap.ScanRaw([]byte("event:"), func(k, v []byte) error {
		raw = append(raw, string(k)+"="+string(v))
		return nil
	})
	if err != nil || !reflect.DeepEqual(raw, []string{"event:a=1"}) {
		t.Fatalf("snapshot ScanRaw = %q, %v", raw, err)
	}
	now, _ := db.Keys("")
	if !reflect.DeepEqual(now, []string{"event:b"}) {
		t.Fatalf("db keys = %q", now)
	}
	if err := snap.Close(); err != nil {
		t.Fatal(err)
	}
	if err := snap.Close(); err != nil {
		t.Fatalf("second snapshot Close: %v", err)
	}
	if _, err := snap.Get("event:a", nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Get on closed snapshot: %v", err)
	}
	if err := snap.ScanRaw(nil, func(_, _ []byte) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Fatalf("ScanRaw on closed snapshot: %v", err)
	}
}

func TestConcurrentUse(t *testing.T) {
	db := openMem(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 200 && ctx.Err() == nil; i++ {
				k := "k:" + string(rune('a'+w))
				if err := db.Put(k, i); err != nil {
					t.Error(err)
					return
				}
				if _, err := db.Get(k, nil); err != nil {
					t.Error(err)
					return
				}
				if _, err := db.Keys("k:"); err != nil {
					t.Error(err)
					return
				}
			}
		}(w)
	}
	wg.Wait()
}

func TestWriteBatchCountsAndAtomicity(t *testing.T) {
	db := openMem(t)
	mustPut(t, db, "p:1", 1)
	mustPut(t, db, "p:2", 1)
	wb := db.NewWriteBatch()
	wb.PutRaw([]byte("a"), []byte(`{"x":1}`))
	wb.Put("b", []int{1})
	wb.Delete([]byte("c"))
	wb.DeletePrefix("p:")
	if wb.Puts() != 2 || wb.Deletes() != 2 || wb.Len() != 4 || wb.Size() == 0 {
		t.Fatalf("counts: puts %d dels %d len %d", wb.Puts(), wb.Deletes(), wb.Len())
	}
	if err := wb.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := wb.Commit(); !errors.Is(err, ErrQuery) {
		t.Fatalf("second Commit: %v", err)
	}
	got, _ := db.Keys("")
	if !reflect.DeepEqual(got, []string{"a", "b"}) {
		t.Fatalf("keys after WriteBatch: %q", got)
	}

	bad := db.NewWriteBatch()
	bad.PutRaw([]byte("z"), []byte("1"))
	bad.Put("y", make(chan int))
	if err := bad.Commit(); !errors.Is(err, ErrQuery) {
		t.Fatalf("Commit of a batch with an unencodable value: %v", err)
	}
	if found, _ := db.Get("z", nil); found {
		t.Fatal("failed WriteBatch applied an op")
	}
}

// Pebble's own messages reach the slog logger given in Options, and
// nothing goes to the standard logger (Pebble's default, which prints to
// stderr).
func TestPebbleLogsGoToSlog(t *testing.T) {
	var std bytes.Buffer
	log.SetOutput(&std)
	defer log.SetOutput(os.Stderr)
	h := newRecordingHandler()
	db, err := Open(t.TempDir(), &Options{Logger: slog.New(h)})
	if err != nil {
		t.Fatal(err)
	}
	mustPut(t, db, "a", 1)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if std.Len() > 0 {
		t.Fatalf("Pebble wrote to the standard logger: %q", std.String())
	}
	if h.count("pebble") == 0 {
		t.Fatal("no Pebble message reached the slog logger")
	}
}

type recStore struct {
	mu   sync.Mutex
	recs []slog.Record
}

// recordingHandler keeps every record, with the attributes added by
// WithAttrs, in a store shared by all handlers derived from it.
type recordingHandler struct {
	store *recStore
	attr  []slog.Attr
}

func newRecordingHandler() *recordingHandler { return &recordingHandler{store: &recStore{}} }

func (h *recordingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordingHandler) Handle(_ context.Context, r slog.Record) error {
	h.store.mu.Lock()
	defer h.store.mu.Unlock()
	r = r.Clone()
	r.AddAttrs(h.attr...)
	h.store.recs = append(h.store.recs, r)
	return nil
}
func (h *recordingHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &recordingHandler{store: h.store, attr: append(append([]slog.Attr{}, h.attr...), as...)}
}
func (h *recordingHandler) WithGroup(string) slog.Handler { return h }

func (h *recordingHandler) count(component string) int {
	h.store.mu.Lock()
	defer h.store.mu.Unlock()
	n := 0
	for _, r := range h.store.recs {
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "component" && a.Value.String() == component {
				n++
			}
			return true
		})
	}
	return n
}

func TestIngestReplacesARangeAtomically(t *testing.T) {
	db := openMem(t)
	mustPut(t, db, "a:keep", 1)
	mustPut(t, db, "m:old", 1)
	mustPut(t, db, "z:keep", 1)
	in := db.NewIngest("m:", PrefixEnd([]byte("m:")))
	f := in.File()
	for _, k := range []string{"m:1", "m:2", "m:3"} {
		if err := f.Add([]byte(k), []byte(`"v"`)); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Add([]byte("m:0"), []byte(`1`)); err == nil {
		t.Fatal("a decreasing key was accepted")
	}
	if err := in.Commit(context.Background()); err == nil {
		t.Fatal("an ingest whose stream failed committed")
	}
	got, _ := db.Keys("")
	if !slices.Equal(got, []string{"a:keep", "m:old", "z:keep"}) {
		t.Fatalf("a failed ingest changed the store: %q", got)
	}
	in = db.NewIngest("m:", PrefixEnd([]byte("m:")))
	f = in.File()
	for _, k := range []string{"m:1", "m:2"} {
		if err := f.Add([]byte(k), []byte(`"v"`)); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Add([]byte("z:out"), []byte(`1`)); err == nil {
		t.Fatal("a key outside the range was accepted")
	}
	in.Abort()
	in = db.NewIngest("m:", PrefixEnd([]byte("m:")))
	f = in.File()
	for _, k := range []string{"m:1", "m:2"} {
		if err := f.Add([]byte(k), []byte(`"v"`)); err != nil {
			t.Fatal(err)
		}
	}
	if err := in.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	got, _ = db.Keys("")
	if !slices.Equal(got, []string{"a:keep", "m:1", "m:2", "z:keep"}) {
		t.Fatalf("after the ingest: %q", got)
	}
	if names, _ := db.opts.FS.List(db.opts.FS.PathJoin(db.path, "bulk-tmp")); len(names) != 0 {
		t.Fatalf("ingest files left: %v", names)
	}
}

// An ingest that Pebble never sees (the store was closed meanwhile) fails
// as a closed store's call and removes the files it wrote.
func TestIngestOnAClosedStoreRemovesItsFiles(t *testing.T) {
	db := openMem(t)
	in := db.NewIngest("m:", PrefixEnd([]byte("m:")))
	f := in.File()
	for _, k := range []string{"m:1", "m:2"} {
		if err := f.Add([]byte(k), []byte(`"v"`)); err != nil {
			t.Fatal(err)
		}
	}
	tmp := db.opts.FS.PathJoin(db.path, "bulk-tmp")
	if names, _ := db.opts.FS.List(tmp); len(names) == 0 {
		t.Fatal("the ingest wrote no file before its commit")
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := in.Commit(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("commit on a closed store: %v, want ErrClosed", err)
	}
	if names, _ := db.opts.FS.List(tmp); len(names) != 0 {
		t.Fatalf("ingest files left: %v", names)
	}
}

// An ingest is durable once it returns, so the writes acknowledged before
// it must be too: otherwise a power cut (or a kill before Pebble's WAL
// writer ran) leaves the ingested data without what came before it, which
// is not a prefix of the batches. Here: a store stamped with a key and
// then given an ingest, cut at its last sync, holds both or neither.
func TestIngestMakesEarlierWritesDurable(t *testing.T) {
	fs := vfs.NewCrashableMem()
	db, err := Open("/store", &Options{FS: fs, Logger: testkit.QuietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	mustPut(t, db, "a:first", 1) // not synced by itself
	in := db.NewIngest("m:", PrefixEnd([]byte("m:")))
	if err := in.File().Add([]byte("m:1"), []byte(`1`)); err != nil {
		t.Fatal(err)
	}
	if err := in.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	crashed := fs.CrashClone(vfs.CrashCloneCfg{}) // exactly what was synced
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	after, err := Open("/store", &Options{FS: crashed, Logger: testkit.QuietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer after.Close()
	got, err := after.Keys("")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []string{"a:first", "m:1"}) {
		t.Fatalf("after a cut at the last sync the store holds %q, want the write before the ingest and the ingest", got)
	}
}
