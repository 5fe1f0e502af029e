package eventlog

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/cespare/xxhash/v2"
)

// decodeSeeds are inputs for the fuzz targets: the decode cases cut into
// runs of lines of at most 512 bytes (small seeds keep the fuzzer's
// minimisation of new inputs quick), the sample's first 3000 bytes and
// shapes the cases do not have.
func decodeSeeds(f *testing.F) [][]byte {
	var seeds [][]byte
	for _, c := range loadDecodeCases(f) {
		var run []byte
		for _, line := range bytes.SplitAfter(c.input, []byte("\n")) {
			if len(run)+len(line) > 512 && len(run) > 0 {
				seeds = append(seeds, run)
				run = nil
			}
			if len(line) <= 512 {
				run = append(run, line...)
			}
		}
		if len(run) > 0 {
			seeds = append(seeds, run)
		}
	}
	sample, err := os.ReadFile("testdata/samples/appended.json")
	if err != nil {
		f.Fatal(err)
	}
	seeds = append(seeds,
		sample[:3000],
		sample[:324], sample[:322], sample[300:330],
		[]byte("\xEF\xBB\xBF"+string(sample[:330])),
		bytes.ReplaceAll(sample[:330], []byte("\n"), []byte("\r\n")),
		[]byte(validEvent+validEvent+"\n"+validEvent[:40]),
		[]byte("garbage\n"+validEvent+"\ngarbage {\n{"),
		[]byte(strings.Repeat("[", 10001)+"\n{}"),
		[]byte(`{"x":[[[[[{"y":[[[]]]}]]]]]}`),
		[]byte(`{"id":"\ud83d\ude00","x":"`+"\xff\xfe"+`"}`+"\n{}"),
		[]byte(strings.Replace(validEvent, `"d"`, `"\ud83d cut"`, 1)),
		[]byte(strings.Replace(validEvent, `"version":"v"`, `"version":"v","x":{"a":[1,2.5e-3,{}],"a":null}`, 1)),
		[]byte("12\n-\n"),
		// Larger than the small bound of the fuzz target: lines that
		// start with '{' inside, a glued value, a break after the bound.
		[]byte(`{"pad":"`+strings.Repeat("x", 120)+`","in":[`+"\n"+validEvent+`]}`+validEvent),
		[]byte(`["`+strings.Repeat("}", 120)+`\"\\",`+"\n"+`{"a":1} x`+"\n"+validEvent),
		[]byte("{\"id\":\"a\r\n"),
	)
	return seeds
}

// FuzzDecoder checks the decoder's promises on any input.
func FuzzDecoder(f *testing.F) {
	for _, s := range decodeSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		fp := NewFingerprint()
		got, err := decodeAllErr(bytes.NewReader(in), len(in), &Options{Fingerprint: fp})
		if err != nil {
			t.Fatal(err)
		}
		checkEntries(t, in, got)

		// The fingerprint covers what was consumed.
		consumed := int64(len(in))
		if n := len(got); n > 0 && got[n-1].Kind == KindIncomplete {
			consumed = 0
			if n > 1 {
				consumed = got[n-2].End
			}
		}
		if fp.Len() != consumed || fp.Sum64() != xxhash.Sum64(in[:consumed]) {
			t.Errorf("fingerprint of %d bytes, want %d", fp.Len(), consumed)
		}

		// Another buffer size, and reads of one byte, change nothing.
		one := decodeAll(t, bytes.NewReader(in), len(in), &Options{BufferSize: 1})
		if d := diffSnaps(got, one); d != "" {
			t.Errorf("BufferSize 1 differs from the default: %s", d)
		}

		// Resuming at the first few entry ends changes nothing.
		for k, e := range got {
			if k >= 3 || e.Kind == KindIncomplete {
				break
			}
			tail := decodeBytes(t, in[e.End:], &Options{Offset: e.End, Line: e.EndLine})
			if d := diffSnaps(got, append(got[:k+1:k+1], tail...)); d != "" {
				t.Errorf("resuming at %d: %s", e.End, d)
			}
		}

		// The independent model of the log format (refmodel_test.go) agrees.
		compareModel(t, in, got, 0)

		// With a small bound (values larger than it are skipped by their
		// structure), read whole, in one-byte reads, and as a file that
		// grows in three rounds, each resuming where the last stopped.
		small := 16 + len(in)%97
		sgot := decodeAll(t, bytes.NewReader(in), len(in), &Options{MaxValueSize: small})
		checkEntries(t, in, sgot)
		compareModel(t, in, sgot, small)
		sone := decodeAll(t, bytes.NewReader(in), len(in), &Options{MaxValueSize: small, BufferSize: 1})
		if d := diffSnaps(sgot, sone); d != "" {
			t.Errorf("bound %d: BufferSize 1 differs from the default: %s", small, d)
		}
		rounds, _, _ := decodeInRounds(t, in, []int{len(in) / 3, 2 * len(in) / 3}, Options{MaxValueSize: small}, true)
		if d := diffSnaps(sgot, rounds); d != "" {
			t.Errorf("bound %d: decoded in rounds: %s", small, d)
		}
	})
}

