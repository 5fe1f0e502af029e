package eventlog

import (
	"bytes"
	"io"
	"os"
	"unicode/utf8"

	"github.com/mirrord/mirrord/internal/jsonx"
)

// The application appends an event as JSON.stringify(event, null, "\t")
// followed by "\n", and deletes by rewriting the whole file in place with
// the remaining events joined by "\n" plus a final "\n" (which is the same
// bytes as appending them one by one). These functions reproduce both
// byte for byte; tests, benchmarks and the example log use them.

// AppendFile appends events to the log at path, creating it if needed,
// with one write per event, as the application does.
func AppendFile(path string, events ...*Event) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	enc := NewEncoder(f)
	for _, e := range events {
		if err := enc.Encode(e); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}

// RewriteFile rewrites the log at path in place (truncate, then one write)
// in the application's delete format.
func RewriteFile(path string, events []*Event) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(Format(events)); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Format returns the whole log the application would write for events
// (after a delete): each event formatted, joined by "\n", with a final
// "\n". An empty list gives "\n".
func Format(events []*Event) []byte {
	var b []byte
	for i, e := range events {
		if i > 0 {
			b = append(b, '\n')
		}
		b = e.AppendJS(b)
	}
	return append(b, '\n')
}

// Encoder writes events to a stream in the application's append format.
type Encoder struct {
	w   io.Writer
	buf []byte
}

// NewEncoder returns an Encoder writing to w.
func NewEncoder(w io.Writer) *Encoder { return &Encoder{w: w} }

// Encode writes one event and its newline with a single Write.
func (enc *Encoder) Encode(e *Event) error {
	enc.buf = append(e.AppendJS(enc.buf[:0]), '\n')
	_, err := enc.w.Write(enc.buf)
	return err
}

// jsWriter produces JSON.stringify(value, null, "\t") output.
type jsWriter struct {
	dst   []byte
	empty []bool // per open container: nothing written in it yet
}

func (w *jsWriter) newline() {
	w.dst = append(w.dst, '\n')
	for range w.empty {
		w.dst = append(w.dst, '\t')
	}
}

func (w *jsWriter) open(c byte) {
	w.dst = append(w.dst, c)
	w.empty = append(w.empty, true)
}

func (w *jsWriter) close(c byte) {
	wasEmpty := w.empty[len(w.empty)-1]
	w.empty = w.empty[:len(w.empty)-1]
	if !wasEmpty {
		w.newline()
	}
	w.dst = append(w.dst, c)
}

// elem starts an array element or an object member.
func (w *jsWriter) elem() {
	top := len(w.empty) - 1
	if !w.empty[top] {
		w.dst = append(w.dst, ',')
	}
	w.empty[top] = false
	w.newline()
}

func (w *jsWriter) key(k string) {
	w.elem()
	w.str(k)
	w.dst = append(w.dst, ':', ' ')
}

// str writes s quoted as JSON.stringify does: only '"', '\\' and control
// characters are escaped (\b \f \n \r \t by name, the rest as lowercase
// \u00xx); everything else, U+2028, '<', '>' and '&' included, is raw.
// Invalid UTF-8 (which a JavaScript string cannot hold) becomes U+FFFD.
func (w *jsWriter) str(s string) {
	const hex = "0123456789abcdef"
	w.dst = append(w.dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x80 {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				w.dst = append(w.dst, s[start:i]...)
				w.dst = append(w.dst, "\uFFFD"...)
				i++
				start = i
				continue
			}
			i += size
			continue
		}
		if c >= 0x20 && c != '"' && c != '\\' {
			i++
			continue
		}
		w.dst = append(w.dst, s[start:i]...)
		switch c {
		case '"', '\\':
			w.dst = append(w.dst, '\\', c)
		case '\b':
			w.dst = append(w.dst, '\\', 'b')
		case '\f':
			w.dst = append(w.dst, '\\', 'f')
		case '\n':
			w.dst = append(w.dst, '\\', 'n')
		case '\r':
			w.dst = append(w.dst, '\\', 'r')
		case '\t':
			w.dst = append(w.dst, '\\', 't')
		default:
			w.dst = append(w.dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
		}
		i++
		start = i
	}
	w.dst = append(w.dst, s[start:]...)
	w.dst = append(w.dst, '"')
}

// raw writes an arbitrary JSON value (an unknown field) re-indented at the
// current depth: strings are re-quoted the JavaScript way, numbers and
// literals are copied.
func (w *jsWriter) raw(v []byte) {
	v = bytes.TrimSpace(v)
	if !jsonx.Valid(v) {
		w.dst = append(w.dst, "null"...)
		return
	}
	w.value(v, 0)
}

// value writes the value at v[i] of a validated value and returns the
// index just past it. It walks each byte once, whatever the nesting (ends
// found ahead of time would cost the value's size at every level).
func (w *jsWriter) value(v []byte, i int) int {
	switch v[i] {
	case '{', '[':
		closer := byte('}')
		if v[i] == '[' {
			closer = ']'
		}
		w.open(v[i])
		i = jsonx.SkipSpace(v, i+1)
		for v[i] != closer {
			if closer == '}' {
				kend := jsonx.StringEnd(v, i)
				w.key(string(jsonx.AppendUnquoteLossy(nil, v[i:kend])))
				i = jsonx.SkipSpace(v, jsonx.SkipSpace(v, kend)+1) // past ':'
			} else {
				w.elem()
			}
			i = jsonx.SkipSpace(v, w.value(v, i))
			if v[i] == ',' {
				i = jsonx.SkipSpace(v, i+1)
			}
		}
		w.close(closer)
		return i + 1
	case '"':
		end := jsonx.StringEnd(v, i)
		w.str(string(jsonx.AppendUnquoteLossy(nil, v[i:end])))
		return end
	}
	end := jsonx.SkipValue(v, i) // a number or a literal
	w.dst = append(w.dst, v[i:end]...)
	return end
}
