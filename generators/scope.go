package generators

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/mirrord/mirrord/kv"
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

	// spill, set by the runner for a rebuild, commits the pending writes
	// when they grow large (the rebuild stays marked until it completes).
	spill func() error
}

type op struct {
	value []byte
	del   bool
}

// spillSize bounds the pending writes of one run before a rebuild commits
// part of them.
const spillSize = 8 << 20

func newScope(name string, live kv.Reader, cleared bool) *Scope {
	return &Scope{name: name, prefix: kv.GeneratorPrefix(name), live: live, pending: map[string]op{}, cleared: cleared}
}

// Name returns the generator's name.
func (s *Scope) Name() string { return s.name }

// Key returns the full store key of a relative key.
func (s *Scope) Key(key string) string { return kv.GeneratedKey(s.name, key) }

// Put stores value, encoded as JSON, under the relative key.
func (s *Scope) Put(key string, value any) error {
	b, err := json.Marshal(value)
	if err != nil {
		return fmt.Errorf("%s: encoding the value of %q: %w", s.name, key, err)
	}
	return s.set(s.Key(key), op{value: b})
}

// Delete deletes the relative key (a missing key is not an error).
func (s *Scope) Delete(key string) error { return s.set(s.Key(key), op{del: true}) }

func (s *Scope) set(full string, o op) error {
	if old, ok := s.pending[full]; ok {
		s.size -= len(full) + len(old.value)
	}
	s.pending[full] = o
	s.size += len(full) + len(o.value)
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
	if s.cleared {
		return false, nil
	}
	return s.live.Get(full, dst)
}

// Scan calls fn, in key order, with every relative key that starts with
// prefix and its value, with this run's writes applied.
func (s *Scope) Scan(prefix string, fn func(key string, value json.RawMessage) error) error {
	full := s.Key(prefix)
	var mine []string
	for k := range s.pending {
		if strings.HasPrefix(k, full) {
			mine = append(mine, k)
		}
	}
	sort.Strings(mine)
	emit := func(k string, v []byte) error {
		p, err := kv.ParseKey(k)
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

// commitTo adds the pending writes to wb, first deleting everything under
// the prefix when the scope was cleared.
func (s *Scope) commitTo(wb *kv.WriteBatch) {
	if s.cleared {
		wb.DeletePrefix(s.prefix)
	}
	keys := make([]string, 0, len(s.pending))
	for k := range s.pending {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if o := s.pending[k]; o.del {
			wb.Delete([]byte(k))
		} else {
			wb.PutRaw([]byte(k), o.value)
		}
	}
}

// committed forgets the pending writes once they are in the store.
func (s *Scope) committed() {
	clear(s.pending)
	s.size = 0
	s.cleared = false
}

// Len returns the number of pending writes.
func (s *Scope) Len() int { return len(s.pending) }
