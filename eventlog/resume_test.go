package eventlog

import (
	"bytes"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/cespare/xxhash/v2"
	"pgregory.net/rapid"
)

// decodeInRounds decodes in as a file that grows: first in[:splits[0]],
// then, from where that stopped (its Consumed() offset, with its Resume
// when it ended in an incomplete tail), up to splits[1], and so on to the
// end. It returns the entries of every round but the incomplete tails of
// the rounds before the last, the fingerprint at the end, and the rounds.
func decodeInRounds(t fataler, in []byte, splits []int, opts Options, resume bool) ([]snap, *Fingerprint, []round) {
	t.Helper()
	fp := NewFingerprint()
	var out []snap
	var rounds []round
	off, line := int64(0), 1
	var r *Resume
	for i, k := range append(slices.Clone(splits), len(in)) {
		if int64(k) < off || (k == len(in) && i < len(splits)) {
			continue
		}
		o := opts
		o.Offset, o.Line, o.Fingerprint = off, line, fp
		if resume {
			o.Resume = r
		}
		d := NewDecoder(bytes.NewReader(in[off:k]), &o)
		es, err := decodeAllErrFrom(d, k-int(off))
		if err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		if n := len(es); k < len(in) && n > 0 && es[n-1].Kind == KindIncomplete {
			es = es[:n-1]
		}
		out = append(out, es...)
		rounds = append(rounds, round{resume: o.Resume, end: int64(k), read: d.BytesRead()})
		off, line = d.Consumed()
		r = d.Resume()
	}
	return out, fp, rounds
}

// fataler is what decodeInRounds needs of a test (*testing.T or
// *rapid.T).
type fataler interface {
	Helper()
	Fatalf(format string, args ...any)
}

// round is one decoder of decodeInRounds: the Resume it was given, the end
// of its input and the bytes it read.
type round struct {
	resume *Resume
	end    int64
	read   int64
}

// hostileLog draws a log of events, values larger than max (with lines
// that start with '{' inside, and strings full of braces and escapes),
// values that are not JSON before or after the bound, text, numbers and
// whitespace, possibly cut at the end.
func hostileLog(t *rapid.T, max int) []byte {
	var b bytes.Buffer
	if rapid.Bool().Draw(t, "bom") {
		b.WriteString("\xEF\xBB\xBF")
	}
	pad := func(label string) string {
		return strings.Repeat(rapid.SampledFrom([]string{"p", "{", "}", `\"`, `\\`, `\n{`, "[", "é"}).Draw(t, label), rapid.IntRange(0, max).Draw(t, label+"n"))
	}
	n := rapid.IntRange(1, 8).Draw(t, "values")
	for i := range n {
		id := fmt.Sprintf("e%d", i)
		switch rapid.IntRange(0, 7).Draw(t, "kind") {
		case 0, 1:
			b.WriteString(smallEventID(id))
		case 2: // JSON, perhaps larger than the bound, with an event on a line inside
			fmt.Fprintf(&b, "{\"pad\":\"%s\",\"in\":[\n%s]}", pad("pad"), smallEventID("INSIDE"+id))
		case 3: // not JSON somewhere
			fmt.Fprintf(&b, "{\"pad\":\"%s\",\"in\":[\n%s\n%s x", pad("pad"), smallEventID("INSIDE"+id), pad("pad2"))
		case 4:
			b.WriteString("garbage " + strings.Repeat("g", rapid.IntRange(0, 40).Draw(t, "g")))
		case 5:
			b.WriteString(strings.Repeat("7", rapid.IntRange(1, max+10).Draw(t, "digits")))
		case 6:
			fmt.Fprintf(&b, "[%s]", strings.Repeat("[1,{\"a\":\"}\"}],", rapid.IntRange(0, max/10).Draw(t, "items"))+"0")
		case 7:
			fmt.Fprintf(&b, "\"%s\"", pad("str"))
		}
		b.WriteString(rapid.SampledFrom([]string{"", "\n", " \n", "\n\n", "\t"}).Draw(t, "sep"))
	}
	in := b.Bytes()
	if rapid.Bool().Draw(t, "cut") {
		in = in[:rapid.IntRange(0, len(in)).Draw(t, "cutAt")]
	}
	return in
}

func smallEventID(id string) string {
	return strings.Replace(smallEvent, `"after"`, `"`+id+`"`, 1)
}

