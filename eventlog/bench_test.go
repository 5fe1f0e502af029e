package eventlog

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
)

// benchWords mixes scripts, so descriptions are multi-byte UTF-8 as in the
// application's logs (and hold the characters the writer must not escape).
var benchWords = []string{
	"pizza", "with", "friends", "walked", "the", "dog", "in", "park", "meeting", "about", "budget",
	"café", "ñandú", "crème", "brûlée", "Київ", "вечеря", "друзі", "東京", "ラーメン", "食べた",
	"Ελλάδα", "θάλασσα", "שלום", "مرحبا", "🍕", "👩‍👩‍👧", "☕", "<b>", "&", "\"quoted\"", "back\\slash",
}

var (
	benchLogOnce sync.Once
	benchLog     []byte
	benchEvents  int
)

// syntheticLog is a log of 10,000 events of about 680 bytes, as the
// application writes them, from a fixed seed.
func syntheticLog(tb testing.TB) []byte {
	benchLogOnce.Do(func() {
		r := rand.New(rand.NewPCG(1, 2))
		text := func(minWords, maxWords int) string {
			n := minWords + r.IntN(maxWords-minWords+1)
			ws := make([]string, n)
			for i := range ws {
				ws[i] = benchWords[r.IntN(len(benchWords))]
			}
			return strings.Join(ws, " ")
		}
		const alnum = "abcdefghijklmnopqrstuvwxyz0123456789"
		types := []string{"food", "diary", "call", "walk", "meeting", "sleep"}
		modNames := []string{"location", "with", "duration", "mood", "cost"}
		var buf bytes.Buffer
		enc := NewEncoder(&buf)
		for i := 0; i < 10000; i++ {
			id := make([]byte, 16)
			for j := range id {
				id[j] = alnum[r.IntN(len(alnum))]
			}
			typ := types[r.IntN(len(types))]
			desc := text(7, 20)
			e := &Event{
				ID:          string(id),
				Date:        fmt.Sprintf("2025-%02d-%02dT%02d:%02d:00+0200", 1+r.IntN(12), 1+r.IntN(28), r.IntN(24), r.IntN(60)),
				Type:        typ,
				Description: desc,
				Creator:     Creator{Name: "Volodyslav", UUID: "5c8e1f2a-3b4d-4e6f-8a9b-0c1d2e3f4a5b", Version: "1.2.3"},
			}
			var tags []string
			for _, k := range r.Perm(len(modNames))[:r.IntN(4)] {
				v := text(1, 3)
				e.Modifiers = append(e.Modifiers, Modifier{Name: modNames[k], Value: v})
				tags = append(tags, "["+modNames[k]+" "+v+"]")
			}
			e.Original = strings.TrimSpace(typ + " " + strings.Join(tags, " ") + " " + desc)
			e.Input = typ + " " + desc
			if err := enc.Encode(e); err != nil {
				tb.Fatal(err)
			}
		}
		benchLog, benchEvents = buf.Bytes(), 10000
	})
	return benchLog
}

func BenchmarkDecoder(b *testing.B) {
	log := syntheticLog(b)
	for _, fp := range []bool{false, true} {
		name := "plain"
		if fp {
			name = "fingerprint"
		}
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(log)))
			b.ReportAllocs()
			for b.Loop() {
				opts := &Options{}
				if fp {
					opts.Fingerprint = NewFingerprint()
				}
				d := NewDecoder(bytes.NewReader(log), opts)
				n := 0
				for {
					e, err := d.Next()
					if err == io.EOF {
						break
					}
					if err != nil || e.Kind != KindEvent {
						b.Fatalf("%v %v", e, err)
					}
					n++
				}
				if n != benchEvents {
					b.Fatalf("%d events", n)
				}
			}
			b.ReportMetric(float64(len(log))/float64(benchEvents), "B/event")
		})
	}
}

// BenchmarkParseEvent: ParseEvent of stored (compacted) events, what each
// generator does for every event of a rebuild.
func BenchmarkParseEvent(b *testing.B) {
	var stored [][]byte
	size := 0
	for _, e := range decodeBytes(b, syntheticLog(b), nil) {
		stored = append(stored, []byte(e.Raw))
		size += len(e.Raw)
	}
	b.SetBytes(int64(size / len(stored)))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := ParseEvent(stored[i%len(stored)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// TestSyntheticLog keeps the benchmark's input honest: 10,000 valid
// events of about 680 bytes with 0 to 3 modifiers and non-ASCII text.
func TestSyntheticLog(t *testing.T) {
	log := syntheticLog(t)
	if avg := len(log) / benchEvents; avg < 600 || avg > 760 {
		t.Errorf("%d bytes per event on average", avg)
	}
	counts := map[int]int{}
	d := NewDecoder(bytes.NewReader(log), nil)
	n := 0
	for {
		e, err := d.Next()
		if err != nil {
			break
		}
		if e.Kind != KindEvent {
			t.Fatalf("%v", snapOf(e))
		}
		counts[len(e.Modifiers)]++
		n++
	}
	if n != 10000 || counts[0] == 0 || counts[3] == 0 || len(counts) != 4 {
		t.Errorf("%d events, modifier counts %v", n, counts)
	}
	if bytes.IndexFunc(log, func(r rune) bool { return r > 0x7f }) < 0 {
		t.Error("no non-ASCII text")
	}
}
