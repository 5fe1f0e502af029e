package eventlog

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"regexp"
	"strconv"
	"time"
	"unicode/utf8"
)

// This file is a reference model of the log format (docs/design.md, The
// event log) written independently of the package: framing with
// encoding/json's Decoder (a different JSON scanner from internal/jsonx),
// the rules with encoding/json, a regexp and the time package. It gives, for an input, the kind, offsets, line, id and
// modifiers of every entry; field and reason wording is the package's own
// business and is not modelled. Tests compare the decoder (and the
// hand-written expectations of testdata/decode) with it.

type refEntry struct {
	Kind   Kind
	Offset int64
	End    int64
	Line   int
	ID     string
	Mods   []modSnap
}

func (r refEntry) matches(s snap) bool {
	if r.Kind != s.Kind || r.Offset != s.Offset || r.End != s.End || r.Line != s.Line || r.ID != s.ID || len(r.Mods) != len(s.Mods) {
		return false
	}
	for i := range r.Mods {
		if r.Mods[i] != s.Mods[i] {
			return false
		}
	}
	return true
}

func isJSONSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// refDecode models the Decoder over the whole input in (starting at file
// offset 0, line 1) with the given MaxValueSize (0 means the default).
//
// A value that is not JSON is skipped up to the next line that starts
// with '{': after its first byte when the error (the first byte at which
// the text stops being the start of some JSON value) lies within the size
// bound, at or after the error otherwise. A value that is JSON but larger
// than the bound is skipped whole, and reading goes on right after it. A
// value that the input ends inside is incomplete, whatever its size.
func refDecode(in []byte, maxSize int) []refEntry {
	if maxSize <= 0 {
		maxSize = DefaultMaxValueSize
	}
	var out []refEntry
	line := func(off int) int { return 1 + bytes.Count(in[:off], []byte("\n")) }
	pos := 0
	if bytes.HasPrefix(in, []byte("\xEF\xBB\xBF")) {
		pos = 3
	}
	for {
		for pos < len(in) && isJSONSpace(in[pos]) {
			pos++
		}
		if pos == len(in) {
			return out
		}
		// skip resynchronises at the first '{' at or after from that
		// starts a line; false means the input ended first.
		skip := func(from int) bool {
			next := -1
			for j := from; j < len(in); j++ {
				if in[j] == '{' && j > 0 && in[j-1] == '\n' {
					next = j
					break
				}
			}
			if next < 0 {
				out = append(out, refEntry{Kind: KindIncomplete, Offset: int64(pos), End: int64(len(in)), Line: line(pos)})
				return false
			}
			out = append(out, refEntry{Kind: KindInvalid, Offset: int64(pos), End: int64(next), Line: line(pos)})
			pos = next
			return true
		}
		// notJSON skips a value with an error at offset at.
		notJSON := func(at int) bool {
			if at-pos > maxSize {
				return skip(at)
			}
			return skip(pos + 1)
		}
		if !bytes.ContainsAny(in[pos:pos+1], "{[\"-tfn0123456789") {
			if !skip(pos + 1) {
				return out
			}
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(in[pos:]))
		var raw json.RawMessage
		err := dec.Decode(&raw)
		if errors.Is(err, io.ErrUnexpectedEOF) {
			// The input ends inside the value, unless it holds invalid
			// UTF-8 (which encoding/json does not check) before a last,
			// cut, character.
			if bad := invalidUTF8Before(in[pos:], len(in)-pos); bad >= 0 {
				if !notJSON(pos + bad) {
					return out
				}
				continue
			}
			out = append(out, refEntry{Kind: KindIncomplete, Offset: int64(pos), End: int64(len(in)), Line: line(pos)})
			return out
		}
		if err != nil {
			at := pos + refErrorAt(in[pos:])
			if bad := invalidUTF8Before(in[pos:], at-pos); bad >= 0 {
				at = pos + bad
			}
			if !notJSON(at) {
				return out
			}
			continue
		}
		end := pos + int(dec.InputOffset())
		if bad := invalidUTF8Before(in[pos:], end-pos); bad >= 0 {
			if !notJSON(pos + bad) {
				return out
			}
			continue
		}
		// A top-level number that runs to the end of the input may yet
		// grow: it is incomplete, not a finished (invalid) value.
		if end == len(in) && bytes.ContainsAny(in[pos:pos+1], "-0123456789") {
			out = append(out, refEntry{Kind: KindIncomplete, Offset: int64(pos), End: int64(len(in)), Line: line(pos)})
			return out
		}
		e := refEntry{Kind: KindInvalid, Offset: int64(pos), End: int64(end), Line: line(pos)}
		if end-pos <= maxSize {
			if id, mods, ok := refValidate(in[pos:end]); ok {
				e.Kind, e.ID, e.Mods = KindEvent, id, mods
			}
		}
		out = append(out, e)
		pos = end
	}
}

// refErrorAt returns where the text b, which is not JSON, stops being the
// start of some JSON value: the length of its longest prefix that
// encoding/json reads as a value, or as a value cut short.
func refErrorAt(b []byte) int {
	prefixOK := func(n int) bool {
		if n == 0 {
			return true
		}
		var raw json.RawMessage
		err := json.NewDecoder(bytes.NewReader(b[:n])).Decode(&raw)
		return err == nil || errors.Is(err, io.ErrUnexpectedEOF)
	}
	// The prefixes that are starts of a value are those shorter than the
	// answer: search for the first that is not.
	lo, hi := 0, len(b) // prefixOK(lo); !prefixOK(hi)
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		if prefixOK(mid) {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo
}

// invalidUTF8Before returns the offset of the first byte of b before
// limit that does not start a valid UTF-8 character, or -1. A character
// cut short by the end of b is not invalid: more input may complete it.
func invalidUTF8Before(b []byte, limit int) int {
	for i := 0; i < limit; {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			if !utf8.FullRune(b[i:]) {
				return -1
			}
			return i
		}
		i += n
	}
	return -1
}

