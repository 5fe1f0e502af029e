package jsonx

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestValid(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{`{}`, true},
		{` { "a" : [1, -2.5e+3, true, false, null, "x"] } `, true},
		{`1`, true},
		{`-0`, true},
		{`"\u00e9\ud83d\ude00"`, true},
		{`"é😀"`, true},
		{`[]`, true},
		{``, false},
		{`{`, false},
		{`{"a"}`, false},
		{`{"a":1,}`, false},
		{`[1,]`, false},
		{`01`, false},
		{`1.`, false},
		{`1e`, false},
		{`-`, false},
		{`"\x"`, false},
		{`"\u12G4"`, false},
		{"\"tab\tinside\"", false},
		{"\"\xff\"", false},
		{`tru`, false},
		{`nul`, false},
		{`{"a":1}{"b":2}`, false},
		{`{"a":1} x`, false},
		{`{'a':1}`, false},
	} {
		if got := Valid([]byte(tc.in)); got != tc.want {
			t.Errorf("Valid(%q) = %v, want %v", tc.in, got, tc.want)
		}
		// ValidSyntax differs only on invalid UTF-8 inside a string.
		if got := ValidSyntax([]byte(tc.in)); got != tc.want && tc.in != "\"\xff\"" {
			t.Errorf("ValidSyntax(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestValidSyntaxSkipsOnlyUTF8(t *testing.T) {
	for _, tc := range []struct {
		in           string
		valid, syntx bool
	}{
		{"\"\xff\"", false, true},
		{"{\"a\":\"caf\xc3\"}", false, true}, // a character cut short
		{"[\"\xed\xa0\x80\"]", false, true},  // an encoded surrogate
		{"\"\xff\x01\"", false, false},       // a control character after it
		{"\"\xff\\q\"", false, false},        // a bad escape after it
		{"\xff", false, false},               // outside a string it is not JSON at all
		{"{\"a\":\"\xc3\"", false, false},    // unterminated
		{"\"é\\n\xf0\x9f\x98\x80\"", true, true},
	} {
		if got := Valid([]byte(tc.in)); got != tc.valid {
			t.Errorf("Valid(%q) = %v, want %v", tc.in, got, tc.valid)
		}
		if got := ValidSyntax([]byte(tc.in)); got != tc.syntx {
			t.Errorf("ValidSyntax(%q) = %v, want %v", tc.in, got, tc.syntx)
		}
	}
}

func TestCompact(t *testing.T) {
	in := "{\n\t\"id\": \"a b\",\n\t\"n\": [ 1 , 2 ],\r\n\t\"s\": \"\\t \\\" x\"\n}"
	got, err := Compact(nil, []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":"a b","n":[1,2],"s":"\t \" x"}`
	if string(got) != want {
		t.Fatalf("Compact = %s, want %s", got, want)
	}
}

func TestShortVersusSyntax(t *testing.T) {
	for _, in := range []string{`{"id": "x", "da`, `[1, 2`, `{"a":`, `"abc`, `"\u12`, "\"\xe2\x82", `tr`, `{"a":1`} {
		_, err := ValueEnd([]byte(in), 0)
		if !errors.Is(err, ErrShort) {
			t.Errorf("ValueEnd(%q) = %v, want ErrShort", in, err)
		}
	}
	for _, in := range []string{`{"a" 1}`, `[1 2]`, `{"a":x}`, "\"\xe2\x82x\""} {
		_, err := ValueEnd([]byte(in), 0)
		var se *SyntaxError
		if !errors.As(err, &se) {
			t.Errorf("ValueEnd(%q) = %v, want SyntaxError", in, err)
		}
	}
}

func TestNestingBound(t *testing.T) {
	deep := strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth)
	if !Valid([]byte(deep)) {
		t.Fatal("nesting of exactly MaxDepth rejected")
	}
	bomb := strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1)
	_, err := ValueEnd([]byte(bomb), 0)
	var se *SyntaxError
	if !errors.As(err, &se) || !strings.Contains(se.Msg, "nesting") {
		t.Fatalf("nesting bomb: %v", err)
	}
	// An unterminated bomb fails on depth before it reaches the end.
	_, err = ValueEnd([]byte(strings.Repeat("{\"a\":", 20000)), 0)
	if !errors.As(err, &se) {
		t.Fatalf("unterminated bomb: %v", err)
	}
}

