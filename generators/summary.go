package generators

import (
	"context"
	"encoding/json"
	"sort"
	"time"

	"github.com/mirrord/mirrord/eventlog"
)

func init() { Register("summary", func() Generator { return summary{} }) }

// summary keeps one value per month of events:
//
//	generated:summary:YYYY-MM = {"count": n, "byType": {"food": 3, ...},
//	                             "first": "<date>", "last": "<date>"}
//
// The month is the YYYY-MM of the event's own date string (its local
// date); first and last are the dates of the earliest and the latest event
// of the month (by instant), exactly as written in the log. A month with no
// events has no key.
//
// To stay incremental it keeps an index in its private state (Scope.State,
// never among its values): event:{id} records what it counted for each
// event, and month:{YYYY-MM}:{id} lists a month's events, so a change
// recomputes only the months it touches, from their own entries.
type summary struct{}

// Version: 1 since the index lives in the private state; at version 0 it
// was kept among the values, under '.'.
func (summary) Version() int { return 1 }

// MonthSummary is the value of generated:summary:YYYY-MM.
type MonthSummary struct {
	Count  int            `json:"count"`
	ByType map[string]int `json:"byType"`
	First  string         `json:"first"`
	Last   string         `json:"last"`
}

type summaryEntry struct {
	Month string `json:"m"`
	Type  string `json:"t"`
	Date  string `json:"d"`
}

func (summary) Update(ctx context.Context, in *Input, out *Scope) error {
	touched := map[string]bool{}
	st := out.State()
	err := in.Events(func(id string, ev *eventlog.Event) error {
		var old summaryEntry
		found, err := st.Get("event:"+id, &old)
		if err != nil {
			return err
		}
		if found {
			if err := st.Delete("month:" + old.Month + ":" + id); err != nil {
				return err
			}
			touched[old.Month] = true
		}
		if ev == nil {
			if found {
				return st.Delete("event:" + id)
			}
			return nil
		}
		e := summaryEntry{Month: ev.Date[:7], Type: ev.Type, Date: ev.Date}
		if err := st.Put("event:"+id, e); err != nil {
			return err
		}
		touched[e.Month] = true
		return st.Put("month:"+e.Month+":"+id, e)
	})
	if err != nil {
		return err
	}
	months := make([]string, 0, len(touched))
	for m := range touched {
		months = append(months, m)
	}
	sort.Strings(months)
	for _, m := range months {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := recomputeMonth(out, m); err != nil {
			return err
		}
	}
	return nil
}

// recomputeMonth rebuilds one month's value from the month's index
// entries.
func recomputeMonth(out *Scope, month string) error {
	v := MonthSummary{ByType: map[string]int{}}
	var first, last time.Time
	err := out.State().Scan("month:"+month+":", func(_ string, raw json.RawMessage) error {
		var e summaryEntry
		if err := json.Unmarshal(raw, &e); err != nil {
			return err
		}
		v.Count++
		v.ByType[e.Type]++
		t := instant(e.Date)
		if v.First == "" || earlier(t, e.Date, first, v.First) {
			first, v.First = t, e.Date
		}
		if v.Last == "" || earlier(last, v.Last, t, e.Date) {
			last, v.Last = t, e.Date
		}
		return nil
	})
	if err != nil {
		return err
	}
	if v.Count == 0 {
		return out.Delete(month)
	}
	return out.Put(month, v)
}

// earlier orders dates by instant, and equal instants by their spelling,
// so that first and last do not depend on the order events are seen.
func earlier(a time.Time, as string, b time.Time, bs string) bool {
	if !a.Equal(b) {
		return a.Before(b)
	}
	return as < bs
}

// instant parses any date form the log accepts.
func instant(s string) time.Time {
	for _, layout := range []string{"2006-01-02T15:04:05Z0700", "2006-01-02T15:04:05Z07:00"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t
		}
	}
	return time.Time{}
}
