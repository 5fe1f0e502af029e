package generators

import (
	"context"
	"slices"
	"sort"

	"github.com/mirrord/mirrord/eventlog"
)

func init() { Register("hashtags", func() Generator { return hashtags{} }) }

// hashtags indexes the #tags written in events' input:
//
//	generated:hashtags:{tag} = ["id1", "id2", ...] (sorted event ids)
//
// A tag is what the application that writes the log shows as one (see
// Tags). A tag no event carries any more has no key. Like summary, it
// keeps an index in its private state: event:{id} = the tags it counted
// for that event.
type hashtags struct{}

// Version: 2 since the index lives in the private state; 1 since tags
// are the application's (ASCII, hyphenated groups, case-sensitive); the
// values of version 0 were Unicode, lower-cased.
func (hashtags) Version() int { return 2 }

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
			continue
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
	// Changes are gathered per tag first, so that a tag list is read and
	// written once per run however many of its events changed.
	add := map[string]map[string]bool{}
	del := map[string]map[string]bool{}
	mark := func(m map[string]map[string]bool, tag, id string) {
		if m[tag] == nil {
			m[tag] = map[string]bool{}
		}
		m[tag][id] = true
	}
	st := out.State()
	err := in.Events(func(id string, ev *eventlog.Event) error {
		var old []string
		if _, err := st.Get("event:"+id, &old); err != nil {
			return err
		}
		var now []string
		if ev != nil {
			now = Tags(ev.Input)
		}
		for _, t := range old {
			if !slices.Contains(now, t) {
				mark(del, t, id)
			}
		}
		for _, t := range now {
			if !slices.Contains(old, t) {
				mark(add, t, id)
			}
		}
		if len(now) == 0 {
			return st.Delete("event:" + id)
		}
		return st.Put("event:"+id, now)
	})
	if err != nil {
		return err
	}
	touched := map[string]bool{}
	for t := range add {
		touched[t] = true
	}
	for t := range del {
		touched[t] = true
	}
	for tag := range touched {
		if err := ctx.Err(); err != nil {
			return err
		}
		var stored []string
		if _, err := out.Get(tag, &stored); err != nil {
			return err
		}
		set := make(map[string]bool, len(stored)+len(add[tag]))
		for _, id := range stored {
			set[id] = !del[tag][id]
		}
		for id := range add[tag] {
			set[id] = true
		}
		ids := make([]string, 0, len(set))
		for id, keep := range set {
			if keep {
				ids = append(ids, id)
			}
		}
		sort.Strings(ids)
		if len(ids) == 0 {
			err = out.Delete(tag)
		} else {
			err = out.Put(tag, ids)
		}
		if err != nil {
			return err
		}
	}
	return nil
}
