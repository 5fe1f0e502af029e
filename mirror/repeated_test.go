package mirror

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/mirrord/mirrord/internal/extsort"
	"github.com/mirrord/mirrord/kv"
	"github.com/mirrord/mirrord/schema"
)

// A lookup waits until the writer of its key's range has settled the key
// (gone past it, or finished), and then tells whether the id repeats and
// which offset won.
func TestRepeatedIDsLookupWaitsForItsRange(t *testing.T) {
	r := newRepeatedIDs([][]byte{nil, []byte("event:m"), nil})
	type result struct {
		off      uint64
		repeated bool
	}
	waitFor := func(key string, rng int, settle func()) result {
		t.Helper()
		got := make(chan result, 1)
		go func() {
			off, rep := r.lookup([]byte(key))
			got <- result{off, rep}
		}()
		for r.waitingFor(rng) == 0 {
			select {
			case res := <-got:
				t.Fatalf("lookup(%q) returned %+v before its key was settled", key, res)
			default:
				runtime.Gosched()
			}
		}
		settle()
		return <-got
	}
	// Range 1's writer goes past event:x, which repeats, last at 900.
	if res := waitFor("event:x", 1, func() { r.repeated([]byte("event:x"), 900); r.settle(1, []byte("event:y")) }); res != (result{900, true}) {
		t.Fatalf("event:x: %+v", res)
	}
	// Below what range 1 settled, no wait: and event:p occurs once.
	if off, rep := r.lookup([]byte("event:p")); rep {
		t.Fatalf("event:p repeats at %d", off)
	}
	// Range 0 has settled nothing: event:b waits until its writer finishes.
	if res := waitFor("event:b", 0, func() { r.finish(0) }); res != (result{0, false}) {
		t.Fatalf("event:b: %+v", res)
	}
}

// waitingFor returns how many lookups wait for range i, and
// rangeDone whether its writer finished.
func (r *repeatedIDs) waitingFor(i int) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.waiting[i]
}

func (r *repeatedIDs) rangeDone(i int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.done[i]
}

// The modifiers of an id that is a prefix of a range's bound (a and the
// bound a0) sort after the bound's ("modifier:a:" > "modifier:a0"), so
// they are written by the next range's modifiers writer, which must ask
// the first range's events writer whether a repeats. Each id keeps the
// modifiers of its last occurrence only.
func TestModifiersOfAnIDBeyondItsRange(t *testing.T) {
	db, err := kv.Open("/store", &kv.Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	events, mods := newSorter(db, 1<<20, len(schema.PrefixEvent)), newSorter(db, 1<<20, len(schema.PrefixModifier))
	t.Cleanup(func() { events.Close(); mods.Close() })
	type occurrence struct {
		id   string
		off  uint64
		mods map[string]string
	}
	for _, o := range []occurrence{
		{"a", 10, map[string]string{"x": "1"}},
		{"a0", 20, map[string]string{"y": "2"}},
		{"a", 30, map[string]string{"z": "3"}}, // a's winner
		{"b", 40, map[string]string{"w": "4"}},
		{"a0", 50, nil}, // a0's winner: no modifiers
	} {
		if err := events.Add(schema.AppendEventKey(nil, o.id), []byte(`{}`), o.off); err != nil {
			t.Fatal(err)
		}
		for name, v := range o.mods {
			if err := mods.Add(schema.AppendModifierKey(nil, o.id, name), fmt.Appendf(nil, `{"value":%q}`, v), o.off); err != nil {
				t.Fatal(err)
			}
		}
	}
	bounds := [][]byte{nil, []byte(schema.EventKey("a0")), nil}
	rep := newRepeatedIDs(bounds)
	in := db.NewIngest(schema.PrefixEvent, kv.PrefixEnd([]byte(schema.PrefixModifier)))
	var wg sync.WaitGroup
	errs := make([]error, 4)
	start := func(k int, write func() error) <-chan struct{} {
		done := make(chan struct{})
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(done)
			errs[k] = write()
		}()
		return done
	}
	var files [6]*kv.IngestFile // Ingest.File is not for goroutines
	for i := range files {
		files[i] = in.File()
	}
	events0 := func() error {
		_, err := writeEvents([]*extsort.Sorter{events}, rep, 0, eventWriter{events: files[0], digests: files[1]})
		return err
	}
	start(1, func() error {
		_, err := writeEvents([]*extsort.Sorter{events}, rep, 1, eventWriter{events: files[2], digests: files[3]})
		return err
	})
	var mods1 <-chan struct{}
	for i := range 2 {
		done := start(2+i, func() error {
			_, err := writeModifiers([]*extsort.Sorter{mods}, rep, modBound(bounds[i]), modBound(bounds[i+1]), files[4+i])
			return err
		})
		if i == 1 {
			mods1 = done
		}
	}
	// Range 0's events writer starts only once range 1's is done and the
	// second modifiers writer waits for range 0 (for a), or has finished
	// without waiting (a lookup that asked the wrong range): a's winner
	// cannot be known by then.
	for ready := false; !ready; {
		select {
		case <-mods1:
			ready = true
		default:
			ready = rep.rangeDone(1) && rep.waitingFor(0) > 0
			runtime.Gosched()
		}
	}
	start(0, events0)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if err := in.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	var got []string
	if err := db.ScanRaw([]byte(schema.PrefixModifier), func(k, v []byte) error {
		got = append(got, fmt.Sprintf("%s=%s", k, v))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := []string{`modifier:a:z={"value":"3"}`, `modifier:b:w={"value":"4"}`}
	if !slices.Equal(got, want) {
		t.Fatalf("modifiers %q, want %q", got, want)
	}
}
