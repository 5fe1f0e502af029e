package eventlog

import (
	"reflect"
	"slices"
	"sync"
	"testing"
)

// TestParseEventSharesNothing: ParseEvent reuses its scratch state and
// shares recurring strings between events; an event it returned must not
// change when it parses others, alone or from several goroutines at once.
func TestParseEventSharesNothing(t *testing.T) {
	var stored [][]byte
	for i, e := range decodeBytes(t, syntheticLog(t), nil)[:400] {
		stored = append(stored, []byte(e.Raw))
		// Between them, events whose keys come in other orders, with
		// unknown fields and repeated names.
		switch i % 3 {
		case 0:
			stored = append(stored, []byte(`{"x":[1,{"y":"z"}],"creator":{"version":"v","extra":true,"name":"n","uuid":"u"},"id":"o1","date":"2025-05-22T15:30:00Z","original":"","input":"","type":"t","description":"d","x":2}`))
		case 1:
			stored = append(stored, []byte(`{"type":"t","id":"o2","modifiers":{"b":"1","a":"2","b":"3"},"date":"2025-05-22T15:30:00Z","original":"o","input":"i","description":"d\u00e9","creator":{"uuid":"u","name":"n","version":"v"}}`))
		}
	}
	parse := func(b []byte) *Event {
		ev, err := ParseEvent(b)
		if err != nil {
			t.Error(err)
		}
		return ev
	}
	// deepCopy rebuilds the event from fresh strings.
	deepCopy := func(e *Event) Event {
		c := *e
		c.Modifiers = nil
		for _, m := range e.Modifiers {
			c.Modifiers = append(c.Modifiers, Modifier{string([]byte(m.Name)), string([]byte(m.Value))})
		}
		c.ID, c.Type, c.Creator.Name = string([]byte(e.ID)), string([]byte(e.Type)), string([]byte(e.Creator.Name))
		c.order, c.Creator.order = slices.Clone(e.order), slices.Clone(e.Creator.order)
		c.Extra = nil
		for _, f := range e.Extra {
			c.Extra = append(c.Extra, Field{f.Name, slices.Clone(f.Value)})
		}
		return c
	}
	want := make([]Event, len(stored))
	kept := make([]*Event, len(stored))
	for i, b := range stored {
		kept[i] = parse(b)
		want[i] = deepCopy(kept[i])
	}
	// The same events parsed again, by 4 goroutines at once.
	var wg sync.WaitGroup
	got := make([][]*Event, 4)
	for g := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, b := range stored {
				got[g] = append(got[g], parse(b))
			}
		}()
	}
	wg.Wait()
	for i := range stored {
		if !reflect.DeepEqual(deepCopy(kept[i]), want[i]) {
			t.Fatalf("event %d changed after more events were parsed", i)
		}
		for g := range got {
			if !reflect.DeepEqual(*got[g][i], *kept[i]) {
				t.Fatalf("event %d parsed by goroutine %d differs", i, g)
			}
		}
	}
}
