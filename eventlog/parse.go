package eventlog

import (
	"bytes"
	"errors"
	"fmt"
	"hash/maphash"
	"sync"

	"github.com/mirrord/mirrord/internal/jsonx"
)

// The fields the log format names (docs/design.md, The event log), in the
// order their rules are checked (so the field an invalid entry reports is
// deterministic).
const (
	fID = iota
	fDate
	fOriginal
	fInput
	fType
	fDescription
	fCreator
	fModifiers
	nFields
)

var fieldNames = [nFields]string{"id", "date", "original", "input", "type", "description", "creator", "modifiers"}

// RawModifier is a modifier as the decoder sees it: the decoded name and
// the value's JSON string token (quotes included), as it stands in the
// compacted event.
type RawModifier struct {
	Name  []byte
	Value []byte
}

type rawField struct {
	name  string
	value []byte
}

// parsed is one top-level object walked once: where each named field's
// value is, and (when collecting, for building an Event) the key order and
// the unknown fields.
type parsed struct {
	span [nFields][]byte
	seen uint16 // the named fields met (for the key order)
	id   []byte
	mods []RawModifier

	collect  bool
	order    []string
	orderSet map[string]struct{} // the names of order, once it is long
	extra    []rawField

	modIndex nameIndex // the names of mods, once they are many
	buf      []byte    // decoded names and id

	// For ParseEvent: the object's members, the creator's parse, and the
	// short strings that recur from event to event.
	members  []jsonx.Member
	creator  *parsed
	interned map[string]string
}

// parsers are ParseEvent's scratch states.
var parsers = sync.Pool{New: func() any { return new(parsed) }}

// release returns p to parsers, unless one huge event made it huge.
func (p *parsed) release() {
	if cap(p.buf) > 64<<10 || cap(p.mods) > 4096 || cap(p.members) > 4096 || cap(p.extra) > 4096 || cap(p.order) > 4096 {
		return
	}
	parsers.Put(p)
}

// maxInterned bounds the strings a parser shares, and internMax their
// length.
const (
	maxInterned = 512
	internMax   = 64
)

// intern is the string of the string token tok (of a valid object),
// shared with earlier events when it is short and was seen before.
func (p *parsed) intern(tok []byte) string {
	s := tok[1 : len(tok)-1]
	if bytes.IndexByte(s, '\\') >= 0 {
		return p.unquote(tok)
	}
	return p.internBytes(s)
}

// internBytes is string(b), shared when short and seen before.
func (p *parsed) internBytes(b []byte) string {
	if len(b) > internMax {
		return string(b)
	}
	if s, ok := p.interned[string(b)]; ok {
		return s
	}
	s := string(b)
	if p.interned == nil {
		p.interned = make(map[string]string)
	}
	if len(p.interned) < maxInterned {
		p.interned[s] = s
	}
	return s
}

func (p *parsed) reset() {
	p.span = [nFields][]byte{}
	p.seen = 0
	p.id = p.id[:0]
	p.mods = p.mods[:0]
	p.order = p.order[:0]
	p.orderSet = nil
	p.extra = p.extra[:0]
	p.modIndex.reset()
	p.buf = p.buf[:0]
}

// linearMax is how many names a list holds before a repeated name is
// looked for by hashing rather than by comparing with each: events have a
// handful of fields and modifiers, where comparing is cheapest, but an
// event may hold a million of them.
const linearMax = 16

// nameIndex is an open-addressing hash table of the names of a list
// (positions into it), so that finding a repeated name costs the same
// whatever the list's length. A slot holds the position and the top half
// of its name's hash, so that a probe reads the list (and the name) only
// when the hashes agree: one cache miss a name, not four, in the table of
// a million.
type nameIndex struct {
	slots []uint64 // hash>>32<<32 | 1 + a position; 0 is a free slot
	n     int      // the positions indexed: the first n of the list
}

var nameSeed = maphash.MakeSeed()

func (x *nameIndex) reset() {
	if x.n == 0 {
		return
	}
	x.n = 0
	if len(x.slots) > 1<<12 {
		// Do not keep (and clear for every later event) the table of one
		// huge event.
		x.slots = nil
		return
	}
	clear(x.slots)
}

