package kv

import (
	"encoding/json"
	"errors"
	"fmt"
	"unsafe"

	"github.com/cockroachdb/pebble/v2"
)

// Reader is the read half of the API, implemented by *DB and *Snapshot.
// Generators and other in-process readers program against it.
type Reader interface {
	Get(key string, dst any) (found bool, err error)
	Keys(prefix string) ([]string, error)
	GetAll(prefix string) ([]json.RawMessage, error)
	Scan(prefix string, fn func(key string, value json.RawMessage) error) error
	ScanFrom(prefix, start string, fn func(key string, value json.RawMessage) error) error
}

var (
	_ Reader = (*DB)(nil)
	_ Reader = (*Snapshot)(nil)
)

func notJSON(v []byte) error {
	if len(v) > 40 {
		return fmt.Errorf("%w (%d bytes starting %q)", ErrNotJSON, len(v), v[:40])
	}
	return fmt.Errorf("%w (%q)", ErrNotJSON, v)
}

// decodeValue decodes v into dst. A nil dst and a *json.RawMessage take
// the value as stored, unchecked: every write path checked it (see the
// package doc). Decoding into a Go value checks it anyway, and a value
// that is not JSON is told apart from one of the wrong type.
func decodeValue(v []byte, dst any) error {
	switch d := dst.(type) {
	case nil:
		return nil
	case *json.RawMessage:
		b := make(json.RawMessage, len(v)) // with copy, allocated unzeroed
		copy(b, v)
		*d = b
		return nil
	}
	if err := json.Unmarshal(v, dst); err != nil {
		var syntax *json.SyntaxError // Unmarshal checks the whole value before it decodes
		if errors.As(err, &syntax) {
			return fmt.Errorf("%w: %v", notJSON(v), err)
		}
		return err
	}
	return nil
}

func get(r pebble.Reader, path, key string, dst any) (bool, error) {
	v, closer, err := r.Get(keyBytes(key))
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, queryError(path, "GET "+key, err)
	}
	defer closer.Close()
	if err := decodeValue(v, dst); err != nil {
		return false, queryError(path, "GET "+key, err)
	}
	return true, nil
}

// keyBytes is key as the []byte Pebble's Get takes, without the copy (an
// allocation on every Get) that a conversion makes: Pebble's Get neither
// changes its key nor keeps it past the call.
func keyBytes(key string) []byte { return unsafe.Slice(unsafe.StringData(key), len(key)) }

// iterate walks [prefix+start, end-of-prefix) and always closes its
// iterator, also when fn panics: a leaked iterator makes Pebble's Close
// fail, so none is ever handed out.
func iterate(r pebble.Reader, prefix, start string, fn func(it *pebble.Iterator) error) (err error) {
	var lower []byte // nil, not empty: Pebble's race-build invariants index key[0]
	if start > prefix {
		lower = []byte(start)
	} else if prefix != "" {
		lower = []byte(prefix)
	}
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: PrefixEnd([]byte(prefix))})
	if err != nil {
		return err
	}
	defer func() {
		if cerr := it.Close(); err == nil {
			err = cerr
		}
	}()
	for it.First(); it.Valid(); it.Next() {
		if err := fn(it); err != nil {
			return err
		}
	}
	return it.Error()
}

func keys(r pebble.Reader, path, prefix string) ([]string, error) {
	var out []string
	err := iterate(r, prefix, "", func(it *pebble.Iterator) error {
		out = append(out, string(it.Key()))
		return nil
	})
	if err != nil {
		return nil, queryError(path, "KEYS "+prefix+"*", err)
	}
	return out, nil
}

func getAll(r pebble.Reader, path, prefix string) ([]json.RawMessage, error) {
	var out []json.RawMessage
	err := iterate(r, prefix, "", func(it *pebble.Iterator) error {
		v, err := it.ValueAndErr()
		if err != nil {
			return err
		}
		out = append(out, append(json.RawMessage(nil), v...))
		return nil
	})
	if err != nil {
		return nil, queryError(path, "GETALL "+prefix+"*", err)
	}
	return out, nil
}

// stopped carries an error returned by a Scan callback through iterate,
// so that Scan can hand it back unwrapped.
type stopped struct{ err error }

func (s stopped) Error() string { return s.err.Error() }

func scan(r pebble.Reader, path, prefix, start string, fn func(key string, value json.RawMessage) error) error {
	var keys keyArena
	err := iterate(r, prefix, start, func(it *pebble.Iterator) error {
		v, err := it.ValueAndErr()
		if err != nil {
			return err
		}
		if err := fn(keys.string(it.Key()), v); err != nil {
			return stopped{err}
		}
		return nil
	})
	var s stopped
	if errors.As(err, &s) {
		return s.err
	}
	if err != nil {
		return queryError(path, "SCAN "+prefix+"*", err)
	}
	return nil
}

// keyArenaBlock is the size of the blocks a keyArena carves keys from.
const keyArenaBlock = 1 << 10

// keyArena makes the strings of the keys a Scan hands its callback, which
// may keep them: carved from shared blocks, one allocation per block of
// keys instead of one per key (a string per key cost a tenth of a cached
// Scan, with the collections its garbage caused). A block is never
// written again where a key was handed out, so the strings never change;
// a callback that keeps a key keeps its block alive, keyArenaBlock bytes
// at most.
type keyArena struct{ buf []byte }

func (a *keyArena) string(k []byte) string {
	if len(k) == 0 {
		return ""
	}
	if len(k) > cap(a.buf)-len(a.buf) {
		if len(k) > keyArenaBlock/8 {
			return string(k) // a long key alone
		}
		a.buf = make([]byte, 0, keyArenaBlock)
	}
	n := len(a.buf)
	a.buf = append(a.buf, k...)
	return unsafe.String(&a.buf[n], len(k))
}
