package eventlog

import (
	"encoding/json"
	"fmt"

	"github.com/mirrord/mirrord/internal/jsonx"
)

// Event is one entry of the log, with the fields DESIGN §1 names. Fields
// the contract does not name are kept in Extra, and the order of the keys
// in the log is remembered, so that an event decoded from the log encodes
// back to exactly the same bytes.
type Event struct {
	ID          string
	Date        string
	Original    string
	Input       string
	Type        string
	Description string
	Creator     Creator
	// Modifiers in log order. An event written by Go always has a
	// "modifiers" object, as the application writes it (possibly {}).
	Modifiers []Modifier
	// Extra holds the fields the contract does not name, in log order, as
	// raw JSON.
	Extra []Field

	order []string // key order as decoded; nil means the application's order
}

// Creator says which program wrote an event.
type Creator struct {
	Name    string
	UUID    string
	Version string
	Extra   []Field

	order []string
}

// Modifier is one entry of an event's "modifiers" object.
type Modifier struct {
	Name  string
	Value string
}

// Field is a field the contract does not name, kept as raw JSON.
type Field struct {
	Name  string
	Value json.RawMessage
}

// Modifier returns the value of the modifier called name.
func (e *Event) Modifier(name string) (string, bool) {
	for i := len(e.Modifiers) - 1; i >= 0; i-- {
		if e.Modifiers[i].Name == name {
			return e.Modifiers[i].Value, true
		}
	}
	return "", false
}

// The application's key order (JSON.stringify keeps insertion order, and
// the application builds events in this order).
var (
	eventOrder   = []string{"id", "date", "original", "input", "modifiers", "type", "description", "creator"}
	creatorOrder = []string{"name", "uuid", "version"}
)

// ParseEvent decodes one event object (any JSON spelling: the log's
// indented form or the mirror's compacted form) and checks it against the
// rules of DESIGN §1. The error, if any, is a *FieldError.
func ParseEvent(b []byte) (*Event, error) {
	if !jsonx.Valid(b) {
		return nil, &FieldError{Reason: "not valid JSON"}
	}
	p := parsed{collect: true}
	if err := p.parse(b[jsonx.SkipSpace(b, 0):]); err != nil {
		return nil, err
	}
	return p.event()
}

// UnmarshalJSON implements json.Unmarshaler with the rules of ParseEvent.
func (e *Event) UnmarshalJSON(b []byte) error {
	ev, err := ParseEvent(b)
	if err != nil {
		return err
	}
	*e = *ev
	return nil
}

// MarshalJSON encodes the event compactly, in its key order.
func (e *Event) MarshalJSON() ([]byte, error) {
	return jsonx.Compact(nil, e.AppendJS(nil))
}

// AppendJS appends the event as the application writes it:
// JSON.stringify(event, null, "\t"), with no trailing newline.
func (e *Event) AppendJS(dst []byte) []byte {
	order := e.order
	if order == nil {
		order = eventOrder
		for _, f := range e.Extra {
			order = append(order[:len(order):len(order)], f.Name)
		}
	}
	w := jsWriter{dst: dst}
	w.open('{')
	for _, k := range order {
		w.key(k)
		switch k {
		case "id":
			w.str(e.ID)
		case "date":
			w.str(e.Date)
		case "original":
			w.str(e.Original)
		case "input":
			w.str(e.Input)
		case "type":
			w.str(e.Type)
		case "description":
			w.str(e.Description)
		case "modifiers":
			w.open('{')
			for i, m := range e.Modifiers {
				if shadowed(e.Modifiers, i) {
					continue
				}
				w.key(m.Name)
				w.str(m.Value)
			}
			w.close('}')
		case "creator":
			c := &e.Creator
			corder := c.order
			if corder == nil {
				corder = creatorOrder
				for _, f := range c.Extra {
					corder = append(corder[:len(corder):len(corder)], f.Name)
				}
			}
			w.open('{')
			for _, ck := range corder {
				w.key(ck)
				switch ck {
				case "name":
					w.str(c.Name)
				case "uuid":
					w.str(c.UUID)
				case "version":
					w.str(c.Version)
				default:
					w.raw(fieldValue(c.Extra, ck))
				}
			}
			w.close('}')
		default:
			w.raw(fieldValue(e.Extra, k))
		}
	}
	w.close('}')
	return w.dst
}

// shadowed reports whether a later modifier has the same name as mods[i]
// (JSON.parse keeps the last value of a repeated key, at the first key's
// place).
func shadowed(mods []Modifier, i int) bool {
	for j := 0; j < i; j++ {
		if mods[j].Name == mods[i].Name {
			return true
		}
	}
	return false
}

func fieldValue(fs []Field, name string) json.RawMessage {
	for i := len(fs) - 1; i >= 0; i-- {
		if fs[i].Name == name {
			return fs[i].Value
		}
	}
	return json.RawMessage("null")
}

// event builds an Event from a parsed object, or the first rule it breaks.
func (p *parsed) event() (*Event, error) {
	if err := p.validate(); err != nil {
		return nil, err
	}
	e := &Event{
		ID:          string(p.id),
		Date:        p.str(fDate),
		Original:    p.str(fOriginal),
		Input:       p.str(fInput),
		Type:        p.str(fType),
		Description: p.str(fDescription),
		order:       p.order,
	}
	for _, m := range p.mods {
		v, _ := jsonx.AppendUnquote(nil, m.Value)
		e.Modifiers = append(e.Modifiers, Modifier{Name: string(m.Name), Value: string(v)})
	}
	for _, f := range p.extra {
		e.Extra = append(e.Extra, Field{Name: f.name, Value: append(json.RawMessage(nil), f.value...)})
	}
	var cp parsed
	if err := cp.parseCreator(p.span[fCreator]); err != nil {
		return nil, err
	}
	e.Creator = Creator{Name: cp.cstr("name"), UUID: cp.cstr("uuid"), Version: cp.cstr("version"), order: cp.order}
	for _, f := range cp.extra {
		if f.name != "name" && f.name != "uuid" && f.name != "version" {
			e.Creator.Extra = append(e.Creator.Extra, Field{Name: f.name, Value: append(json.RawMessage(nil), f.value...)})
		}
	}
	return e, nil
}

// FieldError says why an object is not a valid event.
type FieldError struct {
	// Field is the offending field ("id", "creator.name",
	// "modifiers.location"), or "" when the value as a whole is wrong.
	Field  string
	Reason string
}

func (e *FieldError) Error() string {
	if e.Field == "" {
		return e.Reason
	}
	return fmt.Sprintf("field %q: %s", e.Field, e.Reason)
}

var errNotObject = &FieldError{Reason: "not a JSON object"}
