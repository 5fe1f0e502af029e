package eventlog

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/cespare/xxhash/v2"
)

// splitInput is one input for the resume and digest invariants.
type splitInput struct {
	name string
	in   []byte
	max  int
}

// splitInputs: every decode case, the samples, and all the decode cases
// run together (so every kind of entry follows every other kind).
func splitInputs(tb testing.TB) []splitInput {
	tb.Helper()
	var out []splitInput
	var all []byte
	for _, c := range loadDecodeCases(tb) {
		out = append(out, splitInput{"decode/" + c.name, c.input, c.max})
		if c.max == 0 && len(c.input) < 16<<10 {
			all = append(all, c.input...)
			all = append(all, '\n')
		}
	}
	out = append(out,
		splitInput{"appended.json", readSample(tb, "appended.json"), 0},
		splitInput{"after-delete.json", readSample(tb, "after-delete.json"), 0},
		splitInput{"all-cases", all, 0},
	)
	return out
}

var splitBufferSizes = []int{0, 1, 7, 64}

// TestResumeAtEntryEnd is the invariant of doc.go: for the End E of every
// entry of a whole decode, the entries up to E followed by those of a
// decoder started at E (with E's file offset and line) are the entries of
// the whole decode.
func TestResumeAtEntryEnd(t *testing.T) {
	for _, si := range splitInputs(t) {
		t.Run(si.name, func(t *testing.T) {
			for _, bs := range splitBufferSizes {
				if bs == 1 && len(si.in) > 16<<10 {
					continue
				}
				whole := decodeBytes(t, si.in, &Options{MaxValueSize: si.max, BufferSize: bs})
				for k, e := range whole {
					if e.Kind == KindIncomplete {
						// Not consumed: reading again from its Offset finds it
						// again, as the only entry.
						tail := decodeBytes(t, si.in[e.Offset:], &Options{MaxValueSize: si.max, BufferSize: bs, Offset: e.Offset, Line: lineAt(si.in, e.Offset)})
						if d := diffSnaps(whole[k:], tail); d != "" {
							t.Errorf("buffer %d: reading again from the incomplete tail at %d: %s", bs, e.Offset, d)
						}
						continue
					}
					if e.EndLine != lineAt(si.in, e.End) {
						t.Fatalf("entry %d %v: EndLine, want %d", k, e, lineAt(si.in, e.End))
					}
					tail := decodeBytes(t, si.in[e.End:], &Options{MaxValueSize: si.max, BufferSize: bs, Offset: e.End, Line: e.EndLine})
					got := append(append([]snap(nil), whole[:k+1]...), tail...)
					if d := diffSnaps(whole, got); d != "" {
						t.Fatalf("buffer %d: resuming at the end %d of entry %d: %s", bs, e.End, k, d)
					}
				}
			}
		})
	}
}

// TestResumeAfterGrowth is the same invariant as the mirror meets it: the
// file is read while it holds only a prefix of its final bytes (cut
// anywhere), then read on from the End of the last complete entry once it
// has grown.
func TestResumeAfterGrowth(t *testing.T) {
	for _, si := range splitInputs(t) {
		if si.name == "all-cases" {
			continue // each case alone is enough here, and this is quadratic
		}
		t.Run(si.name, func(t *testing.T) {
			t.Parallel()
			whole := decodeBytes(t, si.in, &Options{MaxValueSize: si.max})
			for _, cut := range cutPoints(si.in, whole) {
				// A small first buffer: a decoder per cut point must not
				// allocate the default 256 KiB each time.
				for _, bs := range []int{4096, 7} {
					if bs == 7 && len(si.in) > 4096 {
						continue
					}
					opts := Options{MaxValueSize: si.max, BufferSize: bs}
					d := NewDecoder(bytes.NewReader(si.in[:cut]), &opts)
					first, err := decodeAllErrFrom(d, cut)
					if err != nil {
						t.Fatal(err)
					}
					incomplete := false
					if n := len(first); n > 0 && first[n-1].Kind == KindIncomplete {
						first, incomplete = first[:n-1], true
					}
					var resume int64
					if n := len(first); n > 0 {
						resume = first[n-1].End
						if endsInTopLevelNumber(si.in, first[n-1], cut) {
							// TestResumeAfterGrowthTopLevelNumber.
							continue
						}
					}
					// Consumed is the End of the last entry, or the end of
					// the input after a clean end (trailing whitespace).
					consumed, line := d.Consumed()
					if want := map[bool]int64{true: resume, false: int64(cut)}[incomplete]; consumed != want || line != lineAt(si.in, consumed) {
						t.Fatalf("buffer %d, input cut at %d: Consumed() = %d, %d; want %d, %d", bs, cut, consumed, line, want, lineAt(si.in, want))
					}
					for _, from := range []int64{resume, consumed} {
						o := opts
						o.Offset, o.Line = from, lineAt(si.in, from)
						tail := decodeBytes(t, si.in[from:], &o)
						if d := diffSnaps(whole, append(first[:len(first):len(first)], tail...)); d != "" {
							t.Fatalf("buffer %d: read up to %d, then on from %d: %s", bs, cut, from, d)
						}
					}
				}
			}
		})
	}
}

