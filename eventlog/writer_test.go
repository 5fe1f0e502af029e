package eventlog

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// sampleEvents decodes a sample file into its events (each checked to be
// the same whether parsed from the log's indented text or from the
// decoder's compacted Raw).
func sampleEvents(tb testing.TB, name string) []*Event {
	tb.Helper()
	in := readSample(tb, name)
	var evs []*Event
	d := NewDecoder(bytes.NewReader(in), nil)
	for {
		e, err := d.Next()
		if err != nil {
			break
		}
		ev, err := e.Event()
		if err != nil {
			tb.Fatalf("%s: entry at %d: %v", name, e.Offset, err)
		}
		ev2, err := ParseEvent(in[e.Offset:e.End])
		if err != nil {
			tb.Fatalf("%s: ParseEvent of the indented text at %d: %v", name, e.Offset, err)
		}
		if a, b := ev.AppendJS(nil), ev2.AppendJS(nil); !bytes.Equal(a, b) {
			tb.Fatalf("%s: event at %d reads differently from Raw and from the log text", name, e.Offset)
		}
		evs = append(evs, ev)
	}
	return evs
}

func TestFormatSamples(t *testing.T) {
	appended := readSample(t, "appended.json")
	after := readSample(t, "after-delete.json")
	deleted := strings.Fields(string(readSample(t, "deleted-ids.txt")))
	evs := sampleEvents(t, "appended.json")
	if len(evs) != 40 {
		t.Fatalf("%d events", len(evs))
	}
	if got := Format(evs); !bytes.Equal(got, appended) {
		t.Errorf("Format of appended.json's events differs from the file at byte %d", firstDiff(got, appended))
	}
	var kept []*Event
	for _, e := range evs {
		if !containsString(deleted, e.ID) {
			kept = append(kept, e)
		}
	}
	if got := Format(kept); !bytes.Equal(got, after) {
		t.Errorf("Format of the events minus deleted-ids.txt differs from after-delete.json at byte %d", firstDiff(got, after))
	}
	// Each event alone, as the application appends it.
	var enc bytes.Buffer
	for _, e := range evs {
		if err := NewEncoder(&enc).Encode(e); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(enc.Bytes(), appended) {
		t.Errorf("Encoder output differs from appended.json at byte %d", firstDiff(enc.Bytes(), appended))
	}
}

func firstDiff(a, b []byte) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestFormatIsIndentedJSON: for events whose strings are escaped the
// JavaScript way and whose keys are unique (all the samples), the
// application's format is encoding/json's indentation of the compacted
// event with tabs: an independent check of the layout.
func TestFormatIsIndentedJSON(t *testing.T) {
	for _, name := range []string{"appended.json", "after-delete.json"} {
		for _, e := range sampleEvents(t, name) {
			c, _ := e.MarshalJSON()
			var want bytes.Buffer
			if err := json.Indent(&want, c, "", "\t"); err != nil {
				t.Fatal(err)
			}
			if got := e.AppendJS(nil); !bytes.Equal(got, want.Bytes()) {
				t.Errorf("%s %s:\n%s\nwant\n%s", name, e.ID, got, want.Bytes())
			}
		}
	}
}

func TestAppendAndRewriteFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "data.json")
	evs := sampleEvents(t, "appended.json")
	for _, e := range evs {
		if err := AppendFile(path, e); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := readSample(t, "appended.json"); !bytes.Equal(got, want) {
		t.Errorf("AppendFile, one call per event, differs from appended.json at byte %d", firstDiff(got, want))
	}
	deleted := strings.Fields(string(readSample(t, "deleted-ids.txt")))
	var kept []*Event
	for _, e := range evs {
		if !containsString(deleted, e.ID) {
			kept = append(kept, e)
		}
	}
	// In place: the file is longer than what replaces it.
	if err := RewriteFile(path, kept); err != nil {
		t.Fatal(err)
	}
	if got, _ = os.ReadFile(path); !bytes.Equal(got, readSample(t, "after-delete.json")) {
		t.Errorf("RewriteFile differs from after-delete.json at byte %d", firstDiff(got, readSample(t, "after-delete.json")))
	}
	// Several events in one call, onto an existing file.
	if err := AppendFile(path, evs[0], evs[1]); err != nil {
		t.Fatal(err)
	}
	got, _ = os.ReadFile(path)
	if want := append(readSample(t, "after-delete.json"), Format(evs[:2])...); !bytes.Equal(got, want) {
		t.Errorf("appending two events to the rewritten file differs at byte %d", firstDiff(got, want))
	}
	if err := RewriteFile(path, nil); err != nil {
		t.Fatal(err)
	}
	if got, _ = os.ReadFile(path); string(got) != "\n" {
		t.Errorf("RewriteFile with no events wrote %q", got)
	}
	missing := filepath.Join(dir, "no", "such", "dir", "data.json")
	if AppendFile(missing, evs[0]) == nil || RewriteFile(missing, evs) == nil {
		t.Error("writing into a missing directory did not fail")
	}
}

