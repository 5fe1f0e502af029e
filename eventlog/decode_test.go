package eventlog

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// The cases of testdata/decode/*.txt are txtar-like files:
//
//	free comment lines
//	-- input --
//	raw bytes (the section ends with the newline before the next marker)
//	-- input.quoted --
//	"Go-quoted string, one or more lines, concatenated"
//	12 * "a quoted string repeated 12 times"
//	-- options --
//	max=1024
//	-- want --
//	event @0-152 line=1 id="abc" mods=location:"45m",with:"home" raw="{...}"
//	invalid @153-200 line=14 field="date" reason~"month out of range"
//	incomplete @201-230 line=20 reason~"inside a value"
//
// Exactly one of input and input.quoted is given. In want lines, mods
// lists every modifier (name, then its JSON string token as it stands in
// the compacted event), absent meaning none; field absent means "";
// reason~ is a substring, reason= the whole reason; raw, when given, is
// the exact compacted event. Lines starting with '#' are comments.

type decodeCase struct {
	name  string
	input []byte
	max   int
	want  []wantEntry
}

type wantEntry struct {
	line    string // the want line, for messages
	kind    Kind
	offset  int64
	end     int64
	lineNo  int
	id      string
	mods    []modSnap
	raw     *string
	field   string
	reasons []string // substrings
	reason  *string  // exact
}

// sections splits a txtar-like file into its named sections.
func sections(data string) (map[string]string, error) {
	marker := regexp.MustCompile(`(?m)^-- (\S+) --$\n?`)
	locs := marker.FindAllStringSubmatchIndex(data, -1)
	out := map[string]string{}
	for i, loc := range locs {
		name := data[loc[2]:loc[3]]
		end := len(data)
		if i+1 < len(locs) {
			end = locs[i+1][0]
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("section %q twice", name)
		}
		out[name] = data[loc[1]:end]
	}
	return out, nil
}

var repeatRE = regexp.MustCompile(`^(\d+) \* (".*")$`)

// unquoteLines concatenates the Go-quoted strings of an input.quoted
// section, one per line, each optionally "N * " repeated.
func unquoteLines(sec string) ([]byte, error) {
	var b bytes.Buffer
	for _, l := range strings.Split(sec, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		n := 1
		if m := repeatRE.FindStringSubmatch(l); m != nil {
			n, _ = strconv.Atoi(m[1])
			l = m[2]
		}
		s, err := strconv.Unquote(l)
		if err != nil {
			return nil, fmt.Errorf("input.quoted line %s: %v", l, err)
		}
		b.WriteString(strings.Repeat(s, n))
	}
	return b.Bytes(), nil
}

func parseCase(name, data string) (*decodeCase, error) {
	secs, err := sections(data)
	if err != nil {
		return nil, err
	}
	c := &decodeCase{name: name}
	raw, hasRaw := secs["input"]
	quoted, hasQuoted := secs["input.quoted"]
	switch {
	case hasRaw == hasQuoted:
		return nil, fmt.Errorf("want exactly one of the input and input.quoted sections")
	case hasRaw:
		c.input = []byte(raw)
	default:
		if c.input, err = unquoteLines(quoted); err != nil {
			return nil, err
		}
	}
	for _, l := range strings.Fields(secs["options"]) {
		k, v, _ := strings.Cut(l, "=")
		switch k {
		case "max":
			if c.max, err = strconv.Atoi(v); err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("unknown option %q", l)
		}
	}
	want, ok := secs["want"]
	if !ok {
		return nil, fmt.Errorf("no want section")
	}
	for _, l := range strings.Split(want, "\n") {
		if l = strings.TrimSpace(l); l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		w, err := parseWant(l)
		if err != nil {
			return nil, fmt.Errorf("want line %q: %v", l, err)
		}
		c.want = append(c.want, w)
	}
	return c, nil
}

