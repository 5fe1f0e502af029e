package generators

import (
	"context"
	"slices"
	"strings"
)

func init() { Register("hashtags", func() Generator { return hashtags{} }) }

// hashtags indexes the #tags written in events' input, one value per tag
// and event:
//
//	generated:hashtags:{tag}:{id} = "<the event's date>"
//
// so the events that carry a tag are the keys under
// generated:hashtags:{tag}: (Keys or Scan of that prefix), and no value
// grows with the log: a tag on every one of a million events is a million
// small keys, and an append writes one per tag it carries. A tag is what
// the application that writes the log shows as one (see Tags). It keeps
// no state of its own: a change's before-image says which keys to take
// back.
type hashtags struct{}

// Version: 3 since the values are one per tag and event (2: the index
// lived in the private state; 1: tags are the application's, ASCII,
// hyphenated groups, case-sensitive; 0: Unicode, lower-cased, one list of
// ids per tag beside an index under '.').
func (hashtags) Version() int { return 3 }

// Tags returns the distinct hashtags of a text, sorted: exactly what the
// application that writes the log extracts from an event's input with the
// JavaScript regular expression /#(\w+(?:-\w+)*)/g. Without the u flag
// \w is ASCII, [A-Za-z0-9_]; a tag is '#' and a run of those, followed by
// any number of groups of '-' and another run ("#deep-work"), and case
// matters ("#Work" and "#work" are two tags). Matches do not overlap and
// the scan goes on after each one, so "#a#b" holds a and b, "##x" holds
// x, "#a--b" holds a, and "#музика" holds none.
func Tags(text string) []string { return appendTags(nil, text) }

// appendTags appends the distinct hashtags of text, sorted, to tags (which
// must be empty; a rebuild passes the last event's, for its array). They
// are gathered, then sorted and made distinct: an input of a million
// distinct tags costs n log n, not n² as a search of those found so far
// would.
func appendTags(tags []string, text string) []string {
	for i := 0; i < len(text); i++ {
		if text[i] != '#' {
			j := strings.IndexByte(text[i:], '#')
			if j < 0 {
				break
			}
			i += j
		}
		end := wordEnd(text, i+1)
		if end == i+1 {
			continue // '#' not followed by a word character
		}
		// Each group is '-' and at least one word character; a '-' not
		// followed by one ends the tag before it.
		for end < len(text) && text[end] == '-' {
			next := wordEnd(text, end+1)
			if next == end+1 {
				break
			}
			end = next
		}
		tags = append(tags, text[i+1:end])
		i = end - 1 // the scan resumes where the match ended
	}
	slices.Sort(tags)
	return slices.Compact(tags)
}

// wordEnd returns the index of the first byte at or after i that is not
// a JavaScript \w character (ASCII letters, digits and '_'). Bytes of a
// multi-byte UTF-8 character never are, as in the application, whose \w
// never matches a character outside ASCII.
func wordEnd(s string, i int) int {
	for i < len(s) && isWord(s[i]) {
		i++
	}
	return i
}

func isWord(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_'
}

func (hashtags) Update(ctx context.Context, in *Input, out *Scope) error {
	var (
		date     []byte   // scratch
		was, now []string // scratch: the tags before and after
		subs     = subScopes{out: out}
	)
	return in.FieldChanges(func(id string, before, after *Fields) error {
		was, now = was[:0], now[:0]
		if before != nil {
			was = appendTags(was, before.Input)
		}
		if after != nil {
			now = appendTags(now, after.Input)
		}
		for _, t := range was {
			if _, kept := slices.BinarySearch(now, t); !kept {
				if err := subs.of(t).Delete(id); err != nil {
					return err
				}
			}
		}
		for _, t := range now {
			if _, had := slices.BinarySearch(was, t); had && before.Date == after.Date {
				continue // stored as it is
			}
			date = append(append(append(date[:0], '"'), after.Date...), '"') // dates need no escaping
			if err := subs.of(t).putJSON(id, date); err != nil {
				return err
			}
		}
		return nil
	})
}

// subScopes keeps the Sub scopes of the tags met most recently: a Sub is
// an allocation and a key prefix built, and a rebuild asked for one for
// every tag of every event (a seventh of the garbage beside a load). At
// most subScopesMax are kept, so that a log of millions of distinct tags
// costs no more memory than one of a few.
type subScopes struct {
	out  *Scope
	subs map[string]*Scope
}

const subScopesMax = 1024

func (s *subScopes) of(tag string) *Scope {
	if sub, ok := s.subs[tag]; ok {
		return sub
	}
	if s.subs == nil || len(s.subs) >= subScopesMax {
		s.subs = make(map[string]*Scope, 64)
	}
	sub := s.out.Sub(tag)
	s.subs[tag] = sub
	return sub
}
