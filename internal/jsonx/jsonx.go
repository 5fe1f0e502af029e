// Package jsonx is a byte-level JSON scanner: it finds where a value ends,
// validates it strictly (RFC 8259 grammar, valid UTF-8 inside strings, a
// bounded nesting depth) and can copy it with insignificant whitespace
// removed, all in one pass and without building a tree.
//
// It exists because mirrord's hot paths only need to know that a value is
// JSON, where it ends, and what a handful of its top-level strings say;
// encoding/json decodes everything into interfaces or structs at under
// 100 MB/s, while this scanner runs at several hundred MB/s and allocates
// nothing.
//
// Every function works on a complete buffer. When the buffer ends before the
// value does, the error is ErrShort, so a streaming caller can read more and
// scan again from the start of the value.
package jsonx

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"unicode/utf8"
)

// MaxDepth is the deepest nesting of arrays and objects accepted, as in
// encoding/json.
const MaxDepth = 10000

// ErrShort means the input ended inside a value: more bytes may complete it.
var ErrShort = errors.New("unexpected end of input")

// SyntaxError is a violation of the JSON grammar at byte Offset of the
// buffer that was scanned.
type SyntaxError struct {
	Offset int
	Msg    string
}

func (e *SyntaxError) Error() string { return fmt.Sprintf("%s at byte %d", e.Msg, e.Offset) }

func syntaxErr(off int, format string, args ...any) error {
	return &SyntaxError{Offset: off, Msg: fmt.Sprintf(format, args...)}
}

// IsSpace reports whether c is JSON whitespace.
func IsSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// SkipSpace returns the index of the first non-whitespace byte of b at or
// after i, or len(b).
func SkipSpace(b []byte, i int) int {
	// Most calls find no whitespace (compacted JSON): one comparison
	// tells every byte that matters here from whitespace.
	for i < len(b) && b[i] <= ' ' && IsSpace(b[i]) {
		i++
	}
	return i
}

// Valid reports whether b holds exactly one JSON value, optionally
// surrounded by whitespace.
func Valid(b []byte) bool {
	i := SkipSpace(b, 0)
	end, err := scan(nil, b, i, false, nil, true)
	return err == nil && SkipSpace(b, end) == len(b)
}

// ValidSyntax is Valid without the check that strings are valid UTF-8:
// the grammar, control characters, escapes and depth only, which is what
// encoding/json.Valid checks too. It is for bytes whose text was checked
// strictly when they were written (the store's values: every write path
// validates or encodes them, and Pebble checksums every block), where
// checking the UTF-8 again would double the cost of a read and could not
// find anything the write let through.
func ValidSyntax(b []byte) bool {
	i := SkipSpace(b, 0)
	end, err := scan(nil, b, i, false, nil, false)
	return err == nil && SkipSpace(b, end) == len(b)
}

// Compact appends the single JSON value of src to dst without insignificant
// whitespace. Strings and numbers are copied byte for byte.
func Compact(dst, src []byte) ([]byte, error) {
	i := SkipSpace(src, 0)
	out, end, err := AppendCompact(dst, src, i)
	if err != nil {
		return dst, err
	}
	if j := SkipSpace(src, end); j != len(src) {
		return dst, syntaxErr(j, "unexpected %q after the value", src[j])
	}
	return out, nil
}

// AppendCompact validates the value that starts at b[i] and appends it,
// compacted, to dst. It returns the extended dst and the index just past
// the value. On error dst may hold a partial value.
func AppendCompact(dst, b []byte, i int) ([]byte, int, error) {
	return appendScan(dst, b, i, true)
}

// ValueEnd validates the value that starts at b[i] and returns the index
// just past it.
func ValueEnd(b []byte, i int) (int, error) {
	return scan(nil, b, i, false, nil, true)
}

func appendScan(dst, b []byte, i int, compact bool) ([]byte, int, error) {
	end, err := scan(&dst, b, i, compact, nil, true)
	return dst, end, err
}