func TestAppendUnquote(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`"plain"`, "plain"},
		{`"a\"b\\c\/d"`, `a"b\c/d`},
		{`"\b\f\n\r\t"`, "\b\f\n\r\t"},
		{`"\u0000x"`, "\x00x"},
		{`"\u00e9"`, "é"},
		{`"\ud83d\ude00"`, "😀"},
		{`"я"`, "я"},
	} {
		got, err := AppendUnquote(nil, []byte(tc.in))
		if err != nil || string(got) != tc.want {
			t.Errorf("AppendUnquote(%s) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{`"\ud800"`, `"\udc00"`, `"\ud800x"`, `"\ud800\u0041"`} {
		if _, err := AppendUnquote(nil, []byte(in)); !errors.Is(err, ErrLoneSurrogate) {
			t.Errorf("AppendUnquote(%s) err = %v, want ErrLoneSurrogate", in, err)
		}
	}
}

// FuzzScan checks the scanner against encoding/json: whatever it accepts,
// encoding/json accepts and reads to the same value; whatever encoding/json
// accepts (in valid UTF-8, within the depth bound), it accepts; and its
// compaction is the same as json.Compact's.
func FuzzScan(f *testing.F) {
	for _, s := range []string{
		`{"id":"a","n":[1,2.5e3,-0],"o":{"x":null,"y":true}}`,
		"{\n\t\"id\": \"x\\u0000\\\"\",\n\t\"d\": \"é😀\"\n}",
		`[`, `{"a":`, `"\ud800"`, "\"\xff\"", `1e5`, `-`, `[[[[[[[]]]]]]]`, ` 0 `,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		mine := Valid(b)
		theirs := json.Valid(b)
		// encoding/json does not check UTF-8 either: the two agree
		// wherever nesting stays within the bound both share.
		if syn := ValidSyntax(b); syn != theirs && bytes.Count(b, []byte("["))+bytes.Count(b, []byte("{")) < MaxDepth {
			t.Fatalf("ValidSyntax(%q) = %v, encoding/json.Valid = %v", b, syn, theirs)
		}
		if mine && !ValidSyntax(b) {
			t.Fatalf("Valid accepts what ValidSyntax rejects: %q", b)
		}
		if mine && !theirs {
			t.Fatalf("jsonx accepts what encoding/json rejects: %q", b)
		}
		if theirs && !mine && utf8.Valid(b) && bytes.Count(b, []byte("["))+bytes.Count(b, []byte("{")) < MaxDepth {
			t.Fatalf("jsonx rejects valid JSON: %q", b)
		}
		ms, ok := ValidMembers(b, nil)
		if ok != mine {
			t.Fatalf("ValidMembers(%q) = %v, Valid %v", b, ok, mine)
		}
		if !mine {
			return
		}
		// The members are where compaction puts them, less the
		// whitespace: the same keys and values.
		cb, cend, cms, _ := AppendCompactMembers(nil, b, SkipSpace(b, 0), nil)
		if cend != len(bytes.TrimRight(b, " \t\r\n")) || len(cms) != len(ms) {
			t.Fatalf("ValidMembers(%q): %d members, AppendCompactMembers %d", b, len(ms), len(cms))
		}
		for k := range ms {
			kc, vc := compactString(t, b[ms[k].Key[0]:ms[k].Key[1]]), compactString(t, b[ms[k].Val[0]:ms[k].Val[1]])
			if kc != string(cb[cms[k].Key[0]:cms[k].Key[1]]) || vc != string(cb[cms[k].Val[0]:cms[k].Val[1]]) {
				t.Fatalf("member %d of %q: ValidMembers %s=%s, AppendCompactMembers %s", k, b, kc, vc, cb[cms[k].Key[0]:cms[k].Val[1]])
			}
		}
		got, err := Compact(nil, b)
		if err != nil {
			t.Fatalf("Compact of a valid value: %v", err)
		}
		var want bytes.Buffer
		if err := json.Compact(&want, b); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want.Bytes()) {
			t.Fatalf("Compact(%q) = %q, json.Compact = %q", b, got, want.Bytes())
		}
		// Every string token decodes as encoding/json decodes it.
		i := SkipSpace(b, 0)
		if b[i] == '"' {
			end, _, err := ScanString(b, i)
			if err != nil {
				t.Fatal(err)
			}
			s, err := AppendUnquote(nil, b[i:end])
			var ref string
			if jerr := json.Unmarshal(b[i:end], &ref); jerr != nil {
				t.Fatal(jerr)
			}
			if err == nil && string(s) != ref {
				t.Fatalf("AppendUnquote(%q) = %q, encoding/json = %q", b[i:end], s, ref)
			}
			if err != nil && !errors.Is(err, ErrLoneSurrogate) {
				t.Fatalf("AppendUnquote(%q): %v", b[i:end], err)
			}
		}
	})
}