func parseWant(l string) (wantEntry, error) {
	w := wantEntry{line: l}
	kind, rest, _ := strings.Cut(l, " ")
	switch kind {
	case "event":
		w.kind = KindEvent
	case "invalid":
		w.kind = KindInvalid
	case "incomplete":
		w.kind = KindIncomplete
	default:
		return w, fmt.Errorf("unknown kind %q", kind)
	}
	quoted := func() (string, error) {
		q, err := strconv.QuotedPrefix(rest)
		if err != nil {
			return "", fmt.Errorf("bad quoted value at %q", rest)
		}
		rest = rest[len(q):]
		return strconv.Unquote(q)
	}
	seenAt := false
	for {
		rest = strings.TrimLeft(rest, " ")
		if rest == "" {
			break
		}
		if rest[0] == '@' {
			var n int
			var err error
			n, err = fmt.Sscanf(rest, "@%d-%d", &w.offset, &w.end)
			if n != 2 || err != nil {
				return w, fmt.Errorf("bad @offset-end")
			}
			rest = rest[strings.IndexByte(rest+" ", ' '):]
			seenAt = true
			continue
		}
		i := strings.IndexAny(rest, "=~")
		if i < 0 {
			return w, fmt.Errorf("bad attribute %q", rest)
		}
		key, op := rest[:i], rest[i]
		rest = rest[i+1:]
		var err error
		switch {
		case key == "line" && op == '=':
			v, r, _ := strings.Cut(rest, " ")
			rest = r
			w.lineNo, err = strconv.Atoi(v)
		case key == "id" && op == '=':
			w.id, err = quoted()
		case key == "field" && op == '=':
			w.field, err = quoted()
		case key == "raw" && op == '=':
			var s string
			s, err = quoted()
			w.raw = &s
		case key == "reason" && op == '~':
			var s string
			s, err = quoted()
			w.reasons = append(w.reasons, s)
		case key == "reason" && op == '=':
			var s string
			s, err = quoted()
			w.reason = &s
		case key == "mods" && op == '=':
			w.mods, rest, err = parseMods(rest)
		default:
			err = fmt.Errorf("unknown attribute %s%c", key, op)
		}
		if err != nil {
			return w, err
		}
	}
	if !seenAt || w.lineNo == 0 {
		return w, fmt.Errorf("@offset-end and line= are required")
	}
	return w, nil
}

// parseMods parses name:"json token",name2:"token" where a name is bare
// (up to ':') or Go-quoted.
func parseMods(s string) ([]modSnap, string, error) {
	var mods []modSnap
	for {
		var name string
		if strings.HasPrefix(s, `"`) {
			q, err := strconv.QuotedPrefix(s)
			if err != nil {
				return nil, s, err
			}
			name, _ = strconv.Unquote(q)
			s = s[len(q):]
		} else {
			i := strings.IndexByte(s, ':')
			if i < 0 {
				return nil, s, fmt.Errorf("modifier without ':' in %q", s)
			}
			name, s = s[:i], s[i:]
		}
		if !strings.HasPrefix(s, `:"`) {
			return nil, s, fmt.Errorf("modifier %q: want :\"value\"", name)
		}
		j := 2
		for ; j < len(s) && s[j] != '"'; j++ {
			if s[j] == '\\' {
				j++
			}
		}
		if j >= len(s) {
			return nil, s, fmt.Errorf("unterminated modifier value")
		}
		mods = append(mods, modSnap{name, s[1 : j+1]})
		s = s[j+1:]
		if !strings.HasPrefix(s, ",") {
			return mods, s, nil
		}
		s = s[1:]
	}
}

func (w wantEntry) check(in []byte, got snap) []string {
	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	if got.Kind != w.kind || got.Offset != w.offset || got.End != w.end || got.Line != w.lineNo {
		bad("got %s @%d-%d line=%d", got.Kind, got.Offset, got.End, got.Line)
	}
	// EndLine is the line to resume at End (entries that consume bytes).
	if got.Kind != KindIncomplete && got.End <= int64(len(in)) && got.EndLine != lineAt(in, got.End) {
		bad("endline %d, want %d", got.EndLine, lineAt(in, got.End))
	}
	if got.ID != w.id {
		bad("id %q, want %q", got.ID, w.id)
	}
	if fmt.Sprint(got.Mods) != fmt.Sprint(w.mods) || len(got.Mods) != len(w.mods) {
		bad("mods %v, want %v", got.Mods, w.mods)
	}
	if w.raw != nil && got.Raw != *w.raw {
		bad("raw %q, want %q", got.Raw, *w.raw)
	}
	if w.kind != KindEvent && got.Raw != "" {
		bad("raw %q on a %s entry", got.Raw, got.Kind)
	}
	if got.Field != w.field {
		bad("field %q, want %q", got.Field, w.field)
	}
	if w.kind == KindEvent && got.Reason != "" {
		bad("reason %q on an event", got.Reason)
	}
	if w.kind == KindInvalid && got.Reason == "" {
		bad("an invalid entry without a reason")
	}
	for _, r := range w.reasons {
		if !strings.Contains(got.Reason, r) {
			bad("reason %q does not contain %q", got.Reason, r)
		}
	}
	if w.reason != nil && got.Reason != *w.reason {
		bad("reason %q, want %q", got.Reason, *w.reason)
	}
	return errs
}

func loadDecodeCases(tb testing.TB) []*decodeCase {
	tb.Helper()
	files, err := filepath.Glob("testdata/decode/*.txt")
	if err != nil || len(files) == 0 {
		tb.Fatalf("no cases in testdata/decode: %v", err)
	}
	var cases []*decodeCase
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		c, err := parseCase(strings.TrimSuffix(filepath.Base(f), ".txt"), string(data))
		if err != nil {
			tb.Fatalf("%s: %v", f, err)
		}
		cases = append(cases, c)
	}
	return cases
}

