package eventlog

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// repeatReader yields n bytes of copies of pat without holding them.
type repeatReader struct {
	pat   []byte
	n     int64
	done  int64
	block []byte
}

func (r *repeatReader) Read(p []byte) (int, error) {
	if r.done == r.n {
		return 0, io.EOF
	}
	if r.block == nil {
		r.block = bytes.Repeat(r.pat, max(1, 64<<10/len(r.pat)))
	}
	k := int(min(int64(len(p)), r.n-r.done))
	for i := 0; i < k; {
		off := int((r.done + int64(i)) % int64(len(r.pat)))
		i += copy(p[i:k], r.block[off:])
	}
	r.done += int64(k)
	return k, nil
}

// bigInput is prefix, n times c, suffix, as a reader.
func bigInput(prefix string, c byte, n int64, suffix string) io.Reader {
	return bigPattern(prefix, string(c), n, suffix)
}

// bigPattern is prefix, n bytes of copies of pat, suffix, as a reader.
func bigPattern(prefix, pat string, n int64, suffix string) io.Reader {
	return io.MultiReader(strings.NewReader(prefix), &repeatReader{pat: []byte(pat), n: n}, strings.NewReader(suffix))
}

const smallEvent = `{"id":"after","date":"2025-05-22T15:30:00Z","original":"","input":"","type":"","description":"","creator":{"name":"n","uuid":"u","version":"v"}}`

// eventOfSize is a valid event of exactly n bytes (n >= 160).
func eventOfSize(id string, n int) string {
	head := `{"id":"` + id + `","date":"2025-05-22T15:30:00Z","original":"","input":"","type":"","description":"","creator":{"name":"n","uuid":"u","version":"v"},"pad":"`
	return head + strings.Repeat("x", n-len(head)-2) + `"}`
}

// TestMaxValueSize: a value larger than the bound is one invalid entry
// that names the bound. A value that is JSON is skipped by its structure,
// up to its own end, and decoding goes on right after it; one that is not
// JSON (beyond the bound) up to the next line that starts with '{'. A
// value of exactly the bound is read.
func TestMaxValueSize(t *testing.T) {
	const max = 1024
	exact, over := eventOfSize("exact", max), eventOfSize("over", max+1)
	if len(exact) != max || len(over) != max+1 {
		t.Fatal("eventOfSize")
	}
	cases := []struct {
		name string
		in   string
		// the oversized text, and the id of the event that follows it
		bad  string
		next string
	}{
		{"event", exact + "\n" + over + "\n" + smallEvent + "\n", over, "after"},
		{"indented", exact + "\n" + "{\n\t\"pad\": \"" + strings.Repeat("y", 2000) + "\"\n}\n" + smallEvent, "{\n\t\"pad\": \"" + strings.Repeat("y", 2000) + "\"\n}", "after"},
		{"array", exact + "\n[" + strings.Repeat("1,", 1000) + "1]\n" + smallEvent, "[" + strings.Repeat("1,", 1000) + "1]", "after"},
		{"number", exact + "\n" + strings.Repeat("7", 3000) + "\n" + smallEvent, strings.Repeat("7", 3000), "after"},
		{"unterminated string", exact + "\n" + `{"id":"` + strings.Repeat("z", 3000) + "\n" + smallEvent, `{"id":"` + strings.Repeat("z", 3000) + "\n", "after"},
		{"invalid after the bound", exact + "\n" + `{"id":"` + strings.Repeat("z", 3000) + `",x}` + "\n" + smallEvent, `{"id":"` + strings.Repeat("z", 3000) + `",x}` + "\n", "after"},
		{"no space before", exact + over + "\n" + smallEvent, over, "after"},
		{"glued after", exact + "\n" + over + smallEvent, over, "after"},
		{"line inside", exact + "\n" + `{"pad":"` + strings.Repeat("i", 1100) + `","in":[` + "\n" + eventOfSize("inside", 200) + "]}" + smallEvent, `{"pad":"` + strings.Repeat("i", 1100) + `","in":[` + "\n" + eventOfSize("inside", 200) + "]}", "after"},
	}
	for _, c := range cases {
		for _, v := range readerVariants {
			in := []byte(c.in)
			got, ok := decodeVariant(t, in, v, Options{MaxValueSize: max})
			if !ok {
				continue
			}
			badAt := int64(strings.Index(c.in, c.bad))
			badEnd := badAt + int64(len(c.bad))
			if len(got) != 3 || badAt < int64(len(exact)) {
				t.Errorf("%s, %s: %d entries, want 3: %v", c.name, v.name, len(got), got)
				continue
			}
			if got[0].Kind != KindEvent || got[0].Offset != 0 || got[0].End != max || got[0].ID != "exact" {
				t.Errorf("%s, %s: first entry %v, want the event of exactly %d bytes", c.name, v.name, got[0], max)
			}
			if bad := got[1]; bad.Kind != KindInvalid || bad.Offset != badAt || bad.End != badEnd || bad.Line != lineAt(in, badAt) {
				t.Errorf("%s, %s: entry %v, want invalid @%d-%d", c.name, v.name, bad, badAt, badEnd)
			} else if !strings.Contains(bad.Reason, fmt.Sprintf("larger than max-value-size %d bytes", max)) {
				t.Errorf("%s, %s: reason %q does not name the bound %d", c.name, v.name, bad.Reason, max)
			}
			if next := got[2]; next.Kind != KindEvent || next.ID != c.next || next.Offset != int64(strings.LastIndex(c.in, smallEvent)) {
				t.Errorf("%s, %s: after the oversized value: %v", c.name, v.name, next)
			}
		}
	}
}

