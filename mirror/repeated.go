package mirror

import "sync"

// repeatedIDs tells a bulk load's modifiers writer which ids occur more
// than once in the log, and which occurrence won (the last). The events
// writers find out as they merge, each over its key range (an id's records
// arrive together, in offset order); the modifiers writer runs beside them
// and, for each id it meets, waits until the writer of the id's range has
// gone past it. Most ids occur once: all their modifiers are written.
//
// It replaced a marker record per event in the modifiers' sorter (the last
// marker of an id named the winner): the million markers of a 1M-event
// resync were 5% of its time.
type repeatedIDs struct {
	mu      sync.Mutex
	moved   sync.Cond // a range's writer settled more keys, or finished
	bounds  [][]byte  // of the event key ranges: nil, the splits, nil
	settled [][]byte  // per range: the key below which all are settled
	done    []bool    // per range: its writer finished (or failed)
	winner  map[string]uint64
	waiting []int // per range: lookups waiting for it (for tests)
}

func newRepeatedIDs(bounds [][]byte) *repeatedIDs {
	n := len(bounds) - 1
	r := &repeatedIDs{bounds: bounds, settled: make([][]byte, n), done: make([]bool, n), winner: map[string]uint64{},
		waiting: make([]int, n)}
	r.moved.L = &r.mu
	return r
}

// repeated records that the event key occurs more than once, the last
// time at offset.
func (r *repeatedIDs) repeated(key []byte, offset uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.winner[string(key)] = offset
}

// settle records that range i's writer has settled every key below key.
func (r *repeatedIDs) settle(i int, key []byte) {
	r.mu.Lock()
	r.settled[i] = append(r.settled[i][:0], key...)
	r.mu.Unlock()
	r.moved.Broadcast()
}

// finish records that range i's writer is done, whether or not it
// succeeded (the load fails with it if not), so that nothing waits on it.
func (r *repeatedIDs) finish(i int) {
	r.mu.Lock()
	r.done[i] = true
	r.mu.Unlock()
	r.moved.Broadcast()
}

// lookup waits until the event key is settled, and returns the offset of
// its winning occurrence if it occurs more than once.
func (r *repeatedIDs) lookup(key []byte) (offset uint64, repeated bool) {
	i := 0
	for i+2 < len(r.bounds) && string(key) >= string(r.bounds[i+1]) {
		i++
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for !r.done[i] && (r.settled[i] == nil || string(key) >= string(r.settled[i])) {
		r.waiting[i]++
		r.moved.Wait()
		r.waiting[i]--
	}
	offset, repeated = r.winner[string(key)]
	return offset, repeated
}