// Member locates one member of a compacted object: its key token is
// dst[Key[0]:Key[1]] and its value dst[Val[0]:Val[1]].
type Member struct {
	Key, Val [2]int
}

// AppendCompactMembers is AppendCompact that also reports, when the value
// is an object, where each of its own members (not nested ones) landed in
// dst: a caller that inspects a few top-level fields needs no second pass.
// members is reset and returned.
func AppendCompactMembers(dst, b []byte, i int, members []Member) ([]byte, int, []Member, error) {
	members = members[:0]
	end, err := scan(&dst, b, i, true, &members, true)
	return dst, end, members, err
}

// ValidMembers is Valid that also reports, when b holds an object, where
// each of its own members (not nested ones) is in b: a caller that reads
// a few top-level fields needs no second pass. members is reset and
// returned.
func ValidMembers(b []byte, members []Member) ([]Member, bool) {
	members = members[:0]
	i := SkipSpace(b, 0)
	end, err := scan(nil, b, i, false, &members, true)
	return members, err == nil && SkipSpace(b, end) == len(b)
}

// scan is the one scanner behind every entry point. It walks the value with
// an explicit stack (one bit per level: object or array), so that a nesting
// bomb costs a bounded amount of memory and no recursion. checkUTF8 false
// skips the UTF-8 check of strings (ValidSyntax).
func scan(dstp *[]byte, b []byte, i int, compact bool, members *[]Member, checkUTF8 bool) (int, error) {
	var dst []byte
	if compact {
		dst = *dstp
		defer func() { *dstp = dst }()
	}
	var m Member // the top-level member being read, when members != nil
	pending := false
	// pos is where input position i lands: in dst when compacting, else
	// in b itself.
	pos := func(i int) int {
		if compact {
			return len(dst)
		}
		return i
	}
	var small [4]uint64
	stack := small[:0:len(small)] // bit set: 1 = object, 0 = array
	depth := 0
	obj := false // the innermost container is an object
	push := func(o bool) {
		w := depth / 64
		for w >= len(stack) {
			stack = append(stack, 0)
		}
		if o {
			stack[w] |= 1 << (depth % 64)
		} else {
			stack[w] &^= 1 << (depth % 64)
		}
		depth++
		obj = o
	}
	pop := func() {
		depth--
		if d := depth - 1; d >= 0 {
			obj = stack[d/64]&(1<<(d%64)) != 0
		}
	}

	const (
		stValue = iota // a value is expected
		stKey          // an object key is expected
		stAfter        // a value just ended
	)
	state := stValue
	for {
		switch state {
		case stValue:
			i = SkipSpace(b, i)
			if i >= len(b) {
				return i, ErrShort
			}
			if members != nil && depth == 1 && pending {
				m.Val[0] = pos(i)
			}
			switch c := b[i]; c {
			case '{', '[':
				if depth >= MaxDepth {
					return i, syntaxErr(i, "nesting deeper than %d", MaxDepth)
				}
				if compact {
					dst = append(dst, c)
				}
				push(c == '{')
				i = SkipSpace(b, i+1)
				if i >= len(b) {
					return i, ErrShort
				}
				closer := byte(']')
				if c == '{' {
					closer = '}'
				}
				if b[i] == closer {
					if compact {
						dst = append(dst, closer)
					}
					pop()
					i++
					state = stAfter
				} else if c == '{' {
					state = stKey
				}
			case '"':
				end, _, err := scanString(b, i, checkUTF8)
				if err != nil {
					return end, err
				}
				if compact {
					dst = append(dst, b[i:end]...)
				}
				i = end
				state = stAfter
			case 't', 'f', 'n':
				lit := "null"
				if c == 't' {
					lit = "true"
				} else if c == 'f' {
					lit = "false"
				}
				for k := 0; k < len(lit); k++ {
					if i+k >= len(b) {
						return i + k, ErrShort
					}
					if b[i+k] != lit[k] {
						return i + k, syntaxErr(i+k, "invalid literal (expected %s)", lit)
					}
				}
				if compact {
					dst = append(dst, lit...)
				}
				i += len(lit)
				state = stAfter
			default:
				if c != '-' && (c < '0' || c > '9') {
					return i, syntaxErr(i, "unexpected %q where a value should start", c)
				}
				end, err := scanNumber(b, i)
				if err != nil {
					return end, err
				}
				if compact {
					dst = append(dst, b[i:end]...)
				}
				i = end
				state = stAfter
			}
		case stKey:
			i = SkipSpace(b, i)
			if i >= len(b) {
				return i, ErrShort
			}
			if b[i] != '"' {
				return i, syntaxErr(i, "unexpected %q where an object key should start", b[i])
			}
			end, _, err := scanString(b, i, checkUTF8)
			if err != nil {
				return end, err
			}
			top := members != nil && depth == 1
			if top {
				m.Key[0], pending = pos(i), true
			}
			if compact {
				dst = append(dst, b[i:end]...)
			}
			if top {
				m.Key[1] = pos(end)
			}
			i = SkipSpace(b, end)
			if i >= len(b) {
				return i, ErrShort
			}
			if b[i] != ':' {
				return i, syntaxErr(i, "unexpected %q after an object key (expected ':')", b[i])
			}
			if compact {
				dst = append(dst, ':')
			}
			i++
			state = stValue
		case stAfter:
			if pending && depth == 1 {
				m.Val[1] = pos(i)
				*members = append(*members, m)
				pending = false
			}
			if depth == 0 {
				return i, nil
			}
			i = SkipSpace(b, i)
			if i >= len(b) {
				return i, ErrShort
			}
			c := b[i]
			switch {
			case c == ',':
				if compact {
					dst = append(dst, ',')
				}
				i++
				if obj {
					state = stKey
				} else {
					state = stValue
				}
			case c == '}' && obj, c == ']' && !obj:
				if compact {
					dst = append(dst, c)
				}
				pop()
				i++
			default:
				return i, syntaxErr(i, "unexpected %q after a value", c)
			}
		}
	}
}