// TestMaxValueSizeReason: a value that is too large and also not JSON
// somewhere after the bound is reported as too large (and where it is
// not JSON), whether or not the decoder's buffer holds the error: the
// reason does not depend on how the input was read.
func TestMaxValueSizeReason(t *testing.T) {
	in := []byte(`{"id":"` + strings.Repeat("z", 3000) + `",x}` + "\n" + smallEvent)
	def := decodeBytes(t, in, &Options{MaxValueSize: 1024})
	small := decodeAll(t, iotest.OneByteReader(bytes.NewReader(in)), len(in), &Options{MaxValueSize: 1024, BufferSize: 7})
	if len(def) != 2 || len(small) != 2 || def[0].Kind != KindInvalid || small[0].Kind != KindInvalid {
		t.Fatalf("entries %v and %v", def, small)
	}
	if !strings.Contains(small[0].Reason, "larger than max-value-size 1024 bytes") {
		t.Errorf("one byte per read: reason %q", small[0].Reason)
	}
	if def[0].Reason != small[0].Reason {
		t.Errorf("default buffer: reason %q, one byte per read: %q", def[0].Reason, small[0].Reason)
	}
}

// bufBound is how large the decoder's buffers may grow: the first buffer,
// or what deciding that a value is too large needs (the bound, plus the
// decoder's 64 KiB margin, plus one 4 KiB step of growth).
func bufBound(o Options) int {
	return max(o.BufferSize, o.MaxValueSize+64<<10+4096)
}