// find returns the position of name in a list of count names, all
// different (nameAt gives the name at a position), or -1 after noting
// that name is at position count.
func (x *nameIndex) find(name []byte, count int, nameAt func(int) []byte) int {
	if count < linearMax && x.n == 0 {
		for i := range count {
			if bytes.Equal(nameAt(i), name) {
				return i
			}
		}
		return -1
	}
	if x.n < count || 2*(count+1) > len(x.slots) {
		x.grow(count, nameAt)
	}
	h := maphash.Bytes(nameSeed, name)
	tag := h >> 32 << 32
	mask := uint64(len(x.slots) - 1)
	i := h & mask
	for ; x.slots[i] != 0; i = (i + 1) & mask {
		if s := x.slots[i]; s>>32<<32 == tag && bytes.Equal(nameAt(int(uint32(s)-1)), name) {
			return int(uint32(s) - 1)
		}
	}
	x.slots[i] = tag | uint64(count+1)
	x.n = count + 1
	return -1
}

// grow rebuilds the table, at most half full with count+1 names, from the
// list (read in order: its hashes are not kept).
func (x *nameIndex) grow(count int, nameAt func(int) []byte) {
	size := max(64, len(x.slots))
	for 2*(count+1) > size {
		size *= 2
	}
	if size != len(x.slots) {
		x.slots = make([]uint64, size)
	} else {
		clear(x.slots)
	}
	mask := uint64(size - 1)
	for pos := range count {
		h := maphash.Bytes(nameSeed, nameAt(pos))
		i := h & mask
		for x.slots[i] != 0 {
			i = (i + 1) & mask
		}
		x.slots[i] = h>>32<<32 | uint64(pos+1)
	}
	x.n = count
}

