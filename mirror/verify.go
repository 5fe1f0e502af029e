package mirror

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"sort"
	"strings"

	"github.com/cespare/xxhash/v2"
	"github.com/mirrord/mirrord/eventlog"
	"github.com/mirrord/mirrord/kv"
)

// Report is the outcome of Verify: what the store holds that the log does
// not say, and the reverse.
type Report struct {
	// Events and Modifiers the log says the store should hold.
	Events, Modifiers int
	// Invalid entries in the log.
	Invalid int
	// Pending is an incomplete value at the end of the log (not expected
	// in the store).
	Pending *PendingTail
	// Missing, Extra and Differ count the keys absent from the store,
	// present but not in the log, and present with another value; the
	// slices hold the first of them.
	Missing, Extra, Differ             int
	MissingKeys, ExtraKeys, DifferKeys []string
	// Bookkeeping counts internal inconsistencies (a digest that does not
	// match its event), which would mislead the next reconcile.
	Bookkeeping     int
	BookkeepingKeys []string
}

// OK reports whether the store equals what the log says it should be.
func (r *Report) OK() bool {
	return r.Missing == 0 && r.Extra == 0 && r.Differ == 0 && r.Bookkeeping == 0
}

// Summary is one line describing the report.
func (r *Report) Summary() string {
	if r.OK() {
		return fmt.Sprintf("the store equals the log: %d events, %d modifiers (%d invalid entries skipped)", r.Events, r.Modifiers, r.Invalid)
	}
	return fmt.Sprintf("the store differs from the log: %d missing, %d extra, %d differing keys, %d bookkeeping errors",
		r.Missing, r.Extra, r.Differ, r.Bookkeeping)
}

const maxReportKeys = 20

func note(n *int, keys *[]string, key string) {
	*n++
	if len(*keys) < maxReportKeys {
		*keys = append(*keys, key)
	}
}

// ErrLogChanged: the log changed while Verify read it; run it again.
var ErrLogChanged = errors.New("the log changed during verification")

// Verify re-derives the event: and modifier: content from the log at path
// and compares it with the store. Values are compared as JSON: key order
// and number spelling do not matter. It holds one small entry per event in
// memory, never the values.
func Verify(ctx context.Context, db kv.Reader, path string, maxValueSize int) (*Report, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening the event log: %w", err)
	}
	defer f.Close()
	before, err := fstat(f)
	if err != nil {
		return nil, err
	}
	r := &Report{}
	winners := map[string]desired{} // escaped id -> last valid occurrence
	dec := eventlog.NewDecoder(f, &eventlog.Options{MaxValueSize: maxValueSize})
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		ent, err := dec.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading the event log: %w", err)
		}
		switch ent.Kind {
		case eventlog.KindEvent:
			esc := string(kv.AppendEventKey(nil, ent.ID)[len(kv.PrefixEvent):])
			winners[esc] = desired{digest: xxhash.Sum64(ent.Raw), off: ent.Offset, n: ent.End - ent.Offset, mods: len(ent.Modifiers)}
		case eventlog.KindInvalid:
			r.Invalid++
		case eventlog.KindIncomplete:
			r.Pending = &PendingTail{Offset: ent.Offset, Line: ent.Line, Bytes: ent.End - ent.Offset, Reason: ent.Reason}
		}
	}
	escs := make([]string, 0, len(winners))
	for k := range winners {
		escs = append(escs, k)
	}
	sort.Strings(escs)

	// Every expected event, its modifiers and its digest.
	for _, esc := range escs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		d := winners[esc]
		u, err := readEvent(f, d, maxValueSize)
		if err != nil {
			return nil, ErrLogChanged
		}
		r.Events++
		r.Modifiers += len(u.mods)
		ekey := kv.PrefixEvent + esc
		var got json.RawMessage
		found, err := db.Get(ekey, &got)
		switch {
		case err != nil:
			return nil, err
		case !found:
			note(&r.Missing, &r.MissingKeys, ekey)
		case !jsonEqual(got, u.raw):
			note(&r.Differ, &r.DifferKeys, ekey)
		}
		want := map[string][]byte{}
		for _, m := range u.mods {
			want[string(kv.AppendModifierKey(nil, u.id, m.Name))] = append(append([]byte(`{"value":`), m.Value...), '}')
		}
		err = db.Scan(string(kv.AppendModifiersOf(nil, u.id)), func(k string, v json.RawMessage) error {
			w, ok := want[k]
			switch {
			case !ok:
				note(&r.Extra, &r.ExtraKeys, k)
			case !jsonEqual(v, w):
				note(&r.Differ, &r.DifferKeys, k)
			}
			delete(want, k)
			return nil
		})
		if err != nil {
			return nil, err
		}
		for k := range sortedKeys(want) {
			note(&r.Missing, &r.MissingKeys, k)
		}
		dkey := kv.PrefixDigest + esc
		var dv json.RawMessage
		found, err = db.Get(dkey, &dv)
		if err != nil {
			return nil, err
		}
		if h, ok := parseDigestValue(dv); !found || !ok || h != d.digest {
			note(&r.Bookkeeping, &r.BookkeepingKeys, dkey)
		}
	}

	// Nothing else under event:, modifier: or mirrord:digest:.
	idOf := func(k, prefix string) string {
		rest := k[len(prefix):]
		if prefix == kv.PrefixModifier {
			rest, _, _ = strings.Cut(rest, ":")
		}
		return rest
	}
	for _, prefix := range []string{kv.PrefixEvent, kv.PrefixModifier, kv.PrefixDigest} {
		err := db.Scan(prefix, func(k string, _ json.RawMessage) error {
			if _, ok := winners[idOf(k, prefix)]; !ok {
				if prefix == kv.PrefixDigest {
					note(&r.Bookkeeping, &r.BookkeepingKeys, k)
				} else {
					note(&r.Extra, &r.ExtraKeys, k)
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}

	after, err := statFile(path)
	if err != nil || after != before {
		return nil, ErrLogChanged
	}
	return r, nil
}

func sortedKeys(m map[string][]byte) func(func(string) bool) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return func(yield func(string) bool) {
		for _, k := range keys {
			if !yield(k) {
				return
			}
		}
	}
}

// jsonEqual compares two JSON values as values: byte-equal values are
// equal, and otherwise both are decoded and compared.
func jsonEqual(a, b []byte) bool {
	if bytes.Equal(a, b) {
		return true
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}
