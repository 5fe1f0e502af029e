package mirror

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/mirrord/mirrord/eventlog"
	"github.com/mirrord/mirrord/internal/extsort"
	"github.com/mirrord/mirrord/kv"
	"github.com/mirrord/mirrord/schema"
)

// The memory the bulk load's sorters may hold, shared by the decoders:
// two buffers each (one filling, one being written out). Events take the
// most room. (Variables so that tests can force many sorted runs.)
var (
	eventSortBudget    = 32 << 20
	modifierSortBudget = 16 << 20
)

// A bulk load splits a log of at least parallelMin bytes into one part
// per core, at most four: decoding is most of a load's work (about
// 300 MB/s a core), and a 100k-event log (68 MB) already loads in half
// the time on two cores. (Variables so that tests can split small logs.)
var (
	parallelMin = 8 << 20
	decoders    = func() int { return min(runtime.GOMAXPROCS(0), 4) }
)

// part is one decoder's share of a bulk load: the bytes [from, to) of the
// log, and what it found there.
type part struct {
	from, to     int64
	events, mods *extsort.Sorter
	fp           *eventlog.Fingerprint // the first part's: of the whole prefix, once checked

	invalid  []eventlog.Entry // the first maxInvalidReports, copied: reported once all parts agree
	nInvalid int
	pending  *eventlog.Entry // an incomplete value at the part's end
	end      int64           // Consumed(): where the part's decoder stopped
	endLine  int             // its line number there, counted from the part's start
	key, val []byte          // scratch for the records being added
	fed      []byte          // scratch for a fed record's value
	done     atomic.Int64    // bytes decoded so far, for progress
	nEvents  atomic.Int64    // events decoded so far, for progress
}

func (p *part) close() {
	p.events.Close()
	p.mods.Close()
}

// splitLog chooses where the parts of a log of size bytes start: at most
// n-1 points, each the start of a line that starts with '{' (where the
// application starts every event) near an even share of the file.
// Whether each really starts a value is only known once the part before it
// is decoded: decodeParallel checks it.
func splitLog(f *os.File, size int64, n int) []int64 {
	starts := []int64{0}
	buf := make([]byte, 64<<10)
	for k := 1; k < n; k++ {
		at := size * int64(k) / int64(n)
		if at <= starts[len(starts)-1] {
			continue
		}
		m, _ := f.ReadAt(buf, at-1)
		if i := bytes.Index(buf[:m], []byte("\n{")); i >= 0 {
			starts = append(starts, at+int64(i))
		}
	}
	return starts
}

// decodeParallel decodes the log into sorted records, one decoder per part
// at the same time. A value read whole by part k's decoder never crosses
// into part k+1; so if part k's decoder stops exactly where part k+1
// starts, with nothing left incomplete, part k+1 started at a boundary
// between values and decoded what one decoder reading on would have: the
// parts agree. When they do not (a split inside a value, which takes a
// line that starts with '{' inside a value: not what the application
// writes, but a value larger than the bound may hold any), the whole log
// is decoded again by one decoder, and whatever part k+1 read from inside
// the value is dropped. The first part runs on the calling goroutine,
// which reports progress for all.
func (e *Engine) decodeParallel(ctx context.Context, f *os.File, st fileStat, prog *progress, recs records) ([]*part, error) {
	n := decoders()
	if st.Size < int64(parallelMin) {
		n = 1
	}
	starts := splitLog(f, st.Size, n)
	parts, err := e.decodeParts(ctx, f, st.Size, starts, prog, recs)
	if err != nil {
		return parts, err
	}
	for k := 0; k+1 < len(parts); k++ {
		if parts[k].pending != nil || parts[k].end != parts[k+1].from {
			e.log.Debug("the log's parts do not meet at a value boundary; decoding it again in one piece",
				"path", e.path, "split", parts[k+1].from, "part_end", parts[k].end)
			for _, p := range parts {
				p.close()
			}
			return e.decodeParts(ctx, f, st.Size, starts[:1], prog, recs)
		}
	}
	// Line numbers of the later parts count from their own start; the
	// fingerprint so far covers only the first part.
	line := parts[0].endLine
	for _, p := range parts[1:] {
		for i := range p.invalid {
			p.invalid[i].Line += line - 1
			p.invalid[i].EndLine += line - 1
		}
		if p.pending != nil {
			p.pending.Line += line - 1
			p.pending.EndLine += line - 1
		}
		p.endLine += line - 1
		line = p.endLine
	}
	if len(parts) > 1 {
		last := parts[len(parts)-1]
		if _, err := io.Copy(parts[0].fp, io.NewSectionReader(f, parts[1].from, last.end-parts[1].from)); err != nil {
			return parts, fmt.Errorf("reading the event log: %w", err)
		}
	}
	return parts, nil
}

