package eventlog

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/mirrord/mirrord/internal/jsonx"
)

// Kind says what an Entry is.
type Kind uint8

const (
	// KindEvent is a valid event.
	KindEvent Kind = iota + 1
	// KindInvalid is a value, or a run of text, that is skipped: not JSON,
	// not an object, larger than the size bound, or an object that breaks
	// a rule of the log format (docs/design.md, The event log). Field and
	// Reason say why (a value larger than the bound: "value larger than
	// max-value-size N bytes").
	KindInvalid
	// KindIncomplete is the end of the input falling inside a value (a
	// writer caught mid-append) or inside text that may yet turn out to be
	// followed by a value. It is not an error: it is the last entry, and
	// its bytes are not consumed; reading again from its Offset once the
	// file has grown picks it up.
	KindIncomplete
)

func (k Kind) String() string {
	switch k {
	case KindEvent:
		return "event"
	case KindInvalid:
		return "invalid"
	case KindIncomplete:
		return "incomplete"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Entry is one item of the log. Its slices are only valid until the next
// call to Decoder.Next.
type Entry struct {
	Kind Kind
	// Offset is the byte offset of the entry's first byte in the file.
	Offset int64
	// End is the offset just past the entry (for KindIncomplete, the end
	// of the input read).
	End int64
	// Line is the 1-based line number of Offset, EndLine that of End
	// (what Options.Line must be to resume decoding at End; not set for
	// KindIncomplete).
	Line    int
	EndLine int

	// ID is the decoded event id (KindEvent).
	ID []byte
	// Raw is the event object with insignificant whitespace removed: what
	// the mirror stores (KindEvent).
	Raw []byte
	// Modifiers are the event's modifiers, each name once with its last
	// value (KindEvent).
	Modifiers []RawModifier
	// Fields locates the event's date, type and input in Raw (KindEvent):
	// a reader of those needs no second parse.
	Fields FieldOffsets

	// Field names the offending field of an invalid event ("" when the
	// value as a whole is wrong); Reason says what is wrong (KindInvalid,
	// KindIncomplete).
	Field  string
	Reason string
}

// Event decodes the entry's event (KindEvent only).
func (e *Entry) Event() (*Event, error) {
	if e.Kind != KindEvent {
		return nil, fmt.Errorf("entry at offset %d is %s, not an event", e.Offset, e.Kind)
	}
	return ParseEvent(e.Raw)
}

// Options configures a Decoder. A nil *Options means every default below.
type Options struct {
	// MaxValueSize bounds one value in bytes. A larger value is an invalid
	// entry, skipped by its structure without ever being held in memory
	// whole. Default: 16 MiB.
	MaxValueSize int
	// Offset is the file offset of the reader's first byte, so that
	// entries carry file offsets when decoding a tail. Default: 0.
	Offset int64
	// Line is the line number of the reader's first byte. Default: 1.
	Line int
	// Fingerprint, when set, receives every byte the decoder consumes, in
	// order: each returned entry's bytes and the whitespace or text before
	// it, and the whitespace at a clean end of the input; never the bytes
	// of an incomplete tail. Between calls to Next it thus covers exactly
	// [Offset, Consumed()), on top of whatever it held before.
	// Default: nil.
	Fingerprint *Fingerprint
	// BufferSize is the initial read buffer. Default: 256 KiB.
	BufferSize int
	// Resume, when set, is what Decoder.Resume returned after an
	// incomplete tail, for reading the same file again once it has grown:
	// the decoder then skips (with io.Seeker) the bytes that decoder
	// already scanned and goes on from where it stopped, so that a large
	// incomplete value costs only the bytes appended to it. It is a hint:
	// it is ignored unless Offset, Line, MaxValueSize and the Fingerprint
	// are those it was made for (its Offset is the Consumed() of the
	// decoder that made it) and the reader is an io.Seeker. The caller
	// vouches that the bytes it covers have not changed. Default: nil.
	Resume *Resume
}

// DefaultMaxValueSize is the default bound on one value.
const DefaultMaxValueSize = 16 << 20

var bom = []byte{0xEF, 0xBB, 0xBF}

// decodeMode says what the bytes at the decoder's position are.
type decodeMode uint8

const (
	modeBetween decodeMode = iota // between values
	modeValue                     // inside a value read in pieces, kept in the buffer from its start
	modeOver                      // inside a value larger than the bound, skipped by its structure
	modeLine                      // inside skipped text, up to a line that starts with '{'
)

// Decoder reads a log as a stream of entries. It never holds more than one
// value (bounded by MaxValueSize) and its read buffer in memory.
type Decoder struct {
	r    io.Reader
	max  int
	fp   *Fingerprint
	buf  []byte
	pos  int   // next unread byte of buf
	end  int   // end of the data in buf
	base int64 // file offset of buf[0]
	eof  bool
	rerr error
	done bool
	read int64 // bytes read from r

	consumed     int64 // see Consumed
	consumedLine int
	line         int   // line number at file offset lineAt
	lineAt       int64 // file offset up to which newlines are counted
	hashed       int64 // file offset up to which bytes went to fp (or spill)
	spill        Fingerprint
	spilled      bool // spill holds fp plus bytes not yet committed
	prevNL       bool // the byte before buf[0] is '\n'

	// The value or text being skipped or read in pieces (any mode but
	// modeBetween): where it starts, its line, and why it is skipped.
	mode       decodeMode
	skipStart  int64
	skipLine   int
	skipReason string
	sc         jsonx.Scanner
	text       bool   // the skipped text is not a value: its reason quotes it
	quoted     []byte // the start of its line, up to previewLen bytes
	quoteDone  bool   // quoted is complete
	noResume   bool   // the skipped text's start was decided at the end of the input

	origin     int64 // Options.Offset and Line: where a restart reads from
	originLine int
	resumeFrom *Resume // to apply on the first call to Next
	resumed    bool    // reading started at resumeFrom.at, not at origin
	resume     *Resume // handed back with an incomplete tail

	e       Entry
	p       parsed
	out     []byte
	members []jsonx.Member
}

// NewDecoder returns a decoder reading r.
func NewDecoder(r io.Reader, opts *Options) *Decoder {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.MaxValueSize <= 0 {
		o.MaxValueSize = DefaultMaxValueSize
	}
	if o.Line <= 0 {
		o.Line = 1
	}
	if o.BufferSize <= 0 {
		o.BufferSize = 256 << 10
	}
	d := &Decoder{
		r:            r,
		max:          o.MaxValueSize,
		fp:           o.Fingerprint,
		buf:          make([]byte, o.BufferSize),
		base:         o.Offset,
		line:         o.Line,
		lineAt:       o.Offset,
		hashed:       o.Offset,
		consumed:     o.Offset,
		consumedLine: o.Line,
		origin:       o.Offset,
		originLine:   o.Line,
	}
	if o.Resume.fits(&o) {
		if _, ok := r.(io.Seeker); ok {
			d.resumeFrom = o.Resume
		}
	}
	return d
}

// FileDecoder is a Decoder over a file opened at an offset.
type FileDecoder struct {
	*Decoder
	f *os.File
}

// Open opens the log at path and returns a decoder that starts at
// opts.Offset (a tail), with entries carrying file offsets.
func Open(path string, opts *Options) (*FileDecoder, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	var off int64
	if opts != nil {
		off = opts.Offset
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	return &FileDecoder{Decoder: NewDecoder(f, opts), f: f}, nil
}

// Close closes the file.
func (fd *FileDecoder) Close() error { return fd.f.Close() }

// Next returns the next entry, or io.EOF after the last one (an error from
// the reader is returned instead of io.EOF). The entry is only valid until
// the next call.
func (d *Decoder) Next() (*Entry, error) {
	if d.resumeFrom != nil {
		if err := d.applyResume(); err != nil {
			d.done, d.rerr = true, err
		}
	}
	if d.done {
		return nil, d.finalErr()
	}
	for {
		switch d.mode {
		case modeLine:
			if e := d.resync(); e != nil {
				return e, nil
			}
			continue
		case modeValue, modeOver:
			e, err := d.stream()
			if err != nil {
				d.done, d.rerr = true, err
				return nil, err
			}
			if e != nil {
				return e, nil
			}
			continue
		}
		for d.pos < d.end && jsonx.IsSpace(d.buf[d.pos]) {
			d.pos++
		}
		if d.pos == d.end {
			if d.eof {
				// A clean end: the whitespace after the last entry is
				// consumed too, so that a log ending in "\n" is caught up
				// to its last byte.
				if d.rerr == nil {
					d.commit(d.pos)
				}
				d.done = true
				return nil, d.finalErr()
			}
			d.fill(d.pos)
			continue
		}
		if d.abs(d.pos) == 0 && d.buf[d.pos] == bom[0] {
			if d.end-d.pos < len(bom) && !d.eof {
				d.fill(d.pos)
				continue
			}
			if bytes.HasPrefix(d.buf[d.pos:d.end], bom) {
				d.pos += len(bom)
				continue
			}
		}
		start := d.pos
		if !isValueStart(d.buf[start]) {
			if d.abs(start) == 0 && d.buf[start] == bom[0] && d.end-start < len(bom) {
				// The start of a byte order mark that the input ends
				// inside: a decision more input could change.
				d.noResume = true
			}
			d.begin(start)
			d.toLine(start+1, "")
			// The reason quotes the start of the line, collected as it is
			// read (so that it does not depend on how the input was read).
			d.text, d.quoted, d.quoteDone = true, d.quoted[:0], false
			d.quote(d.buf[start : start+1])
			continue
		}
		out, vend, members, err := jsonx.AppendCompactMembers(d.out[:0], d.buf[:d.end], start, d.members)
		d.out, d.members = out, members
		// A value that goes on past the data read (or a number that
		// touches its end, and may yet grow) is read in pieces from here.
		if errors.Is(err, jsonx.ErrShort) || (err == nil && vend == d.end && isNumberStart(d.buf[start])) {
			d.begin(start)
			d.mode = modeValue
			d.sc = jsonx.Scanner{}
			continue
		}
		if se, ok := err.(*jsonx.SyntaxError); ok {
			d.begin(start)
			d.notJSON(se.Offset, se.Msg)
			continue
		}
		if vend-start > d.max {
			d.begin(start)
			return d.tooLarge(vend), nil
		}
		return d.value(start, vend), nil
	}
}

func (d *Decoder) finalErr() error {
	if d.rerr != nil {
		return d.rerr
	}
	return io.EOF
}

func (d *Decoder) abs(i int) int64 { return d.base + int64(i) }

// lineOf returns the line number of buffer position i (which must not be
// behind positions asked for before).
func (d *Decoder) lineOf(i int) int {
	from := int(d.lineAt - d.base)
	if from < i {
		d.line += bytes.Count(d.buf[from:i], []byte{'\n'})
		d.lineAt = d.abs(i)
	}
	return d.line
}

// Consumed returns the offset up to which the input is consumed, and the
// line number there: the End of the last entry returned or, once Next has
// returned io.EOF without an incomplete entry, the end of the input,
// trailing whitespace included. Resuming a decode there gives the same
// entries as reading on. The Fingerprint covers exactly up to it.
func (d *Decoder) Consumed() (int64, int) { return d.consumed, d.consumedLine }

// BytesRead returns how many bytes the decoder has read from its reader:
// the work it did, which a Resume keeps to the bytes appended.
func (d *Decoder) BytesRead() int64 { return d.read }

// commit marks the bytes up to buffer position i consumed and adds them to
// the fingerprint: they belong to an entry being returned (or are the
// whitespace at a clean end).
func (d *Decoder) commit(i int) {
	d.consumed, d.consumedLine = d.abs(i), d.lineOf(i)
	if d.fp == nil {
		return
	}
	if d.spilled {
		*d.fp = d.spill
		d.spilled = false
	}
	from := int(d.hashed - d.base)
	if from < i {
		_, _ = d.fp.Write(d.buf[from:i])
		d.hashed = d.abs(i)
	}
}

// fill reads more input, keeping buf[keep:] (moved to the front, or into a
// larger buffer when full).
func (d *Decoder) fill(keep int) {
	// Bytes about to leave the buffer: count their newlines, and add them
	// to a copy of the fingerprint (adopted only if an entry completes).
	d.lineOf(keep)
	if from := int(d.hashed - d.base); d.fp != nil && from < keep {
		if !d.spilled {
			d.spill = *d.fp
			d.spilled = true
		}
		_, _ = d.spill.Write(d.buf[from:keep])
		d.hashed = d.abs(keep)
	}
	if keep > 0 {
		d.prevNL = d.buf[keep-1] == '\n'
	}
	n := copy(d.buf, d.buf[keep:d.end])
	if n == len(d.buf) {
		// Full of one value: grow, but never far beyond what deciding
		// that a value is too large needs.
		size := min(2*len(d.buf), d.max+64<<10)
		grown := make([]byte, max(size, len(d.buf)+4096))
		copy(grown, d.buf)
		d.buf = grown
	}
	d.base += int64(keep)
	d.pos -= keep
	d.end = n
	for d.end < len(d.buf) {
		m, err := d.r.Read(d.buf[d.end:])
		d.end += m
		d.read += int64(m)
		if err != nil {
			d.eof = true
			if !errors.Is(err, io.EOF) {
				d.rerr = err
			}
			return
		}
		if m > 0 {
			return
		}
	}
}

func isValueStart(c byte) bool {
	switch c {
	case '{', '[', '"', '-', 't', 'f', 'n':
		return true
	}
	return c >= '0' && c <= '9'
}

func isNumberStart(c byte) bool { return c == '-' || (c >= '0' && c <= '9') }

const previewLen = 24

// quote adds the bytes b, read next, to the start of the skipped text's
// line that its reason quotes.
func (d *Decoder) quote(b []byte) {
	if d.quoteDone {
		return
	}
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		b, d.quoteDone = b[:i], true
	}
	if room := previewLen - len(d.quoted); len(b) >= room {
		b, d.quoteDone = b[:room], true
	}
	d.quoted = append(d.quoted, b...)
}

// reason is why the text or value being skipped is.
func (d *Decoder) reason() string {
	if d.text {
		return fmt.Sprintf("not JSON: text starting %q", d.quoted)
	}
	return d.skipReason
}

// value turns the complete value buf[start:vend] (compacted in d.out) into
// an entry.
func (d *Decoder) value(start, vend int) *Entry {
	e := &d.e
	*e = Entry{Offset: d.abs(start), End: d.abs(vend), Line: d.lineOf(start)}
	e.EndLine = d.lineOf(vend)
	d.commit(vend)
	d.pos = vend
	d.mode = modeBetween
	err := d.p.parseMembers(d.out, d.members)
	var fe *FieldError
	if err == nil {
		if v := d.p.validate(); v != nil {
			fe = v
		}
	} else if !errors.As(err, &fe) {
		fe = &FieldError{Reason: err.Error()}
	}
	if fe != nil {
		e.Kind, e.Field, e.Reason = KindInvalid, fe.Field, fe.Reason
		return e
	}
	e.Kind = KindEvent
	e.ID = d.p.id
	e.Raw = d.out
	e.Modifiers = d.p.mods
	e.Fields = FieldOffsets{Date: d.p.offsetIn(d.out, fDate), Type: d.p.offsetIn(d.out, fType), Input: d.p.offsetIn(d.out, fInput)}
	return e
}

// FieldOffsets locate an event's date, type and input in its compacted
// value (Entry.Raw): each is the offset of the opening quote of the
// member's string value, the last one of a repeated name, as ParseEvent
// reads them; 0 when the event has no such member (Raw[0] is the
// object's '{').
type FieldOffsets struct{ Date, Type, Input int }

// begin notes that the value or text being skipped or read in pieces
// starts at buffer position start.
func (d *Decoder) begin(start int) {
	d.skipStart = d.abs(start)
	d.skipLine = d.lineOf(start)
}

func (d *Decoder) largerReason() string {
	return fmt.Sprintf("value larger than max-value-size %d bytes", d.max)
}

// tooLarge is the invalid entry of a value larger than the bound that
// ends at buffer position vend: it was skipped by its structure, so
// nothing inside it was read as a value, and what follows it is read on.
func (d *Decoder) tooLarge(vend int) *Entry {
	d.e = Entry{Kind: KindInvalid, Offset: d.skipStart, End: d.abs(vend), Line: d.skipLine, EndLine: d.lineOf(vend), Reason: d.largerReason()}
	d.commit(vend)
	d.pos = vend
	d.mode = modeBetween
	return &d.e
}

// notJSON handles a syntax error at buffer position at of the value that
// starts at skipStart. Reading resumes at the next line that starts with
// '{': one after the value's first byte when the error lies within the
// size bound (the buffer then holds the value from its start), else at or
// after the error itself (the value, valid up to there, was skipped by its
// structure and is not read again).
func (d *Decoder) notJSON(at int, msg string) {
	if d.abs(at)-d.skipStart > int64(d.max) {
		// The error may lie in a character cut by the end of a read,
		// whose first bytes have left the buffer: they cannot start a
		// line, so the search starts at the buffer's first byte.
		d.toLine(max(at, 0), fmt.Sprintf("%s, and not JSON at offset %d: %s", d.largerReason(), d.abs(at), msg))
		return
	}
	d.toLine(int(d.skipStart-d.base)+1, "not JSON: "+msg)
}

// toLine enters modeLine: the skipped text ends at the first '{' that
// starts a line at or after buffer position from.
func (d *Decoder) toLine(from int, reason string) {
	d.mode = modeLine
	d.skipReason, d.text = reason, false
	d.pos = from
}

// nlBefore reports whether the byte before buffer position i is '\n'.
func (d *Decoder) nlBefore(i int) bool {
	if i > 0 {
		return d.buf[i-1] == '\n'
	}
	return d.prevNL
}

// resync looks for the line that ends skipped text, without holding the
// text in memory. It returns the invalid entry once found, the incomplete
// entry at the end of the input, or nil when it needs more input.
func (d *Decoder) resync() *Entry {
	next := -1
	if d.pos < d.end && d.buf[d.pos] == '{' && d.nlBefore(d.pos) {
		next = d.pos
	} else if i := bytes.Index(d.buf[d.pos:d.end], []byte("\n{")); i >= 0 {
		next = d.pos + i + 1
	}
	if next >= 0 {
		if d.text {
			d.quote(d.buf[d.pos:next])
		}
		d.e = Entry{Kind: KindInvalid, Offset: d.skipStart, End: d.abs(next), Line: d.skipLine, EndLine: d.lineOf(next), Reason: d.reason()}
		d.commit(next)
		d.pos = next
		d.mode, d.text = modeBetween, false
		return &d.e
	}
	if d.text {
		d.quote(d.buf[d.pos:d.end])
	}
	d.pos = d.end
	if d.eof {
		return d.incomplete(d.reason() + ", and no line starting with '{' follows yet")
	}
	d.fill(d.end)
	return nil
}

// stream feeds the bytes read since to the Scanner of a value read in
// pieces. It returns the value's entry once it ends, the incomplete entry
// at the end of the input, or nil when it needs more input (or has moved
// to another mode).
func (d *Decoder) stream() (*Entry, error) {
	n, done, err := d.sc.Feed(d.buf[d.pos:d.end])
	d.pos += n
	start := int(d.skipStart - d.base) // negative once the value's start has left the buffer
	if se, ok := err.(*jsonx.SyntaxError); ok {
		at := d.skipStart + int64(se.Offset)
		if at-d.skipStart <= int64(d.max) && start < 0 {
			// Reading resumed past the start of a value that the error
			// keeps within the bound: read it again whole.
			return nil, d.restart()
		}
		d.notJSON(int(at-d.base), se.Msg)
		return nil, nil
	}
	if done {
		if d.abs(d.pos)-d.skipStart > int64(d.max) {
			return d.tooLarge(d.pos), nil
		}
		if start < 0 {
			return nil, d.restart()
		}
		// A value within the bound is whole in the buffer: compact it.
		out, vend, members, err := jsonx.AppendCompactMembers(d.out[:0], d.buf[:d.end], start, d.members)
		d.out, d.members = out, members
		if err != nil || vend != d.pos {
			// The Scanner and the scanner accept the same language.
			return nil, fmt.Errorf("eventlog: the value at offset %d scans two ways (%v): a bug", d.skipStart, err)
		}
		return d.value(start, vend), nil
	}
	// Every byte read is scanned, and the value goes on.
	if d.mode == modeValue && d.abs(d.end)-d.skipStart > int64(d.max) {
		d.mode = modeOver // larger than the bound: it is no longer kept
	}
	if d.eof {
		reason := "the input ends inside a value"
		switch {
		case d.mode == modeOver:
			reason = d.largerReason() + ", and the input ends inside it"
		case d.sc.InNumber():
			reason = "the input ends inside a number"
		}
		return d.incomplete(reason), nil
	}
	if d.mode == modeValue && start >= 0 {
		d.fill(start)
	} else {
		d.fill(d.end)
	}
	return nil, nil
}

// incomplete is the last entry: the input ends inside the value or text
// that starts at skipStart. Its bytes are not consumed; the Resume handed
// back lets the next decoder go on from where this one stopped.
func (d *Decoder) incomplete(reason string) *Entry {
	d.done = true
	d.e = Entry{Kind: KindIncomplete, Offset: d.skipStart, End: d.abs(d.end), Line: d.skipLine, Reason: reason}
	d.resume = d.makeResume()
	d.spilled = false
	return &d.e
}
