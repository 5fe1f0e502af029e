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
	if f, ok := readFields(raw); ok {
		return f, nil
	}
	ev, err := parseStored(raw)
	if err != nil {
		return nil, err
	}
	return &Fields{Date: ev.Date, Type: ev.Type, Input: ev.Input}, nil
}

// readFields walks the top-level members of an object: the three it wants
// are read (the last of a repeated name wins, as in eventlog.ParseEvent),
// the others skipped by their brackets and quotes. ok is false for
// anything that is not plainly a valid event's object: then the strict
// parser decides.
func readFields(b []byte) (*Fields, bool) {
	var f Fields
	var seenDate, seenType bool
	i := jsonx.SkipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return nil, false
	}
	i = jsonx.SkipSpace(b, i+1)
	for i < len(b) && b[i] != '}' {
		if b[i] != '"' {
			return nil, false
		}
		// Stored values were checked when they were written: strings are
		// found by their closing quote, not checked again.
		kend := jsonx.StringEnd(b, i)
		if kend > len(b) || b[kend-1] != '"' || kend-i < 2 {
			return nil, false
		}
		key := b[i+1 : kend-1]
		i = jsonx.SkipSpace(b, kend)
		if i >= len(b) || b[i] != ':' {
			return nil, false
		}
		i = jsonx.SkipSpace(b, i+1)
		if i >= len(b) {
			return nil, false
		}
		var dst *string
		switch string(key) {
		case "date":
			dst, seenDate = &f.Date, true
		case "type":
			dst, seenType = &f.Type, true
		case "input":
			dst = &f.Input
		}
		var end int
		if dst != nil {
			if b[i] != '"' {
				return nil, false
			}
			end = jsonx.StringEnd(b, i)
			if end-i < 2 || b[end-1] != '"' {
				return nil, false
			}
			tok := b[i:end]
			if bytes.IndexByte(tok, '\\') < 0 {
				*dst = string(tok[1 : len(tok)-1])
			} else if _, _, err := jsonx.ScanString(tok, 0); err != nil {
				return nil, false // checked before decoding: a bad escape would not decode safely
			} else if s, err := jsonx.AppendUnquote(nil, tok); err == nil {
				*dst = string(s)
			} else {
				return nil, false
			}
		} else {
			end = jsonx.SkipValue(b, i)
		}
		i = jsonx.SkipSpace(b, end)
		if i < len(b) && b[i] == ',' {
			i = jsonx.SkipSpace(b, i+1)
			if i < len(b) && b[i] == '}' {
				return nil, false // a trailing comma
			}
		} else if i >= len(b) || b[i] != '}' {
			return nil, false
		}
	}
	if i >= len(b) || !seenDate || !seenType || f.Type == "" || eventlog.ValidDate(f.Date) != "" {
		return nil, false
	}
	return &f, true
}
