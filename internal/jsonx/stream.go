package jsonx

import (
	"encoding/binary"
	"math/bits"
	"slices"
	"unicode/utf8"
)

// Scanner validates one JSON value that arrives in pieces, holding only a
// small state between them: where in the grammar it is, the nesting (one
// bit a level), and at most the first bytes of a character cut by the end
// of a piece. It accepts exactly the language of Valid (grammar, UTF-8
// inside strings, MaxDepth) and reports a syntax error at the same byte,
// with the same message, as the scanner of the other functions.
//
// It exists for values that are not held whole: one larger than a reader
// wants to buffer is skipped by its structure, and the scan of a value cut
// by the end of the input can resume where it stopped when more arrives,
// instead of starting again from the value's first byte.
//
// The zero Scanner expects the first byte of a value (whitespace before it
// is not skipped: it is not part of the value).
type Scanner struct {
	off   int64 // bytes consumed so far, counted from the value's first byte
	state uint8
	sub   uint8 // progress in a literal (letters matched) or \u escape (digits seen)
	lit   uint8 // the literal being matched: 't', 'f' or 'n'
	key   bool  // the string being read is an object key
	depth int
	stack []uint64 // bit set: 1 = object, 0 = array

	cut  [utf8.UTFMax]byte // the bytes of a character cut by the end of a piece
	ncut uint8
}

// The grammar states of a Scanner.
const (
	ssFirst        = iota // the value's first byte
	ssValue               // a value (after ':' or an array's ',')
	ssValueOrClose        // a value or ']' (just after '[')
	ssKey                 // an object key (after ',')
	ssKeyOrClose          // an object key or '}' (just after '{')
	ssColon               // ':' after a key
	ssAfter               // a value just ended
	ssString              // inside a string
	ssEscape              // after a backslash in a string
	ssUnicode             // inside a \u escape (sub hex digits read)
	ssUTF8                // inside a multi-byte character (cut[:ncut] read)
	ssLiteral             // inside true, false or null (sub letters read)
	ssMinus               // a number's '-': a digit must follow
	ssZero                // a number's leading 0
	ssInt                 // a number's integer digits
	ssDot                 // a number's '.': a digit must follow
	ssFrac                // a number's fraction digits
	ssExp                 // a number's 'e': a sign or digit must follow
	ssExpSign             // the exponent's sign: a digit must follow
	ssExpDigits           // the exponent's digits
	ssDone                // the value is complete
)

// Consumed returns how many bytes of the value were consumed so far.
func (s *Scanner) Consumed() int64 { return s.off }

// Done reports whether the value is complete.
func (s *Scanner) Done() bool { return s.state == ssDone }

// InNumber reports whether the value so far is a top-level number that
// more input may extend: at the end of the input it ends there.
func (s *Scanner) InNumber() bool {
	return s.depth == 0 && s.state >= ssMinus && s.state <= ssExpDigits
}

// Clone returns a copy that shares nothing with s.
func (s *Scanner) Clone() Scanner {
	c := *s
	c.stack = slices.Clone(s.stack)
	return c
}

// Feed scans p, the next bytes of the value. It returns how many bytes of
// p belong to the value and whether the value is complete; when it is not
// (and err is nil), all of p was consumed and more is needed. A top-level
// number is complete only once the byte after it is seen (that byte is not
// consumed). A *SyntaxError's Offset counts from the value's first byte;
// the Scanner must not be fed after an error.
func (s *Scanner) Feed(p []byte) (n int, done bool, err error) {
	i, err := s.feed(p)
	s.off += int64(i)
	return i, s.state == ssDone, err
}

func (s *Scanner) errAt(i int, format string, args ...any) (int, error) {
	se := syntaxErr(0, format, args...).(*SyntaxError)
	se.Offset = int(s.off) + i
	return i, se
}

func (s *Scanner) inObject() bool {
	d := s.depth - 1
	return s.stack[d/64]&(1<<(d%64)) != 0
}