func TestDecode(t *testing.T) {
	for _, c := range loadDecodeCases(t) {
		t.Run(c.name, func(t *testing.T) {
			opts := Options{MaxValueSize: c.max}
			got := decodeBytes(t, c.input, &opts)

			// The expectations, checked against the reference model first
			// so that a slip in a want file is told apart from a bug.
			model := refDecode(c.input, c.max)
			for i, w := range c.want {
				if i >= len(model) {
					t.Errorf("want line %q: the reference model has no entry %d", w.line, i)
					continue
				}
				m := model[i]
				if m.Kind != w.kind || m.Offset != w.offset || m.End != w.end || m.Line != w.lineNo || m.ID != w.id || fmt.Sprint(m.Mods) != fmt.Sprint(w.mods) {
					t.Errorf("want line %q disagrees with the reference model: %+v", w.line, m)
				}
			}
			if len(model) != len(c.want) {
				t.Errorf("the reference model has %d entries, the want section %d: %+v", len(model), len(c.want), model)
			}

			for i := 0; i < len(got) || i < len(c.want); i++ {
				switch {
				case i >= len(got):
					t.Errorf("missing entry %d: %s", i, c.want[i].line)
				case i >= len(c.want):
					t.Errorf("unexpected entry %d: %v", i, got[i])
				default:
					for _, e := range c.want[i].check(c.input, got[i]) {
						t.Errorf("entry %d (%s): %s", i, c.want[i].line, e)
					}
				}
			}

			for _, v := range readerVariants {
				other, ok := decodeVariant(t, c.input, v, opts)
				if !ok {
					continue
				}
				if d := diffSnaps(got, other); d != "" {
					t.Errorf("%s gives other entries than the default buffer: %s", v.name, d)
				}
			}
		})
	}
}

// TestDecodeSamples decodes the application's own files whole: every
// value is an event, at the offset where its text starts, and the rewrite
// lost exactly the listed ids.
func TestDecodeSamples(t *testing.T) {
	appended := readSample(t, "appended.json")
	after := readSample(t, "after-delete.json")
	deleted := strings.Fields(string(readSample(t, "deleted-ids.txt")))
	if len(deleted) != 3 {
		t.Fatalf("deleted-ids.txt lists %d ids", len(deleted))
	}
	idsOf := func(name string, in []byte) []string {
		t.Helper()
		var ids []string
		for _, e := range decodeBytes(t, in, nil) {
			if e.Kind != KindEvent {
				t.Fatalf("%s: %v", name, e)
			}
			// Each event is written starting with its id, at a line start.
			start := int64(bytes.Index(in, []byte("{\n\t\"id\": \""+e.ID+"\",\n")))
			if e.Offset != start || e.Line != lineAt(in, start) {
				t.Errorf("%s: event %q at %d line %d, its text starts at %d line %d", name, e.ID, e.Offset, e.Line, start, lineAt(in, start))
			}
			// Each ends with the "}" of the line "}", before a newline.
			if e.End > int64(len(in)) || !bytes.HasSuffix(in[:e.End], []byte("\n}")) || in[e.End] != '\n' {
				t.Errorf("%s: event %q ends at %d, not after a closing line", name, e.ID, e.End)
			}
			if want := compactJSON(t, in[e.Offset:e.End]); e.Raw != want {
				t.Errorf("%s: event %q raw %q, want %q", name, e.ID, e.Raw, want)
			}
			ids = append(ids, e.ID)
		}
		return ids
	}
	a := idsOf("appended.json", appended)
	b := idsOf("after-delete.json", after)
	if len(a) != 40 || len(b) != 37 {
		t.Fatalf("%d and %d events, want 40 and 37", len(a), len(b))
	}
	var kept []string
	for _, id := range a {
		if !containsString(deleted, id) {
			kept = append(kept, id)
		}
	}
	if strings.Join(kept, " ") != strings.Join(b, " ") {
		t.Errorf("after-delete ids %v, want appended minus deleted %v", b, kept)
	}
}

func containsString(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// TestReasonIndependentOfReads: the reason of skipped text quotes its
// first bytes, but only those that happen to be in the read buffer, so the
// same log gives another reason when read in other chunks.
func TestReasonIndependentOfReads(t *testing.T) {
	in := []byte("garbage text here\n{}\n")
	def := decodeBytes(t, in, nil)
	one := decodeBytes(t, in, &Options{BufferSize: 1})
	if len(def) == 0 || len(one) == 0 || def[0].Kind != KindInvalid {
		t.Fatalf("entries %v and %v", def, one)
	}
	if !strings.Contains(def[0].Reason, `"garbage text here"`) {
		t.Errorf("default buffer: reason %q does not quote the skipped line", def[0].Reason)
	}
	if def[0].Reason != one[0].Reason {
		t.Errorf("reason with BufferSize 1 %q, with the default %q", one[0].Reason, def[0].Reason)
	}
}