// TestMaxValueSizeMemory streams 50 MB through the decoder in shapes that
// could make it hold everything: it must keep its buffers near the bound.
func TestMaxValueSizeMemory(t *testing.T) {
	const n = 50 << 20
	const lines = 8 << 20 / 13 * 13 // the JSON one: slower to scan than strings
	type result struct {
		kind   Kind
		offset int64
		end    int64
		reason string
	}
	cases := []struct {
		name   string
		r      func() io.Reader
		opts   Options
		want   []result
		reason string // substring of the first entry's reason
	}{
		{
			name: "garbage line",
			r:    func() io.Reader { return bigInput("", 'g', n, "\n"+smallEvent+"\n") },
			opts: Options{MaxValueSize: 1024, BufferSize: 4096},
			want: []result{{KindInvalid, 0, n + 1, ""}, {KindEvent, n + 1, n + 1 + int64(len(smallEvent)), ""}},
		},
		{
			name: "garbage line, no event after",
			r:    func() io.Reader { return bigInput("", 'g', n, "") },
			opts: Options{MaxValueSize: 1024},
			want: []result{{KindIncomplete, 0, n, ""}},
		},
		{
			name:   "unterminated string",
			r:      func() io.Reader { return bigInput(`{"id":"`, 's', n, "\n"+smallEvent+"\n") },
			opts:   Options{MaxValueSize: 1024, BufferSize: 4096},
			want:   []result{{KindInvalid, 0, n + 8, ""}, {KindEvent, n + 8, n + 8 + int64(len(smallEvent)), ""}},
			reason: "larger than max-value-size 1024 bytes",
		},
		{
			name:   "unterminated string at the end",
			r:      func() io.Reader { return bigInput(`{"id":"`, 's', n, "") },
			opts:   Options{MaxValueSize: 1024},
			want:   []result{{KindIncomplete, 0, n + 7, ""}},
			reason: "larger than max-value-size 1024 bytes",
		},
		{
			name:   "string under a 1 MiB bound, growing buffer",
			r:      func() io.Reader { return bigInput(`{"id":"`, 's', n, "\"}\n"+smallEvent+"\n") },
			opts:   Options{MaxValueSize: 1 << 20, BufferSize: 4096},
			want:   []result{{KindInvalid, 0, n + 9, ""}, {KindEvent, n + 10, n + 10 + int64(len(smallEvent)), ""}},
			reason: "larger than max-value-size 1048576 bytes",
		},
		{
			name:   "number",
			r:      func() io.Reader { return bigInput("-", '9', n, "\n"+smallEvent) },
			opts:   Options{MaxValueSize: 1024},
			want:   []result{{KindInvalid, 0, n + 1, ""}, {KindEvent, n + 2, n + 2 + int64(len(smallEvent)), ""}},
			reason: "larger than max-value-size 1024 bytes",
		},
		{
			// JSON, with a line that starts with '{' every 13 bytes: it is
			// skipped by its structure, whole, and the event glued to it
			// is read.
			name:   "array of lines",
			r:      func() io.Reader { return bigPattern("[", "\n{\"in\":\"x\"},", lines, "{}]"+smallEvent) },
			opts:   Options{MaxValueSize: 1024, BufferSize: 4096},
			want:   []result{{KindInvalid, 0, lines + 4, ""}, {KindEvent, lines + 4, lines + 4 + int64(len(smallEvent)), ""}},
			reason: "larger than max-value-size 1024 bytes",
		},
		{
			name: "whitespace",
			r:    func() io.Reader { return bigInput("", ' ', n/10, smallEvent+"\n") },
			opts: Options{MaxValueSize: 1024, BufferSize: 4096},
			want: []result{{KindEvent, n / 10, n/10 + int64(len(smallEvent)), ""}},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := NewDecoder(c.r(), &c.opts)
			var got []result
			for {
				e, err := d.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, result{e.Kind, e.Offset, e.End, e.Reason})
				if len(got) > len(c.want) {
					break
				}
			}
			if len(got) != len(c.want) {
				t.Fatalf("entries %v, want %v", got, c.want)
			}
			for i, w := range c.want {
				if g := got[i]; g.kind != w.kind || g.offset != w.offset || g.end != w.end {
					t.Errorf("entry %d: %s @%d-%d, want %s @%d-%d", i, g.kind, g.offset, g.end, w.kind, w.offset, w.end)
				}
			}
			if c.reason != "" && !strings.Contains(got[0].reason, c.reason) {
				t.Errorf("reason %q does not contain %q", got[0].reason, c.reason)
			}
			o := c.opts
			if o.BufferSize == 0 {
				o.BufferSize = 256 << 10
			}
			if b := bufBound(o); cap(d.buf) > b || cap(d.out) > b {
				t.Errorf("read buffer grew to %d bytes, compaction buffer to %d; bound %d", cap(d.buf), cap(d.out), b)
			}
		})
	}
}

// TestMaxValueSizeGrowth: a value that fits the bound but not the first
// buffer is read whole, the buffer growing only as far as needed.
func TestMaxValueSizeGrowth(t *testing.T) {
	ev := eventOfSize("grown", 300<<10)
	for _, bs := range []int{1, 4096, 100 << 10} {
		in := []byte(smallEvent + "\n" + ev + "\n" + smallEvent)
		opts := Options{MaxValueSize: 1 << 20, BufferSize: bs}
		d := NewDecoder(bytes.NewReader(in), &opts)
		var ids []string
		for {
			e, err := d.Next()
			if err != nil {
				break
			}
			ids = append(ids, e.Kind.String()+":"+string(e.ID))
		}
		if strings.Join(ids, " ") != "event:after event:grown event:after" {
			t.Errorf("buffer %d: %v", bs, ids)
		}
		if cap(d.buf) > bufBound(opts) || cap(d.buf) < len(ev) {
			t.Errorf("buffer %d: grew to %d for a value of %d", bs, cap(d.buf), len(ev))
		}
	}
}
