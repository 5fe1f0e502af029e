package eventlog

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/mirrord/mirrord/internal/jsonx"
)

// Event is one entry of the log, with the fields the log format names
// (docs/design.md, The event log). Fields it does not name are kept in
// Extra, and the order of the keys in the log is remembered, so that an
// event decoded from the log encodes back to exactly the same bytes.
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
// rules of the log format (docs/design.md, The event log). The error, if any, is a *FieldError.
//
// It is called for every event a generator reads, so it does the least
// it can: one pass that validates the object and locates its fields, a
// reused scratch state, and no allocation beyond the event's own (the
// strings that recur from event to event, such as the type, the
// creator's and the modifiers' names, are shared).
func ParseEvent(b []byte) (*Event, error) {
	p := parsers.Get().(*parsed)
	defer p.release()
	var ok bool
	if p.members, ok = jsonx.ValidMembers(b, p.members); !ok {
		return nil, &FieldError{Reason: "not valid JSON"}
	}
	p.reset()
	p.collect = true
	if b[jsonx.SkipSpace(b, 0)] != '{' {
		return nil, errNotObject
	}
	for _, m := range p.members {
		p.member(b[m.Key[0]:m.Key[1]], b[m.Val[0]:m.Val[1]])
	}
	return p.event()
}

// UnmarshalJSON implements json.Unmarshaler with the rules of ParseEvent.
// A JSON null leaves the event unchanged, as encoding/json does.
func (e *Event) UnmarshalJSON(b []byte) error {
	if string(bytes.TrimSpace(b)) == "null" {
		return nil
	}
	ev, err := ParseEvent(b)
	if err != nil {
		return err
	}
	*e = *ev
	return nil
}

// MarshalJSON encodes the event compactly, in its key order. An Extra
// value that is not valid JSON is an error naming the field.
func (e Event) MarshalJSON() ([]byte, error) {
	for _, fs := range [][]Field{e.Extra, e.Creator.Extra} {
		for _, f := range fs {
			if f.Value != nil && !jsonx.Valid(f.Value) {
				return nil, fmt.Errorf("eventlog: field %q holds invalid JSON", f.Name)
			}
		}
	}
	return jsonx.Compact(nil, e.AppendJS(nil))
}

// AppendJS appends the event as the application writes it:
// JSON.stringify(event, null, "\t"), with no trailing newline. A decoded
// event keeps the log's key order; fields added since (to Extra, or
// modifiers where the log had none) follow it, and a removed Extra field
// is left out. An Extra value that is nil or not valid JSON is written as
// null (MarshalJSON reports it instead).
func (e *Event) AppendJS(dst []byte) []byte {
	order := appendMissing(e.order, eventOrder, e.Extra, func(k string) bool {
		return k != "modifiers" || len(e.Modifiers) > 0 || e.order == nil
	})
	extra := lastFields(e.Extra)
	w := jsWriter{dst: dst}
	w.open('{')
	for _, k := range order {
		switch k {
		case "id":
			w.key(k)
			w.str(e.ID)
		case "date":
			w.key(k)
			w.str(e.Date)
		case "original":
			w.key(k)
			w.str(e.Original)
		case "input":
			w.key(k)
			w.str(e.Input)
		case "type":
			w.key(k)
			w.str(e.Type)
		case "description":
			w.key(k)
			w.str(e.Description)
		case "modifiers":
			w.key(k)
			w.open('{')
			for _, m := range uniqueModifiers(e.Modifiers) {
				w.key(m.Name)
				w.str(m.Value)
			}
			w.close('}')
		case "creator":
			w.key(k)
			c := &e.Creator
			corder := appendMissing(c.order, creatorOrder, c.Extra, func(string) bool { return true })
			cextra := lastFields(c.Extra)
			w.open('{')
			for _, ck := range corder {
				switch ck {
				case "name":
					w.key(ck)
					w.str(c.Name)
				case "uuid":
					w.key(ck)
					w.str(c.UUID)
				case "version":
					w.key(ck)
					w.str(c.Version)
				default:
					if v, ok := cextra.value(ck); ok {
						w.key(ck)
						w.raw(v)
					}
				}
			}
			w.close('}')
		default:
			if v, ok := extra.value(k); ok {
				w.key(k)
				w.raw(v)
			}
		}
	}
	w.close('}')
	return w.dst
}

// appendMissing returns the key order to write: the decoded order (or the
// application's order for an event built in Go), followed by the known
// keys (where want says they are present) and Extra fields it lacks.
func appendMissing(order, known []string, extra []Field, want func(string) bool) []string {
	base := order
	if base == nil {
		base = known
	}
	out := base[:len(base):len(base)]
	for _, k := range known {
		if !slices.Contains(out, k) && want(k) {
			out = append(out, k)
		}
	}
	if len(extra) < linearMax {
		for _, f := range extra {
			if !slices.Contains(out, f.Name) {
				out = append(out, f.Name)
			}
		}
		return out
	}
	// Many fields: a set, not a search of the order for each.
	seen := make(map[string]struct{}, len(out)+len(extra))
	for _, k := range out {
		seen[k] = struct{}{}
	}
	for _, f := range extra {
		if _, ok := seen[f.Name]; !ok {
			seen[f.Name] = struct{}{}
			out = append(out, f.Name)
		}
	}
	return out
}

