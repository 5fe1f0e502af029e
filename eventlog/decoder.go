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
	// Reason say why.
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
	// entry, skipped without ever being held in memory whole.
	// Default: 16 MiB.
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
}

// DefaultMaxValueSize is the default bound on one value.
const DefaultMaxValueSize = 16 << 20

var bom = []byte{0xEF, 0xBB, 0xBF}

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

	consumed     int64 // see Consumed
	consumedLine int
	line         int   // line number at file offset lineAt
	lineAt       int64 // file offset up to which newlines are counted
	hashed       int64 // file offset up to which bytes went to fp (or spill)
	spill        Fingerprint
	spilled      bool // spill holds fp plus bytes not yet committed

	skipping   bool // inside a run of text or an oversized value
	skipStart  int64
	skipLine   int
	skipReason string

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
	return &Decoder{
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
	}
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
	if d.done {
		return nil, d.finalErr()
	}
	for {
		if d.skipping {
			if e := d.skip(); e != nil {
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
			// The reason quotes the start of the line; read enough of it
			// first, so that the reason does not depend on how the input
			// happened to be read.
			if b := d.buf[start:d.end]; len(b) < previewLen && bytes.IndexByte(b, '\n') < 0 && !d.eof {
				d.fill(start)
				continue
			}
			d.startSkip(start, fmt.Sprintf("not JSON: text starting %q", preview(d.buf[start:d.end])))
			continue
		}
		out, vend, members, err := jsonx.AppendCompactMembers(d.out[:0], d.buf[:d.end], start, d.members)
		d.out, d.members = out, members
		// A value that touches the end of the data may go on (a number)
		// or be cut: read more before deciding, unless the input is over.
		if errors.Is(err, jsonx.ErrShort) || (err == nil && vend == d.end && !d.eof) {
			if d.end-start > d.max {
				d.startSkip(start, fmt.Sprintf("value larger than %d bytes (the size bound)", d.max))
				continue
			}
			if d.eof {
				return d.incomplete(start, "the input ends inside a value"), nil
			}
			d.fill(start)
			continue
		}
		if se, ok := err.(*jsonx.SyntaxError); ok {
			// An error beyond the size bound is not reached when the value
			// is read in small pieces (it is too large first): classify by
			// where the error is, not by what happens to be buffered.
			if se.Offset-start > d.max {
				d.startSkip(start, fmt.Sprintf("value larger than %d bytes (the size bound)", d.max))
			} else {
				d.startSkip(start, "not JSON: "+se.Msg)
			}
			continue
		}
		// A top-level number at the very end of the input may yet grow
		// ("12" becoming "123"): like any value that may grow, it waits.
		if vend == d.end && d.eof && isNumberStart(d.buf[start]) {
			return d.incomplete(start, "the input ends inside a number"), nil
		}
		if vend-start > d.max {
			d.startSkip(start, fmt.Sprintf("value larger than %d bytes (the size bound)", d.max))
			continue
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

func preview(b []byte) []byte {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		b = b[:i]
	}
	if len(b) > previewLen {
		b = b[:previewLen]
	}
	return b
}

// value turns the complete value buf[start:vend] (compacted in d.out) into
// an entry.
func (d *Decoder) value(start, vend int) *Entry {
	e := &d.e
	*e = Entry{Offset: d.abs(start), End: d.abs(vend), Line: d.lineOf(start)}
	e.EndLine = d.lineOf(vend)
	d.commit(vend)
	d.pos = vend
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
	return e
}

func (d *Decoder) incomplete(start int, reason string) *Entry {
	d.done = true
	d.spilled = false
	d.e = Entry{Kind: KindIncomplete, Offset: d.abs(start), End: d.abs(d.end), Line: d.lineOf(start), Reason: reason}
	return &d.e
}

// startSkip enters skipping mode: the text from start is not a value the
// decoder can use, and reading resumes at the next line that starts with
// '{'.
func (d *Decoder) startSkip(start int, reason string) {
	d.skipping = true
	d.skipStart = d.abs(start)
	d.skipLine = d.lineOf(start)
	d.skipReason = reason
	d.pos = start + 1
}

// skip looks for the next "\n{" without holding the skipped text in
// memory. It returns the invalid entry once found, the incomplete entry at
// the end of the input, or nil when it needs more input.
func (d *Decoder) skip() *Entry {
	if i := bytes.Index(d.buf[d.pos:d.end], []byte("\n{")); i >= 0 {
		next := d.pos + i + 1
		d.skipping = false
		d.e = Entry{Kind: KindInvalid, Offset: d.skipStart, End: d.abs(next), Line: d.skipLine, EndLine: d.lineOf(next), Reason: d.skipReason}
		d.commit(next)
		d.pos = next
		return &d.e
	}
	if d.eof {
		d.skipping = false
		d.done = true
		d.spilled = false
		d.e = Entry{Kind: KindIncomplete, Offset: d.skipStart, End: d.abs(d.end), Line: d.skipLine,
			Reason: d.skipReason + ", and no line starting with '{' follows yet"}
		return &d.e
	}
	// Keep only the last byte: it may be the '\n' of a "\n{" split by the
	// read.
	keep := d.end - 1
	if keep < d.pos {
		keep = d.pos
	}
	d.pos = keep
	d.fill(keep)
	return nil
}