func BenchmarkCompactEvent(b *testing.B) {
	ev := []byte("{\n\t\"id\": \"sfbik9zynjd644qk\",\n\t\"date\": \"2025-01-01T08:15:00+0200\",\n\t\"original\": \"food [location 45m] said hello to everyone at the café — très bien\",\n\t\"input\": \"food said hello to everyone\",\n\t\"modifiers\": {\n\t\t\"location\": \"45m\"\n\t},\n\t\"type\": \"food\",\n\t\"description\": \"said hello to everyone at the café — très bien, with a somewhat longer description to make it realistic\",\n\t\"creator\": {\n\t\t\"name\": \"Volodyslav\",\n\t\t\"uuid\": \"5c8e1f2a-3b4d-4e6f-8a9b-0c1d2e3f4a5b\",\n\t\t\"version\": \"1.2.3\"\n\t}\n}\n")
	dst := make([]byte, 0, 1024)
	b.SetBytes(int64(len(ev)))
	for b.Loop() {
		var err error
		dst, _, err = AppendCompact(dst[:0], ev, 0)
		if err != nil {
			b.Fatal(err)
		}
	}
}

func TestAppendCompactMembers(t *testing.T) {
	in := []byte(`{ "a" : 1, "b": {"x": [1, {"y": 2}], "z": "q"}, "c":"s" , "d": [] }`)
	out, end, ms, err := AppendCompactMembers(nil, in, 0, nil)
	if err != nil || end != len(in) {
		t.Fatal(err, end)
	}
	var got []string
	for _, m := range ms {
		got = append(got, string(out[m.Key[0]:m.Key[1]])+"="+string(out[m.Val[0]:m.Val[1]]))
	}
	want := []string{`"a"=1`, `"b"={"x":[1,{"y":2}],"z":"q"}`, `"c"="s"`, `"d"=[]`}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("members %q, want %q", got, want)
	}
	if _, _, ms, _ := AppendCompactMembers(nil, []byte(`[1, {"a": 2}]`), 0, nil); len(ms) != 0 {
		t.Fatalf("members of an array: %v", ms)
	}

	// ValidMembers finds the same members in the input itself.
	vms, ok := ValidMembers(append([]byte("\n "), in...), nil)
	got = got[:0]
	for _, m := range vms {
		got = append(got, strings.TrimSpace(string(in[m.Key[0]-2:m.Key[1]-2]))+"="+compactString(t, in[m.Val[0]-2:m.Val[1]-2]))
	}
	if !ok || strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("ValidMembers: %v, members %q, want %q", ok, got, want)
	}
	for _, bad := range []string{`{"a":1`, `{"a":1} x`, `{"a":"\xff"}`, ``} {
		if _, ok := ValidMembers([]byte(bad), nil); ok {
			t.Errorf("ValidMembers(%q) accepts it", bad)
		}
	}
}

func compactString(t *testing.T, b []byte) string {
	t.Helper()
	c, err := Compact(nil, b)
	if err != nil {
		t.Fatal(err)
	}
	return string(c)
}

// benchEvent is a compacted event with mixed ASCII and Unicode text and a
// few escapes, as the mirror stores them.
var benchEvent = []byte(`{"id":"vtncxvopyqge0939","date":"2024-01-01T08:05:00+0200","original":"reading [duration 45m] [location Київ] [with Київ] walk про погоду evening 🎉 coffee back\\slash rain morning book — coffee sun #family","input":"reading walk про погоду evening 🎉 coffee back\\slash rain morning book — coffee sun #family","modifiers":{"duration":"45m","location":"Київ","with":"Київ"},"type":"reading","description":"walk про погоду evening 🎉 coffee back\\slash rain morning book — coffee sun #family","creator":{"name":"Volodyslav","uuid":"5c8e1f2a-3b4d-4e6f-8a9b-0c1d2e3f4a5b","version":"1.2.3"}}`)

// BenchmarkValid and BenchmarkValidSyntax check a stored event: what a
// write and a read of the kv API cost.
func BenchmarkValid(b *testing.B) {
	b.SetBytes(int64(len(benchEvent)))
	for b.Loop() {
		if !Valid(benchEvent) {
			b.Fatal("not valid")
		}
	}
}

func BenchmarkValidSyntax(b *testing.B) {
	b.SetBytes(int64(len(benchEvent)))
	for b.Loop() {
		if !ValidSyntax(benchEvent) {
			b.Fatal("not valid")
		}
	}
}
