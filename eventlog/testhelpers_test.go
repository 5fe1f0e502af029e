package eventlog

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"testing/iotest"
)

// snap is a copy of an Entry that outlives Decoder.Next, comparable with ==
// on its fields and printable in failure messages.
type snap struct {
	Kind    Kind
	Offset  int64
	End     int64
	Line    int
	EndLine int
	ID      string
	Raw     string
	Mods    []modSnap
	Field   string
	Reason  string
	Fields  FieldOffsets
}

type modSnap struct{ Name, Value string }

func snapOf(e *Entry) snap {
	s := snap{Kind: e.Kind, Offset: e.Offset, End: e.End, Line: e.Line, EndLine: e.EndLine, ID: string(e.ID), Raw: string(e.Raw), Field: e.Field, Reason: e.Reason, Fields: e.Fields}
	for _, m := range e.Modifiers {
		s.Mods = append(s.Mods, modSnap{string(m.Name), string(m.Value)})
	}
	return s
}

func (s snap) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s @%d-%d line=%d endline=%d", s.Kind, s.Offset, s.End, s.Line, s.EndLine)
	if s.Kind == KindEvent {
		fmt.Fprintf(&b, " id=%q mods=%v raw=%.60q", s.ID, s.Mods, s.Raw)
	} else {
		fmt.Fprintf(&b, " field=%q reason=%q", s.Field, s.Reason)
	}
	return b.String()
}

func equalSnap(a, b snap) bool {
	if a.Kind != b.Kind || a.Offset != b.Offset || a.End != b.End || a.Line != b.Line || a.EndLine != b.EndLine ||
		a.ID != b.ID || a.Raw != b.Raw || a.Field != b.Field || a.Reason != b.Reason || len(a.Mods) != len(b.Mods) {
		return false
	}
	for i := range a.Mods {
		if a.Mods[i] != b.Mods[i] {
			return false
		}
	}
	return true
}

// decodeAll decodes everything r yields. It fails the test on an
// unexpected error and guards against a decoder that never stops.
func decodeAll(tb testing.TB, r io.Reader, size int, opts *Options) []snap {
	tb.Helper()
	got, err := decodeAllErr(r, size, opts)
	if err != nil {
		tb.Fatalf("decode: %v", err)
	}
	return got
}

// decodeAllErr is decodeAll for callers that expect a reader error; size
// is the input length, to bound the number of entries.
func decodeAllErr(r io.Reader, size int, opts *Options) ([]snap, error) {
	return decodeAllErrFrom(NewDecoder(r, opts), size)
}

// decodeAllErrFrom reads the rest of d's entries.
func decodeAllErrFrom(d *Decoder, size int) ([]snap, error) {
	var out []snap
	for {
		e, err := d.Next()
		if err != nil {
			if _, err2 := d.Next(); !errors.Is(err2, err) && err2 != err {
				return out, fmt.Errorf("Next after the end returned %v, then %v", err, err2)
			}
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return out, err
		}
		if e == nil {
			return out, errors.New("Next returned a nil entry and a nil error")
		}
		out = append(out, snapOf(e))
		if len(out) > size+2 {
			return out, fmt.Errorf("more entries (%d) than input bytes (%d): the decoder does not make progress", len(out), size)
		}
	}
}

func decodeBytes(tb testing.TB, in []byte, opts *Options) []snap {
	tb.Helper()
	return decodeAll(tb, bytes.NewReader(in), len(in), opts)
}

// readerVariant is one way of feeding an input to the decoder: a buffer
// size and a reader shape, which must never change the entries.
type readerVariant struct {
	name       string
	bufferSize int
	wrap       func(io.Reader) io.Reader
}

var readerVariants = []readerVariant{
	{"default", 0, nil},
	{"buf1", 1, nil},
	{"buf7", 7, nil},
	{"buf64", 64, nil},
	{"buf7-onebyte", 7, iotest.OneByteReader},
	{"buf64-dataerr", 64, iotest.DataErrReader},
	{"buf1-half", 1, iotest.HalfReader},
}

// decodeVariant decodes in with the variant's buffer size and reader. The
// one-byte reader rescans a value on every byte, so it is only used on
// small inputs.
func decodeVariant(tb testing.TB, in []byte, v readerVariant, opts Options) ([]snap, bool) {
	tb.Helper()
	if v.wrap != nil && len(in) > 8<<10 {
		return nil, false
	}
	opts.BufferSize = v.bufferSize
	var r io.Reader = bytes.NewReader(in)
	if v.wrap != nil {
		r = v.wrap(r)
	}
	return decodeAll(tb, r, len(in), &opts), true
}

// diffSnaps reports the first difference between two entry lists, or "".
func diffSnaps(want, got []snap) string {
	for i := 0; i < len(want) || i < len(got); i++ {
		switch {
		case i >= len(want):
			return fmt.Sprintf("entry %d: unexpected %v", i, got[i])
		case i >= len(got):
			return fmt.Sprintf("entry %d: missing %v", i, want[i])
		case !equalSnap(want[i], got[i]):
			return fmt.Sprintf("entry %d:\n\twant %v\n\tgot  %v", i, want[i], got[i])
		}
	}
	return ""
}

// lineAt is the 1-based line number of offset off of in, counted
// independently of the decoder.
func lineAt(in []byte, off int64) int { return 1 + bytes.Count(in[:off], []byte("\n")) }

func readSample(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile("testdata/samples/" + name)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// compactJSON is encoding/json's compaction of b, which must be valid.
func compactJSON(tb testing.TB, b []byte) string {
	tb.Helper()
	var c bytes.Buffer
	if err := json.Compact(&c, b); err != nil {
		tb.Fatalf("json.Compact(%.80q): %v", b, err)
	}
	return c.String()
}