// scanNumber returns the index just past the number at b[i]. A number that
// runs to the end of b ends there: the caller decides whether more input
// could have extended it.
func scanNumber(b []byte, i int) (int, error) {
	digits := func() int {
		n := 0
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
			n++
		}
		return n
	}
	if b[i] == '-' {
		i++
	}
	if i >= len(b) {
		return i, ErrShort
	}
	switch {
	case b[i] == '0':
		i++
	case b[i] >= '1' && b[i] <= '9':
		digits()
	default:
		return i, syntaxErr(i, "invalid number")
	}
	if i < len(b) && b[i] == '.' {
		i++
		if digits() == 0 {
			if i >= len(b) {
				return i, ErrShort
			}
			return i, syntaxErr(i, "invalid number (no digits after '.')")
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if digits() == 0 {
			if i >= len(b) {
				return i, ErrShort
			}
			return i, syntaxErr(i, "invalid number (no digits in exponent)")
		}
	}
	return i, nil
}

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// ScanString validates the string that starts at b[i] (which must be '"')
// and returns the index just past its closing quote, and whether it holds
// any escape sequence (if not, its content is b[i+1:end-1] verbatim).
//
// It reads 8 bytes at a time while none of them needs a look (a quote, a
// backslash, a control character or a byte of a multi-byte character),
// and one character at a time otherwise, in a single pass. (It used to
// find the quote and the backslash with memchr and check the text before
// them as a whole, with the standard library's UTF-8 validator: four
// passes over each string, and four calls, which cost more than the
// checks on the short strings of an event.)
func ScanString(b []byte, i int) (end int, escaped bool, err error) {
	return scanString(b, i, true)
}