// compareModel fails the test where the decoder's entries got for in,
// with MaxValueSize max, differ from the reference model's.
func compareModel(t *testing.T, in []byte, got []snap, max int) {
	t.Helper()
	model := refDecode(in, max)
	for i := 0; i < len(model) || i < len(got); i++ {
		if i >= len(model) || i >= len(got) || !model[i].matches(got[i]) {
			var m any
			if i < len(model) {
				m = model[i]
			}
			var g any
			if i < len(got) {
				g = got[i]
			}
			t.Fatalf("max %d, entry %d: decoder %v, reference model %+v", max, i, g, m)
		}
	}
}

// checkEntries checks the shape of a decode of in.
func checkEntries(t *testing.T, in []byte, got []snap) {
	t.Helper()
	var prev int64
	for i, e := range got {
		if e.Offset < prev || e.Offset >= e.End || e.End > int64(len(in)) {
			t.Fatalf("entry %d %v: out of order or out of bounds (previous end %d, input %d)", i, e, prev, len(in))
		}
		if e.Kind == KindIncomplete && (i != len(got)-1 || e.End != int64(len(in))) {
			t.Fatalf("entry %d %v: an incomplete entry that is not the tail", i, e)
		}
		if e.Kind != KindEvent && e.Kind != KindInvalid && e.Kind != KindIncomplete {
			t.Fatalf("entry %d: kind %v", i, e.Kind)
		}
		if e.Line != lineAt(in, e.Offset) || (e.Kind != KindIncomplete && e.EndLine != lineAt(in, e.End)) {
			t.Errorf("entry %d %v: want line %d, endline %d", i, e, lineAt(in, e.Offset), lineAt(in, e.End))
		}
		// Nothing is dropped silently: only whitespace (and a BOM at the
		// very start) lies between entries.
		gap := in[prev:e.Offset]
		if prev == 0 {
			gap = bytes.TrimPrefix(gap, []byte("\xEF\xBB\xBF"))
		}
		if len(bytes.Trim(gap, " \t\r\n")) != 0 {
			t.Errorf("entry %d: bytes %q before it belong to no entry", i, gap)
		}
		prev = e.End
		if e.Kind != KindEvent {
			continue
		}
		if !json.Valid([]byte(e.Raw)) || e.Raw != compactJSON(t, in[e.Offset:e.End]) {
			t.Errorf("entry %d: Raw %q is not the compacted input %q", i, e.Raw, in[e.Offset:e.End])
		}
		ev, err := ParseEvent([]byte(e.Raw))
		if err != nil {
			var fe *FieldError
			if errors.As(err, &fe) && fe.Field == "creator" && strings.Contains(fe.Reason, "surrogate") {
			}
			t.Fatalf("entry %d is an event the decoder accepts, ParseEvent does not: %v", i, err)
		}
		if ev.ID != e.ID {
			t.Errorf("entry %d: ParseEvent id %q, decoder id %q", i, ev.ID, e.ID)
		}
		if ValidDate(ev.Date) != "" {
			t.Errorf("entry %d: event with date %q", i, ev.Date)
		}
		// Fields locates what ParseEvent reads.
		for _, f := range []struct {
			name, want string
			at         int
		}{{"date", ev.Date, e.Fields.Date}, {"type", ev.Type, e.Fields.Type}, {"input", ev.Input, e.Fields.Input}} {
			if f.at == 0 && f.name == "input" && ev.Input == "" {
				continue
			}
			tok, got := stringTokenAt(e.Raw, f.at)
			if got != f.want {
				t.Errorf("entry %d: Fields.%s at %d is %s, ParseEvent reads %q", i, f.name, f.at, tok, f.want)
			}
		}
	}
	// And only whitespace after the last one.
	rest := in[prev:]
	if prev == 0 {
		rest = bytes.TrimPrefix(rest, []byte("\xEF\xBB\xBF"))
	}
	if len(bytes.Trim(rest, " \t\r\n")) != 0 {
		t.Errorf("bytes %q after the last entry belong to no entry", rest)
	}
}

