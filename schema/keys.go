package schema

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Key prefixes. Each names one kind of key; together they partition the
// store, and nothing else is ever written.
const (
	// PrefixEvent starts "event:{id}": the event object as it stands in the log.
	PrefixEvent = "event:"
	// PrefixModifier starts "modifier:{id}:{name}": {"value": "..."}.
	PrefixModifier = "modifier:"
	// PrefixGenerated starts "generated:{generator}:{key}": a generator's output.
	PrefixGenerated = "generated:"
	// PrefixInternal starts the daemon's own bookkeeping; nothing else
	// writes under it.
	PrefixInternal = "mirrord:"

	// PrefixChanges starts the change feed, "mirrord:changes:{seq}", with
	// seq zero-padded to 20 digits so that key order is numeric order.
	PrefixChanges = PrefixInternal + "changes:"
	// PrefixDigest starts "mirrord:digest:{id}": a fingerprint of the stored
	// event, which lets a reconcile find the difference without reading
	// every stored value.
	PrefixDigest = PrefixInternal + "digest:"
	// PrefixGeneratorState starts "mirrord:generator:{name}": a generator's
	// position in the change feed.
	PrefixGeneratorState = PrefixInternal + "generator:"
	// PrefixState starts "mirrord:state:{generator}:{key}": what a
	// generator keeps for itself to stay incremental (never one of its
	// values), dropped with it.
	PrefixState = PrefixInternal + "state:"
)

// Bookkeeping keys with a single instance.
const (
	// SchemaKey holds the store's schema version.
	SchemaKey = PrefixInternal + "schema"
	// CheckpointKey holds the mirror's checkpoint.
	CheckpointKey = PrefixInternal + "checkpoint"
	// ResyncMarkerKey exists while a resync is rebuilding the store.
	ResyncMarkerKey = PrefixInternal + "resync"
	// ReconcileMarkerKey exists while a reconcile spans several batches.
	ReconcileMarkerKey = PrefixInternal + "reconcile"
)

// ErrBadKey is the cause of a ParseKey failure: the key does not have the
// shape its prefix promises, or a segment is not canonically escaped.
var ErrBadKey = errors.New("malformed key")

type text interface{ ~string | ~[]byte }

// appendEscaped appends s to dst with '%', ':' and bytes below 0x20 escaped
// as %XX, which makes the segment free of ':' and the mapping injective.
func appendEscaped[T text](dst []byte, s T) []byte {
	const hex = "0123456789ABCDEF"
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '%' && c != ':' {
			continue
		}
		dst = append(dst, s[start:i]...)
		dst = append(dst, '%', hex[c>>4], hex[c&0xF])
		start = i + 1
	}
	return append(dst, s[start:]...)
}

// AppendSegment appends s escaped as one key segment to dst: EscapeSegment
// without the allocation, for hot paths.
func AppendSegment[T text](dst []byte, s T) []byte { return appendEscaped(dst, s) }

// EscapeSegment returns s escaped for use as one key segment.
func EscapeSegment(s string) string {
	if !needsEscape(s) {
		return s
	}
	return string(appendEscaped(make([]byte, 0, len(s)+8), s))
}

func needsEscape[T text](s T) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '%' || c == ':' {
			return true
		}
	}
	return false
}

