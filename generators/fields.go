package generators

import (
	"bytes"

	"github.com/mirrord/mirrord/eventlog"
	"github.com/mirrord/mirrord/internal/jsonx"
)

// Fields are the fields of an event most generators read: its date (as
// written), type and input. Input.FieldChanges reads them from the stored
// JSON, skipping every other member without decoding it.
type Fields struct {
	Date, Type, Input string
}

// storedFields reads the Fields of a stored event (nil for nil). The
// mirror stores only events that passed eventlog's checks, compacted; a
// value that does not read as one (written around mirrord) is parsed
// strictly instead, for the error that says what is wrong with it.
func storedFields(raw []byte) (*Fields, error) {
	if raw == nil {
		return nil, nil
	}
	f := new(Fields)
	if err := storedFieldsInto(f, raw); err != nil {
		return nil, err
	}
	return f, nil
}

// storedFieldsInto is storedFields into f, for a caller that holds the
// Fields of many events in one slice (a rebuild's batch).
func storedFieldsInto(f *Fields, raw []byte) error {
	if readFields(raw, f) {
		return nil
	}
	ev, err := parseStored(raw)
	if err != nil {
		return err
	}
	*f = Fields{Date: ev.Date, Type: ev.Type, Input: ev.Input}
	return nil
}

// readFields walks the top-level members of an object: the three it wants
// are read into f (the last of a repeated name wins, as in
// eventlog.ParseEvent), the others skipped by their brackets and quotes.
// It is false for anything that is not plainly a valid event's object:
// then the strict parser decides.
func readFields(b []byte, f *Fields) bool {
	var toks [3][]byte // date, type, input: their JSON string tokens
	i := jsonx.SkipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return false
	}
	i = jsonx.SkipSpace(b, i+1)
	for i < len(b) && b[i] != '}' {
		if b[i] != '"' {
			return false
		}
		// Stored values were checked when they were written: strings are
		// found by their closing quote, not checked again.
		kend := jsonx.StringEnd(b, i)
		if kend > len(b) || b[kend-1] != '"' || kend-i < 2 {
			return false
		}
		key := b[i+1 : kend-1]
		if bytes.IndexByte(key, '\\') >= 0 {
			return false // a name spelt with escapes: ParseEvent decodes it
		}
		i = jsonx.SkipSpace(b, kend)
		if i >= len(b) || b[i] != ':' {
			return false
		}
		i = jsonx.SkipSpace(b, i+1)
		if i >= len(b) {
			return false
		}
		field := -1
		switch string(key) {
		case "date":
			field = 0
		case "type":
			field = 1
		case "input":
			field = 2
		}
		var end int
		if field >= 0 {
			if b[i] != '"' {
				return false
			}
			end = jsonx.StringEnd(b, i)
			if end-i < 2 || b[end-1] != '"' {
				return false
			}
			toks[field] = b[i:end]
		} else {
			end = jsonx.SkipValue(b, i)
		}
		i = jsonx.SkipSpace(b, end)
		if i < len(b) && b[i] == ',' {
			i = jsonx.SkipSpace(b, i+1)
			if i < len(b) && b[i] == '}' {
				return false // a trailing comma
			}
		} else if i >= len(b) || b[i] != '}' {
			return false
		}
	}
	if i >= len(b) || toks[0] == nil || toks[1] == nil {
		return false
	}
	return fieldsFromTokens(f, toks, false)
}

// fieldsAt reads the Fields of a stored event whose fields' string tokens
// begin at the offsets the load's decoder found (eventlog.FieldOffsets),
// false when they are not string tokens there. A load hands the
// generators its events with these: their checks were made as the log
// was decoded, and the rest of the event is not walked again.
func fieldsAt(f *Fields, raw []byte, at eventlog.FieldOffsets) bool {
	var toks [3][]byte
	for n, off := range [3]int{at.Date, at.Type, at.Input} {
		if off == 0 {
			continue // an event with no input; date and type are checked below
		}
		if off >= len(raw) || raw[off] != '"' {
			return false
		}
		end := jsonx.StringEnd(raw, off)
		if end-off < 2 || raw[end-1] != '"' {
			return false
		}
		toks[n] = raw[off:end]
	}
	if toks[0] == nil || toks[1] == nil {
		return false
	}
	return fieldsFromTokens(f, toks, true)
}

// fieldsFromTokens sets f from the string tokens of an event's date, type
// and input (nil: no input). Unless decoded, the tokens are checked (an
// escape, before it is decoded; the date) as tokens of a stored value
// are; decoded, they come from the decoder that checked them as it read
// the log. The three strings share one allocation: a rebuild reads them
// for every event, and their garbage was most of what made the collector
// run beside a load.
func fieldsFromTokens(f *Fields, toks [3][]byte, decoded bool) bool {
	var scratch [256]byte
	buf := scratch[:0]
	var ends [3]int
	for n, tok := range toks {
		switch {
		case tok == nil: // no input: ""
		case bytes.IndexByte(tok, '\\') < 0:
			buf = append(buf, tok[1:len(tok)-1]...)
		default:
			if !decoded {
				if _, _, err := jsonx.ScanString(tok, 0); err != nil {
					return false // checked before decoding: a bad escape would not decode safely
				}
			}
			var err error
			if buf, err = jsonx.AppendUnquote(buf, tok); err != nil {
				return false
			}
		}
		ends[n] = len(buf)
	}
	all := string(buf)
	date, typ := all[:ends[0]], all[ends[0]:ends[1]]
	if typ == "" || (!decoded && eventlog.ValidDate(date) != "") {
		return false
	}
	*f = Fields{Date: date, Type: typ, Input: all[ends[1]:ends[2]]}
	return true
}
