package eventlog

import (
	"bytes"
	"fmt"

	"github.com/mirrord/mirrord/internal/jsonx"
)

// ValidDate reports why s is not an ISO-8601 date-time of the forms the
// contract accepts, or "" when it is one:
//
//	2025-05-22T15:30:00+0200    (what the application writes)
//	2025-05-22T15:30:00+02:00
//	2025-05-22T15:30:00Z
//	2025-05-22T15:30:00.123+0200  (fractional seconds, any of the zones)
//
// The calendar is checked: 2025-02-29 and 24:00:00 are rejected.
func ValidDate(s string) string {
	return checkDateText([]byte(s))
}

// checkDate checks a date given as its JSON string token.
func checkDate(tok []byte) string {
	s := tok[1 : len(tok)-1]
	if bytes.IndexByte(s, '\\') >= 0 {
		d, err := jsonx.AppendUnquote(nil, tok)
		if err != nil {
			return err.Error()
		}
		s = d
	}
	return checkDateText(s)
}

func checkDateText(s []byte) string {
	bad := func(why string) string {
		// A copy, so that s does not escape: the check of a valid date
		// (every event's, in the generators' rebuild) allocates nothing.
		return fmt.Sprintf("%q is not an ISO-8601 date-time (%s)", string(s), why)
	}
	num := func(i, n int) (int, bool) {
		if i+n > len(s) {
			return 0, false
		}
		v := 0
		for _, c := range s[i : i+n] {
			if c < '0' || c > '9' {
				return 0, false
			}
			v = v*10 + int(c-'0')
		}
		return v, true
	}
	sep := func(i int, c byte) bool { return i < len(s) && s[i] == c }

	year, ok1 := num(0, 4)
	month, ok2 := num(5, 2)
	day, ok3 := num(8, 2)
	if !ok1 || !ok2 || !ok3 || !sep(4, '-') || !sep(7, '-') {
		return bad("expected YYYY-MM-DD")
	}
	if !sep(10, 'T') {
		return bad("expected 'T' and a time after the date")
	}
	hour, ok1 := num(11, 2)
	minute, ok2 := num(14, 2)
	second, ok3 := num(17, 2)
	if !ok1 || !ok2 || !ok3 || !sep(13, ':') || !sep(16, ':') {
		return bad("expected hh:mm:ss after 'T'")
	}
	switch {
	case month < 1 || month > 12:
		return bad("month out of range")
	case day < 1 || day > daysIn(year, month):
		return bad("no such day in that month")
	case hour > 23:
		return bad("hour out of range")
	case minute > 59:
		return bad("minute out of range")
	case second > 59:
		return bad("second out of range")
	}
	i := 19
	if sep(i, '.') {
		j := i + 1
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		if j == i+1 {
			return bad("no digits after '.'")
		}
		i = j
	}
	switch {
	case sep(i, 'Z') && i+1 == len(s):
		return ""
	case sep(i, '+') || sep(i, '-'):
		zh, ok := num(i+1, 2)
		if !ok {
			return bad("expected a zone offset ±hh:mm or ±hhmm")
		}
		j := i + 3
		if sep(j, ':') {
			j++
		}
		zm, ok := num(j, 2)
		if !ok || j+2 != len(s) {
			return bad("expected a zone offset ±hh:mm or ±hhmm")
		}
		if zh > 23 || zm > 59 {
			return bad("zone offset out of range")
		}
		return ""
	}
	return bad("expected a zone: Z, ±hh:mm or ±hhmm")
}

func daysIn(year, month int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}
