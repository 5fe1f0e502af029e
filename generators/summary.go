package generators

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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

// month is a month's value during a run, the instants of its first and
// last dates, and whether they must be looked up again (their holder
// left).
type month struct {
	v               MonthSummary
	first, last     moment
	refirst, relast bool
	loaded          bool // read from the store (or new): part of the run
	// counts are ByType's during the run, by the run's number for each
	// type (types): an array's increment, not a map's, for each event;
	// the first few in the month itself, so that counting an event
	// touches no other memory.
	counts [inlineTypes]int32
	more   []int32 // type numbers inlineTypes and up
}

// inlineTypes is how many types a month counts in itself: the
// application's logs have about a dozen.
const inlineTypes = 16

// yearMonths are a year's months, January first.
type yearMonths [12]month

// monthTable holds a run's months by year and month: a rebuild of a log
// whose events span centuries finds each event's month by an index and a
// pointer. (Events come in id order, not in time order: with a map of
// months, its lookup and the months' scattered counts were a third of
// summary's rebuild beside a load.)
type monthTable struct {
	first int // the year of years[0]
	years []*yearMonths
}

// at returns the month of date (checked: it begins YYYY-MM).
func (t *monthTable) at(date string) *month {
	year, mon := yearMonth(date)
	if len(t.years) == 0 {
		t.first = year
	}
	if year < t.first {
		// Room for as many years again before, so that a run meeting
		// ever earlier years copies the table a logarithmic number of
		// times.
		n := t.first - year + len(t.years)
		t.years = append(make([]*yearMonths, n, n+len(t.years)), t.years...)
		t.first -= n
	}
	i := year - t.first
	if i >= len(t.years) {
		t.years = append(t.years, make([]*yearMonths, i+1-len(t.years))...)
	}
	y := t.years[i]
	if y == nil {
		y = new(yearMonths)
		t.years[i] = y
	}
	return &y[mon]
}