// uniqueModifiers returns the modifiers as JSON.parse keeps them: each
// name once, at its first place, with its last value. Without a repeated
// name (the usual case) that is mods itself.
func uniqueModifiers(mods []Modifier) []Modifier {
	if len(mods) < linearMax {
		repeated := false
		for i := 1; i < len(mods) && !repeated; i++ {
			for j := range i {
				if mods[j].Name == mods[i].Name {
					repeated = true
					break
				}
			}
		}
		if !repeated {
			return mods
		}
	}
	at := make(map[string]int, len(mods))
	out := make([]Modifier, 0, len(mods))
	for _, m := range mods {
		if i, ok := at[m.Name]; ok {
			out[i].Value = m.Value
			continue
		}
		at[m.Name] = len(out)
		out = append(out, m)
	}
	return out
}

// fieldSet finds the last value of a name among fields: by searching a
// few, by a map built once for many.
type fieldSet struct {
	fs   []Field
	last map[string]json.RawMessage
}

func lastFields(fs []Field) fieldSet {
	s := fieldSet{fs: fs}
	if len(fs) >= linearMax {
		s.last = make(map[string]json.RawMessage, len(fs))
		for _, f := range fs {
			s.last[f.Name] = f.Value
		}
	}
	return s
}

func (s fieldSet) value(name string) (json.RawMessage, bool) {
	if s.last != nil {
		v, ok := s.last[name]
		return v, ok
	}
	for i := len(s.fs) - 1; i >= 0; i-- {
		if s.fs[i].Name == name {
			return s.fs[i].Value, true
		}
	}
	return nil, false
}

// dedupFields keeps each name once, at its first place with its last
// value, as JSON.parse does.
func dedupFields(fs []Field) []Field {
	var out []Field
	var at map[string]int // once there are many
	for _, f := range fs {
		i := -1
		if at != nil {
			if j, ok := at[f.Name]; ok {
				i = j
			}
		} else {
			i = slices.IndexFunc(out, func(o Field) bool { return o.Name == f.Name })
		}
		if i >= 0 {
			out[i].Value = f.Value
			continue
		}
		out = append(out, f)
		if at != nil {
			at[f.Name] = len(out) - 1
		} else if len(out) >= linearMax {
			at = make(map[string]int, len(fs))
			for j, o := range out {
				at[o.Name] = j
			}
		}
	}
	return out
}

// event builds an Event from a parsed object, or the first rule it breaks.
// The Event shares nothing with p, which is reused.
func (p *parsed) event() (*Event, error) {
	if err := p.validate(); err != nil {
		return nil, err
	}
	e := &Event{
		ID:          string(p.id),
		Date:        p.str(fDate),
		Original:    p.str(fOriginal),
		Input:       p.str(fInput),
		Type:        p.intern(p.span[fType]),
		Description: p.str(fDescription),
		order:       sharedOrder(p.order, eventOrder, eventOrderNoModifiers),
	}
	if len(p.mods) > 0 {
		e.Modifiers = make([]Modifier, len(p.mods))
	}
	for i, m := range p.mods {
		e.Modifiers[i] = Modifier{Name: p.internBytes(m.Name), Value: p.unquote(m.Value)}
	}
	for _, f := range p.extra {
		e.Extra = append(e.Extra, Field{Name: f.name, Value: append(json.RawMessage(nil), f.value...)})
	}
	e.Extra = dedupFields(e.Extra)
	cp := p.creator
	e.Creator = Creator{
		Name:    p.intern(cp.lastRaw("name")),
		UUID:    p.intern(cp.lastRaw("uuid")),
		Version: p.intern(cp.lastRaw("version")),
		order:   sharedOrder(cp.order, creatorOrder),
	}
	for _, f := range cp.extra {
		if f.name != "name" && f.name != "uuid" && f.name != "version" {
			e.Creator.Extra = append(e.Creator.Extra, Field{Name: f.name, Value: append(json.RawMessage(nil), f.value...)})
		}
	}
	e.Creator.Extra = dedupFields(e.Creator.Extra)
	return e, nil
}

// eventOrderNoModifiers is the application's key order of an event without
// modifiers.
var eventOrderNoModifiers = []string{"id", "date", "original", "input", "type", "description", "creator"}

// sharedOrder returns a key order for an Event: one of the usual orders
// (shared: an Event never changes its order in place) when it is one, else
// a copy.
func sharedOrder(order []string, usual ...[]string) []string {
	for _, u := range usual {
		if slices.Equal(order, u) {
			return u
		}
	}
	return append(make([]string, 0, len(order)), order...)
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