func (s *Scanner) push(obj bool) {
	w := s.depth / 64
	for w >= len(s.stack) {
		s.stack = append(s.stack, 0)
	}
	if obj {
		s.stack[w] |= 1 << (s.depth % 64)
	} else {
		s.stack[w] &^= 1 << (s.depth % 64)
	}
	s.depth++
}

// ended moves on after a complete value (or string key).
func (s *Scanner) ended() {
	switch {
	case s.key:
		s.key = false
		s.state = ssColon
	case s.depth == 0:
		s.state = ssDone
	default:
		s.state = ssAfter
	}
}

func (s *Scanner) feed(p []byte) (int, error) {
	i := 0
	for {
		if s.state == ssDone {
			return i, nil
		}
		// Whitespace is allowed between tokens, not before the value.
		switch s.state {
		case ssValue, ssValueOrClose, ssKey, ssKeyOrClose, ssColon, ssAfter:
			i = SkipSpace(p, i)
		}
		if i >= len(p) {
			return i, nil
		}
		c := p[i]
		switch s.state {
		case ssFirst, ssValue, ssValueOrClose:
			if c == ']' && s.state == ssValueOrClose {
				s.depth--
				i++
				s.ended()
				continue
			}
			n, err := s.valueStart(p, i)
			if err != nil {
				return n, err
			}
			i = n
		case ssKey, ssKeyOrClose:
			if c == '}' && s.state == ssKeyOrClose {
				s.depth--
				i++
				s.ended()
				continue
			}
			if c != '"' {
				return s.errAt(i, "unexpected %q where an object key should start", c)
			}
			s.key = true
			s.state = ssString
			i++
		case ssColon:
			if c != ':' {
				return s.errAt(i, "unexpected %q after an object key (expected ':')", c)
			}
			s.state = ssValue
			i++
		case ssAfter:
			obj := s.inObject()
			switch {
			case c == ',':
				if obj {
					s.state = ssKey
				} else {
					s.state = ssValue
				}
				i++
			case c == '}' && obj, c == ']' && !obj:
				s.depth--
				i++
				s.ended()
			default:
				return s.errAt(i, "unexpected %q after a value", c)
			}
		case ssString:
			n, err := s.str(p, i)
			if err != nil {
				return n, err
			}
			i = n
		case ssEscape:
			switch c {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.state = ssString
				i++
			case 'u':
				s.state, s.sub = ssUnicode, 0
				i++
			default:
				return s.errAt(i, "invalid escape \\%c in string", c)
			}
		case ssUnicode:
			for s.sub < 4 && i < len(p) {
				if unhex(p[i]) < 0 {
					return s.errAt(i, "invalid \\u escape in string")
				}
				s.sub++
				i++
			}
			if s.sub == 4 {
				s.state = ssString
			}
		case ssUTF8:
			n, err := s.utf8(p, i)
			if err != nil {
				return n, err
			}
			i = n
		case ssLiteral:
			lit := literal(s.lit)
			for int(s.sub) < len(lit) && i < len(p) {
				if p[i] != lit[s.sub] {
					return s.errAt(i, "invalid literal (expected %s)", lit)
				}
				s.sub++
				i++
			}
			if int(s.sub) == len(lit) {
				s.ended()
			}
		default:
			n, err := s.number(p, i)
			if err != nil {
				return n, err
			}
			i = n
		}
	}
}

func literal(c uint8) string {
	switch c {
	case 't':
		return "true"
	case 'f':
		return "false"
	}
	return "null"
}

// valueStart takes the first byte of a value, p[i].
func (s *Scanner) valueStart(p []byte, i int) (int, error) {
	switch c := p[i]; c {
	case '{', '[':
		if s.depth >= MaxDepth {
			return s.errAt(i, "nesting deeper than %d", MaxDepth)
		}
		s.push(c == '{')
		if c == '{' {
			s.state = ssKeyOrClose
		} else {
			s.state = ssValueOrClose
		}
	case '"':
		s.state = ssString
	case 't', 'f', 'n':
		s.state, s.lit, s.sub = ssLiteral, c, 1
	case '-':
		s.state = ssMinus
	case '0':
		s.state = ssZero
	default:
		if c < '1' || c > '9' {
			return s.errAt(i, "unexpected %q where a value should start", c)
		}
		s.state = ssInt
	}
	return i + 1, nil
}