// FuzzParseEvent checks ParseEvent, MarshalJSON, the writer and ValidDate
// against each other.
func FuzzParseEvent(f *testing.F) {
	f.Add([]byte(validEvent))
	f.Add([]byte("2025-05-22T15:30:00+0200"))
	f.Add([]byte("2024-02-29T23:59:59.5-05:30"))
	f.Add([]byte(strings.Replace(validEvent, `"type":"t"`, `"type":"t","x":{"a":[1,"\u00e9",{}],"a":"\ud83d\ude00"},"x":-1e5`, 1)))
	f.Add([]byte(strings.Replace(validEvent, `"type":"t"`, `"\u0074ype":"\u0000\/<>\u2028","modifiers":{"a":"1","a":"2"}`, 1)))
	f.Add([]byte(strings.Replace(validEvent, `"d"`, `"a\ud83dz"`, 1)))
	for _, e := range sampleEventsFromFile(f) {
		b, _ := e.MarshalJSON()
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		why := ValidDate(string(in))
		if (why == "") != refValidDate(string(in)) {
			t.Errorf("ValidDate(%q) = %q, the reference model says %v", in, why, refValidDate(string(in)))
		}
		// The input as an event, and embedded in a valid event as an
		// unknown field's value and as the description, so that any JSON
		// value goes through the writer.
		for _, cand := range [][]byte{
			in,
			[]byte(strings.Replace(validEvent, `"type":"t"`, `"type":"t","x":`+string(in), 1)),
			[]byte(strings.Replace(validEvent, `"description":"d"`, `"description":`+string(in), 1)),
		} {
			checkParseEvent(t, cand)
		}
	})
}

func checkParseEvent(t *testing.T, in []byte) {
	e, err := ParseEvent(in)
	var fe *FieldError
	if err != nil {
		if e != nil || !errors.As(err, &fe) {
			t.Fatalf("ParseEvent: %v, %v: want nil and a *FieldError", e, err)
		}
		return
	}
	if ValidDate(e.Date) != "" || e.ID == "" {
		t.Fatalf("accepted id %q date %q", e.ID, e.Date)
	}
	if d := refDiff(e, in); d != "" {
		t.Fatalf("ParseEvent and encoding/json disagree on %s for %q", d, in)
	}
	out, err := e.MarshalJSON()
	if err != nil || !json.Valid(out) {
		t.Fatalf("MarshalJSON: %q, %v", out, err)
	}
	e2, err := ParseEvent(out)
	if err != nil {
		t.Fatalf("ParseEvent(MarshalJSON()) = %v for %s", err, out)
	}
	if d := eventDiff(e, e2); d != "" {
		if hasLoneSurrogate(in) {
		}
		t.Errorf("written and read again: %s\n%s\nfrom\n%s", d, out, in)
	}
	// The application's format reads back through the decoder as one
	// event, compacted to what MarshalJSON gives.
	js := Format([]*Event{e})
	es := decodeBytes(t, js, nil)
	if len(es) != 1 || es[0].Kind != KindEvent || es[0].ID != e.ID || es[0].Raw != string(out) || es[0].End != int64(len(js)-1) {
		t.Errorf("Format output decodes as %v", es)
	}
}