// decodedLog is a whole log decoded in parts that agree: where the
// decoding stopped, its line there, an incomplete value at the end, the
// fingerprint of everything before, the count of invalid entries (already
// reported), and the parts' sorters.
type decodedLog struct {
	parts   []*part
	end     int64
	endLine int
	pending *eventlog.Entry
	fp      *eventlog.Fingerprint
	invalid int
}

// decodeLog decodes the log (decodeParallel), reports its invalid
// entries and finishes the progress report. Close the result.
func (e *Engine) decodeLog(ctx context.Context, f *os.File, st fileStat, prog *progress, recs records) (*decodedLog, error) {
	parts, err := e.decodeParallel(ctx, f, st, prog, recs)
	if err != nil {
		for _, p := range parts {
			p.close()
		}
		return nil, err
	}
	last := parts[len(parts)-1]
	d := &decodedLog{parts: parts, end: last.end, endLine: last.endLine, pending: last.pending, fp: parts[0].fp,
		invalid: e.reportInvalid(parts)}
	prog.finish(d.end)
	return d, nil
}

// events and mods are the parts' sorters of each kind.
func (d *decodedLog) events() []*extsort.Sorter {
	return d.sorters(func(p *part) *extsort.Sorter { return p.events })
}
func (d *decodedLog) mods() []*extsort.Sorter {
	return d.sorters(func(p *part) *extsort.Sorter { return p.mods })
}

func (d *decodedLog) sorters(of func(*part) *extsort.Sorter) []*extsort.Sorter {
	out := make([]*extsort.Sorter, len(d.parts))
	for i, p := range d.parts {
		out[i] = of(p)
	}
	return out
}

// close removes the sorters' run files.
func (d *decodedLog) close() {
	for _, p := range d.parts {
		p.close()
	}
}

// decodeParts decodes the parts that start at starts (the last one runs to
// the end of the log, of size bytes when it was looked at), each on a
// goroutine of its own but the first.
func (e *Engine) decodeParts(ctx context.Context, f *os.File, size int64, starts []int64, prog *progress, recs records) ([]*part, error) {
	parts := make([]*part, len(starts))
	for k, from := range starts {
		to := int64(maxSection)
		if k+1 < len(starts) {
			to = starts[k+1]
		}
		parts[k] = &part{
			from:   from,
			to:     to,
			events: newSorter(e.db, eventSortBudget/len(starts), len(schema.PrefixEvent)),
			mods:   newSorter(e.db, modifierSortBudget/len(starts), len(schema.PrefixModifier)),
		}
	}
	for k, p := range parts {
		end := size
		if k+1 < len(parts) {
			end = p.to
		}
		n := float64(max(end-p.from, 0))
		p.events.Expect(int64(n * recs.events))
		p.mods.Expect(int64(n * recs.mods))
	}
	parts[0].fp = eventlog.NewFingerprint()
	errs := make([]error, len(parts))
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for k := 1; k < len(parts); k++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if errs[k] = e.decodePart(ctx, f, parts[k], recs.add, nil); errs[k] != nil {
				cancel()
			}
		}()
	}
	sum := func() {
		var done, events int64
		for _, p := range parts {
			done += p.done.Load()
			events += p.nEvents.Load()
		}
		prog.events = events
		prog.at(done)
	}
	if errs[0] = e.decodePart(ctx, f, parts[0], recs.add, sum); errs[0] != nil {
		cancel()
	}
	wg.Wait()
	sum()
	return parts, errors.Join(errs...)
}

// reportInvalid logs the invalid entries the parts met, in log order, and
// returns how many there were.
func (e *Engine) reportInvalid(parts []*part) int {
	var invalid invalidReporter
	n := 0
	for _, p := range parts {
		for i := range p.invalid {
			invalid.report(e.log, e.path, &p.invalid[i])
		}
		invalid.n += p.nInvalid - len(p.invalid)
		n += p.nInvalid
	}
	invalid.summary(e.log, e.path)
	return n
}

// records is what a decoder makes of the events for the sorters: add adds
// one event's records to its part's, and events and mods estimate the
// bytes of records each sorter gets per byte of log, so that the sorters
// can expect them (extsort.Sorter.Expect: a share that fits is sorted in
// memory). Over-estimates cost a spill; under-estimates a first fill
// written out in the decoder's goroutine.
type records struct {
	add          func(p *part, ent *eventlog.Entry) error
	events, mods float64
}

// bulkRecords are a bulk load's (addEventRecords). An event's key and
// compacted value take 0.94 of its bytes in the application's sample log
// and 0.96 in the synthetic ones; its modifiers' records 0.19 and 0.11.
// With the default budgets a log of up to about 68 MB (100k events) is
// thus sorted in memory, on two cores or four.
var bulkRecords = records{add: addEventRecords, events: 0.96, mods: 0.25}

