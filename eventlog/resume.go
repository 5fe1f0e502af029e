package eventlog

import (
	"bytes"
	"fmt"
	"io"

	"github.com/mirrord/mirrord/internal/jsonx"
)

// Resume is where a decoder stopped when its input ended inside a value
// (or inside text being skipped): its place in the value's grammar, the
// nesting, whether it was skipping the value for its size, the line
// count, and the fingerprint of the bytes it scanned. A later decoder of
// the same file, grown since, given it as Options.Resume, reads on from
// there instead of scanning the value again from its first byte: an
// incomplete value of gigabytes that grows by a few bytes costs a few
// bytes. The bytes before At are not read again unless the value turns out
// to be complete within the size bound (it is then read whole, once).
//
// It lives in memory only: a decoder started without it scans the value
// from its start once, and gives the same entries.
type Resume struct {
	// The decoder it resumes: its Options.Offset, Line and MaxValueSize,
	// and the fingerprint it started from.
	offset int64
	line   int
	max    int
	hasFP  bool
	fpLen  int64
	fpSum  uint64

	at     int64       // bytes before it are scanned
	atLine int         // the line number at it
	prevNL bool        // the byte before it is '\n'
	fp     Fingerprint // the fingerprint with [offset, at) added

	mode      decodeMode
	start     int64 // the incomplete entry: offset, line and reason
	startLine int
	reason    string
	sc        jsonx.Scanner
	text      bool // skipping text, whose reason quotes its start
	quoted    []byte
	quoteDone bool
}

// Offset is where the decoder to resume starts: Options.Offset must be
// this (the Consumed() offset of the decoder that made it).
func (r *Resume) Offset() int64 { return r.offset }

// At is the offset up to which the input was scanned: a resumed decoder
// reads from there.
func (r *Resume) At() int64 { return r.at }

// Tail returns the last bytes before At (at most TailSize of them), as
// the file held them when scanned, for a caller to check cheaply that they
// are still there; nil when the decoder had no Fingerprint.
func (r *Resume) Tail() []byte {
	if !r.hasFP {
		return nil
	}
	return r.fp.Tail()
}

func (r *Resume) String() string {
	return fmt.Sprintf("resume at %d (value at %d, from %d)", r.at, r.start, r.offset)
}

// fits reports whether r was made for a decoder with options o (already
// defaulted).
func (r *Resume) fits(o *Options) bool {
	if r == nil || r.offset != o.Offset || r.line != o.Line || r.max != o.MaxValueSize || r.hasFP != (o.Fingerprint != nil) {
		return false
	}
	return !r.hasFP || (o.Fingerprint.Len() == r.fpLen && o.Fingerprint.Sum64() == r.fpSum)
}

// Resume returns the state to resume from, once Next has returned an
// incomplete entry; nil otherwise.
func (d *Decoder) Resume() *Resume { return d.resume }

// makeResume captures where the decoder stopped: every byte read is
// scanned. There is none when the incomplete entry rests on a decision
// that more input could change.
func (d *Decoder) makeResume() *Resume {
	if d.noResume {
		return nil
	}
	r := &Resume{
		offset: d.consumed, line: d.consumedLine, max: d.max,
		at: d.abs(d.end), atLine: d.lineOf(d.end), prevNL: d.nlBefore(d.end),
		mode: d.mode, start: d.skipStart, startLine: d.skipLine, reason: d.skipReason, sc: d.sc.Clone(),
		text: d.text, quoted: bytes.Clone(d.quoted), quoteDone: d.quoteDone,
	}
	if d.fp != nil {
		r.hasFP, r.fpLen, r.fpSum = true, d.fp.Len(), d.fp.Sum64()
		r.fp = *d.fp
		if d.spilled {
			r.fp = d.spill
		}
		_, _ = r.fp.Write(d.buf[d.hashed-d.base : d.end])
	}
	return r
}

// applyResume skips the reader to where the resumed decoder stopped, and
// takes up its state there.
func (d *Decoder) applyResume() error {
	r := d.resumeFrom
	d.resumeFrom = nil
	if _, err := d.r.(io.Seeker).Seek(r.at-r.offset, io.SeekCurrent); err != nil {
		return fmt.Errorf("eventlog: resuming at offset %d: %w", r.at, err)
	}
	d.base, d.pos, d.end = r.at, 0, 0
	d.line, d.lineAt, d.prevNL = r.atLine, r.at, r.prevNL
	d.hashed = r.at
	if r.hasFP {
		d.spill, d.spilled = r.fp, true
	}
	d.mode, d.skipStart, d.skipLine, d.skipReason = r.mode, r.start, r.startLine, r.reason
	d.sc = r.sc.Clone()
	d.text, d.quoted, d.quoteDone = r.text, append(d.quoted[:0], r.quoted...), r.quoteDone
	d.resumed = true
	return nil
}

// restart goes back to the decoder's first byte and reads as if it had not
// resumed: a value it resumed turned out to end (or break) within the size
// bound, and its entry needs its bytes from the start.
func (d *Decoder) restart() error {
	if !d.resumed {
		return fmt.Errorf("eventlog: the value at offset %d left the buffer within the size bound: a bug", d.skipStart)
	}
	if _, err := d.r.(io.Seeker).Seek(d.origin-d.abs(d.end), io.SeekCurrent); err != nil {
		return fmt.Errorf("eventlog: reading again from offset %d: %w", d.origin, err)
	}
	d.base, d.pos, d.end, d.eof = d.origin, 0, 0, false
	d.line, d.lineAt, d.prevNL = d.originLine, d.origin, false
	d.hashed, d.spilled = d.origin, false
	d.mode, d.sc = modeBetween, jsonx.Scanner{}
	d.resumed = false
	return nil
}