// cutPoints are every offset of a small input; for a large one, the
// offsets next to each entry's bounds and about 150 others.
func cutPoints(in []byte, entries []snap) []int {
	if len(in) <= 400 {
		cuts := make([]int, len(in)+1)
		for i := range cuts {
			cuts[i] = i
		}
		return cuts
	}
	seen := map[int]bool{}
	var cuts []int
	add := func(c int) {
		if c >= 0 && c <= len(in) && !seen[c] {
			seen[c] = true
			cuts = append(cuts, c)
		}
	}
	for _, e := range entries {
		for d := -1; d <= 1; d++ {
			add(int(e.Offset) + d)
			add(int(e.End) + d)
		}
	}
	for c := 0; c <= len(in); c += len(in)/150 + 1 {
		add(c)
	}
	add(len(in))
	return cuts
}

// endsInTopLevelNumber: the entry is a top-level number that runs to the
// end of the (cut) input, so more bytes could have extended it.
func endsInTopLevelNumber(in []byte, e snap, cut int) bool {
	return e.End == int64(cut) && bytes.IndexByte([]byte("-0123456789"), in[e.Offset]) >= 0
}

// TestResumeAfterGrowthTopLevelNumber: a top-level number at the very end
// of the input is taken as complete, but the file may still grow it
// ("12" becomes "123"), so reading the prefix, then the rest, gives other
// entries than reading the whole file, against doc.go's promise.
func TestResumeAfterGrowthTopLevelNumber(t *testing.T) {
	in := []byte("123\n{}\n")
	whole := decodeBytes(t, in, nil)
	first := decodeBytes(t, in[:2], nil)
	if len(first) != 1 {
		t.Fatalf("prefix %q: entries %v", in[:2], first)
	}
	if first[0].Kind == KindIncomplete {
		return // fixed: the number may go on, nothing is consumed
	}
	tail := decodeBytes(t, in[first[0].End:], &Options{Offset: first[0].End})
	if d := diffSnaps(whole, append(first, tail...)); d != "" {
		t.Errorf("prefix %q then the rest: %s", in[:2], d)
	}
}

// TestFingerprint: after each entry the fingerprint holds exactly the
// bytes from Options.Offset to the entry's End (on top of what it held),
// and Consumed says so; an incomplete tail is never in it; at a clean end
// the trailing whitespace is. However the reads were split.
func TestFingerprint(t *testing.T) {
	for _, si := range splitInputs(t) {
		t.Run(si.name, func(t *testing.T) {
			for _, v := range readerVariants {
				if v.wrap != nil && len(si.in) > 8<<10 {
					continue
				}
				// From the start, and resuming at the middle entry's End
				// with a fingerprint that already holds the bytes before it
				// (as the mirror's does).
				starts := []int64{0}
				if whole := decodeBytes(t, si.in, &Options{MaxValueSize: si.max}); len(whole) > 1 && whole[len(whole)/2].Kind != KindIncomplete {
					starts = append(starts, whole[len(whole)/2].End)
				}
				for _, off := range starts {
					if err := checkFingerprint(si.in, off, si.max, v); err != nil {
						t.Errorf("%s from %d: %v", v.name, off, err)
					}
				}
			}
		})
	}
}

func checkFingerprint(in []byte, off int64, maxSize int, v readerVariant) error {
	fp := NewFingerprint()
	_, _ = fp.Write(in[:off])
	var r io.Reader = bytes.NewReader(in[off:])
	if v.wrap != nil {
		r = v.wrap(r)
	}
	d := NewDecoder(r, &Options{MaxValueSize: maxSize, BufferSize: v.bufferSize, Offset: off, Line: lineAt(in, off), Fingerprint: fp})
	check := func(what string, consumed int64) error {
		if c, l := d.Consumed(); c != consumed || l != lineAt(in, consumed) {
			return fmt.Errorf("%s: Consumed() = %d, %d; want %d, %d", what, c, l, consumed, lineAt(in, consumed))
		}
		if fp.Len() != consumed {
			return fmt.Errorf("%s: fingerprint Len %d, want %d", what, fp.Len(), consumed)
		}
		if got, want := fp.Sum64(), xxhash.Sum64(in[:consumed]); got != want {
			return fmt.Errorf("%s: the fingerprint is not the hash of [0,%d)%s", what, consumed, digestWhich(in, got))
		}
		if want := in[max(0, consumed-TailSize):consumed]; !bytes.Equal(fp.Tail(), want) || fp.TailSum64() != TailSum64(want) {
			return fmt.Errorf("%s: fingerprint tail %.40q..., want the %d bytes before %d", what, fp.Tail(), len(want), consumed)
		}
		return nil
	}
	if err := check("before Next", off); err != nil {
		return err
	}
	consumed, incomplete := off, false
	for n := 0; ; n++ {
		e, err := d.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if n > len(in) {
			return fmt.Errorf("no progress")
		}
		if e.Kind == KindIncomplete {
			incomplete = true
		} else {
			consumed = e.End
		}
		if err := check(fmt.Sprintf("after %s @%d-%d", e.Kind, e.Offset, e.End), consumed); err != nil {
			return err
		}
	}
	if !incomplete {
		// A clean end: whatever follows the last entry is whitespace, and
		// it is consumed too.
		consumed = int64(len(in))
	}
	return check("at the end", consumed)
}