// writeCounter records each Write.
type writeCounter struct{ writes [][]byte }

func (w *writeCounter) Write(p []byte) (int, error) {
	w.writes = append(w.writes, append([]byte(nil), p...))
	return len(p), nil
}

func TestEncoderOneWritePerEvent(t *testing.T) {
	evs := sampleEvents(t, "appended.json")[:3]
	var w writeCounter
	enc := NewEncoder(&w)
	for _, e := range evs {
		if err := enc.Encode(e); err != nil {
			t.Fatal(err)
		}
	}
	if len(w.writes) != 3 {
		t.Fatalf("%d writes for 3 events", len(w.writes))
	}
	for i, e := range evs {
		if want := Format([]*Event{e}); !bytes.Equal(w.writes[i], want) {
			t.Errorf("write %d: %q, want %q", i, w.writes[i], want)
		}
	}
}

func TestFormatEmpty(t *testing.T) {
	if got := string(Format(nil)); got != "\n" {
		t.Errorf("Format(nil) = %q, want %q", got, "\n")
	}
	if got := string(Format([]*Event{})); got != "\n" {
		t.Errorf("Format of no events = %q, want %q", got, "\n")
	}
}

// TestStringEscaping: strings are quoted as JSON.stringify quotes them.
func TestStringEscaping(t *testing.T) {
	cases := []struct{ in, want string }{
		{``, `""`},
		{`plain`, `"plain"`},
		{`say "hi"`, `"say \"hi\""`},
		{`back\slash`, `"back\\slash"`},
		{"\b\f\n\r\t", `"\b\f\n\r\t"`},
		{"\x00", `"\u0000"`},
		{"\x01\x07\x0b\x0e\x1a\x1f", `"\u0001\u0007\u000b\u000e\u001a\u001f"`},
		{"\x20\x7f", "\" \x7f\""},
		{"line\u2028sep\u2029", "\"line\u2028sep\u2029\""},
		{`<a href="x">&amp;</a>`, `"<a href=\"x\">&amp;</a>"`},
		{`a/b`, `"a/b"`},
		{"ñandú café Київ 日本", "\"ñandú café Київ 日本\""},
		{"👩‍👩‍👧 \U0001F600", "\"👩‍👩‍👧 \U0001F600\""},
		{"\uFFFD", "\"\uFFFD\""},
		// A JavaScript string cannot hold invalid UTF-8: each invalid byte
		// becomes U+FFFD (as encoding/json does).
		{"a\xffb", "\"a\uFFFDb\""},
		{"\xe2\x82", "\"\uFFFD\uFFFD\""},
		{"\xed\xa0\x80", "\"\uFFFD\uFFFD\uFFFD\""},
		{"\xc0\x80x", "\"\uFFFD\uFFFDx\""},
		{"\"\xff\"", "\"\\\"\uFFFD\\\"\""},
	}
	for _, c := range cases {
		var w jsWriter
		w.str(c.in)
		if string(w.dst) != c.want {
			t.Errorf("str(%q) = %q, want %q", c.in, w.dst, c.want)
		}
		// The same through the public writer, in a description and as a
		// modifier name.
		e := &Event{ID: "x", Description: c.in, Modifiers: []Modifier{{Name: c.in, Value: "v"}}}
		out := string(Format([]*Event{e}))
		if !strings.Contains(out, "\n\t\"description\": "+c.want+",\n") || !strings.Contains(out, "\n\t\t"+c.want+": \"v\"\n") {
			t.Errorf("Format with %q:\n%s", c.in, out)
		}
	}
}

