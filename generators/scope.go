package generators

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/mirrord/mirrord/kv"
	"github.com/mirrord/mirrord/schema"
)

// Scope is a generator's window on its own keys: its values, under
// generated:{name}:, and through State its private state, under
// mirrord:state:{name}:. Every key it takes is relative: Put("2025-01", v)
// writes generated:{name}:2025-01, and since the key is escaped as one
// segment, no key (not "../x", not "a:b", not "%3A") can reach outside its
// prefix. Reads see the generator's own writes of this run
// (read-your-writes); nothing is visible to anyone else until the runner
// commits the run together with the new position.
type Scope struct {
	w      *writes
	prefix string // the full key prefix this view addresses
	family bool   // a Sub: keys are the third segment, never empty
}

// writes are one run's pending writes, shared by a generator's views.
type writes struct {
	name     string
	prefixes []string // every prefix the generator owns: what a rebuild clears
	live     kv.Reader

	pending map[string]op // full key -> pending write
	cleared bool          // everything under prefixes is being deleted (rebuild)
	size    int

	// The keys of pending in order, for Scan: sorted holds most of them,
	// fresh the ones added since, sorted when a Scan needs them and folded
	// into sorted once there are many. Looking a prefix up is then a
	// binary search, not a walk over every pending key: summary scans a
	// month after each of a rebuild's million writes went pending, and
	// walking them was 11 of the 27 s its rebuild of 1M events took.
	sorted, fresh []string

	scanning int // Scans in progress (a callback may Scan again)

	// missed is the last key Get found neither pending nor in the store:
	// generators read an entry and then delete it, and the Delete needs
	// to know whether the store has it (see op.stored) without asking
	// Pebble twice. A commit forgets it.
	missed string

	// stream, in a streamed rebuild, holds the writes spilt to sorted
	// runs once the pending ones pass its budget (see streamScope).
	stream  *spillRuns
	scratch []byte // a key being built
	written int64  // keys written out by writeOutput

	// spilled, in a scope that began cleared (a rebuild from the store),
	// holds every key committed since: under the prefixes nothing else is
	// there. (A streamed rebuild's runs have a filter of their own: see
	// spillRuns.)
	spilled *spilledKeys
}

type op struct {
	value []byte
	del   bool
	// stored: the deleted key is in the store, so the commit writes a
	// tombstone. A key that never reached the store needs none: in a
	// rebuild of hashtags, 700,000 untagged events each deleted an index
	// entry nothing had written, and those tombstones were a third of the
	// rebuild's writes and compactions.
	stored bool
}

func newScope(name string, live kv.Reader, cleared bool) *Scope {
	w := &writes{name: name, prefixes: []string{schema.GeneratorPrefix(name), schema.StatePrefix(name)},
		live: live, pending: map[string]op{}, cleared: cleared}
	if cleared {
		w.spilled = &spilledKeys{}
	}
	return &Scope{w: w, prefix: w.prefixes[0]}
}

// State returns the generator's view of its private state, under
// mirrord:state:{name}:: what it keeps only to stay incremental (an index
// of its events, say), which no reader of its values sees. It is written
// and committed with the values, and dropped with them.
func (s *Scope) State() *Scope { return &Scope{w: s.w, prefix: s.w.prefixes[1]} }

// unstored reports a key the store certainly does not hold: everything
// under the prefixes is being deleted, or this rebuild never committed it.
func (w *writes) unstored(full string) bool {
	return w.cleared || full == w.missed || (w.spilled != nil && !w.spilled.mayHave(full))
}

// Sub returns the view of a family of values under key, one per sub-key:
// Sub(key).Put(sub, v) writes generated:{name}:{key}:{sub}, which readers
// list with Keys or Scan of generated:{name}:{key}: (hashtags keeps one
// value per tag and event this way, generated:hashtags:{tag}:{id}, so
// that no value grows with the log). A Sub's keys must not be empty, and
// a Sub has no Subs of its own.
func (s *Scope) Sub(key string) *Scope {
	if s.family {
		return &Scope{w: s.w, prefix: "", family: true} // every use fails: see check
	}
	return &Scope{w: s.w, prefix: s.prefix + schema.EscapeSegment(key) + ":", family: true}
}

