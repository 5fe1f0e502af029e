package generators

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/mirrord/mirrord/kv"
	"github.com/mirrord/mirrord/schema"
)

// Scope is a generator's window on its own values. Every key it takes is
// relative: Put("2025-01", v) writes generated:{name}:2025-01, and since
// the key is escaped as one segment, no key (not "../x", not "a:b", not
// "%3A") can reach outside generated:{name}:. Reads see the generator's
// own writes of this run (read-your-writes); nothing is visible to anyone
// else until the runner commits the run together with the new position.
type Scope struct {
	name   string
	prefix string // generated:{name}: as a key
	live   kv.Reader

	pending map[string]op // full key -> pending write
	cleared bool          // everything under prefix is being deleted (rebuild)
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

	// spill, set by the runner for a rebuild, commits the pending writes
	// when they grow large (the rebuild stays marked until it completes).
	spill func() error

	// spilled, in a scope that began cleared (a rebuild), holds every key
	// committed since: under the prefix the store has nothing else.
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

// spillSize bounds the pending writes of one run before a rebuild commits
// part of them.
const spillSize = 4 << 20

func newScope(name string, live kv.Reader, cleared bool) *Scope {
	s := &Scope{name: name, prefix: schema.GeneratorPrefix(name), live: live, pending: map[string]op{}, cleared: cleared}
	if cleared {
		s.spilled = &spilledKeys{}
	}
	return s
}

// unstored reports a key the store certainly does not hold: everything
// under the prefix is being deleted, or this rebuild never committed it.
func (s *Scope) unstored(full string) bool {
	return s.cleared || full == s.missed || (s.spilled != nil && !s.spilled.mayHave(full))
}

// Name returns the generator's name.
func (s *Scope) Name() string { return s.name }

// Key returns the full store key of a relative key.
func (s *Scope) Key(key string) string { return schema.GeneratedKey(s.name, key) }

// Put stores value, encoded as JSON, under the relative key.
func (s *Scope) Put(key string, value any) error {
	b, err := json.Marshal(value)
	if err != nil {
		return fmt.Errorf("%s: encoding the value of %q: %w", s.name, key, err)
	}
	return s.set(s.Key(key), op{value: b})
}

// Delete deletes the relative key (a missing key is not an error).
func (s *Scope) Delete(key string) error {
	full := s.Key(key)
	stored := false
	if !s.unstored(full) {
		var err error
		if stored, err = s.live.Get(full, nil); err != nil {
			return err
		}
	}
	return s.set(full, op{del: true, stored: stored})
}

func (s *Scope) set(full string, o op) error {
	if old, ok := s.pending[full]; ok {
		s.size -= len(full) + len(old.value)
	} else {
		s.fresh = append(s.fresh, full)
	}
	s.pending[full] = o
	s.size += len(full) + len(o.value)
	if s.scanning > 0 {
		return nil // see Scan
	}
	return s.maybeSpill()
}

func (s *Scope) maybeSpill() error {
	if s.spill != nil && s.size > spillSize {
		return s.spill()
	}
	return nil
}

// Get decodes the value of the relative key into dst, with this run's
// writes applied.
func (s *Scope) Get(key string, dst any) (bool, error) {
	full := s.Key(key)
	if o, ok := s.pending[full]; ok {
		if o.del {
			return false, nil
		}
		if dst == nil {
			return true, nil
		}
		return true, json.Unmarshal(o.value, dst)
	}
	if s.unstored(full) {
		s.missed = full
		return false, nil
	}
	found, err := s.live.Get(full, dst)
	if err == nil && !found {
		s.missed = full
	}
	return found, err
}

// Scan calls fn, in key order, with every relative key that starts with
// prefix and its value, with this run's writes applied.
func (s *Scope) Scan(prefix string, fn func(key string, value json.RawMessage) error) error {
	// A spill commits and forgets the pending writes, which this Scan is
	// walking (and reads the store from an iterator opened before it):
	// writes made from inside fn wait until the outermost Scan is done.
	err := func() error {
		s.scanning++
		defer func() { s.scanning-- }()
		return s.scan(prefix, fn)
	}()
	if err == nil && s.scanning == 0 {
		err = s.maybeSpill()
	}
	return err
}

func (s *Scope) scan(prefix string, fn func(key string, value json.RawMessage) error) error {
	full := s.Key(prefix)
	mine := s.pendingUnder(full)
	emit := func(k string, v []byte) error {
		p, err := schema.ParseKey(k)
		if err != nil {
			return err
		}
		return fn(p.Name, v)
	}
	// flush emits the pending writes ordered before k (all when k is "").
	i := 0
	flush := func(k string) error {
		for ; i < len(mine) && (k == "" || mine[i] < k); i++ {
			if o := s.pending[mine[i]]; !o.del {
				if err := emit(mine[i], o.value); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if !s.cleared {
		err := s.live.Scan(full, func(k string, v json.RawMessage) error {
			if err := flush(k); err != nil {
				return err
			}
			if _, overridden := s.pending[k]; overridden {
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
func (s *Scope) pendingUnder(prefix string) []string {
	if len(s.fresh) > 0 {
		slices.Sort(s.fresh)
		// Folding costs a pass over sorted: done once fresh is a fair
		// share of it, so that a Scan after each Put stays cheap.
		if len(s.fresh) > 64+len(s.sorted)/8 {
			s.sorted, s.fresh = mergeSorted(s.sorted, s.fresh), nil
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
	a, b := in(s.sorted), in(s.fresh)
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
// the prefix when the scope was cleared.
func (s *Scope) commitTo(wb *kv.WriteBatch) {
	if s.cleared {
		wb.DeletePrefix(s.prefix)
	}
	for _, k := range s.pendingUnder(s.prefix) {
		if o := s.pending[k]; o.del {
			if o.stored {
				wb.Delete([]byte(k))
			}
		} else {
			wb.PutRaw([]byte(k), o.value)
			if s.spilled != nil {
				s.spilled.add(k)
			}
		}
	}
}

// committed forgets the pending writes once they are in the store.
func (s *Scope) committed() {
	clear(s.pending)
	s.sorted, s.fresh = nil, nil
	s.missed = ""
	s.size = 0
	s.cleared = false
}

// Len returns the number of pending writes.
func (s *Scope) Len() int { return len(s.pending) }