// TestFormatGoEvent: an event built in Go is written in the application's
// key order, with "modifiers": {} when it has none, and its other fields
// after creator.
func TestFormatGoEvent(t *testing.T) {
	e := &Event{
		ID: "abc", Date: "2025-05-22T15:30:00+0200", Original: "food [location 45m] pizza", Input: "food pizza",
		Type: "food", Description: "pizza",
		Creator: Creator{Name: "Volodyslav", UUID: "u-1", Version: "1.2.3"},
	}
	want := "{\n" +
		"\t\"id\": \"abc\",\n" +
		"\t\"date\": \"2025-05-22T15:30:00+0200\",\n" +
		"\t\"original\": \"food [location 45m] pizza\",\n" +
		"\t\"input\": \"food pizza\",\n" +
		"\t\"modifiers\": {},\n" +
		"\t\"type\": \"food\",\n" +
		"\t\"description\": \"pizza\",\n" +
		"\t\"creator\": {\n" +
		"\t\t\"name\": \"Volodyslav\",\n" +
		"\t\t\"uuid\": \"u-1\",\n" +
		"\t\t\"version\": \"1.2.3\"\n" +
		"\t}\n" +
		"}\n"
	if got := string(Format([]*Event{e})); got != want {
		t.Errorf("no modifiers:\n%s\nwant\n%s", got, want)
	}

	e.Modifiers = []Modifier{{"location", "45m"}, {"with", "home"}}
	e.Extra = []Field{{"tags", json.RawMessage(`["a",{"b":[]}]`)}, {"n", json.RawMessage(`12.5`)}}
	e.Creator.Extra = []Field{{"host", json.RawMessage(`"pc"`)}}
	want = "{\n" +
		"\t\"id\": \"abc\",\n" +
		"\t\"date\": \"2025-05-22T15:30:00+0200\",\n" +
		"\t\"original\": \"food [location 45m] pizza\",\n" +
		"\t\"input\": \"food pizza\",\n" +
		"\t\"modifiers\": {\n" +
		"\t\t\"location\": \"45m\",\n" +
		"\t\t\"with\": \"home\"\n" +
		"\t},\n" +
		"\t\"type\": \"food\",\n" +
		"\t\"description\": \"pizza\",\n" +
		"\t\"creator\": {\n" +
		"\t\t\"name\": \"Volodyslav\",\n" +
		"\t\t\"uuid\": \"u-1\",\n" +
		"\t\t\"version\": \"1.2.3\",\n" +
		"\t\t\"host\": \"pc\"\n" +
		"\t},\n" +
		"\t\"tags\": [\n" +
		"\t\t\"a\",\n" +
		"\t\t{\n" +
		"\t\t\t\"b\": []\n" +
		"\t\t}\n" +
		"\t],\n" +
		"\t\"n\": 12.5\n" +
		"}"
	if got := string(e.AppendJS(nil)); got != want {
		t.Errorf("with modifiers and extra fields:\n%s\nwant\n%s", got, want)
	}
	// What is written reads back as the same event.
	back, err := ParseEvent([]byte(want))
	if err != nil {
		t.Fatal(err)
	}
	if got := string(back.AppendJS(nil)); got != want {
		t.Errorf("decoded and written again:\n%s", got)
	}
}

