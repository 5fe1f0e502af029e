package generators

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"
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
// A change adjusts the months it touches from its before-image and its
// new version: count and byType by one, first and last by comparison. Only
// when the event that held a month's first or last date leaves it (deleted,
// or moved to another date) are they looked up again, in an ordered index
// of the month's events kept in its private state:
//
//	mirrord:state:summary:{YYYY-MM}/{instant}/{id} = "<date>"
//
// where instant is 24 hex digits that sort as the event's instant: the
// first key of a month holds its first date, and the last is found by a
// few dozen seeks. So a change costs O(log n), however large its month.
type summary struct{}

// Version: 2 since the index is ordered by instant and the months are
// adjusted, not recomputed (1: the index of every event and month lived in
// the private state; 0: among the values, under '.').
func (summary) Version() int { return 2 }

// MonthSummary is the value of generated:summary:YYYY-MM.
type MonthSummary struct {
	Count  int            `json:"count"`
	ByType map[string]int `json:"byType"`
	First  string         `json:"first"`
	Last   string         `json:"last"`
}

// month is a month's value during a run, and whether its first or last
// date must be looked up again (their holder left).
type month struct {
	v               MonthSummary
	refirst, relast bool
}

func (summary) Update(ctx context.Context, in *Input, out *Scope) error {
	months := map[string]*month{}
	idx := out.State()
	load := func(m string) (*month, error) {
		if ms, ok := months[m]; ok {
			return ms, nil
		}
		ms := &month{}
		if _, err := out.Get(m, &ms.v); err != nil {
			return nil, err
		}
		if ms.v.ByType == nil {
			ms.v.ByType = map[string]int{}
		}
		months[m] = ms
		return ms, nil
	}
	err := in.FieldChanges(func(id string, before, after *Fields) error {
		if before != nil {
			ms, err := load(before.Date[:7])
			if err != nil {
				return err
			}
			if err := idx.Delete(indexKey(before.Date, id)); err != nil {
				return err
			}
			ms.take(before)
		}
		if after != nil {
			ms, err := load(after.Date[:7])
			if err != nil {
				return err
			}
			if err := idx.Put(indexKey(after.Date, id), after.Date); err != nil {
				return err
			}
			ms.add(after)
		}
		return nil
	})
	if err != nil {
		return err
	}
	keys := make([]string, 0, len(months))
	for m := range months {
		keys = append(keys, m)
	}
	slices.Sort(keys)
	for _, m := range keys {
		if err := ctx.Err(); err != nil {
			return err
		}
		ms := months[m]
		if ms.v.Count <= 0 {
			if err := out.Delete(m); err != nil {
				return err
			}
			continue
		}
		if ms.refirst {
			if ms.v.First, err = firstOf(idx, m); err != nil {
				return err
			}
		}
		if ms.relast {
			if ms.v.Last, err = lastOf(idx, m); err != nil {
				return err
			}
		}
		if err := out.Put(m, ms.v); err != nil {
			return err
		}
	}
	return nil
}

// take takes an event back out of its month.
func (ms *month) take(f *Fields) {
	v := &ms.v
	v.Count--
	if v.ByType[f.Type]--; v.ByType[f.Type] <= 0 {
		delete(v.ByType, f.Type)
	}
	if v.Count <= 0 {
		*ms = month{v: MonthSummary{ByType: v.ByType}}
		return
	}
	// Another event may hold the same date: the index says.
	ms.refirst = ms.refirst || f.Date == v.First
	ms.relast = ms.relast || f.Date == v.Last
}

// add counts an event in its month.
func (ms *month) add(f *Fields) {
	v := &ms.v
	v.Count++
	v.ByType[f.Type]++
	t := instant(f.Date)
	if v.Count == 1 {
		v.First, v.Last = f.Date, f.Date
		return
	}
	// A first or last to be looked up again is looked up with this event
	// in the index already.
	if !ms.refirst && earlier(t, f.Date, instant(v.First), v.First) {
		v.First = f.Date
	}
	if !ms.relast && earlier(instant(v.Last), v.Last, t, f.Date) {
		v.Last = f.Date
	}
}

// indexKey is an event's key in the ordered index, relative to the
// state: {YYYY-MM}/{instant}/{id}.
func indexKey(date, id string) string {
	b := make([]byte, 0, 8+instantDigits+1+len(id))
	b = append(append(b, date[:7]...), '/')
	b = appendInstant(b, instant(date))
	return string(append(append(b, '/'), id...))
}

// instantDigits is the length of an instant in the index: 16 hex digits
// of seconds (offset by 2^63, so that the order of the digits is the
// order of the instants) and 8 of nanoseconds.
const instantDigits = 24

func appendInstant(b []byte, t time.Time) []byte {
	b = appendHex(b, uint64(t.Unix())^1<<63, 16)
	return appendHex(b, uint64(t.Nanosecond()), 8)
}