// ErrKey: a key a Scope cannot address (an empty key of a Sub, or any key
// of a Sub of a Sub).
var ErrKey = errors.New("key outside what a generator can address")

// check rejects the keys a view cannot address.
func (s *Scope) check(key string) error {
	switch {
	case s.family && s.prefix == "":
		return fmt.Errorf("%w: %s: a Sub of a Sub (key %q)", ErrKey, s.w.name, key)
	case s.family && key == "":
		return fmt.Errorf("%w: %s: an empty key in %s", ErrKey, s.w.name, s.prefix)
	}
	return nil
}

// Name returns the generator's name.
func (s *Scope) Name() string { return s.w.name }

// Key returns the full store key of a relative key.
func (s *Scope) Key(key string) string { return s.prefix + schema.EscapeSegment(key) }

// Put stores value, encoded as JSON, under the relative key.
func (s *Scope) Put(key string, value any) error {
	if err := s.check(key); err != nil {
		return err
	}
	b, err := json.Marshal(value)
	if err != nil {
		return fmt.Errorf("%s: encoding the value of %q: %w", s.w.name, key, err)
	}
	return s.w.set(s.Key(key), op{value: b})
}

// Delete deletes the relative key (a missing key is not an error).
func (s *Scope) Delete(key string) error {
	if err := s.check(key); err != nil {
		return err
	}
	w := s.w
	full := s.Key(key)
	stored := false
	if !w.unstored(full) {
		var err error
		if stored, err = w.live.Get(full, nil); err != nil {
			return err
		}
	}
	return w.set(full, op{del: true, stored: stored})
}

func (w *writes) set(full string, o op) error {
	if w.stream != nil {
		if _, ok := w.pending[full]; !ok && !o.del {
			// A value nobody read in this run: to the append log.
			appendRec(w.stream, full, o.value)
			w.size += len(full) + len(o.value)
			return w.maybeSpillUnlessScanning()
		}
	}
	if old, ok := w.pending[full]; ok {
		w.size -= len(full) + len(old.value)
	} else {
		w.fresh = append(w.fresh, full)
	}
	w.pending[full] = o
	w.size += len(full) + len(o.value)
	return w.maybeSpillUnlessScanning()
}

func (w *writes) maybeSpillUnlessScanning() error {
	if w.scanning > 0 {
		return nil // see Scan
	}
	return w.maybeSpill()
}

func (w *writes) maybeSpill() error {
	if w.stream != nil && w.size > w.stream.budget {
		return w.spillRun()
	}
	return nil
}

// Get decodes the value of the relative key into dst, with this run's
// writes applied.
func (s *Scope) Get(key string, dst any) (bool, error) {
	if err := s.check(key); err != nil {
		return false, err
	}
	return s.w.get(s.Key(key), dst)
}

func (w *writes) get(full string, dst any) (bool, error) {
	if o, ok := w.pending[full]; ok {
		if o.del {
			return false, nil
		}
		if dst == nil {
			return true, nil
		}
		return true, json.Unmarshal(o.value, dst)
	}
	if w.stream != nil {
		return w.streamGet(full, dst)
	}
	if w.unstored(full) {
		w.missed = full
		return false, nil
	}
	found, err := w.live.Get(full, dst)
	if err == nil && !found {
		w.missed = full
	}
	return found, err
}

// Scan calls fn, in key order, with every relative key that starts with
// prefix and its value, with this run's writes applied. The keys of a
// Sub are not the view's own: they are seen through the Sub.
func (s *Scope) Scan(prefix string, fn func(key string, value json.RawMessage) error) error {
	return s.ScanFrom(prefix, "", fn)
}

