package mirror

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync/atomic"

	"github.com/cespare/xxhash/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/mirrord/mirrord/eventlog"
	"github.com/mirrord/mirrord/internal/extsort"
	"github.com/mirrord/mirrord/kv"
	"github.com/mirrord/mirrord/schema"
)

// Report is the outcome of Verify: what the store holds that the log does
// not say, and the reverse.
type Report struct {
	// Events and Modifiers the log says the store should hold.
	Events    int `json:"events"`
	Modifiers int `json:"modifiers"`
	// Invalid entries in the log.
	Invalid int `json:"invalid"`
	// Pending is an incomplete value at the end of the log (not expected
	// in the store).
	Pending *PendingTail `json:"pending,omitempty"`
	// Missing, Extra and Differ count the keys absent from the store,
	// present but not in the log, and present with another value; the
	// slices hold the first of them.
	Missing     int      `json:"missing"`
	Extra       int      `json:"extra"`
	Differ      int      `json:"differ"`
	MissingKeys []string `json:"missing_keys,omitempty"`
	ExtraKeys   []string `json:"extra_keys,omitempty"`
	DifferKeys  []string `json:"differ_keys,omitempty"`
	// Bookkeeping counts internal inconsistencies (a digest that does not
	// match its event), which would mislead the next reconcile.
	Bookkeeping     int      `json:"bookkeeping"`
	BookkeepingKeys []string `json:"bookkeeping_keys,omitempty"`
	// Covered is how much of the log was compared (all of it, or the
	// store's checkpoint for VerifyCheckpoint); LogSize its size.
	Covered int64 `json:"covered"`
	LogSize int64 `json:"log_size"`
	// Ref, Commit and Blob are, in git mode, the ref whose log was
	// compared, its commit and the log's blob there.
	Ref    string `json:"ref,omitempty"`
	Commit string `json:"commit,omitempty"`
	Blob   string `json:"blob,omitempty"`
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
	// The log's events go to two external sorters, in the two orders the
	// store's ranges come in: by escaped id (event: and mirrord:digest:)
	// and by escaped id and ':' (modifier:{id}:{name}, where an id byte
	// below ':' orders groups differently). Memory: their budgets, however
	// long the log.
	tmp := verifyTempDir()
	defer os.RemoveAll(tmp)
	byID := extsort.New(vfs.Default, filepath.Join(tmp, "ids"), verifySortBudget, 0)
	defer byID.Close()
	byGroup := extsort.New(vfs.Default, filepath.Join(tmp, "groups"), verifySortBudget, 0)
	defer byGroup.Close()
	var key, val []byte
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
			key = schema.AppendEventKey(key[:0], ent.ID)[len(schema.PrefixEvent):]
			val = binary.BigEndian.AppendUint64(val[:0], xxhash.Sum64(ent.Raw))
			val = binary.AppendUvarint(val, uint64(ent.End-ent.Offset))
			val = binary.AppendUvarint(val, uint64(len(ent.Modifiers)))
			if err := byID.Add(key, val, uint64(ent.Offset)); err != nil {
				return nil, err
			}
			if err := byGroup.Add(append(key, ':'), val, uint64(ent.Offset)); err != nil {
				return nil, err
			}
		case eventlog.KindInvalid:
			r.Invalid++
		case eventlog.KindIncomplete:
			r.Pending = &PendingTail{Offset: ent.Offset, Line: ent.Line, Bytes: ent.End - ent.Offset, Reason: ent.Reason}
		}
	}

	// expected returns the event and its modifiers as the log says them,
	// read back by offset (values are never all held in memory).
	expected := func(d desired) (upsert, error) {
		u, err := readEvent(f, d, maxValueSize)
		if err != nil {
			return u, ErrLogChanged
		}
		return u, nil
	}
	if err := verifyEvents(ctx, db, byID, r, expected); err != nil {
		return nil, err
	}
	if err := verifyModifiers(ctx, db, byGroup, r, expected); err != nil {
		return nil, err
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

// verifySortBudget is the memory each of verify's two sorters holds
// before spilling to disk (about as much again for their index); a
// variable so that tests can make it spill.
var verifySortBudget = 2 << 20

var verifySeq atomic.Int64

// verifyTempDir is a fresh directory name for verify's sort runs, created
// only when a run is written (a log whose ids fit in memory writes none).
func verifyTempDir() string {
	return filepath.Join(os.TempDir(), fmt.Sprintf("mirrord-verify-%d-%d", os.Getpid(), verifySeq.Add(1)))
}

// winners walks the records of a sorter filled by verify (key, digest,
// extent and modifier count, seq the offset), yielding for each key its
// last occurrence: what the log says. A failure to read the sorter's runs
// ends the walk and is left in *errp.
func winners(s *extsort.Sorter, errp *error) iter.Seq2[[]byte, desired] {
	return func(yield func([]byte, desired) bool) {
		it, err := extsort.NewMergeIter([]*extsort.Sorter{s}, nil, nil)
		if err != nil {
			*errp = err
			return
		}
		defer it.Close()
		defer func() {
			if *errp == nil {
				*errp = it.Err()
			}
		}()
		var cur []byte
		var d desired
		have := false
		for it.Next() {
			if have && !bytes.Equal(it.Key(), cur) {
				if !yield(cur, d) {
					return
				}
			}
			v := it.Value()
			n, k1 := binary.Uvarint(v[8:])
			m, _ := binary.Uvarint(v[8+max(k1, 0):])
			cur = append(cur[:0], it.Key()...)
			d = desired{digest: binary.BigEndian.Uint64(v), off: int64(it.Seq()), n: int64(n), mods: int(m)}
			have = true
		}
		if have {
			yield(cur, d)
		}
	}
}

// storeCursor pulls the keys under one prefix of the store, in order, one
// at a time, beside the log's sorted ids.
type storeCursor struct {
	prefix string
	next   func() (string, json.RawMessage, bool)
	stop   func()
	err    error
	key    string // after the prefix; "" at the end
	val    json.RawMessage
	ok     bool
}

func newStoreCursor(ctx context.Context, db kv.Reader, prefix string) *storeCursor {
	c := &storeCursor{prefix: prefix}
	c.next, c.stop = iter.Pull2(func(yield func(string, json.RawMessage) bool) {
		n := 0
		c.err = db.Scan(prefix, func(k string, v json.RawMessage) error {
			if n++; n%4096 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			if !yield(k, v) {
				return errStopScan
			}
			return nil
		})
		if errors.Is(c.err, errStopScan) {
			c.err = nil
		}
	})
	c.advance()
	return c
}

var errStopScan = errors.New("stop")

func (c *storeCursor) advance() {
	var k string
	k, c.val, c.ok = c.next()
	if c.ok {
		c.key = k[len(c.prefix):]
	}
}

// verifyEvents merges the log's events (sorted by escaped id) with the
// store's event: and mirrord:digest: ranges.
func verifyEvents(ctx context.Context, db kv.Reader, byID *extsort.Sorter, r *Report, expected func(desired) (upsert, error)) error {
	events := newStoreCursor(ctx, db, schema.PrefixEvent)
	defer events.stop()
	digests := newStoreCursor(ctx, db, schema.PrefixDigest)
	defer digests.stop()
	var sortErr error
	for esc, d := range winners(byID, &sortErr) {
		if err := ctx.Err(); err != nil {
			return err
		}
		r.Events++
		r.Modifiers += d.mods
		id := string(esc)
		for events.ok && events.key < id {
			note(&r.Extra, &r.ExtraKeys, schema.PrefixEvent+events.key)
			events.advance()
		}
		if events.ok && events.key == id {
			u, err := expected(d)
			if err != nil {
				return err
			}
			if !jsonEqual(events.val, u.raw) {
				note(&r.Differ, &r.DifferKeys, schema.PrefixEvent+id)
			}
			events.advance()
		} else {
			note(&r.Missing, &r.MissingKeys, schema.PrefixEvent+id)
		}
		for digests.ok && digests.key < id {
			note(&r.Bookkeeping, &r.BookkeepingKeys, schema.PrefixDigest+digests.key)
			digests.advance()
		}
		if digests.ok && digests.key == id {
			if h, ok := parseDigestValue(digests.val); !ok || h != d.digest {
				note(&r.Bookkeeping, &r.BookkeepingKeys, schema.PrefixDigest+id)
			}
			digests.advance()
		} else {
			note(&r.Bookkeeping, &r.BookkeepingKeys, schema.PrefixDigest+id)
		}
	}
	for ; events.ok; events.advance() {
		note(&r.Extra, &r.ExtraKeys, schema.PrefixEvent+events.key)
	}
	for ; digests.ok; digests.advance() {
		note(&r.Bookkeeping, &r.BookkeepingKeys, schema.PrefixDigest+digests.key)
	}
	if err := cmp.Or(sortErr, events.err, digests.err); err != nil { // the first only: an error is one line
		return err
	}
	return ctx.Err()
}

// verifyModifiers merges the log's events (sorted by "{escaped id}:") with
// the store's modifier:{id}:{name} keys: each event's group is compared
// with what the log says, holding one event's modifiers at a time.
func verifyModifiers(ctx context.Context, db kv.Reader, byGroup *extsort.Sorter, r *Report, expected func(desired) (upsert, error)) error {
	mods := newStoreCursor(ctx, db, schema.PrefixModifier)
	defer mods.stop()
	got := map[string][]byte{}
	// group collects the stored keys of the group at the cursor.
	group := func() string {
		clear(got)
		esc, _, _ := strings.Cut(mods.key, ":")
		g := esc + ":"
		for mods.ok && strings.HasPrefix(mods.key, g) {
			got[schema.PrefixModifier+mods.key] = append([]byte(nil), mods.val...)
			mods.advance()
		}
		return g
	}
	var sortErr error
	for g, d := range winners(byGroup, &sortErr) {
		if err := ctx.Err(); err != nil {
			return err
		}
		want := string(g)
		for mods.ok && mods.key < want && !strings.HasPrefix(mods.key, want) {
			group()
			compareModifiers(r, nil, got) // a group no event of the log has
		}
		clear(got)
		if mods.ok && strings.HasPrefix(mods.key, want) {
			group()
		}
		if d.mods == 0 && len(got) == 0 {
			continue
		}
		var wantMods map[string][]byte
		if d.mods > 0 {
			u, err := expected(d)
			if err != nil {
				return err
			}
			wantMods = modifierValues(u)
		}
		compareModifiers(r, wantMods, got)
	}
	for mods.ok {
		group()
		compareModifiers(r, nil, got)
	}
	if err := cmp.Or(sortErr, mods.err); err != nil {
		return err
	}
	return ctx.Err()
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
