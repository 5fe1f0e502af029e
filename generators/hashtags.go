package generators

import (
	"context"
	"slices"
	"sort"
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
func Tags(text string) []string {
	var tags []string
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
		if t := text[i+1 : end]; !slices.Contains(tags, t) {
			tags = append(tags, t)
		}
		i = end - 1 // the scan resumes where the match ended
	}
	sort.Strings(tags)
	return tags
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
	var date []byte // scratch
	return in.FieldChanges(func(id string, before, after *Fields) error {
		var was, now []string
		if before != nil {
			was = Tags(before.Input)
		}
		if after != nil {
			now = Tags(after.Input)
		}
		for _, t := range was {
			if !slices.Contains(now, t) {
				if err := out.Sub(t).Delete(id); err != nil {
					return err
				}
			}
		}
		for _, t := range now {
			if slices.Contains(was, t) && before.Date == after.Date {
				continue // stored as it is
			}
			date = append(append(append(date[:0], '"'), after.Date...), '"') // dates need no escaping
			if err := out.Sub(t).putJSON(id, date); err != nil {
				return err
			}
		}
		return nil
	})
}