// ScanFrom is Scan from the relative key start on (start sorts after
// prefix, or starts with it): an ordered index is read from any point,
// and a Scan stopped after its first key (by an error of fn's own) is a
// seek.
func (s *Scope) ScanFrom(prefix, start string, fn func(key string, value json.RawMessage) error) error {
	if s.family && s.prefix == "" {
		return s.check(prefix)
	}
	// A spill commits and forgets the pending writes, which this Scan is
	// walking (and reads the store from an iterator opened before it):
	// writes made from inside fn wait until the outermost Scan is done.
	w := s.w
	from := ""
	if start != "" {
		from = s.Key(start)
	}
	err := func() error {
		w.scanning++
		defer func() { w.scanning-- }()
		return w.scan(s.Key(prefix), from, func(k string, v json.RawMessage) error {
			rel := k[len(s.prefix):]
			if strings.IndexByte(rel, ':') >= 0 {
				return nil // a Sub's
			}
			rel, err := schema.UnescapeSegment(rel)
			if err != nil {
				return fmt.Errorf("%s: key %q: %w", w.name, k, err)
			}
			return fn(rel, v)
		})
	}()
	if err == nil && w.scanning == 0 {
		err = w.maybeSpill()
	}
	return err
}

// scan calls emit with every full key under full, from the full key from
// on ("": all of them), and its value, pending writes applied, in key
// order.
func (w *writes) scan(full, from string, emit func(key string, value json.RawMessage) error) error {
	if w.stream != nil {
		return w.streamScan(full, from, emit)
	}
	mine := w.pendingUnder(full)
	if from != "" {
		lo, _ := slices.BinarySearch(mine, from)
		mine = mine[lo:]
	}
	// flush emits the pending writes ordered before k (all when k is "").
	i := 0
	flush := func(k string) error {
		for ; i < len(mine) && (k == "" || mine[i] < k); i++ {
			if o := w.pending[mine[i]]; !o.del {
				if err := emit(mine[i], o.value); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if !w.cleared {
		start := full
		if from > full {
			start = from
		}
		err := w.live.ScanFrom(full, start, func(k string, v json.RawMessage) error {
			if err := flush(k); err != nil {
				return err
			}
			if _, overridden := w.pending[k]; overridden {
				return nil // emitted by flush, or deleted
			}
			return emit(k, v)
		})
		if err != nil {
			return err
		}
	}
	return flush("")
}

// pendingUnder returns the pending keys that start with prefix, in order.
func (w *writes) pendingUnder(prefix string) []string {
	if len(w.fresh) > 0 {
		slices.Sort(w.fresh)
		// Folding costs a pass over sorted: done once fresh is a fair
		// share of it, so that a Scan after each Put stays cheap.
		if len(w.fresh) > 64+len(w.sorted)/8 {
			w.sorted, w.fresh = mergeSorted(w.sorted, w.fresh), nil
		}
	}
	in := func(keys []string) []string {
		lo, _ := slices.BinarySearch(keys, prefix)
		hi := lo
		for hi < len(keys) && strings.HasPrefix(keys[hi], prefix) {
			hi++
		}
		return keys[lo:hi]
	}
	a, b := in(w.sorted), in(w.fresh)
	if len(b) == 0 {
		return a
	}
	return mergeSorted(a, b)
}

// mergeSorted merges two sorted lists into a new one: a Scan may still be
// walking the old ones (a generator's callback can Scan again).
func mergeSorted(a, b []string) []string {
	out := make([]string, 0, len(a)+len(b))
	for len(a) > 0 && len(b) > 0 {
		if a[0] < b[0] {
			out, a = append(out, a[0]), a[1:]
		} else {
			out, b = append(out, b[0]), b[1:]
		}
	}
	return append(append(out, a...), b...)
}

// commitTo adds the pending writes to wb, first deleting everything under
// the generator's prefixes when the scope was cleared.
func (s *Scope) commitTo(wb *kv.WriteBatch) { s.w.commitTo(wb) }

func (w *writes) commitTo(wb *kv.WriteBatch) {
	if w.cleared {
		for _, p := range w.prefixes {
			wb.DeletePrefix(p)
		}
	}
	for _, k := range w.pendingUnder("") {
		if o := w.pending[k]; o.del {
			if o.stored {
				wb.Delete([]byte(k))
			}
		} else {
			wb.PutRaw([]byte(k), o.value)
			if w.spilled != nil {
				w.spilled.add(k)
			}
		}
	}
}

// committed forgets the pending writes once they are in the store.
func (s *Scope) committed() { s.w.committed() }

func (w *writes) committed() {
	clear(w.pending)
	w.sorted, w.fresh = nil, nil
	w.missed = ""
	w.size = 0
	w.cleared = false
}

// Len returns the number of pending writes.
func (s *Scope) Len() int { return len(s.w.pending) }