// each calls fn with every month of the run, in order, and its name.
func (t *monthTable) each(fn func(name string, ms *month) error) error {
	for i, y := range t.years {
		if y == nil {
			continue
		}
		for mon := range y {
			if ms := &y[mon]; ms.loaded {
				if err := fn(fmt.Sprintf("%04d-%02d", t.first+i, mon+1), ms); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func (summary) Update(ctx context.Context, in *Input, out *Scope) error {
	var months monthTable
	idx := out.State()
	types := &typeNumbers{}
	// Events come in id order, and ids may follow time: the month of the
	// event before is the likeliest.
	var lastName string
	var last *month
	load := func(m string) (*month, error) {
		if m == lastName {
			return last, nil
		}
		ms := months.at(m)
		if !ms.loaded {
			ms.loaded = true
			// A rebuild's scope starts empty, and summary puts its months
			// only at the end: there is nothing to read. (A Get would also
			// make a streamed scope keep a filter of every key it spills.)
			if !in.Rebuild {
				if _, err := out.Get(m, &ms.v); err != nil {
					return nil, err
				}
			}
			for typ, n := range ms.v.ByType {
				ms.count(types.of(typ), n)
			}
			ms.first, ms.last = instant(ms.v.First), instant(ms.v.Last)
		}
		lastName, last = m, ms
		return ms, nil
	}
	var key, date []byte // scratch
	err := in.FieldChanges(func(id string, before, after *Fields) error {
		if before != nil {
			ms, err := load(before.Date[:7])
			if err != nil {
				return err
			}
			key = appendIndexKey(key[:0], before.Date, instant(before.Date), id)
			if err := idx.Delete(string(key)); err != nil {
				return err
			}
			ms.take(before, types.of(before.Type))
		}
		if after != nil {
			ms, err := load(after.Date[:7])
			if err != nil {
				return err
			}
			t := instant(after.Date)
			key = appendIndexKey(key[:0], after.Date, t, id)
			date = append(append(append(date[:0], '"'), after.Date...), '"') // dates need no escaping
			if err := putJSON(idx, key, date); err != nil {
				return err
			}
			ms.add(after, types.of(after.Type), t)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return months.each(func(m string, ms *month) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		ms.v.ByType = map[string]int{}
		ms.eachCount(func(t, n int) {
			if n > 0 {
				ms.v.ByType[types.names[t]] = n
			}
		})
		if ms.v.Count <= 0 {
			return out.Delete(m)
		}
		var err error
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
		return out.Put(m, ms.v)
	})
}

// yearMonth returns the year and the month (0 for January) of a
// YYYY-MM (the dates were checked: four digits, '-', two from 01 to 12).
func yearMonth(m string) (year, mon int) {
	for _, c := range []byte(m[:4]) {
		year = year*10 + int(c-'0')
	}
	return year, int(m[5]-'0')*10 + int(m[6]-'0') - 1
}

// typeNumbers numbers the types a run meets.
type typeNumbers struct {
	index map[string]int
	names []string
}

func (t *typeNumbers) of(typ string) int {
	n, ok := t.index[typ]
	if !ok {
		if t.index == nil {
			t.index = map[string]int{}
		}
		n = len(t.names)
		t.index[typ] = n
		t.names = append(t.names, typ)
	}
	return n
}

// count adds d events of type number t.
func (ms *month) count(t, d int) {
	if t < inlineTypes {
		ms.counts[t] += int32(d)
		return
	}
	t -= inlineTypes
	for len(ms.more) <= t {
		ms.more = append(ms.more, 0)
	}
	ms.more[t] += int32(d)
}

// eachCount calls fn with each type number the month counted and its
// count.
func (ms *month) eachCount(fn func(t, n int)) {
	for t, n := range ms.counts {
		fn(t, int(n))
	}
	for t, n := range ms.more {
		fn(inlineTypes+t, int(n))
	}
}

// take takes an event (of type number typ) back out of its month.
func (ms *month) take(f *Fields, typ int) {
	v := &ms.v
	v.Count--
	ms.count(typ, -1)
	if v.Count <= 0 {
		*ms = month{counts: ms.counts, more: ms.more, loaded: true}
		return
	}
	// Another event may hold the same date: the index says.
	ms.refirst = ms.refirst || f.Date == v.First
	ms.relast = ms.relast || f.Date == v.Last
}

// add counts an event (of type number typ, at instant t) in its month.
func (ms *month) add(f *Fields, typ int, t moment) {
	v := &ms.v
	v.Count++
	ms.count(typ, +1)
	if v.Count == 1 {
		v.First, v.Last, ms.first, ms.last = f.Date, f.Date, t, t
		return
	}
	// A first or last to be looked up again is looked up with this event
	// in the index already.
	if !ms.refirst && earlier(t, f.Date, ms.first, v.First) {
		v.First, ms.first = f.Date, t
	}
	if !ms.relast && earlier(ms.last, v.Last, t, f.Date) {
		v.Last, ms.last = f.Date, t
	}
}

// appendIndexKey appends an event's key in the ordered index, relative
// to the state: {YYYY-MM}/{instant}/{id}, t being the date's instant.
func appendIndexKey(b []byte, date string, t moment, id string) []byte {
	b = append(append(b, date[:7]...), '/')
	b = appendInstant(b, t)
	return append(append(b, '/'), id...)
}

// instantDigits is the length of an instant in the index: 16 hex digits
// of seconds (offset by 2^63, so that the order of the digits is the
// order of the instants) and 8 of nanoseconds.
const instantDigits = 24

func appendInstant(b []byte, t moment) []byte {
	b = appendHex(b, uint64(t.sec)^1<<63, 16)
	return appendHex(b, uint64(t.nsec), 8)
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

// moment is an instant: seconds since the Unix epoch and nanoseconds.
type moment struct {
	sec  int64
	nsec int32
}

func (a moment) before(b moment) bool {
	return a.sec < b.sec || (a.sec == b.sec && a.nsec < b.nsec)
}

// earlier orders dates by instant, and equal instants by their spelling,
// so that first and last do not depend on the order events are seen.
func earlier(a moment, as string, b moment, bs string) bool {
	if a != b {
		return a.before(b)
	}
	return as < bs
}

// instant parses any date form the log accepts (see eventlog.ValidDate):
// YYYY-MM-DDTHH:MM:SS, optional fractional seconds, and Z, ±HHMM or
// ±HH:MM; the zero moment for anything else. By hand, as a rebuild parses
// a million of them: time.Parse tried two layouts for each, and
// strconv and time.Date were a twentieth of a rebuild's instructions.
func instant(s string) moment {
	if len(s) < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' {
		return moment{}
	}
	ok := true
	num := func(i, n int) int {
		v := 0
		for _, c := range []byte(s[i : i+n]) {
			if c < '0' || c > '9' {
				ok = false
			}
			v = v*10 + int(c-'0')
		}
		return v
	}
	year, mon, day, hh, mm, ss := num(0, 4), num(5, 2), num(8, 2), num(11, 2), num(14, 2), num(17, 2)
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
		return moment{}
	}
	if !ok || mon < 1 || mon > 12 {
		return moment{}
	}
	if s[i] == '-' {
		off = -off
	}
	sec := daysFromCivil(year, mon, day)*86400 + int64(hh*3600+mm*60+ss-off)
	return moment{sec: sec, nsec: int32(nsec)}
}

// daysFromCivil is the number of days from 1970-01-01 to a date of the
// proleptic Gregorian calendar.
func daysFromCivil(y, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	if y < 0 && y%400 != 0 {
		era--
	}
	yoe := y - era*400                     // [0, 399]
	doy := (153*((m+9)%12)+2)/5 + d - 1    // [0, 365], from March 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy // [0, 146096]
	return int64(era)*146097 + int64(doe) - 719468
}