func appendHex(b []byte, v uint64, digits int) []byte {
	const hex = "0123456789abcdef"
	for i := digits - 1; i >= 0; i-- {
		b = append(b, hex[v>>(4*i)&0xf])
	}
	return b
}

// errFound stops a Scan that has found what it looked for.
var errFound = errors.New("found")

// firstOf returns the first date of month m from the index: of the
// events at its earliest instant, the first spelling (see earlier).
func firstOf(idx *Scope, m string) (string, error) {
	prefix := m + "/"
	var first, at string
	err := idx.Scan(prefix, func(key string, raw json.RawMessage) error {
		inst := key[len(prefix) : len(prefix)+instantDigits]
		if at != "" && inst != at {
			return errFound
		}
		date, err := indexDate(key, raw)
		if err != nil {
			return err
		}
		if at = inst; first == "" || date < first {
			first = date
		}
		return nil
	})
	if err != nil && !errors.Is(err, errFound) {
		return "", err
	}
	return first, nil
}

// lastOf returns the last date of month m from the index. Scans run
// forwards, so the latest instant is found digit by digit: the largest
// digit d at each position such that some key sorts at or after the
// digits so far and d, by binary search (4 seeks a digit); then, of the
// events at that instant, the last spelling.
func lastOf(idx *Scope, m string) (string, error) {
	prefix := m + "/"
	exists := func(from string) (bool, error) {
		found := false
		err := idx.ScanFrom(prefix, prefix+from, func(string, json.RawMessage) error {
			found = true
			return errFound
		})
		if errors.Is(err, errFound) {
			err = nil
		}
		return found, err
	}
	const hex = "0123456789abcdef"
	var at []byte
	for range instantDigits {
		lo, hi := 0, 15
		for lo < hi {
			mid := (lo + hi + 1) / 2
			ok, err := exists(string(at) + hex[mid:mid+1])
			if err != nil {
				return "", err
			}
			if ok {
				lo = mid
			} else {
				hi = mid - 1
			}
		}
		at = append(at, hex[lo])
	}
	var last string
	err := idx.ScanFrom(prefix, prefix+string(at), func(key string, raw json.RawMessage) error {
		if key[len(prefix):len(prefix)+instantDigits] != string(at) {
			return errFound
		}
		date, err := indexDate(key, raw)
		if err != nil {
			return err
		}
		if date > last {
			last = date
		}
		return nil
	})
	if err != nil && !errors.Is(err, errFound) {
		return "", err
	}
	return last, nil
}

// indexDate decodes the date an index entry holds.
func indexDate(key string, raw json.RawMessage) (string, error) {
	var date string
	if err := json.Unmarshal(raw, &date); err != nil || len(date) < 7 {
		return "", fmt.Errorf("summary: index entry %q holds %s, not a date", key, raw)
	}
	return date, nil
}

// earlier orders dates by instant, and equal instants by their spelling,
// so that first and last do not depend on the order events are seen.
func earlier(a time.Time, as string, b time.Time, bs string) bool {
	if !a.Equal(b) {
		return a.Before(b)
	}
	return as < bs
}

// instant parses any date form the log accepts (see eventlog.ValidDate):
// YYYY-MM-DDTHH:MM:SS, optional fractional seconds, and Z, ±HHMM or
// ±HH:MM. By hand, as a rebuild parses a million of them: time.Parse
// tried two layouts for each.
func instant(s string) time.Time {
	num := func(i, n int) int {
		v, err := strconv.Atoi(s[i : i+n])
		if err != nil {
			return -1
		}
		return v
	}
	if len(s) < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' {
		return time.Time{}
	}
	year, mon, day, hh, mm, ss := num(0, 4), num(5, 2), num(8, 2), num(11, 2), num(14, 2), num(17, 2)
	if year < 0 || mon < 1 || day < 0 || hh < 0 || mm < 0 || ss < 0 {
		return time.Time{}
	}
	i, nsec := 19, 0
	if s[i] == '.' {
		scale := 100_000_000
		for i++; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
			nsec += int(s[i]-'0') * scale
			scale /= 10
		}
	}
	off := 0
	switch rest := s[i:]; {
	case rest == "Z":
	case len(rest) == 5 && (rest[0] == '+' || rest[0] == '-'):
		off = num(i+1, 2)*3600 + num(i+3, 2)*60
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
		off = num(i+1, 2)*3600 + num(i+4, 2)*60
	default:
		return time.Time{}
	}
	if len(s[i:]) > 1 && s[i] == '-' {
		off = -off
	}
	return time.Date(year, time.Month(mon), day, hh, mm, ss, nsec, time.UTC).Add(-time.Duration(off) * time.Second)
}