// TestFormatUnknownFields: unknown fields are re-indented as
// JSON.stringify(JSON.parse(log), null, "\t") would write them, whatever
// their spelling in the log: nesting, empty containers, literals, numbers,
// strings re-escaped the JavaScript way.
func TestFormatUnknownFields(t *testing.T) {
	in := `{"id":"u","date":"2025-05-22T15:30:00Z","original":"","input":"","type":"","description":"","creator":{"name":"n","uuid":"u","version":"v"},` +
		`"o" : { "n" : [ 1 , 2 , { "x" : null } , [ ] , { } ] , "s" : "t" , "deep" : [[[ true , false ]]] },` +
		`"e":{},"a":[],"num":-1.5e+21,"zero":0,"str":"\u0041\/\u00e9\u2028\ud83d\ude00\u001F\n<&>"}`
	want := "{\n" +
		"\t\"id\": \"u\",\n" +
		"\t\"date\": \"2025-05-22T15:30:00Z\",\n" +
		"\t\"original\": \"\",\n" +
		"\t\"input\": \"\",\n" +
		"\t\"type\": \"\",\n" +
		"\t\"description\": \"\",\n" +
		"\t\"creator\": {\n" +
		"\t\t\"name\": \"n\",\n" +
		"\t\t\"uuid\": \"u\",\n" +
		"\t\t\"version\": \"v\"\n" +
		"\t},\n" +
		"\t\"o\": {\n" +
		"\t\t\"n\": [\n" +
		"\t\t\t1,\n" +
		"\t\t\t2,\n" +
		"\t\t\t{\n" +
		"\t\t\t\t\"x\": null\n" +
		"\t\t\t},\n" +
		"\t\t\t[],\n" +
		"\t\t\t{}\n" +
		"\t\t],\n" +
		"\t\t\"s\": \"t\",\n" +
		"\t\t\"deep\": [\n" +
		"\t\t\t[\n" +
		"\t\t\t\t[\n" +
		"\t\t\t\t\ttrue,\n" +
		"\t\t\t\t\tfalse\n" +
		"\t\t\t\t]\n" +
		"\t\t\t]\n" +
		"\t\t]\n" +
		"\t},\n" +
		"\t\"e\": {},\n" +
		"\t\"a\": [],\n" +
		"\t\"num\": -1.5e+21,\n" +
		"\t\"zero\": 0,\n" +
		"\t\"str\": \"A/é\u2028\U0001F600\\u001f\\n<&>\"\n" +
		"}"
	e, err := ParseEvent([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if got := string(e.AppendJS(nil)); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	// No "modifiers" in the log: none is added (the bytes stay the
	// application's), and the Go view still has no modifiers.
	if len(e.Modifiers) != 0 || strings.Contains(want, "modifiers") {
		t.Errorf("modifiers %v", e.Modifiers)
	}
}

// TestFormatDuplicateModifiers: a Go-built event may name a modifier
// twice; what is written must say what Event.Modifier says (the last
// value, as JSON.parse keeps).
func TestFormatDuplicateModifiers(t *testing.T) {
	e := &Event{ID: "d", Date: "2025-05-22T15:30:00Z", Creator: Creator{Name: "n", UUID: "u", Version: "v"},
		Modifiers: []Modifier{{"a", "1"}, {"b", "x"}, {"a", "2"}}}
	if v, _ := e.Modifier("a"); v != "2" {
		t.Fatalf("Modifier(a) = %q, want the last value", v)
	}
	back, err := ParseEvent(e.AppendJS(nil))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := back.Modifier("a")
	if got != "2" {
		t.Errorf("written %q for modifier a, Event.Modifier says %q:\n%s", got, "2", e.AppendJS(nil))
	}
}

// TestFormatExtraRobustness: Extra holds raw JSON that a program may set;
// writing must neither panic nor silently change a valid value.
func TestFormatExtraRobustness(t *testing.T) {
	base := func(v json.RawMessage) *Event {
		return &Event{ID: "x", Date: "2025-05-22T15:30:00Z", Creator: Creator{Name: "n", UUID: "u", Version: "v"},
			Extra: []Field{{"f", v}}}
	}
	t.Run("padded string", func(t *testing.T) {
		// Valid JSON (json.Valid accepts the spaces), so the value must
		// come out as "s".
		out := string(base(json.RawMessage(` "s" `)).AppendJS(nil))
		if !strings.Contains(out, `"f": "s"`) {
			t.Errorf("got\n%s", out)
		}
	})
	for _, c := range []struct{ name, v string }{{"nil", ""}, {"invalid", `{"a":`}} {
		t.Run(c.name, func(t *testing.T) {
			var v json.RawMessage
			if c.v != "" {
				v = json.RawMessage(c.v)
			}
			panicked := func() (p any) {
				defer func() { p = recover() }()
				_, _ = base(v).MarshalJSON()
				return nil
			}()
			if panicked != nil {
				t.Errorf("MarshalJSON panicked: %v", panicked)
			}
		})
	}
}

// TestParseEventLoneSurrogate: the application can write a string holding
// a lone UTF-16 surrogate (a JavaScript string cut in the middle of an
// emoji); JSON.stringify writes it as a \ud83d escape. The decoder accepts
// such an event (only the id must be spelled in UTF-8), so ParseEvent must
// not silently lose the rest of the string.
func TestParseEventLoneSurrogate(t *testing.T) {
	in := `{"id":"x","date":"2025-05-22T15:30:00Z","original":"cut \ud83d here","input":"","type":"","description":"a\ud83dz",` +
		`"creator":{"name":"n","uuid":"u","version":"v"},"modifiers":{"m":"b\udc00y"},"extra":"c\ud800w"}`
	es := decodeBytes(t, []byte(in), nil)
	if len(es) != 1 || es[0].Kind != KindEvent {
		t.Fatalf("decoder: %v", es)
	}
	e, err := ParseEvent([]byte(in))
	if err != nil {
		return // rejected outright: not silent
	}
	m, _ := e.Modifier("m")
	out := string(e.AppendJS(nil))
	if !strings.HasSuffix(e.Description, "z") || !strings.HasSuffix(e.Original, "here") || !strings.HasSuffix(m, "y") || !strings.Contains(out, "w\"") {
		t.Errorf("description %q, original %q, modifier %q; written:\n%s", e.Description, e.Original, m, out)
	}
}