// refMember is one member of an object: its raw key token (quotes
// included), decoded key and compact raw value.
type refMember struct {
	rawKey []byte
	key    string
	value  []byte
}

// refMembers lists the members of the JSON object obj (valid JSON) in
// order, using encoding/json on its compacted form.
func refMembers(obj []byte) ([]refMember, bool) {
	var c bytes.Buffer
	if err := json.Compact(&c, obj); err != nil || c.Len() == 0 || c.Bytes()[0] != '{' {
		return nil, false
	}
	b := c.Bytes()
	dec := json.NewDecoder(bytes.NewReader(b))
	if _, err := dec.Token(); err != nil {
		return nil, false
	}
	var ms []refMember
	for dec.More() {
		off0 := dec.InputOffset()
		tok, err := dec.Token()
		if err != nil {
			return nil, false
		}
		key, _ := tok.(string)
		rawKey := bytes.TrimLeft(b[off0:dec.InputOffset()], ",")
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, false
		}
		ms = append(ms, refMember{rawKey: rawKey, key: key, value: v})
	}
	return ms, true
}

// hasLoneSurrogate reports whether the JSON string token tok has a \u
// escape naming half of a surrogate pair without the other half.
func hasLoneSurrogate(tok []byte) bool {
	s := tok
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			continue
		}
		i++
		if i >= len(s) || s[i] != 'u' || i+5 > len(s) {
			continue
		}
		r, err := strconv.ParseUint(string(s[i+1:i+5]), 16, 32)
		if err != nil {
			continue
		}
		i += 4
		switch {
		case r >= 0xDC00 && r < 0xE000:
			return true
		case r >= 0xD800 && r < 0xDC00:
			if i+7 > len(s) || s[i+1] != '\\' || s[i+2] != 'u' {
				return true
			}
			r2, err := strconv.ParseUint(string(s[i+3:i+7]), 16, 32)
			if err != nil || r2 < 0xDC00 || r2 >= 0xE000 {
				return true
			}
			i += 6
		}
	}
	return false
}

func refString(v []byte) (string, bool) {
	if len(v) == 0 || v[0] != '"' {
		return "", false
	}
	var s string
	return s, json.Unmarshal(v, &s) == nil
}

// refValidate applies the log format's rules to one complete value. Keys
// are taken as JSON.parse does: a repeated key keeps its last value at its
// first place. An id or a modifier name with a lone surrogate escape
// makes the event invalid: its UTF-8 spelling would be shared with another
// key. Other keys are kept as they are.
func refValidate(v []byte) (id string, mods []modSnap, ok bool) {
	ms, ok := refMembers(v)
	if !ok {
		return "", nil, false
	}
	last := map[string][]byte{}
	for _, m := range ms {
		last[m.key] = m.value
	}
	for _, f := range []string{"id", "date", "original", "input", "type", "description"} {
		if _, ok := refString(last[f]); !ok {
			return "", nil, false
		}
	}
	if hasLoneSurrogate(last["id"]) {
		return "", nil, false
	}
	id, _ = refString(last["id"])
	date, _ := refString(last["date"])
	if id == "" || !refValidDate(date) {
		return "", nil, false
	}
	cms, ok := refMembers(last["creator"])
	if !ok {
		return "", nil, false
	}
	clast := map[string][]byte{}
	for _, m := range cms {
		// A creator key with a lone surrogate is not checked: it never
		// becomes a store key.
		clast[m.key] = m.value
	}
	for _, f := range []string{"name", "uuid", "version"} {
		if _, ok := refString(clast[f]); !ok {
			return "", nil, false
		}
	}
	if mv, present := last["modifiers"]; present {
		mms, ok := refMembers(mv)
		if !ok {
			return "", nil, false
		}
		for _, m := range mms {
			if hasLoneSurrogate(m.rawKey) {
				return "", nil, false
			}
			if _, ok := refString(m.value); !ok {
				return "", nil, false
			}
			found := false
			for i := range mods {
				if mods[i].Name == m.key {
					mods[i].Value, found = string(m.value), true
				}
			}
			if !found {
				mods = append(mods, modSnap{m.key, string(m.value)})
			}
		}
	}
	return id, mods, true
}

var refDateRE = regexp.MustCompile(`^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.\d+)?(?:Z|[+-](\d{2}):?(\d{2}))$`)

// refValidDate is the log format's date rule, with the calendar checked by
// the time package.
func refValidDate(s string) bool {
	m := refDateRE.FindStringSubmatch(s)
	if m == nil {
		return false
	}
	n := make([]int, len(m))
	for i := 1; i < len(m); i++ {
		n[i], _ = strconv.Atoi(m[i])
	}
	year, month, day, hour, minute, sec, zh, zm := n[1], n[2], n[3], n[4], n[5], n[6], n[7], n[8]
	if month < 1 || month > 12 || day < 1 {
		return false
	}
	if day > time.Date(year, time.Month(month)+1, 0, 0, 0, 0, 0, time.UTC).Day() {
		return false
	}
	return hour <= 23 && minute <= 59 && sec <= 59 && zh <= 23 && zm <= 59
}