// refDiff compares the strings ParseEvent decoded with what
// encoding/json decodes from the same object (the last of repeated names,
// escapes decoded, a lone surrogate as U+FFFD), and names the first that
// differs.
func refDiff(e *Event, in []byte) string {
	var top, creator map[string]json.RawMessage
	if err := json.Unmarshal(in, &top); err != nil {
		return "the object: " + err.Error()
	}
	if err := json.Unmarshal(top["creator"], &creator); err != nil {
		return "creator: " + err.Error()
	}
	str := func(m map[string]json.RawMessage, k string) string {
		var s string
		if err := json.Unmarshal(m[k], &s); err != nil {
			return "(" + err.Error() + ")"
		}
		return s
	}
	for _, f := range []struct{ name, got, want string }{
		{"id", e.ID, str(top, "id")},
		{"date", e.Date, str(top, "date")},
		{"original", e.Original, str(top, "original")},
		{"input", e.Input, str(top, "input")},
		{"type", e.Type, str(top, "type")},
		{"description", e.Description, str(top, "description")},
		{"creator.name", e.Creator.Name, str(creator, "name")},
		{"creator.uuid", e.Creator.UUID, str(creator, "uuid")},
		{"creator.version", e.Creator.Version, str(creator, "version")},
	} {
		if f.got != f.want {
			return fmt.Sprintf("%s: %q against %q", f.name, f.got, f.want)
		}
	}
	mods := map[string]string{}
	if raw, ok := top["modifiers"]; ok {
		if err := json.Unmarshal(raw, &mods); err != nil {
			return "modifiers: " + err.Error()
		}
	}
	got := map[string]string{}
	for _, m := range e.Modifiers {
		got[m.Name] = m.Value
	}
	if !reflect.DeepEqual(got, mods) || len(got) != len(e.Modifiers) {
		return fmt.Sprintf("modifiers: %q against %q", e.Modifiers, mods)
	}
	return ""
}

func sampleEventsFromFile(f *testing.F) []*Event {
	return sampleEvents(f, "appended.json")[:5]
}

// eventDiff compares two events field by field; unknown fields are
// compared as JSON.parse sees them (a repeated name keeps its last value).
func eventDiff(a, b *Event) string {
	switch {
	case a.ID != b.ID || a.Date != b.Date || a.Original != b.Original || a.Input != b.Input || a.Type != b.Type || a.Description != b.Description:
		return "a string field differs"
	case a.Creator.Name != b.Creator.Name || a.Creator.UUID != b.Creator.UUID || a.Creator.Version != b.Creator.Version:
		return "creator differs"
	case !reflect.DeepEqual(a.Modifiers, b.Modifiers):
		return "modifiers differ"
	case !reflect.DeepEqual(a.order, b.order) || !reflect.DeepEqual(a.Creator.order, b.Creator.order):
		return "key order differs"
	case !sameFields(a.Extra, b.Extra):
		return "unknown fields differ"
	case !sameFields(a.Creator.Extra, b.Creator.Extra):
		return "unknown creator fields differ"
	}
	return ""
}

func sameFields(a, b []Field) bool {
	a, b = lastValues(a), lastValues(b)
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Name != b[i].Name || !sameJSON(a[i].Value, b[i].Value) {
			return false
		}
	}
	return true
}

// lastValues keeps each name once, at its first place, with its last
// value.
func lastValues(fs []Field) []Field {
	var out []Field
	for _, f := range fs {
		found := false
		for i := range out {
			if out[i].Name == f.Name {
				out[i].Value, found = f.Value, true
			}
		}
		if !found {
			out = append(out, f)
		}
	}
	return out
}

func sameJSON(a, b []byte) bool {
	var x, y any
	da, db := json.NewDecoder(bytes.NewReader(a)), json.NewDecoder(bytes.NewReader(b))
	da.UseNumber()
	db.UseNumber()
	return da.Decode(&x) == nil && db.Decode(&y) == nil && reflect.DeepEqual(x, y)
}

// stringTokenAt returns the JSON string token that starts at offset at of
// raw, and its value ("" when there is none).
func stringTokenAt(raw string, at int) (string, string) {
	if at <= 0 || at >= len(raw) || raw[at] != '"' {
		return "", ""
	}
	var v string
	dec := json.NewDecoder(strings.NewReader(raw[at:]))
	if err := dec.Decode(&v); err != nil {
		return "", ""
	}
	return raw[at : at+int(dec.InputOffset())], v
}
