package eventlog

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"
	"testing"
)

// manyModifiers is a compacted event (as the mirror stores it) with n
// modifiers: about 12 bytes each, so that a 16 MiB value holds 1.3
// million. When repeat > 1, every repeat-th modifier repeats the name of
// the one repeat-1 places before it (one that is not a repeat), with
// another value: the event has n-(n-1)/repeat distinct names.
func manyModifiers(n, repeat int) []byte {
	b := []byte(`{"id":"many","date":"2025-05-22T15:30:00Z","original":"","input":"","modifiers":{`)
	for i := range n {
		if i > 0 {
			b = append(b, ',')
		}
		name, value := i, byte('1')
		if repeat > 1 && i >= repeat && i%repeat == 0 {
			name, value = i-repeat+1, '2'
		}
		b = append(b, `"m`...)
		b = strconv.AppendInt(b, int64(name), 36)
		b = append(b, '"', ':', '"', value, '"')
	}
	return append(b, `},"type":"","description":"","creator":{"name":"n","uuid":"u","version":"v"}}`...)
}

var manyModifierCounts = []int{1_000, 10_000, 100_000, 1_000_000}

// BenchmarkManyModifiers: the cost of one event with n modifiers, per
// modifier, must not grow with n (it did: a repeated name was looked for
// among all the names before it).
func BenchmarkManyModifiers(b *testing.B) {
	for _, n := range manyModifierCounts {
		// The decoder reads a log of copies of the event, a million
		// modifiers in all, so that its buffers are made once, as in a
		// real log. (Inputs are made in the sub-benchmark that uses
		// them, untimed, so that running one does not make all.)
		copies := max(1, 1_000_000/n)
		b.Run(fmt.Sprintf("decode/n=%d", n), func(b *testing.B) {
			log := bytes.Repeat(append(manyModifiers(n, 7), '\n'), copies)
			b.SetBytes(int64(len(log)))
			for b.Loop() {
				d := NewDecoder(bytes.NewReader(log), nil)
				for range copies {
					e, err := d.Next()
					if err != nil || e.Kind != KindEvent || len(e.Modifiers) != n-(n-1)/7 {
						b.Fatalf("%.200v %v", e, err)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n*copies), "ns/modifier")
		})
		b.Run(fmt.Sprintf("parse/n=%d", n), func(b *testing.B) {
			in := manyModifiers(n, 7)
			b.SetBytes(int64(len(in)))
			for b.Loop() {
				if _, err := ParseEvent(in); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/modifier")
		})
		b.Run(fmt.Sprintf("write/n=%d", n), func(b *testing.B) {
			ev, err := ParseEvent(manyModifiers(n, 7))
			if err != nil {
				b.Fatal(err)
			}
			var dst []byte
			for b.Loop() {
				dst = ev.AppendJS(dst[:0])
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/modifier")
		})
	}
}

// manyModifiersWant is what the event of manyModifiers(n, repeat) holds:
// each name once, at its first place, with its last value.
func manyModifiersWant(n, repeat int) []modSnap {
	var want []modSnap
	at := make([]int32, n) // name number -> position in want
	for i := range n {
		if repeat > 1 && i >= repeat && i%repeat == 0 {
			want[at[i-repeat+1]].Value = `"2"`
			continue
		}
		at[i] = int32(len(want))
		want = append(want, modSnap{"m" + strconv.FormatInt(int64(i), 36), `"1"`})
	}
	return want
}

// TestManyModifiers: an event with many modifiers, some repeated, decodes
// (through the decoder, ParseEvent and back through the writer) to each
// name once at its first place with its last value; below and above the
// count where repeated names are found by hashing, as the reference model
// says, and at 1.2 million modifiers in a 16 MiB value.
func TestManyModifiers(t *testing.T) {
	type tc struct{ n, repeat int }
	var cases []tc
	for _, n := range []int{1, 2, linearMax - 1, linearMax, linearMax + 1, 100, 1000} {
		for _, r := range []int{0, 2, 7} {
			cases = append(cases, tc{n, r})
		}
	}
	// 1.2 million in 16 MiB; under the race detector (ten times slower)
	// 200,000, still far past where a quadratic search would show.
	cases = append(cases, tc{map[bool]int{false: 1_200_000, true: 200_000}[raceDetector], 7})
	for _, c := range cases {
		in := manyModifiers(c.n, c.repeat)
		want := manyModifiersWant(c.n, c.repeat)
		name := fmt.Sprintf("n=%d,repeat=%d", c.n, c.repeat)
		big := c.n > 1000
		if big && len(in) > DefaultMaxValueSize {
			t.Fatalf("%s: the event is %d bytes, more than the default bound", name, len(in))
		}
		if !big {
			// The reference model (quadratic: small inputs only), and the
			// writer's output read back.
			model := refDecode(in, 0)
			if len(model) != 1 || model[0].Kind != KindEvent || fmt.Sprint(model[0].Mods) != fmt.Sprint(want) {
				t.Fatalf("%s: the reference model says %+v", name, model)
			}
		}
		d := NewDecoder(bytes.NewReader(in), nil)
		e, err := d.Next()
		if err != nil || e.Kind != KindEvent {
			t.Fatalf("%s: the decoder gives %.200v, %v", name, e, err)
		}
		if d := diffMods(e.Modifiers, want, func(m RawModifier) modSnap { return modSnap{string(m.Name), string(m.Value)} }); d != "" {
			t.Fatalf("%s: the decoder's modifiers: %s", name, d)
		}
		ev, err := ParseEvent(in)
		if err != nil {
			t.Fatalf("%s: ParseEvent: %v", name, err)
		}
		quoted := func(m Modifier) modSnap { return modSnap{m.Name, strconv.Quote(m.Value)} }
		if d := diffMods(ev.Modifiers, want, quoted); d != "" {
			t.Fatalf("%s: ParseEvent's modifiers: %s", name, d)
		}
		if v, ok := ev.Modifier(want[len(want)-1].Name); !ok || strconv.Quote(v) != want[len(want)-1].Value {
			t.Fatalf("%s: Modifier(%q) = %q, %v", name, want[len(want)-1].Name, v, ok)
		}
		if big {
			continue
		}
		// The writer keeps each name once too, even when the event's
		// list repeats one.
		ev.Modifiers = append(ev.Modifiers, ev.Modifiers...)
		ev.Modifiers[len(ev.Modifiers)-1].Value = "last"
		want[len(want)-1].Value = `"last"`
		written := decodeBytes(t, ev.AppendJS(nil), nil)
		if len(written) != 1 || !slices.Equal(written[0].Mods, want) {
			t.Fatalf("%s: written and decoded again: %v", name, written)
		}
	}
}

// diffMods compares a list of modifiers with want, converted by snap.
func diffMods[M any](got []M, want []modSnap, snap func(M) modSnap) string {
	if len(got) != len(want) {
		return fmt.Sprintf("%d modifiers, want %d", len(got), len(want))
	}
	for i := range got {
		if s := snap(got[i]); s != want[i] {
			return fmt.Sprintf("modifier %d is %v, want %v", i, s, want[i])
		}
	}
	return ""
}
