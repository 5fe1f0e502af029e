package schema

import (
	"errors"
	"strings"
	"testing"
)

func TestEscapeSegment(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"abc", "abc"},
		{"", ""},
		{"a:b", "a%3Ab"},
		{"100%", "100%25"},
		{"%3A", "%253A"},
		{"tab\there", "tab%09here"},
		{"nul\x00", "nul%00"},
		{"\x1f\x20", "%1F "},
		{"я😀", "я😀"},
		{"\xff\xfe", "\xff\xfe"}, // not UTF-8: passed through, still injective
	} {
		if got := EscapeSegment(tc.in); got != tc.want {
			t.Errorf("EscapeSegment(%q) = %q, want %q", tc.in, got, tc.want)
		}
		back, err := UnescapeSegment(tc.want)
		if err != nil || back != tc.in {
			t.Errorf("UnescapeSegment(%q) = %q, %v; want %q", tc.want, back, err, tc.in)
		}
	}
}

func TestUnescapeSegmentRejectsNonCanonical(t *testing.T) {
	for _, seg := range []string{"a:b", "%41", "%3a", "%2", "%", "%zz", "%7F", "a\x1eb", "\x00"} {
		if _, err := UnescapeSegment(seg); !errors.Is(err, ErrBadKey) {
			t.Errorf("UnescapeSegment(%q) err = %v, want ErrBadKey", seg, err)
		}
	}
}

// The example of docs/design.md, Keys and values: without escaping these
// two would share a key.
func TestModifierKeysAreInjective(t *testing.T) {
	a := ModifierKey("a:b", "c")
	b := ModifierKey("a", "b:c")
	if a == b {
		t.Fatalf("ModifierKey collision: %q", a)
	}
	if a != "modifier:a%3Ab:c" || b != "modifier:a:b%3Ac" {
		t.Fatalf("unexpected keys %q %q", a, b)
	}
	// And one event's modifier prefix never covers another event's keys.
	if strings.HasPrefix(ModifierKey("a:b", "c"), ModifiersOf("a")) {
		t.Fatalf("ModifiersOf(a) covers a modifier of event a:b")
	}
}

func TestBuildersAndParseKeyRoundTrip(t *testing.T) {
	ids := []string{"abc", "a:b", "%", "x\x00y", "я", "😀:%", strings.Repeat("z", 1000)}
	for _, id := range ids {
		k, err := ParseKey(EventKey(id))
		if err != nil || k != (Key{Kind: KeyEvent, ID: id}) {
			t.Errorf("ParseKey(EventKey(%q)) = %+v, %v", id, k, err)
		}
		for _, name := range ids {
			k, err := ParseKey(ModifierKey(id, name))
			if err != nil || k != (Key{Kind: KeyModifier, ID: id, Name: name}) {
				t.Errorf("ParseKey(ModifierKey(%q, %q)) = %+v, %v", id, name, k, err)
			}
			k, err = ParseKey(GeneratedKey(id, name))
			if err != nil || k != (Key{Kind: KeyGenerated, Generator: id, Name: name}) {
				t.Errorf("ParseKey(GeneratedKey(%q, %q)) = %+v, %v", id, name, k, err)
			}
			if !strings.HasPrefix(GeneratedKey(id, name), GeneratorPrefix(id)) {
				t.Errorf("GeneratedKey(%q, %q) is outside GeneratorPrefix", id, name)
			}
			if k, err := ParseKey(GeneratedSubKey(id, name, "s:"+id)); err != nil || k != (Key{Kind: KeyGenerated, Generator: id, Name: name, Sub: "s:" + id}) {
				t.Errorf("ParseKey(GeneratedSubKey(%q, %q, ...)) = %+v, %v", id, name, k, err)
			}
			if sub := GeneratedSubKey(id, name, "x"); !strings.HasPrefix(sub, GeneratedSubPrefix(id, name)) || !strings.HasPrefix(sub, GeneratorPrefix(id)) {
				t.Errorf("GeneratedSubKey(%q, %q, x) = %q is outside its prefixes", id, name, sub)
			}
			sk := StateKey(id, name)
			if !strings.HasPrefix(sk, StatePrefix(id)) || !strings.HasPrefix(sk, PrefixState) {
				t.Errorf("StateKey(%q, %q) = %q is outside StatePrefix", id, name, sk)
			}
			if k, err := ParseKey(sk); err != nil || k.Kind != KeyInternal {
				t.Errorf("ParseKey(StateKey(%q, %q)) = %+v, %v; want internal", id, name, k, err)
			}
		}
	}
}

