// Package synth generates realistic, reproducible events in the
// application's format: seeded, about 680 bytes each once written, with
// 0–3 modifiers, Unicode descriptions and the occasional #hashtag. Tests,
// benchmarks and the bundled example log use it, so that everything
// measures the same kind of data.
package synth

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/mirrord/mirrord/eventlog"
)

// Generator yields a deterministic sequence of events for its seed.
type Generator struct {
	r    *rand.Rand
	date time.Time
}

// New returns a generator; the same seed gives the same events.
func New(seed uint64) *Generator {
	return &Generator{
		r:    rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		date: time.Date(2024, 1, 1, 7, 0, 0, 0, time.FixedZone("", 2*3600)),
	}
}

var (
	types     = []string{"food", "diary", "call", "sleep", "exercise", "mood", "work", "reading", "music", "meeting"}
	modNames  = []string{"location", "with", "duration", "when"}
	modValues = []string{"home", "office", "45m", "1 hour ago", "Київ", "Ann \"A\"", "parents", "café Zoë", "2h", "Lviv"}
	words     = strings.Fields(`the a with after before quite long walk dinner call friends morning evening
		coffee tea book chapter notes plan garden rain sun city train bus work project review
		говорили про погоду вечеря прогулянка кава друзі робота книжка сьогодні завтра
		très bien café déjà vu über schön straße 東京 旅行 😀 🎉 ☕ — «quoted» "double" back\slash`)
	tags  = []string{"#family", "#work", "#health", "#travel", "#idea", "#музика"}
	zones = []*time.Location{time.FixedZone("", 2*3600), time.FixedZone("", 3600), time.FixedZone("", 3*3600)}
)

const idChars = "0123456789abcdefghijklmnopqrstuvwxyz"

// ID returns a fresh random id of 16 base-36 characters, as the
// application makes them.
func (g *Generator) ID() string {
	var b [16]byte
	for i := range b {
		b[i] = idChars[g.r.IntN(len(idChars))]
	}
	return string(b[:])
}

func (g *Generator) sentence(minWords, maxWords int) string {
	n := minWords + g.r.IntN(maxWords-minWords+1)
	ws := make([]string, n)
	for i := range ws {
		ws[i] = words[g.r.IntN(len(words))]
	}
	if g.r.IntN(4) == 0 {
		ws = append(ws, tags[g.r.IntN(len(tags))])
	}
	return strings.Join(ws, " ")
}

// Event returns the next event. Dates increase (ten minutes to twelve
// hours apart), as in a real diary.
func (g *Generator) Event() *eventlog.Event {
	g.date = g.date.Add(time.Duration(10+g.r.IntN(12*60)) * time.Minute)
	typ := types[g.r.IntN(len(types))]
	desc := g.sentence(9, 21)
	ev := &eventlog.Event{
		ID:          g.ID(),
		Date:        g.date.In(zones[g.r.IntN(len(zones))]).Format("2006-01-02T15:04:05-0700"),
		Type:        typ,
		Description: desc,
		Creator: eventlog.Creator{
			Name:    "Volodyslav",
			UUID:    "5c8e1f2a-3b4d-4e6f-8a9b-0c1d2e3f4a5b",
			Version: "1.2.3",
		},
		Modifiers: []eventlog.Modifier{},
	}
	var brackets strings.Builder
	for _, i := range g.r.Perm(len(modNames))[:g.r.IntN(4)] {
		m := eventlog.Modifier{Name: modNames[i], Value: modValues[g.r.IntN(len(modValues))]}
		ev.Modifiers = append(ev.Modifiers, m)
		fmt.Fprintf(&brackets, " [%s %s]", m.Name, m.Value)
	}
	ev.Original = typ + brackets.String() + " " + desc
	ev.Input = typ + " " + desc
	return ev
}

// Events returns the next n events.
func (g *Generator) Events(n int) []*eventlog.Event {
	evs := make([]*eventlog.Event, n)
	for i := range evs {
		evs[i] = g.Event()
	}
	return evs
}