// valueKind names the JSON type of a value by its first byte.
func valueKind(v []byte) string {
	switch v[0] {
	case '"':
		return "a string"
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

// walkObject calls fn with the raw key token and raw value of each member
// of the object b, which must be valid JSON starting with '{' (it is not
// validated again: only the members' bounds are found).
func walkObject(b []byte, fn func(key, val []byte) error) error {
	i := jsonx.SkipSpace(b, 1)
	if b[i] == '}' {
		return nil
	}
	for {
		kend := jsonx.StringEnd(b, i)
		key := b[i:kend]
		i = jsonx.SkipSpace(b, kend) + 1 // past ':'
		i = jsonx.SkipSpace(b, i)
		vend := jsonx.SkipValue(b, i)
		if err := fn(key, b[i:vend]); err != nil {
			return err
		}
		i = jsonx.SkipSpace(b, vend)
		if i >= len(b) || b[i] == '}' {
			return nil
		}
		i = jsonx.SkipSpace(b, i+1) // past ','
	}
}

// keyName returns the decoded key; the common unescaped case costs no
// decoding. A lone surrogate is an error: for names that become keys.
func (p *parsed) keyName(key []byte) ([]byte, error) {
	if bytes.IndexByte(key, '\\') < 0 {
		return key[1 : len(key)-1], nil
	}
	start := len(p.buf)
	var err error
	p.buf, err = jsonx.AppendUnquote(p.buf, key)
	return p.buf[start:], err
}

// keyNameLossy is keyName for names that stay inside the stored object
// (unknown fields, the creator's fields): a lone surrogate becomes U+FFFD.
func (p *parsed) keyNameLossy(key []byte) []byte {
	if bytes.IndexByte(key, '\\') < 0 {
		return key[1 : len(key)-1]
	}
	start := len(p.buf)
	p.buf = jsonx.AppendUnquoteLossy(p.buf, key)
	return p.buf[start:]
}

// parseMembers takes the members of the top-level object b, located by
// jsonx.AppendCompactMembers (or ValidMembers).
func (p *parsed) parseMembers(b []byte, members []jsonx.Member) error {
	p.reset()
	if b[0] != '{' {
		return errNotObject
	}
	for _, m := range members {
		p.member(b[m.Key[0]:m.Key[1]], b[m.Val[0]:m.Val[1]])
	}
	return nil
}

// member takes one member of the top-level object.
func (p *parsed) member(key, val []byte) {
	if f := quotedField(key); f >= 0 {
		p.note(f, val)
		return
	}
	name := p.keyNameLossy(key)
	for f := range nFields {
		if string(name) == fieldNames[f] {
			p.note(f, val)
			return
		}
	}
	if p.collect {
		n := string(name)
		p.noteOrder(n)
		p.extra = append(p.extra, rawField{n, val})
	}
}

// quotedField is the field whose name the key token spells without
// escapes, or -1.
func quotedField(key []byte) int {
	switch string(key) {
	case `"id"`:
		return fID
	case `"date"`:
		return fDate
	case `"original"`:
		return fOriginal
	case `"input"`:
		return fInput
	case `"type"`:
		return fType
	case `"description"`:
		return fDescription
	case `"creator"`:
		return fCreator
	case `"modifiers"`:
		return fModifiers
	}
	return -1
}

func (p *parsed) note(f int, val []byte) {
	p.span[f] = val
	// The key order: a named field at its first appearance (no unknown
	// field has its name).
	if p.collect && p.seen&(1<<f) == 0 {
		p.seen |= 1 << f
		p.order = append(p.order, fieldNames[f])
	}
}

func (p *parsed) modName(i int) []byte { return p.mods[i].Name }

// noteOrder records a key at its first appearance: JSON.parse keeps a
// repeated key at its first place (with its last value).
func (p *parsed) noteOrder(name string) {
	if p.orderSet != nil {
		if _, ok := p.orderSet[name]; !ok {
			p.orderSet[name] = struct{}{}
			p.order = append(p.order, name)
		}
		return
	}
	for _, k := range p.order {
		if k == name {
			return
		}
	}
	p.order = append(p.order, name)
	if len(p.order) >= linearMax {
		p.orderSet = make(map[string]struct{}, 2*len(p.order))
		for _, k := range p.order {
			p.orderSet[k] = struct{}{}
		}
	}
}

// offsetIn returns where field f's value begins in b, the object p
// parsed its members from (0: no such field). The value is a slice of b,
// so its offset is what b's capacity has beyond the value's.
func (p *parsed) offsetIn(b []byte, f int) int {
	if p.span[f] == nil {
		return 0
	}
	return cap(b) - cap(p.span[f])
}

func (p *parsed) str(f int) string {
	return p.unquote(p.span[f])
}

// unquote decodes a string token of a valid object (a lone surrogate
// escape becomes U+FFFD) with one allocation: most strings hold no escape
// and are their own bytes; the others are decoded in p.buf's spare room
// first.
func (p *parsed) unquote(tok []byte) string {
	s := tok[1 : len(tok)-1]
	if bytes.IndexByte(s, '\\') < 0 {
		return string(s)
	}
	start := len(p.buf)
	p.buf = jsonx.AppendUnquoteLossy(p.buf, tok)
	out := string(p.buf[start:])
	p.buf = p.buf[:start]
	return out
}

// validate checks the rules of the log format (docs/design.md, The event
// log) in field order and decodes the id and the modifiers.
func (p *parsed) validate() *FieldError {
	for f := fID; f <= fDescription; f++ {
		v := p.span[f]
		if v == nil {
			return &FieldError{Field: fieldNames[f], Reason: "missing"}
		}
		if v[0] != '"' {
			return &FieldError{Field: fieldNames[f], Reason: "must be a string, found " + valueKind(v)}
		}
	}
	var err error
	start := len(p.buf)
	p.buf, err = jsonx.AppendUnquote(p.buf, p.span[fID])
	if err != nil {
		return &FieldError{Field: "id", Reason: err.Error()}
	}
	p.id = p.buf[start:]
	if len(p.id) == 0 {
		return &FieldError{Field: "id", Reason: "must not be empty"}
	}
	if reason := checkDate(p.span[fDate]); reason != "" {
		return &FieldError{Field: "date", Reason: reason}
	}
	if fe := p.checkCreator(); fe != nil {
		return fe
	}
	return p.decodeModifiers()
}

// checkCreator checks the creator; when collecting (for an Event), by
// parsing it whole into p.creator, which event then reads.
func (p *parsed) checkCreator() *FieldError {
	v := p.span[fCreator]
	if !p.collect || v == nil || v[0] != '{' {
		return checkCreator(v)
	}
	if p.creator == nil {
		p.creator = new(parsed)
	}
	cp := p.creator
	cp.parseCreator(v)
	for _, n := range creatorOrder {
		switch raw := cp.lastRaw(n); {
		case raw == nil:
			return &FieldError{Field: "creator." + n, Reason: "missing"}
		case raw[0] != '"':
			return &FieldError{Field: "creator." + n, Reason: "must be a string, found " + valueKind(raw)}
		}
	}
	return nil
}

func checkCreator(v []byte) *FieldError {
	if v == nil {
		return &FieldError{Field: "creator", Reason: "missing"}
	}
	if v[0] != '{' {
		return &FieldError{Field: "creator", Reason: "must be an object, found " + valueKind(v)}
	}
	var got [3][]byte
	names := [3]string{"name", "uuid", "version"}
	_ = walkObject(v, func(key, val []byte) error {
		for i, n := range names {
			if len(key) == len(n)+2 && string(key[1:len(key)-1]) == n {
				got[i] = val
				return nil
			}
			if bytes.IndexByte(key, '\\') >= 0 && string(jsonx.AppendUnquoteLossy(nil, key)) == n {
				got[i] = val
				return nil
			}
		}
		return nil
	})
	for i, n := range names {
		switch {
		case got[i] == nil:
			return &FieldError{Field: "creator." + n, Reason: "missing"}
		case got[i][0] != '"':
			return &FieldError{Field: "creator." + n, Reason: "must be a string, found " + valueKind(got[i])}
		}
	}
	return nil
}

// decodeModifiers checks that "modifiers", when present, is an object of
// strings, and keeps each name once, with its last value (as JSON.parse
// does).
func (p *parsed) decodeModifiers() *FieldError {
	v := p.span[fModifiers]
	if v == nil {
		return nil
	}
	if v[0] != '{' {
		return &FieldError{Field: "modifiers", Reason: "must be an object, found " + valueKind(v)}
	}
	err := walkObject(v, func(key, val []byte) error {
		name, err := p.keyName(key)
		if err != nil {
			return &FieldError{Field: "modifiers", Reason: fmt.Sprintf("a modifier name %s", err)}
		}
		if val[0] != '"' {
			return &FieldError{Field: "modifiers." + string(name), Reason: "must be a string, found " + valueKind(val)}
		}
		if i := p.modIndex.find(name, len(p.mods), p.modName); i >= 0 {
			p.mods[i].Value = val
			return nil
		}
		p.mods = append(p.mods, RawModifier{Name: name, Value: val})
		return nil
	})
	var fe *FieldError
	if errors.As(err, &fe) {
		return fe
	}
	if err != nil {
		return &FieldError{Field: "modifiers", Reason: err.Error()}
	}
	return nil
}

// parseCreator walks the creator object, collecting its key order and
// fields (for building an Event).
func (p *parsed) parseCreator(b []byte) {
	p.reset()
	p.collect = true
	_ = walkObject(b, func(key, val []byte) error {
		n := creatorKey(p.keyNameLossy(key))
		p.noteOrder(n)
		p.extra = append(p.extra, rawField{n, val})
		return nil
	})
}

// creatorKey is the key as a string, without allocating one for the
// names every creator has.
func creatorKey(b []byte) string {
	switch string(b) {
	case "name":
		return "name"
	case "uuid":
		return "uuid"
	case "version":
		return "version"
	}
	return string(b)
}

// lastRaw is the raw value of the last field called name, or nil.
func (p *parsed) lastRaw(name string) []byte {
	for i := len(p.extra) - 1; i >= 0; i-- {
		if p.extra[i].name == name {
			return p.extra[i].value
		}
	}
	return nil
}
