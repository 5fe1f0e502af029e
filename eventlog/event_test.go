package eventlog

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

const validEvent = `{"id":"abc","date":"2025-05-22T15:30:00+0200","original":"o [location 45m]","input":"i","modifiers":{"location":"45m","with":"home"},"type":"t","description":"d","creator":{"name":"n","uuid":"u","version":"v"}}`

func TestParseEventFields(t *testing.T) {
	// The log's indented spelling, with whitespace around it.
	var ind bytes.Buffer
	if err := json.Indent(&ind, []byte(validEvent), "", "\t"); err != nil {
		t.Fatal(err)
	}
	for _, in := range []string{validEvent, ind.String(), "\n  " + validEvent + "\r\n"} {
		e, err := ParseEvent([]byte(in))
		if err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		want := Event{ID: "abc", Date: "2025-05-22T15:30:00+0200", Original: "o [location 45m]", Input: "i", Type: "t", Description: "d",
			Creator:   Creator{Name: "n", UUID: "u", Version: "v"},
			Modifiers: []Modifier{{"location", "45m"}, {"with", "home"}}}
		e.order, e.Creator.order = nil, nil
		if !reflect.DeepEqual(*e, want) {
			t.Errorf("%q:\n got %+v\nwant %+v", in, *e, want)
		}
	}
}

