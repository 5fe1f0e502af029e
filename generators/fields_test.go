package generators

import (
	"bytes"
	"testing"
	"time"

	"github.com/mirrord/mirrord/eventlog"
	"github.com/mirrord/mirrord/internal/synth"
)

// The fields FieldChanges reads are those of the strict parser, for any
// stored event; a value that is not one is an error, never a panic. And
// those read where a load's decoder says they are (fieldsAt) are the
// same, for any event it decodes.
func FuzzFields(f *testing.F) {
	for _, ev := range synth.New(3).Events(8) {
		b, _ := ev.MarshalJSON()
		f.Add(b)
	}
	f.Add([]byte(`{"id":"a","date":"2025-01-01T00:00:00Z","input":"#x","input":"#y","type":"t","original":"o","description":"","modifiers":{},"creator":{"name":"n","uuid":"u","version":"v"}}`))
	f.Add([]byte(`{"id":"a","date":"2025-01-01T00:00:00Z","input":"\u0023esc\"aped","type":"t\u00e9","original":"o","description":"","modifiers":{"a":"b"},"creator":{"name":"n","uuid":"u","version":"v"}}`))
	f.Add([]byte(`{"id":"a","date":"2025-01-01T00:00:00Z","d\u0061te":"2025-02-01T00:00:00+0100","type":"t","typ\u0065":"u","original":"o","description":"","modifiers":{},"creator":{"name":"n","uuid":"u","version":"v"}}`))
	f.Add([]byte(` { "id" : "a" , "date" : "2025-01-01T00:00:00Z" , "type" : "t\"q" , "creator" : { "name" : "n" , "uuid" : "u" , "version" : "v" } } `))
	f.Add([]byte(`{"id": "zz-bad", "date": `))
	f.Add([]byte(`{"date":"2025-01-01T00:00:00Z","type":"t",}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		if ent, err := eventlog.NewDecoder(bytes.NewReader(raw), nil).Next(); err == nil && ent.Kind == eventlog.KindEvent {
			ev, err := eventlog.ParseEvent(ent.Raw)
			if err != nil {
				t.Fatalf("%q: the decoder's event does not parse: %v", ent.Raw, err)
			}
			// Not found there (an empty type), they are parsed instead.
			var got Fields
			if want := (Fields{Date: ev.Date, Type: ev.Type, Input: ev.Input}); fieldsAt(&got, ent.Raw, ent.Fields) && got != want {
				t.Fatalf("%q: fields at %+v are %+v, the strict parser's %+v", ent.Raw, ent.Fields, got, want)
			}
		}
		got, err := storedFields(raw)
		ev, perr := eventlog.ParseEvent(raw)
		if perr != nil {
			// Not an event: either an error, or fields read from a value
			// the lean reader trusts as the mirror wrote it.
			if ok := readFields(raw, new(Fields)); !ok && err == nil {
				t.Fatalf("%q: neither parser reads it, but no error came back", raw)
			}
			return
		}
		if err != nil {
			t.Fatalf("%q: a valid event's fields: %v", raw, err)
		}
		if want := (Fields{Date: ev.Date, Type: ev.Type, Input: ev.Input}); *got != want {
			t.Fatalf("%q: fields %+v, the strict parser's %+v", raw, *got, want)
		}
	})
}

// The events of a load are read where the decoder found their fields,
// not parsed again: every event of the synthetic logs is.
func TestFieldsAtReadsEveryLoadedEvent(t *testing.T) {
	for _, ev := range synth.New(4).Events(3000) {
		ent := decodeOne(t, ev)
		var got Fields
		if !fieldsAt(&got, ent.Raw, ent.Fields) {
			t.Fatalf("%s: not read at %+v", ent.Raw, ent.Fields)
		}
		if want := (Fields{Date: ev.Date, Type: ev.Type, Input: ev.Input}); got != want {
			t.Fatalf("%s: %+v, want %+v", ent.Raw, got, want)
		}
	}
}

// instant agrees with time.Parse on every date form the log accepts.
func TestInstant(t *testing.T) {
	for _, s := range []string{
		"2025-05-22T15:30:00+0200", "2025-05-22T15:30:00+02:00", "2025-05-22T15:30:00Z",
		"2025-05-22T15:30:00.123+0200", "2025-05-22T15:30:00.5Z", "2025-05-22T15:30:00.123456789-0930",
		"2024-02-29T23:59:59-1200", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59+1400", "1969-12-31T23:59:59.999Z",
	} {
		if eventlog.ValidDate(s) != "" {
			t.Fatalf("setup: %s is not a valid date: %s", s, eventlog.ValidDate(s))
		}
		var want time.Time
		for _, layout := range []string{"2006-01-02T15:04:05Z0700", "2006-01-02T15:04:05Z07:00"} {
			if w, err := time.Parse(layout, s); err == nil {
				want = w
			}
		}
		if got := instant(s); got != (moment{want.Unix(), int32(want.Nanosecond())}) {
			t.Errorf("instant(%s) = %v, want %v", s, got, want)
		}
	}
}

// FuzzInstant: instant agrees with time.Parse on whatever the log
// accepts as a date; the index orders by it.
func FuzzInstant(f *testing.F) {
	f.Add("2025-05-22T15:30:00.123+0200")
	f.Add("1970-01-01T00:00:00-00:30")
	f.Fuzz(func(t *testing.T, s string) {
		if eventlog.ValidDate(s) != "" {
			return
		}
		var want time.Time
		ok := false
		for _, layout := range []string{"2006-01-02T15:04:05Z0700", "2006-01-02T15:04:05Z07:00"} {
			if w, err := time.Parse(layout, s); err == nil {
				want, ok = w, true
			}
		}
		if !ok {
			t.Skipf("time.Parse does not read %q", s)
		}
		if got := instant(s); got != (moment{want.Unix(), int32(want.Nanosecond())}) {
			t.Fatalf("instant(%s) = %v, want %v", s, got, want)
		}
	})
}