func scanString(b []byte, i int, checkUTF8 bool) (end int, escaped bool, err error) {
	// Without the UTF-8 check, bytes of multi-byte characters are plain.
	high := uint64(msb)
	if !checkUTF8 {
		high = 0
	}
	j := i + 1
	for {
		for j+8 <= len(b) {
			x := binary.LittleEndian.Uint64(b[j:])
			// A control character: the high bit of each byte of
			// ((x & 0x7F…) + 0x60…) is set exactly when the byte's low
			// 7 bits are >= 0x20 (no carry leaves a byte); a byte below
			// 0x20 has it clear and its own high bit clear too. A quote
			// or a backslash: a zero byte of x^q or x^bs, and
			// (v-lsb)&^v&msb is nonzero exactly when v has one. Or a
			// byte with the high bit set.
			ctl := ^((x & (lsb * 0x7F)) + lsb*0x60) &^ x & msb
			q := x ^ (lsb * '"')
			bs := x ^ (lsb * '\\')
			if m := ctl | ((q - lsb) &^ q & msb) | ((bs - lsb) &^ bs & msb) | x&high; m != 0 {
				// The lowest flag is a byte that needs a look (a borrow
				// can only add flags above one).
				j += bits.TrailingZeros64(m) >> 3
				break
			}
			j += 8
		}
		if j >= len(b) {
			return j, escaped, ErrShort
		}
		switch c := b[j]; {
		case c == '"':
			return j + 1, escaped, nil
		case c == '\\':
			escaped = true
			if j+1 >= len(b) {
				return j, escaped, ErrShort
			}
			switch b[j+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				j += 2
			case 'u':
				for k := 2; k < 6; k++ {
					if j+k >= len(b) {
						return j + k, escaped, ErrShort
					}
					if unhex(b[j+k]) < 0 {
						return j + k, escaped, syntaxErr(j+k, "invalid \\u escape in string")
					}
				}
				j += 6
			default:
				return j + 1, escaped, syntaxErr(j+1, "invalid escape \\%c in string", b[j+1])
			}
		case c < 0x20:
			return j, escaped, syntaxErr(j, "control character 0x%02X in string (must be escaped)", c)
		case c < 0x80 || !checkUTF8:
			j++
		default:
			// A run of multi-byte characters (a word in Cyrillic, Greek,
			// Japanese) is read here whole: the 8-byte test above would
			// fail on each of them.
			for {
				if c >= 0xC2 && c <= 0xDF && j+1 < len(b) && b[j+1]&0xC0 == 0x80 {
					j += 2 // a two-byte character (Cyrillic, accented Latin): the most common
				} else if (c >= 0xE1 && c <= 0xEC || c >= 0xEE && c <= 0xEF) && j+2 < len(b) && b[j+1]&0xC0 == 0x80 && b[j+2]&0xC0 == 0x80 {
					j += 3 // a three-byte one without a special case (most CJK)
				} else if n := utf8Len(b[j:]); n > 0 {
					j += n
				} else {
					if !utf8.FullRune(b[j:]) {
						return j, escaped, ErrShort // a character cut by the end
					}
					return j, escaped, syntaxErr(j, "invalid UTF-8 in string")
				}
				if j >= len(b) || b[j] < 0x80 {
					break
				}
				c = b[j]
			}
		}
	}
}

// utf8Len returns the length of the valid multi-byte UTF-8 sequence at
// the start of b, or 0 when it is not one (invalid, or cut short: the
// caller tells which with utf8.FullRune). It is the common case of a
// non-ASCII character without utf8.DecodeRune's generality.
func utf8Len(b []byte) int {
	c := b[0]
	switch {
	case c >= 0xC2 && c <= 0xDF:
		if len(b) >= 2 && b[1]&0xC0 == 0x80 {
			return 2
		}
	case c >= 0xE0 && c <= 0xEF:
		if len(b) >= 3 && b[1]&0xC0 == 0x80 && b[2]&0xC0 == 0x80 &&
			(c != 0xE0 || b[1] >= 0xA0) && (c != 0xED || b[1] < 0xA0) {
			return 3
		}
	case c >= 0xF0 && c <= 0xF4:
		if len(b) >= 4 && b[1]&0xC0 == 0x80 && b[2]&0xC0 == 0x80 && b[3]&0xC0 == 0x80 &&
			(c != 0xF0 || b[1] >= 0x90) && (c != 0xF4 || b[1] < 0x90) {
			return 4
		}
	}
	return 0
}