// TestParseEventKeepsOrderAndUnknownFields: the keys come back in the
// log's order, unknown fields (top level and in creator) included, and the
// compacted encoding is the log's compacted text.
func TestParseEventKeepsOrderAndUnknownFields(t *testing.T) {
	in := `{"zeta":{"b":[1,{"c":null}],"a":"x"},"creator":{"version":"v","extra":true,"name":"n","uuid":"u"},"type":"t","id":"k","modifiers":{"z":"1","a":"2"},"description":"d","input":"i","num":-0.5e-3,"original":"o","date":"2025-05-22T15:30:00Z","last":[]}`
	e, err := ParseEvent([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	wantExtra := []Field{{"zeta", json.RawMessage(`{"b":[1,{"c":null}],"a":"x"}`)}, {"num", json.RawMessage(`-0.5e-3`)}, {"last", json.RawMessage(`[]`)}}
	if !reflect.DeepEqual(e.Extra, wantExtra) {
		t.Errorf("Extra %s, want %s", fieldsString(e.Extra), fieldsString(wantExtra))
	}
	if want := []Field{{"extra", json.RawMessage(`true`)}}; !reflect.DeepEqual(e.Creator.Extra, want) {
		t.Errorf("Creator.Extra %s", fieldsString(e.Creator.Extra))
	}
	if want := []Modifier{{"z", "1"}, {"a", "2"}}; !reflect.DeepEqual(e.Modifiers, want) {
		t.Errorf("Modifiers %v", e.Modifiers)
	}
	out, err := e.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != in {
		t.Errorf("MarshalJSON:\n%s\nwant the input\n%s", out, in)
	}
	// Through encoding/json, as a pointer and as a slice element.
	var back Event
	if err := json.Unmarshal([]byte(in), &back); err != nil {
		t.Fatal(err)
	}
	if b, _ := json.Marshal(&back); string(b) != in {
		t.Errorf("json.Marshal(&ev) = %s", b)
	}
	var list []Event
	if err := json.Unmarshal([]byte("["+in+","+validEvent+"]"), &list); err != nil {
		t.Fatal(err)
	}
	if b, _ := json.Marshal(list); string(b) != "["+in+","+validEvent+"]" {
		t.Errorf("json.Marshal([]Event) = %s", b)
	}
}

func fieldsString(fs []Field) string {
	var b strings.Builder
	for _, f := range fs {
		b.WriteString(f.Name + "=" + string(f.Value) + " ")
	}
	return b.String()
}

// TestParseEventDuplicateKeys: as JSON.parse, a repeated key keeps its
// last value, at the place of its first appearance.
func TestParseEventDuplicateKeys(t *testing.T) {
	in := `{"id":"first","date":"bad","original":"o","input":"i","modifiers":{"a":"1","b":"2","a":"3"},"type":"t","description":"d",` +
		`"creator":{"name":"x","uuid":"u","version":"v","name":"n"},"x":1,"date":"2025-05-22T15:30:00Z","id":"last","x":2}`
	e, err := ParseEvent([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if e.ID != "last" || e.Date != "2025-05-22T15:30:00Z" || e.Creator.Name != "n" {
		t.Errorf("id %q, date %q, creator.name %q", e.ID, e.Date, e.Creator.Name)
	}
	if want := []Modifier{{"a", "3"}, {"b", "2"}}; !reflect.DeepEqual(e.Modifiers, want) {
		t.Errorf("Modifiers %v, want %v", e.Modifiers, want)
	}
	// What JSON.stringify(JSON.parse(in)) gives, compacted.
	want := `{"id":"last","date":"2025-05-22T15:30:00Z","original":"o","input":"i","modifiers":{"a":"3","b":"2"},"type":"t","description":"d",` +
		`"creator":{"name":"n","uuid":"u","version":"v"},"x":2}`
	if out, _ := e.MarshalJSON(); string(out) != want {
		t.Errorf("MarshalJSON\n%s\nwant\n%s", out, want)
	}
	// The decoder agrees on the id and the modifiers.
	es := decodeBytes(t, []byte(in), nil)
	if len(es) != 1 || es[0].Kind != KindEvent || es[0].ID != "last" || len(es[0].Mods) != 2 || es[0].Mods[0] != (modSnap{"a", `"3"`}) {
		t.Errorf("decoder: %v", es)
	}
	// A repeated key whose last value breaks a rule makes the event
	// invalid, whatever came first.
	if _, err := ParseEvent([]byte(strings.Replace(validEvent, `"type":"t"`, `"type":"t","id":""`, 1))); err == nil {
		t.Error("a last empty id was accepted")
	}
}

func TestParseEventErrors(t *testing.T) {
	ev := func(old, new string) string { return strings.Replace(validEvent, old, new, 1) }
	cases := []struct {
		name, in, field, reason string
	}{
		{"empty", ``, "", "not valid JSON"},
		{"whitespace", " \n", "", "not valid JSON"},
		{"truncated", validEvent[:50], "", "not valid JSON"},
		{"two values", validEvent + validEvent, "", "not valid JSON"},
		{"trailing text", validEvent + " x", "", "not valid JSON"},
		{"bom", "\xEF\xBB\xBF" + validEvent, "", "not valid JSON"},
		{"invalid utf-8", ev(`"d"`, "\"\xff\""), "", "not valid JSON"},
		{"array", `[` + validEvent + `]`, "", "not a JSON object"},
		{"string", `"abc"`, "", "not a JSON object"},
		{"null", `null`, "", "not a JSON object"},
		{"missing id", ev(`"id":"abc",`, ``), "id", "missing"},
		{"empty id", ev(`"id":"abc"`, `"id":""`), "id", "must not be empty"},
		{"number id", ev(`"id":"abc"`, `"id":1`), "id", "must be a string, found a number"},
		{"lone surrogate id", ev(`"id":"abc"`, `"id":"\udfff"`), "id", "lone UTF-16 surrogate"},
		{"bad date", ev(`2025-05-22T15:30:00+0200`, `2025-02-29T15:30:00+0200`), "date", "no such day in that month"},
		{"missing original", ev(`"original":"o [location 45m]",`, ``), "original", "missing"},
		{"input object", ev(`"input":"i"`, `"input":{}`), "input", "must be a string, found an object"},
		{"type null", ev(`"type":"t"`, `"type":null`), "type", "must be a string, found null"},
		{"description bool", ev(`"description":"d"`, `"description":true`), "description", "must be a string, found a boolean"},
		{"creator string", ev(`{"name":"n","uuid":"u","version":"v"}`, `"n"`), "creator", "must be an object, found a string"},
		{"creator name", ev(`"name":"n",`, ``), "creator.name", "missing"},
		{"creator uuid", ev(`"uuid":"u"`, `"uuid":[]`), "creator.uuid", "must be a string, found an array"},
		{"creator version", ev(`"version":"v"`, `"version":1.5`), "creator.version", "must be a string, found a number"},
		{"modifiers array", ev(`{"location":"45m","with":"home"}`, `[]`), "modifiers", "must be an object, found an array"},
		{"modifier number", ev(`"with":"home"`, `"with":7`), "modifiers.with", "must be a string, found a number"},
		{"modifier name", ev(`"with":"home"`, `"\ud800":"home"`), "modifiers", "lone UTF-16 surrogate"},
	}
	for _, c := range cases {
		e, err := ParseEvent([]byte(c.in))
		var fe *FieldError
		if e != nil || !errors.As(err, &fe) {
			t.Errorf("%s: ParseEvent = %v, %v; want a *FieldError", c.name, e, err)
			continue
		}
		if fe.Field != c.field || !strings.Contains(fe.Reason, c.reason) {
			t.Errorf("%s: field %q reason %q, want field %q reason ~%q", c.name, fe.Field, fe.Reason, c.field, c.reason)
		}
		if msg := fe.Error(); !strings.Contains(msg, fe.Reason) || (c.field != "" && !strings.Contains(msg, `"`+c.field+`"`)) {
			t.Errorf("%s: Error() = %q", c.name, msg)
		}
		// json.Unmarshal passes the *FieldError through (except for null,
		// which leaves the event unchanged, as encoding/json does).
		var ev Event
		if c.in == "null" {
			ev.ID = "kept"
			if jerr := json.Unmarshal([]byte(c.in), &ev); jerr != nil || ev.ID != "kept" {
				t.Errorf("null: json.Unmarshal = %v, ID %q; want no error and the event unchanged", jerr, ev.ID)
			}
			continue
		}
		if jerr := json.Unmarshal([]byte(c.in), &ev); jerr == nil {
			t.Errorf("%s: json.Unmarshal accepted it", c.name)
		} else if json.Valid([]byte(c.in)) && utf8Valid(c.in) && !errors.As(jerr, &fe) {
			t.Errorf("%s: json.Unmarshal error %v is not a *FieldError", c.name, jerr)
		}
	}
}

func utf8Valid(s string) bool { return strings.ToValidUTF8(s, "\uFFFD") == s }

// TestParseEventDoesNotRetainInput: the event owns its bytes.
func TestParseEventDoesNotRetainInput(t *testing.T) {
	in := []byte(strings.Replace(validEvent, `"type":"t"`, `"type":"t","x":{"y":"z"}`, 1))
	e, err := ParseEvent(in)
	if err != nil {
		t.Fatal(err)
	}
	before := string(e.AppendJS(nil))
	for i := range in {
		in[i] = ' '
	}
	if after := string(e.AppendJS(nil)); after != before {
		t.Errorf("the event changed with its input:\n%s", after)
	}
}

func TestEventModifier(t *testing.T) {
	e, err := ParseEvent([]byte(strings.Replace(validEvent, `"with":"home"`, `"with":"","esc":"\"q\" \u00e9"`, 1)))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, want string
		ok         bool
	}{
		{"location", "45m", true},
		{"with", "", true},
		{"esc", `"q" é`, true},
		{"missing", "", false},
		{"Location", "", false},
		{"", "", false},
	}
	for _, c := range cases {
		if v, ok := e.Modifier(c.name); v != c.want || ok != c.ok {
			t.Errorf("Modifier(%q) = %q, %v; want %q, %v", c.name, v, ok, c.want, c.ok)
		}
	}
	var none Event
	if v, ok := none.Modifier("x"); v != "" || ok {
		t.Errorf("zero Event: Modifier = %q, %v", v, ok)
	}
}

func TestEntryEvent(t *testing.T) {
	es := NewDecoder(strings.NewReader("[]\n"+validEvent), nil)
	e, _ := es.Next()
	if ev, err := e.Event(); ev != nil || err == nil {
		t.Errorf("Event() of an invalid entry: %v, %v", ev, err)
	}
	e, _ = es.Next()
	ev, err := e.Event()
	if err != nil || ev.ID != "abc" {
		t.Errorf("Event() of an event: %v, %v", ev, err)
	}
}

// TestCreatorKeyLoneSurrogateConsistency: the decoder and ParseEvent must
// agree on what is an event, or Entry.Event fails on a KindEvent entry.
func TestCreatorKeyLoneSurrogateConsistency(t *testing.T) {
	in := strings.Replace(validEvent, `"version":"v"`, `"version":"v","\ud800":"x"`, 1)
	es := decodeBytes(t, []byte(in), nil)
	_, perr := ParseEvent([]byte(in))
	if len(es) != 1 {
		t.Fatalf("entries %v", es)
	}
	if (es[0].Kind == KindEvent) != (perr == nil) {
		t.Errorf("decoder: %v; ParseEvent: %v", es[0], perr)
	}
}

func TestValidDate(t *testing.T) {
	cases := []struct {
		s     string
		valid bool
		why   string // substring of the reason when invalid
	}{
		{"2025-05-22T15:30:00+0200", true, ""},
		{"2025-05-22T15:30:00+02:00", true, ""},
		{"2025-05-22T15:30:00-0530", true, ""},
		{"2025-05-22T15:30:00-05:30", true, ""},
		{"2025-05-22T15:30:00Z", true, ""},
		{"2025-05-22T15:30:00.5Z", true, ""},
		{"2025-05-22T15:30:00.123+0200", true, ""},
		{"2025-05-22T15:30:00.123456789-01:00", true, ""},
		{"2025-01-31T00:00:00Z", true, ""},
		{"2025-12-31T23:59:59+2359", true, ""},
		{"2024-02-29T12:00:00Z", true, ""},
		{"2000-02-29T12:00:00Z", true, ""},
		{"0000-01-01T00:00:00Z", true, ""},
		{"2025-02-29T12:00:00Z", false, "no such day"},
		{"1900-02-29T12:00:00Z", false, "no such day"},
		{"2024-02-30T12:00:00Z", false, "no such day"},
		{"2025-04-31T12:00:00Z", false, "no such day"},
		{"2025-06-31T12:00:00Z", false, "no such day"},
		{"2025-01-00T12:00:00Z", false, "no such day"},
		{"2025-13-01T12:00:00Z", false, "month out of range"},
		{"2025-00-01T12:00:00Z", false, "month out of range"},
		{"2025-05-22T24:00:00Z", false, "hour out of range"},
		{"2025-05-22T23:60:00Z", false, "minute out of range"},
		{"2025-05-22T23:59:60Z", false, "second out of range"},
		{"2025-05-22T15:30:00", false, "expected a zone"},
		{"2025-05-22T15:30:00z", false, "expected a zone"},
		{"2025-05-22T15:30:00Z ", false, "expected a zone"},
		{"2025-05-22T15:30:00ZZ", false, "expected a zone"},
		{"2025-05-22T15:30:00 +0200", false, "expected a zone"},
		{"2025-05-22T15:30:00+02", false, "zone offset"},
		{"2025-05-22T15:30:00+020", false, "zone offset"},
		{"2025-05-22T15:30:00+02000", false, "zone offset"},
		{"2025-05-22T15:30:00+02:0", false, "zone offset"},
		{"2025-05-22T15:30:00+2400", false, "zone offset out of range"},
		{"2025-05-22T15:30:00+0060", false, "zone offset out of range"},
		{"2025-05-22T15:30:00.Z", false, "no digits after '.'"},
		{"2025-05-22t15:30:00Z", false, "expected 'T'"},
		{"2025-05-22 15:30:00Z", false, "expected 'T'"},
		{"2025-05-22", false, "expected 'T'"},
		{"2025-05-22T", false, "expected hh:mm:ss"},
		{"2025-05-22T15:30Z", false, "expected hh:mm:ss"},
		{"2025-05-22T1:30:00Z", false, "expected hh:mm:ss"},
		{"2025-5-22T15:30:00Z", false, "expected YYYY-MM-DD"},
		{"25-05-22T15:30:00Z", false, "expected YYYY-MM-DD"},
		{"2025/05/22T15:30:00Z", false, "expected YYYY-MM-DD"},
		{"+2025-05-22T15:30:00Z", false, "expected YYYY-MM-DD"},
		{"２０２５-05-22T15:30:00Z", false, "expected YYYY-MM-DD"},
		{"", false, "expected YYYY-MM-DD"},
		{"Thu May 22 2025 15:30:00 GMT+0200", false, ""},
		{"1747920600", false, ""},
	}
	for _, c := range cases {
		why := ValidDate(c.s)
		if (why == "") != c.valid || (!c.valid && !strings.Contains(why, c.why)) {
			t.Errorf("ValidDate(%q) = %q, want valid=%v (reason ~%q)", c.s, why, c.valid, c.why)
		}
		if !c.valid && !strings.Contains(why, "is not an ISO-8601 date-time") {
			t.Errorf("ValidDate(%q) = %q: the reason does not say what is wrong", c.s, why)
		}
		if refValidDate(c.s) != c.valid {
			t.Errorf("the reference model disagrees with the table on %q", c.s)
		}
	}
}

func TestKindString(t *testing.T) {
	for k, want := range map[Kind]string{KindEvent: "event", KindInvalid: "invalid", KindIncomplete: "incomplete", 0: "Kind(0)", 9: "Kind(9)"} {
		if got := k.String(); got != want {
			t.Errorf("Kind(%d).String() = %q, want %q", uint8(k), got, want)
		}
	}
}