// TestResumeEqualsOneScan: decoding a growing log in rounds, each resuming
// where the last stopped inside a value or skipped text, gives the entries
// and the fingerprint of one decoder reading it whole; and a resumed round
// reads only what was appended (plus, once, a value that turns out to end
// within the bound).
func TestResumeEqualsOneScan(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		max := rapid.IntRange(40, 300).Draw(t, "max")
		in := hostileLog(t, max)
		opts := Options{MaxValueSize: max, BufferSize: rapid.SampledFrom([]int{0, 1, 7, 64}).Draw(t, "buffer")}
		splits := rapid.SliceOfN(rapid.IntRange(0, len(in)), 0, 6).Draw(t, "splits")
		slices.Sort(splits)

		fp := NewFingerprint()
		o := opts
		o.Fingerprint = fp
		whole, err := decodeAllErr(bytes.NewReader(in), len(in), &o)
		if err != nil {
			t.Fatalf("decoded whole: %v", err)
		}
		got, gotFP, rounds := decodeInRounds(t, in, splits, opts, true)
		if d := diffSnaps(whole, got); d != "" {
			t.Fatalf("decoded in rounds %v: %s", splits, d)
		}
		// The fingerprint covers what the rounds consumed (which may
		// include a byte order mark or whitespace before an incomplete
		// tail, where one decoder stopped before them).
		if n := gotFP.Len(); n < fp.Len() || gotFP.Sum64() != xxhash.Sum64(in[:n]) {
			t.Fatalf("fingerprint of %d bytes in rounds does not hash them (%d whole)", n, fp.Len())
		}
		// The work of a round that resumed.
		for i, rd := range rounds {
			r := rd.resume
			if r == nil {
				continue
			}
			limit := rd.end - r.At()
			if r.mode == modeValue {
				limit += rd.end - r.Offset() // read again from its start, once
			}
			if rd.read > limit {
				t.Fatalf("round %d resumed at %d and read %d bytes up to %d: more than %d", i, r.At(), rd.read, rd.end, limit)
			}
		}
	})
}

// TestResumeIgnoredWhenItDoesNotFit: a Resume made for another start,
// bound, fingerprint or reader is not used: the decoder scans from its
// start, and gives the same entries as without.
func TestResumeIgnoredWhenItDoesNotFit(t *testing.T) {
	big := `{"pad":"` + strings.Repeat("x", 500) + "\",\"list\":[\n" + smallEventID("in") + "\n"
	in := []byte(smallEvent + "\n" + big + `],"more":1}` + "\n" + smallEventID("next"))
	cut := len(smallEvent) + 1 + len(big)
	first := NewDecoder(bytes.NewReader(in[:cut]), &Options{MaxValueSize: 200, Fingerprint: NewFingerprint()})
	if _, err := decodeAllErrFrom(first, cut); err != nil {
		t.Fatal(err)
	}
	r := first.Resume()
	off, line := first.Consumed()
	if r == nil || r.Offset() != off || r.At() != int64(cut) {
		t.Fatalf("Resume %v after an incomplete tail at %d", r, off)
	}
	fpAt := func(n int64) *Fingerprint {
		fp := NewFingerprint()
		_, _ = fp.Write(in[:n])
		return fp
	}
	want := decodeBytes(t, in[off:], &Options{Offset: off, Line: line, MaxValueSize: 200, Fingerprint: fpAt(off)})
	if len(want) != 2 || want[0].Kind != KindInvalid || want[1].ID != "next" {
		t.Fatalf("the tail decodes as %v", want)
	}
	for _, c := range []struct {
		name string
		opts Options
		r    io.Reader
	}{
		{"fits", Options{Offset: off, Line: line, MaxValueSize: 200, Fingerprint: fpAt(off)}, nil},
		{"another offset", Options{Offset: off + 1, Line: line, MaxValueSize: 200, Fingerprint: fpAt(off + 1)}, nil},
		{"another bound", Options{Offset: off, Line: line, MaxValueSize: 201, Fingerprint: fpAt(off)}, nil},
		{"another fingerprint", Options{Offset: off, Line: line, MaxValueSize: 200, Fingerprint: fpAt(off - 1)}, nil},
		{"no fingerprint", Options{Offset: off, Line: line, MaxValueSize: 200}, nil},
		{"not a seeker", Options{Offset: off, Line: line, MaxValueSize: 200, Fingerprint: fpAt(off)}, io.MultiReader(bytes.NewReader(in[off:]))},
	} {
		o := c.opts
		o.Resume = r
		rd := c.r
		if rd == nil {
			rd = bytes.NewReader(in[o.Offset:])
		}
		d := NewDecoder(rd, &o)
		got, err := decodeAllErrFrom(d, len(in))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		resumed := d.BytesRead() < int64(len(in))-o.Offset
		if resumed != (c.name == "fits") {
			t.Errorf("%s: read %d of %d bytes", c.name, d.BytesRead(), int64(len(in))-o.Offset)
		}
		if o.Offset == off && o.MaxValueSize == 200 {
			if d := diffSnaps(want, got); d != "" {
				t.Errorf("%s: %s", c.name, d)
			}
		}
	}
}
