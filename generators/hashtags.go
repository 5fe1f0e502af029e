package generators

import (
	"context"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/mirrord/mirrord/eventlog"
)

func init() { Register("hashtags", func() Generator { return hashtags{} }) }

// hashtags indexes the #tags written in events' input:
//
//	generated:hashtags:{tag} = ["id1", "id2", ...] (sorted event ids)
//
// A tag is '#' followed by letters, digits, '_' or '-' (any script:
// #музика is a tag), compared case-insensitively and stored in lower case.
// A tag no event carries any more has no key. Like summary, it keeps an
// index under '.': .event:{id} = the tags it counted for that event.
type hashtags struct{}

var tagPattern = regexp.MustCompile(`#([\p{L}\p{N}_-]+)`)

// Tags returns the distinct hashtags of a text, lower-cased and sorted.
func Tags(text string) []string {
	var tags []string
	for _, m := range tagPattern.FindAllStringSubmatch(text, -1) {
		t := strings.ToLower(m[1])
		if !slices.Contains(tags, t) {
			tags = append(tags, t)
		}
	}
	sort.Strings(tags)
	return tags
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
	err := in.Events(func(id string, ev *eventlog.Event) error {
		var old []string
		if _, err := out.Get(".event:"+id, &old); err != nil {
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
			return out.Delete(".event:" + id)
		}
		return out.Put(".event:"+id, now)
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