// str reads the inside of a string from p[i], as scanString does: 8 bytes
// at a time while none needs a look.
func (s *Scanner) str(p []byte, i int) (int, error) {
	j := i
	for {
		for j+8 <= len(p) {
			x := binary.LittleEndian.Uint64(p[j:])
			ctl := ^((x & (lsb * 0x7F)) + lsb*0x60) &^ x & msb
			q := x ^ (lsb * '"')
			bs := x ^ (lsb * '\\')
			if m := ctl | ((q - lsb) &^ q & msb) | ((bs - lsb) &^ bs & msb) | x&msb; m != 0 {
				j += bits.TrailingZeros64(m) >> 3
				break
			}
			j += 8
		}
		if j >= len(p) {
			return j, nil
		}
		switch c := p[j]; {
		case c == '"':
			s.ended()
			return j + 1, nil
		case c == '\\':
			s.state = ssEscape
			return j + 1, nil
		case c < 0x20:
			return s.errAt(j, "control character 0x%02X in string (must be escaped)", c)
		case c < 0x80:
			j++
		default:
			if n := utf8Len(p[j:]); n > 0 {
				j += n
				continue
			}
			if utf8.FullRune(p[j:]) {
				return s.errAt(j, "invalid UTF-8 in string")
			}
			// A character cut by the end of the piece: keep its bytes.
			s.ncut = uint8(copy(s.cut[:], p[j:]))
			s.state = ssUTF8
			return len(p), nil
		}
	}
}

// utf8 completes a character whose first bytes (s.cut) ended a piece.
func (s *Scanner) utf8(p []byte, i int) (int, error) {
	start := -int(s.ncut) // where the character started, relative to p
	for i < len(p) {
		s.cut[s.ncut] = p[i]
		s.ncut++
		i++
		b := s.cut[:s.ncut]
		if n := utf8Len(b); n > 0 {
			s.ncut = 0
			s.state = ssString
			return i, nil
		}
		if utf8.FullRune(b) {
			_, err := s.errAt(start, "invalid UTF-8 in string")
			return i, err
		}
	}
	return i, nil
}

// number reads a number's bytes from p[i], as scanNumber does; the byte
// after the number is not consumed.
func (s *Scanner) number(p []byte, i int) (int, error) {
	for i < len(p) {
		c := p[i]
		digit := c >= '0' && c <= '9'
		switch s.state {
		case ssMinus:
			switch {
			case c == '0':
				s.state = ssZero
			case digit:
				s.state = ssInt
			default:
				return s.errAt(i, "invalid number")
			}
		case ssInt, ssZero:
			switch {
			case digit && s.state == ssInt:
				i++
				for i < len(p) && p[i] >= '0' && p[i] <= '9' {
					i++
				}
				continue
			case c == '.':
				s.state = ssDot
			case c == 'e' || c == 'E':
				s.state = ssExp
			default:
				s.ended()
				return i, nil
			}
		case ssDot:
			if !digit {
				return s.errAt(i, "invalid number (no digits after '.')")
			}
			s.state = ssFrac
		case ssFrac:
			switch {
			case digit:
			case c == 'e' || c == 'E':
				s.state = ssExp
			default:
				s.ended()
				return i, nil
			}
		case ssExp:
			switch {
			case c == '+' || c == '-':
				s.state = ssExpSign
			case digit:
				s.state = ssExpDigits
			default:
				return s.errAt(i, "invalid number (no digits in exponent)")
			}
		case ssExpSign:
			if !digit {
				return s.errAt(i, "invalid number (no digits in exponent)")
			}
			s.state = ssExpDigits
		case ssExpDigits:
			if !digit {
				s.ended()
				return i, nil
			}
		}
		i++
	}
	return i, nil
}
