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
	"github.com/mirrord/mirrord/schema"
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
	// Covered is how much of the log was compared (all of it, or the
	// store's checkpoint for VerifyCheckpoint); LogSize its size.
	Covered, LogSize int64
	// Ref, Commit and Blob are, in git mode, the ref whose log was
	// compared, its commit and the log's blob there.
	Ref    string `json:",omitempty"`
	Commit string `json:",omitempty"`
	Blob   string `json:",omitempty"`
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

// ErrResyncing: the store is being rebuilt (a resync or a first load);
// there is nothing complete to verify yet.
var ErrResyncing = errors.New("the store is being rebuilt (resync or first load in progress); verify once it completes")

// prefixMatches reports whether [0, cp.Offset) of f still hashes as the
// checkpoint says (an empty prefix always does).
func prefixMatches(f *os.File, cp *Checkpoint) bool {
	if cp.Offset == 0 {
		return true
	}
	sum, err := hashPrefix(f, cp.Offset)
	return err == nil && sum == uint64(cp.PrefixSum)
}

// Verify re-derives the event: and modifier: content from the log at path
// and compares it with the store. Values are compared as JSON: key order
// and number spelling do not matter. It holds one small entry per event in
// memory, never the values.
func Verify(ctx context.Context, db kv.Reader, path string, maxValueSize int) (*Report, error) {
	return VerifyLog(ctx, db, Log{Path: path}, maxValueSize)
}

// VerifyCheckpoint verifies the store (a snapshot, typically) against the
// part of the log its own checkpoint covers, [0, Offset): what a daemon
// that is following the log has mirrored so far, even while the log keeps
// growing. The prefix must still hash as the checkpoint says; if it does
// not (the log was rewritten since), the result is ErrLogChanged.
func VerifyCheckpoint(ctx context.Context, db kv.Reader, path string, maxValueSize int) (*Report, error) {
	return VerifyLogCheckpoint(ctx, db, Log{Path: path}, maxValueSize)
}

// VerifyLog is Verify of the log as the engine reads it: in git mode, the
// blob at the ref (copied, streamed, to a file in log.TempDir: verify
// reads values back by offset).
func VerifyLog(ctx context.Context, db kv.Reader, log Log, maxValueSize int) (*Report, error) {
	return verifyLog(ctx, db, log, maxValueSize, nil)
}

// VerifyLogCheckpoint is VerifyCheckpoint of the log as the engine reads
// it (see VerifyLog).
func VerifyLogCheckpoint(ctx context.Context, db kv.Reader, log Log, maxValueSize int) (*Report, error) {
	if resyncing, err := db.Get(schema.ResyncMarkerKey, nil); err != nil {
		return nil, err
	} else if resyncing {
		return nil, ErrResyncing
	}
	var cp Checkpoint
	found, err := db.Get(schema.CheckpointKey, &cp)
	if err != nil {
		return nil, err
	}
	if !found {
		cp = Checkpoint{}
	}
	return verifyLog(ctx, db, log, maxValueSize, &cp)
}

// verifyLog opens the log (a file, or a copy of the blob at the ref) and
// verifies the store against it.
func verifyLog(ctx context.Context, db kv.Reader, log Log, maxValueSize int, cp *Checkpoint) (*Report, error) {
	if log.GitRef != "" {
		at, err := openAtRef(ctx, log)
		if err != nil {
			return nil, err
		}
		defer at.close()
		// The copy is this call's own: nothing changes it.
		r, err := verify(ctx, db, at.spool.f, maxValueSize, cp, func(fileStat) bool { return true })
		if r != nil {
			r.Ref, r.Commit, r.Blob = at.snap.Ref, string(at.snap.Commit), string(at.snap.Blob)
		}
		return r, err
	}
	f, err := openLog(log.Path)
	if err != nil {
		return nil, fmt.Errorf("opening the event log: %w", err)
	}
	defer f.Close()
	return verify(ctx, db, f, maxValueSize, cp, func(before fileStat) bool {
		after, err := statFile(log.Path)
		return err == nil && after == before
	})
}

