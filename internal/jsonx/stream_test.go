package jsonx

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// feedPieces feeds b to a new Scanner in pieces of the given sizes (cycled;
// 0 means 1), and reports what it said: the bytes it consumed, whether the
// value is complete, and the error.
func feedPieces(b []byte, sizes []int) (int, bool, error) {
	var s Scanner
	if len(sizes) == 0 {
		sizes = []int{len(b) + 1}
	}
	total := 0
	for k := 0; total < len(b); k++ {
		size := max(sizes[k%len(sizes)], 1)
		piece := b[total:min(total+size, len(b))]
		n, done, err := s.Feed(piece)
		if err != nil {
			return total + n, false, err
		}
		if n > len(piece) || (!done && n != len(piece)) {
			return total + n, done, fmt.Errorf("Feed consumed %d of a piece of %d, done=%v", n, len(piece), done)
		}
		total += n
		if done {
			if s.Consumed() != int64(total) {
				return total, done, fmt.Errorf("Consumed() = %d after %d bytes", s.Consumed(), total)
			}
			return total, true, nil
		}
	}
	return total, false, nil
}

// checkScanner compares the Scanner, fed b in pieces, with ValueEnd on b
// whole: the same end, the same "cut short", the same error at the same
// byte with the same message.
func checkScanner(t *testing.T, b []byte, sizes []int) {
	t.Helper()
	if len(b) == 0 || IsSpace(b[0]) {
		return // the Scanner starts at a value's first byte
	}
	end, wantErr := ValueEnd(b, 0)
	n, done, err := feedPieces(b, sizes)
	var se, wse *SyntaxError
	switch {
	case errors.As(wantErr, &wse):
		if !errors.As(err, &se) || se.Offset != wse.Offset || se.Msg != wse.Msg {
			t.Fatalf("%q in pieces %v: Scanner says %v (done=%v, n=%d), ValueEnd %v", b, sizes, err, done, n, wantErr)
		}
	case errors.Is(wantErr, ErrShort):
		if err != nil || done || n != len(b) {
			t.Fatalf("%q in pieces %v: Scanner says n=%d done=%v %v, ValueEnd: cut short", b, sizes, n, done, err)
		}
	case end == len(b) && isNumberByte(b[0]):
		// A top-level number running to the end may go on.
		var s Scanner
		if _, _, err := s.Feed(b); err != nil || s.Done() || !s.InNumber() {
			t.Fatalf("%q: a number running to the end: done=%v InNumber=%v %v", b, s.Done(), s.InNumber(), err)
		}
		if err != nil || done || n != len(b) {
			t.Fatalf("%q in pieces %v: Scanner says n=%d done=%v %v for a number that may go on", b, sizes, n, done, err)
		}
	default:
		if err != nil || !done || n != end {
			t.Fatalf("%q in pieces %v: Scanner says n=%d done=%v %v, ValueEnd ends at %d", b, sizes, n, done, err, end)
		}
	}
}

func isNumberByte(c byte) bool { return c == '-' || (c >= '0' && c <= '9') }

func TestScanner(t *testing.T) {
	cases := []string{
		`{}`, `[]`, `{"a":[1,-2.5e+3,true,false,null,"x"]} tail`, `1`, `-0`, `12x`, `0 `, `01`,
		`"\u00e9\ud83d\ude00"`, "\"é😀ж\"", `{`, `{"a"}`, `{"a":1,}`, `[1,]`, `1.`, `1.x`, `1e`, `1e+`, `1e+x`, `1ex`,
		`-`, `-x`, `-01`, `"\x"`, `"\u12G4"`, "\"tab\tinside\"", "\"\xff\"", "\"\xe0\x80\"", "\"\xed\xa0\x80\"", "\"caf\xc3",
		"\"\xf0\x9f\x98", "\"\xf0\x9f\x98\x80\"", `tru`, `trux`, `nul`, `{"a":1}{"b":2}`, `{'a':1}`, `{,}`, `[,]`,
		`{"a" 1}`, `{"a":}`, `[1 2]`, `{"a":1]`, `[1}`, "[ \t\r\n1 , \n 2 ]", "{ \"k\" \n : \n [ ] }", `"a\"b\\"`,
		"{\n\t\"pad\": \"x{\\n{\\\"id\\\"}\"\n}", `[[[[[[[]]]]]]]`, `]`, `}`, `:`, `,`, "\xff",
		strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth),
		strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1),
		strings.Repeat(`{"a":`, 70) + "1" + strings.Repeat("}", 70),
	}
	for _, c := range cases {
		for _, sizes := range [][]int{nil, {1}, {2}, {3}, {7}, {1, 5, 2}} {
			checkScanner(t, []byte(c), sizes)
		}
	}
}

// FuzzScanner: fed in any pieces, the Scanner says what ValueEnd says of
// the whole.
func FuzzScanner(f *testing.F) {
	for _, s := range []string{
		`{"id":"a","n":[1,2.5e3,-0],"o":{"x":null,"y":true}}`,
		"{\n\t\"id\": \"x\\u0000\\\"\",\n\t\"d\": \"é😀\"\n}",
		`[`, `{"a":`, `"\ud800"`, "\"\xff\"", `1e5`, `-`, `[[[[[[[]]]]]]]`, `0 `, "\"\xf0\x9f\x98\x80\"",
	} {
		f.Add([]byte(s), []byte{1, 3})
	}
	f.Fuzz(func(t *testing.T, b []byte, pieces []byte) {
		sizes := make([]int, len(pieces))
		for i, p := range pieces {
			sizes[i] = int(p % 17)
		}
		checkScanner(t, b, sizes)
	})
}

// BenchmarkScanner is the Scanner over an event in the application's
// format, fed in one piece: what skipping an oversized value costs a byte.
func BenchmarkScanner(b *testing.B) {
	ev := []byte("{\n\t\"id\": \"sfbik9zynjd644qk\",\n\t\"date\": \"2025-01-01T08:15:00+0200\",\n\t\"original\": \"food [location 45m] said hello to everyone at the café — très bien\",\n\t\"input\": \"food said hello to everyone\",\n\t\"modifiers\": {\n\t\t\"location\": \"45m\"\n\t},\n\t\"type\": \"food\",\n\t\"description\": \"said hello to everyone at the café — très bien, with a somewhat longer description to make it realistic\",\n\t\"creator\": {\n\t\t\"name\": \"Volodyslav\",\n\t\t\"uuid\": \"5c8e1f2a-3b4d-4e6f-8a9b-0c1d2e3f4a5b\",\n\t\t\"version\": \"1.2.3\"\n\t}\n}\n")
	b.SetBytes(int64(len(ev)))
	for b.Loop() {
		var s Scanner
		if _, done, err := s.Feed(ev); !done || err != nil {
			b.Fatal(done, err)
		}
	}
}