// One generator's state prefix never covers another's keys ("a" and
// "a:b", "a" and "ab").
func TestStatePrefixesDoNotOverlap(t *testing.T) {
	names := []string{"a", "a:b", "ab", "a%", "b"}
	for _, x := range names {
		for _, y := range names {
			if x != y && strings.HasPrefix(StateKey(y, "k"), StatePrefix(x)) {
				t.Errorf("StatePrefix(%q) covers StateKey(%q, k)", x, y)
			}
		}
	}
}

func TestAppendBuildersMatchStringBuilders(t *testing.T) {
	id, name := "a:b%c", "n\x01"
	if got := string(AppendEventKey([]byte("x"), []byte(id))); got != "x"+EventKey(id) {
		t.Errorf("AppendEventKey = %q", got)
	}
	if got := string(AppendModifierKey(nil, id, []byte(name))); got != ModifierKey(id, name) {
		t.Errorf("AppendModifierKey = %q", got)
	}
	if got := string(AppendDigestKey(nil, id)); got != DigestKey(id) || !strings.HasPrefix(got, PrefixDigest) {
		t.Errorf("AppendDigestKey = %q", got)
	}
	if got := string(AppendSegment([]byte("x"), id)); got != "x"+EscapeSegment(id) {
		t.Errorf("AppendSegment = %q", got)
	}
}

func TestParseKeyErrors(t *testing.T) {
	for _, key := range []string{"", "other:x", "modifier:abc", "event:a:b", "generated:g", "event:%GG", "generated:g:k:", "generated:g:k:a:b", "generated:g:k:%ZZ"} {
		if _, err := ParseKey(key); !errors.Is(err, ErrBadKey) {
			t.Errorf("ParseKey(%q) err = %v, want ErrBadKey", key, err)
		}
	}
	if k, err := ParseKey(CheckpointKey); err != nil || k.Kind != KeyInternal {
		t.Errorf("ParseKey(CheckpointKey) = %+v, %v", k, err)
	}
}

func TestChangeKeyOrderIsNumeric(t *testing.T) {
	seqs := []uint64{0, 1, 9, 10, 99, 100, 1 << 40, ^uint64(0)}
	for i := 1; i < len(seqs); i++ {
		if ChangeKey(seqs[i-1]) >= ChangeKey(seqs[i]) {
			t.Errorf("ChangeKey(%d) >= ChangeKey(%d)", seqs[i-1], seqs[i])
		}
	}
	for _, s := range seqs {
		got, err := ParseChangeKey(ChangeKey(s))
		if err != nil || got != s {
			t.Errorf("ParseChangeKey(ChangeKey(%d)) = %d, %v", s, got, err)
		}
	}
	if _, err := ParseChangeKey(PrefixChanges + "12"); !errors.Is(err, ErrBadKey) {
		t.Errorf("short change key accepted")
	}
}

func FuzzParseKey(f *testing.F) {
	for _, s := range []string{"event:a", "modifier:a%3Ab:c", "generated:g:k", "generated:g:k:id", "generated:g:k:", "generated:g:k:a:b", "mirrord:x", "event:%", "modifier::", "event:%1F"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		k, err := ParseKey(key)
		if err != nil {
			return
		}
		// Whatever parses must rebuild to exactly the same key: one
		// spelling per key, so the mapping is a bijection.
		var rebuilt string
		switch k.Kind {
		case KeyEvent:
			rebuilt = EventKey(k.ID)
		case KeyModifier:
			rebuilt = ModifierKey(k.ID, k.Name)
		case KeyGenerated:
			rebuilt = GeneratedKey(k.Generator, k.Name)
			if k.Sub != "" {
				rebuilt = GeneratedSubKey(k.Generator, k.Name, k.Sub)
			}
		case KeyInternal:
			return
		}
		if rebuilt != key {
			t.Fatalf("ParseKey(%q) = %+v rebuilds to %q", key, k, rebuilt)
		}
	})
}

func FuzzEscapeSegment(f *testing.F) {
	f.Add("a:b%c\x00")
	f.Fuzz(func(t *testing.T, s string) {
		e := EscapeSegment(s)
		if strings.IndexByte(e, ':') >= 0 {
			t.Fatalf("escaped segment %q holds ':'", e)
		}
		for i := 0; i < len(e); i++ {
			if e[i] < 0x20 {
				t.Fatalf("escaped segment %q holds control byte", e)
			}
		}
		back, err := UnescapeSegment(e)
		if err != nil || back != s {
			t.Fatalf("round trip of %q: %q, %v", s, back, err)
		}
	})
}