// StringEnd returns the index just past the string that starts at b[i],
// in input already validated (by ScanString or Compact): it only looks for
// the closing quote, so it runs at memchr speed.
func StringEnd(b []byte, i int) int {
	j := i + 1
	for {
		k := bytes.IndexByte(b[j:], '"')
		if k < 0 {
			return len(b)
		}
		q := j + k
		// An escaped quote has an odd run of backslashes before it.
		bs := 0
		for p := q - 1; p > i && b[p] == '\\'; p-- {
			bs++
		}
		if bs%2 == 0 {
			return q + 1
		}
		j = q + 1
	}
}

// SkipValue returns the index just past the value that starts at b[i], in
// input already validated: brackets are counted outside strings, nothing is
// checked.
func SkipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return StringEnd(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				j = StringEnd(b, j) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return j + 1
				}
			}
		}
		return len(b)
	}
	j := i
	for j < len(b) && !IsSpace(b[j]) && b[j] != ',' && b[j] != '}' && b[j] != ']' {
		j++
	}
	return j
}

func unhex(c byte) rune {
	switch {
	case c >= '0' && c <= '9':
		return rune(c - '0')
	case c >= 'a' && c <= 'f':
		return rune(c - 'a' + 10)
	case c >= 'A' && c <= 'F':
		return rune(c - 'A' + 10)
	}
	return -1
}

// ErrLoneSurrogate: a \u escape names half of a UTF-16 surrogate pair
// without the other half. Such a string has no UTF-8 spelling; decoders
// replace it with U+FFFD, which would make distinct strings equal.
var ErrLoneSurrogate = errors.New("string holds a lone UTF-16 surrogate escape")

// AppendUnquote appends the content of the string token raw (quotes
// included, already validated by ScanString) to dst, with escapes decoded.
// A lone surrogate escape is an error (ErrLoneSurrogate): use it where
// distinct strings must stay distinct (ids, names that become keys).
func AppendUnquote(dst, raw []byte) ([]byte, error) {
	return appendUnquote(dst, raw, false)
}

// AppendUnquoteLossy is AppendUnquote with each lone surrogate escape
// decoded as U+FFFD, as encoding/json does: for text (a description cut in
// the middle of an emoji by the application), where losing the rest of
// the string would be worse.
func AppendUnquoteLossy(dst, raw []byte) []byte {
	dst, _ = appendUnquote(dst, raw, true)
	return dst
}

func appendUnquote(dst, raw []byte, lossy bool) ([]byte, error) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return dst, errors.New("not a string token")
	}
	s := raw[1 : len(raw)-1]
	for i := 0; i < len(s); {
		c := s[i]
		if c != '\\' {
			n := bytes.IndexByte(s[i:], '\\')
			if n < 0 {
				n = len(s) - i
			}
			dst = append(dst, s[i:i+n]...)
			i += n
			continue
		}
		switch s[i+1] {
		case '"', '\\', '/':
			dst = append(dst, s[i+1])
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r := hex4(s[i+2:])
			i += 6
			if r >= 0xD800 && r < 0xDC00 {
				if i+6 <= len(s) && s[i] == '\\' && s[i+1] == 'u' {
					if r2 := hex4(s[i+2:]); r2 >= 0xDC00 && r2 < 0xE000 {
						dst = utf8.AppendRune(dst, 0x10000+(r-0xD800)<<10+(r2-0xDC00))
						i += 6
						continue
					}
				}
				if !lossy {
					return dst, ErrLoneSurrogate
				}
				r = utf8.RuneError
			}
			if r >= 0xDC00 && r < 0xE000 {
				if !lossy {
					return dst, ErrLoneSurrogate
				}
				r = utf8.RuneError
			}
			dst = utf8.AppendRune(dst, r)
			continue
		}
		i += 2
	}
	return dst, nil
}

func hex4(s []byte) rune {
	return unhex(s[0])<<12 | unhex(s[1])<<8 | unhex(s[2])<<4 | unhex(s[3])
}