// verify compares the store with the open log f (with cp, the part of it
// the checkpoint covers); unchanged says whether the log is still what it
// was before it was read.
func verify(ctx context.Context, db kv.Reader, f *os.File, maxValueSize int, cp *Checkpoint, unchanged func(before fileStat) bool) (*Report, error) {
	before, err := fstat(f)
	if err != nil {
		return nil, err
	}
	r := &Report{LogSize: before.Size, Covered: before.Size}
	var src io.Reader = f
	if cp != nil {
		if cp.Offset > before.Size {
			return nil, ErrLogChanged
		}
		if !prefixMatches(f, cp) {
			return nil, ErrLogChanged
		}
		src, r.Covered = io.NewSectionReader(f, 0, cp.Offset), cp.Offset
	}
	winners := map[string]winner{} // escaped id -> last valid occurrence
	dec := eventlog.NewDecoder(src, &eventlog.Options{MaxValueSize: maxValueSize})
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
			esc := string(schema.AppendEventKey(nil, ent.ID)[len(schema.PrefixEvent):])
			winners[esc] = winner{desired{digest: xxhash.Sum64(ent.Raw), off: ent.Offset, n: ent.End - ent.Offset, mods: len(ent.Modifiers)}}
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

	// expected returns the event and its modifiers as the log says them,
	// read back by offset (values are never all held in memory).
	expected := func(esc string) (upsert, error) {
		u, err := readEvent(f, winners[esc].desired, maxValueSize)
		if err != nil {
			return u, ErrLogChanged
		}
		return u, nil
	}
	for _, esc := range escs {
		r.Events++
		r.Modifiers += winners[esc].mods
	}

	// Each range of the store is walked once, in key order, alongside the
	// sorted expectations: a merge join, no point lookups.
	err = mergeJoin(db, schema.PrefixEvent, escs, func(esc string, v []byte) error {
		switch {
		case v == nil:
			note(&r.Missing, &r.MissingKeys, schema.PrefixEvent+esc)
		default:
			u, err := expected(esc)
			if err != nil {
				return err
			}
			if !jsonEqual(v, u.raw) {
				note(&r.Differ, &r.DifferKeys, schema.PrefixEvent+esc)
			}
		}
		return nil
	}, func(k string) { note(&r.Extra, &r.ExtraKeys, k) })
	if err != nil {
		return nil, err
	}
	err = mergeJoin(db, schema.PrefixDigest, escs, func(esc string, v []byte) error {
		if h, ok := parseDigestValue(v); v == nil || !ok || h != winners[esc].digest {
			note(&r.Bookkeeping, &r.BookkeepingKeys, schema.PrefixDigest+esc)
		}
		return nil
	}, func(k string) { note(&r.Bookkeeping, &r.BookkeepingKeys, k) })
	if err != nil {
		return nil, err
	}

	// Modifiers: the keys of one event, modifier:{id}:*, are contiguous;
	// each group is compared with what the log says for that event, and
	// every event with modifiers must have had its group.
	groups := map[string]bool{}
	var cur string
	got := map[string][]byte{}
	flushGroup := func() error {
		if cur == "" {
			return nil
		}
		groups[cur] = true
		w, ok := winners[cur]
		if !ok {
			for k := range sortedKeys(got) {
				note(&r.Extra, &r.ExtraKeys, k)
			}
			return nil
		}
		var want map[string][]byte
		if w.mods > 0 {
			u, err := expected(cur)
			if err != nil {
				return err
			}
			want = modifierValues(u)
		}
		compareModifiers(r, want, got)
		return nil
	}
	err = db.Scan(schema.PrefixModifier, func(k string, v json.RawMessage) error {
		esc, _, _ := strings.Cut(k[len(schema.PrefixModifier):], ":")
		if esc != cur {
			if err := flushGroup(); err != nil {
				return err
			}
			cur = esc
			clear(got)
		}
		got[k] = append([]byte(nil), v...)
		return nil
	})
	if err == nil {
		err = flushGroup()
	}
	if err != nil {
		return nil, err
	}
	for _, esc := range escs {
		if w := winners[esc]; w.mods > 0 && !groups[esc] {
			u, err := expected(esc)
			if err != nil {
				return nil, err
			}
			compareModifiers(r, modifierValues(u), nil)
		}
	}

	if cp != nil {
		// Only the covered prefix matters, and it must not have changed.
		if !prefixMatches(f, cp) {
			return nil, ErrLogChanged
		}
		return r, nil
	}
	if !unchanged(before) {
		return nil, ErrLogChanged
	}
	return r, nil
}

type winner struct{ desired }

// mergeJoin walks the keys under prefix in order alongside escs (sorted
// escaped ids): fn gets every expected id with its stored value (nil when
// absent), extra every stored key no id expects.
func mergeJoin(db kv.Reader, prefix string, escs []string, fn func(esc string, v []byte) error, extra func(key string)) error {
	j := 0
	err := db.Scan(prefix, func(k string, v json.RawMessage) error {
		esc := k[len(prefix):]
		for j < len(escs) && escs[j] < esc {
			if err := fn(escs[j], nil); err != nil {
				return err
			}
			j++
		}
		if j < len(escs) && escs[j] == esc {
			j++
			return fn(esc, v)
		}
		extra(k)
		return nil
	})
	if err != nil {
		return err
	}
	for ; j < len(escs); j++ {
		if err := fn(escs[j], nil); err != nil {
			return err
		}
	}
	return nil
}

func modifierValues(u upsert) map[string][]byte {
	want := map[string][]byte{}
	for _, m := range u.mods {
		want[string(schema.AppendModifierKey(nil, u.id, m.Name))] = append(append([]byte(`{"value":`), m.Value...), '}')
	}
	return want
}

// compareModifiers notes the differences between the modifiers the log
// says an event has and those stored.
func compareModifiers(r *Report, want, got map[string][]byte) {
	for k := range sortedKeys(want) {
		v, ok := got[k]
		switch {
		case !ok:
			note(&r.Missing, &r.MissingKeys, k)
		case !jsonEqual(v, want[k]):
			note(&r.Differ, &r.DifferKeys, k)
		}
	}
	for k := range sortedKeys(got) {
		if _, ok := want[k]; !ok {
			note(&r.Extra, &r.ExtraKeys, k)
		}
	}
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