// digestWhich says, for a failure message, which prefix a hash is of.
func digestWhich(in []byte, sum uint64) string {
	for i := 0; i <= len(in); i++ {
		if xxhash.Sum64(in[:i]) == sum {
			return fmt.Sprintf(" (it is the hash of [0,%d))", i)
		}
	}
	return " (nor of any prefix)"
}

// TestFingerprintSpill: text and whitespace that leave the buffer before
// an entry is complete are hashed in order, exactly once.
func TestFingerprintSpill(t *testing.T) {
	ev := `{"id":"a","date":"2025-05-22T15:30:00Z","original":"","input":"","type":"","description":"","creator":{"name":"n","uuid":"u","version":"v"}}`
	big := `{"id":"big","pad":"` + strings.Repeat("x", 600) + `"}`
	cases := map[string]string{
		"whitespace before":   "\n\n   \t\r\n" + ev + "\n",
		"whitespace after":    ev + "\n\n\n      \n",
		"garbage before":      "some text that is long enough to be spilled\n" + ev + "\n",
		"garbage then cut":    ev + "\nlong garbage text without a following line\n",
		"cut value":           ev + "\n\n    \n" + `{"id":"b","date":"2025-05-22T15:`,
		"bom and whitespace":  "\xEF\xBB\xBF  \n" + ev,
		"bom only":            "\xEF\xBB\xBF",
		"oversized then ev":   ev + "\n" + big + "\n" + ev + "\n",
		"oversized at eof":    ev + "\n" + big + "\n",
		"space between evs":   ev + "        " + ev + "       ",
		"garbage split by nl": ev + "\nx\ny\nz\n" + ev,
		"long tail window":    strings.Repeat(ev+"\n", 40) + "   ",
	}
	for name, in := range cases {
		for _, v := range readerVariants {
			if err := checkFingerprint([]byte(in), 0, 512, v); err != nil {
				t.Errorf("%s, %s: %v", name, v.name, err)
			}
		}
	}
}

// TestReaderError: an error from the reader is returned instead of
// io.EOF, and the whitespace before it is not consumed (the end is not a
// clean one).
func TestReaderError(t *testing.T) {
	ev := `{"id":"a","date":"2025-05-22T15:30:00Z","original":"","input":"","type":"","description":"","creator":{"name":"n","uuid":"u","version":"v"}}`
	boom := errors.New("boom")
	for _, tail := range []string{"\n  ", "\n{\"id\":"} {
		in := ev + tail
		fp := NewFingerprint()
		d := NewDecoder(io.MultiReader(strings.NewReader(in), iotest.ErrReader(boom)), &Options{Fingerprint: fp})
		e, err := d.Next()
		if err != nil || e.Kind != KindEvent || e.End != int64(len(ev)) {
			t.Fatalf("%q: first Next: %v, %v", in, e, err)
		}
		for n := 0; ; n++ {
			e, err = d.Next()
			if err != nil {
				break
			}
			if e.Kind != KindIncomplete || n > 0 {
				t.Fatalf("%q: unexpected entry %v", in, snapOf(e))
			}
		}
		if !errors.Is(err, boom) {
			t.Errorf("%q: Next returned %v, want the reader's error", in, err)
		}
		if c, _ := d.Consumed(); c != int64(len(ev)) || fp.Len() != int64(len(ev)) || fp.Sum64() != xxhash.Sum64([]byte(ev)) {
			t.Errorf("%q: consumed %d, fingerprint of %d bytes; want %d", in, c, fp.Len(), len(ev))
		}
	}
}

// TestOpenTail: Open reads a log file from an offset, with file offsets
// and lines, as decoding the whole file does from there.
func TestOpenTail(t *testing.T) {
	in := readSample(t, "after-delete.json")
	path := t.TempDir() + "/data.json"
	if err := os.WriteFile(path, in, 0o644); err != nil {
		t.Fatal(err)
	}
	whole := decodeBytes(t, in, nil)
	for _, k := range []int{-1, 0, 17, len(whole) - 2, len(whole) - 1} {
		var opts *Options
		from := 0
		if k >= 0 {
			opts = &Options{Offset: whole[k].End, Line: whole[k].EndLine}
			from = k + 1
		}
		fd, err := Open(path, opts)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeAllErrFrom(fd.Decoder, len(in))
		if err != nil {
			t.Fatal(err)
		}
		if d := diffSnaps(whole[from:], got); d != "" {
			t.Errorf("Open at entry %d: %s", k, d)
		}
		if c, l := fd.Consumed(); c != int64(len(in)) || l != lineAt(in, int64(len(in))) {
			t.Errorf("Open at entry %d: Consumed() = %d, %d at the end of the file", k, c, l)
		}
		if err := fd.Close(); err != nil {
			t.Error(err)
		}
	}
	if _, err := Open(path+".missing", nil); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open of a missing file: %v", err)
	}
}