// fedRecords are a bulk load's that feeds generators (Options.LoadFeed):
// each event's value in the runs begins with where its date, type and
// input are (appendFieldOffsets, a few bytes), which writeEvents hands the
// feed, so that the generators do not parse every event again (a quarter
// of their work beside a load).
var fedRecords = records{add: addFedEventRecords, events: 0.97, mods: 0.25}

// digestRecords are a reconcile's (addDigestRecord): about 34 bytes an
// event of some 680.
var digestRecords = records{add: addDigestRecord, events: 1.0 / 16}

// addEventRecords is a bulk load's: the event and a record per modifier,
// all with the event's offset as seq.
func addEventRecords(p *part, ent *eventlog.Entry) error {
	return addEvent(p, ent, ent.Raw)
}

// addFedEventRecords is addEventRecords with the event's field offsets
// before its value.
func addFedEventRecords(p *part, ent *eventlog.Entry) error {
	p.fed = append(appendFieldOffsets(p.fed[:0], ent.Fields), ent.Raw...)
	return addEvent(p, ent, p.fed)
}

// appendFieldOffsets appends an event's field offsets to b as three
// uvarints, the header cutFieldOffsets reads.
func appendFieldOffsets(b []byte, f eventlog.FieldOffsets) []byte {
	b = binary.AppendUvarint(b, uint64(f.Date))
	b = binary.AppendUvarint(b, uint64(f.Type))
	return binary.AppendUvarint(b, uint64(f.Input))
}

// cutFieldOffsets splits a fed record's value into its field offsets and
// the event's stored value.
func cutFieldOffsets(v []byte) (eventlog.FieldOffsets, []byte, error) {
	var at [3]uint64
	rest := v
	for i := range at {
		n, k := binary.Uvarint(rest)
		if k <= 0 {
			return eventlog.FieldOffsets{}, nil, fmt.Errorf("bulk load: an event's sorted record %.40q has no field offsets", v)
		}
		at[i], rest = n, rest[k:]
	}
	if max(at[0], at[1], at[2]) >= uint64(len(rest)) {
		return eventlog.FieldOffsets{}, nil, fmt.Errorf("bulk load: an event's sorted record %.40q has field offsets past its end", v)
	}
	return eventlog.FieldOffsets{Date: int(at[0]), Type: int(at[1]), Input: int(at[2])}, rest, nil
}

// addEvent adds an event's record, with value, and its modifiers' records.
func addEvent(p *part, ent *eventlog.Entry, value []byte) error {
	seq := uint64(ent.Offset)
	p.key = schema.AppendEventKey(p.key[:0], ent.ID)
	if err := p.events.Add(p.key, value, seq); err != nil {
		return err
	}
	for _, m := range ent.Modifiers {
		p.key = schema.AppendModifierKey(p.key[:0], ent.ID, m.Name)
		p.val = append(append(append(p.val[:0], `{"value":`...), m.Value...), '}')
		if err := p.mods.Add(p.key, p.val, seq); err != nil {
			return err
		}
	}
	return nil
}

// decodePart decodes one part, adding each event's records with add.
func (e *Engine) decodePart(ctx context.Context, f *os.File, p *part, add func(*part, *eventlog.Entry) error, progress func()) error {
	dec := eventlog.NewDecoder(io.NewSectionReader(f, p.from, p.to-p.from), &eventlog.Options{
		Offset: p.from, Fingerprint: p.fp, MaxValueSize: e.opts.MaxValueSize, BufferSize: 1 << 20,
	})
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		ent, err := dec.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("reading the event log: %w", err)
		}
		switch ent.Kind {
		case eventlog.KindEvent:
			if err := add(p, ent); err != nil {
				return err
			}
			p.nEvents.Add(1)
		case eventlog.KindInvalid:
			if p.nInvalid < maxInvalidReports {
				c := *ent
				c.Raw, c.ID, c.Modifiers = nil, nil, nil
				p.invalid = append(p.invalid, c)
			}
			p.nInvalid++
		case eventlog.KindIncomplete:
			c := *ent
			c.Raw, c.ID, c.Modifiers = nil, nil, nil
			p.pending = &c
		}
		p.done.Store(ent.End - p.from)
		if progress != nil {
			progress()
		}
	}
	p.end, p.endLine = dec.Consumed()
	return nil
}

// newSorter returns an external sorter whose runs go to the store's
// temporary directory.
func newSorter(db *kv.DB, budget, skip int) *extsort.Sorter {
	fs, dir := db.TempDir()
	return extsort.New(fs, dir, budget, skip)
}