// UnescapeSegment reverses EscapeSegment. It accepts only the canonical
// escapes EscapeSegment produces, so that every segment has exactly one
// spelling.
func UnescapeSegment(seg string) (string, error) {
	if strings.IndexByte(seg, ':') >= 0 {
		return "", fmt.Errorf("%w: segment %q holds an unescaped ':'", ErrBadKey, seg)
	}
	for i := 0; i < len(seg); i++ {
		if seg[i] < 0x20 {
			return "", fmt.Errorf("%w: segment %q holds an unescaped control byte", ErrBadKey, seg)
		}
	}
	if strings.IndexByte(seg, '%') < 0 {
		return seg, nil
	}
	var b strings.Builder
	b.Grow(len(seg))
	for i := 0; i < len(seg); i++ {
		c := seg[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		if i+2 >= len(seg) {
			return "", fmt.Errorf("%w: truncated escape in segment %q", ErrBadKey, seg)
		}
		v, err := strconv.ParseUint(seg[i+1:i+3], 16, 8)
		if err != nil || !(v < 0x20 || v == '%' || v == ':') || strings.ToUpper(seg[i+1:i+3]) != seg[i+1:i+3] {
			return "", fmt.Errorf("%w: non-canonical escape %q in segment %q", ErrBadKey, seg[i:i+3], seg)
		}
		b.WriteByte(byte(v))
		i += 2
	}
	return b.String(), nil
}

// EventKey returns "event:{id}".
func EventKey(id string) string { return string(AppendEventKey(nil, id)) }

// ModifierKey returns "modifier:{id}:{name}".
func ModifierKey(id, name string) string { return string(AppendModifierKey(nil, id, name)) }

// ModifiersOf returns the prefix of every modifier of the event id,
// "modifier:{id}:".
func ModifiersOf(id string) string { return string(AppendModifiersOf(nil, id)) }

// GeneratedKey returns "generated:{generator}:{key}".
func GeneratedKey(generator, key string) string {
	b := appendEscaped([]byte(PrefixGenerated), generator)
	b = append(b, ':')
	return string(appendEscaped(b, key))
}

// GeneratedSubKey returns "generated:{generator}:{key}:{sub}": one of a
// family of values under key, one per sub (an event's id, typically:
// hashtags stores generated:hashtags:{tag}:{id}). sub must not be empty.
func GeneratedSubKey(generator, key, sub string) string {
	return string(appendEscaped([]byte(GeneratedSubPrefix(generator, key)), sub))
}

// GeneratedSubPrefix returns "generated:{generator}:{key}:", the prefix of
// the family of values under key.
func GeneratedSubPrefix(generator, key string) string {
	b := appendEscaped([]byte(PrefixGenerated), generator)
	b = appendEscaped(append(b, ':'), key)
	return string(append(b, ':'))
}

// GeneratorPrefix returns "generated:{generator}:", the prefix of every value
// the generator owns.
func GeneratorPrefix(generator string) string {
	return string(append(appendEscaped([]byte(PrefixGenerated), generator), ':'))
}

// StateKey returns "mirrord:state:{generator}:{key}".
func StateKey(generator, key string) string {
	return string(appendEscaped([]byte(StatePrefix(generator)), key))
}

// StatePrefix returns "mirrord:state:{generator}:", the prefix of
// everything the generator keeps for itself.
func StatePrefix(generator string) string {
	return string(append(appendEscaped([]byte(PrefixState), generator), ':'))
}

// DigestKey returns "mirrord:digest:{id}".
func DigestKey(id string) string { return string(AppendDigestKey(nil, id)) }

// GeneratorStateKey returns "mirrord:generator:{name}".
func GeneratorStateKey(name string) string {
	return string(appendEscaped([]byte(PrefixGeneratorState), name))
}

// ChangeKey returns "mirrord:changes:{seq}" with seq zero-padded to 20
// digits, so that the feed sorts by sequence number.
func ChangeKey(seq uint64) string {
	return fmt.Sprintf("%s%020d", PrefixChanges, seq)
}

// ParseChangeKey returns the sequence number of a ChangeKey.
func ParseChangeKey(key string) (uint64, error) {
	digits, ok := strings.CutPrefix(key, PrefixChanges)
	if !ok || len(digits) != 20 {
		return 0, fmt.Errorf("%w: %q is not a change-feed key", ErrBadKey, key)
	}
	seq, err := strconv.ParseUint(digits, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %q is not a change-feed key", ErrBadKey, key)
	}
	return seq, nil
}

// AppendEventKey appends "event:{id}" to dst; it is EventKey without the
// allocation, for hot paths.
func AppendEventKey[T text](dst []byte, id T) []byte {
	return appendEscaped(append(dst, PrefixEvent...), id)
}

// AppendModifierKey appends "modifier:{id}:{name}" to dst.
func AppendModifierKey[T, U text](dst []byte, id T, name U) []byte {
	return appendEscaped(AppendModifiersOf(dst, id), name)
}

// AppendModifiersOf appends "modifier:{id}:" to dst.
func AppendModifiersOf[T text](dst []byte, id T) []byte {
	return append(appendEscaped(append(dst, PrefixModifier...), id), ':')
}

// AppendDigestKeyOf appends the digest key of the event whose key is
// eventKey ("event:{id}" -> "mirrord:digest:{id}"; the segment is already
// escaped).
func AppendDigestKeyOf(dst, eventKey []byte) []byte {
	return append(append(dst, PrefixDigest...), eventKey[len(PrefixEvent):]...)
}

// AppendDigestKey appends "mirrord:digest:{id}" to dst.
func AppendDigestKey[T text](dst []byte, id T) []byte {
	return appendEscaped(append(dst, PrefixDigest...), id)
}

// KeyKind says which part of the key schema a key belongs to.
type KeyKind int

// The kinds of key.
const (
	KeyUnknown   KeyKind = iota // not one of mirrord's shapes
	KeyEvent                    // event:{id}
	KeyModifier                 // modifier:{id}:{name}
	KeyGenerated                // generated:{generator}:{key}
	KeyInternal                 // mirrord:...
)

// Key is a parsed key: the inverse of the builders above.
type Key struct {
	Kind KeyKind
	// ID is the event id (KeyEvent, KeyModifier).
	ID string
	// Name is the modifier name (KeyModifier) or the generator's own key
	// (KeyGenerated).
	Name string
	// Generator is the generator's name (KeyGenerated).
	Generator string
	// Sub is the third segment of a generated key of a family,
	// generated:{generator}:{key}:{sub} (see GeneratedSubKey); "" for
	// generated:{generator}:{key}.
	Sub string
}

// ParseKey splits a key into its unescaped segments. Keys under mirrord: are
// returned with Kind KeyInternal and no further parsing; a key with no known
// prefix is an error.
func ParseKey(key string) (Key, error) {
	switch {
	case strings.HasPrefix(key, PrefixEvent):
		id, err := UnescapeSegment(key[len(PrefixEvent):])
		if err != nil {
			return Key{}, err
		}
		return Key{Kind: KeyEvent, ID: id}, nil
	case strings.HasPrefix(key, PrefixModifier):
		a, b, err := twoSegments(key, PrefixModifier)
		return Key{Kind: KeyModifier, ID: a, Name: b}, err
	case strings.HasPrefix(key, PrefixGenerated):
		gen, rest, ok := strings.Cut(key[len(PrefixGenerated):], ":")
		if !ok {
			return Key{}, fmt.Errorf("%w: %q needs two segments after %q", ErrBadKey, key, PrefixGenerated)
		}
		name, sub, family := strings.Cut(rest, ":")
		if family && (sub == "" || strings.IndexByte(sub, ':') >= 0) {
			return Key{}, fmt.Errorf("%w: %q: a generated key has two or three non-empty segments after %q", ErrBadKey, key, PrefixGenerated)
		}
		k := Key{Kind: KeyGenerated}
		var err error
		if k.Generator, err = UnescapeSegment(gen); err != nil {
			return Key{}, err
		}
		if k.Name, err = UnescapeSegment(name); err != nil {
			return Key{}, err
		}
		if k.Sub, err = UnescapeSegment(sub); err != nil {
			return Key{}, err
		}
		return k, nil
	case strings.HasPrefix(key, PrefixInternal):
		return Key{Kind: KeyInternal}, nil
	}
	return Key{}, fmt.Errorf("%w: %q has no known prefix", ErrBadKey, key)
}

func twoSegments(key, prefix string) (string, string, error) {
	first, second, ok := strings.Cut(key[len(prefix):], ":")
	if !ok {
		return "", "", fmt.Errorf("%w: %q needs two segments after %q", ErrBadKey, key, prefix)
	}
	a, err := UnescapeSegment(first)
	if err != nil {
		return "", "", err
	}
	b, err := UnescapeSegment(second)
	if err != nil {
		return "", "", err
	}
	return a, b, nil
}
