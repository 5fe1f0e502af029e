package generators

import (
	"github.com/cespare/xxhash/v2"
)

// spilledKeys is a Bloom filter of the keys a rebuild has committed so
// far. A rebuild's scope starts by deleting everything under its prefix,
// so afterwards the store holds there only what the rebuild itself
// committed: a key the filter has never seen is certainly not stored, and
// Get and Delete need not ask Pebble. They asked for nearly every key: a
// rebuild reads each event's index entry before writing it, and each of
// those reads of a key that is not there walked Pebble's memtables and
// levels (3.4 µs; 8 of the 53 CPU-seconds of rebuilding both default
// generators for 1M events).
//
// The filter grows as a chain of parts, each twice the size of the one
// before, so that it needs no count of the keys in advance: 10 bits a key
// (3 MiB for the two million keys of summary's rebuild of 1M events) and
// about 2% false positives in a full part, each of which costs only the
// read it would have cost anyway. A key committed again (a value put in
// two spills) is counted once.
type spilledKeys struct {
	parts []*bloomPart
}

// bloomPart is one Bloom filter sized for capacity keys, blocked: a
// key's probes all fall in one 512-bit block (a cache line), chosen by
// the hash's low bits. Scattered over a filter of megabytes, seven probes
// were seven cache misses for each key a rebuild writes.
type bloomPart struct {
	bits     []uint64
	blocks   uint64 // len(bits)/8, a power of two
	n        int
	capacity int
}

const (
	// firstPartBits is the size of the first part: 128 KiB, for about
	// 100,000 keys.
	firstPartBits = 1 << 20
	// bitsPerKey and probes give a false-positive rate near 2% for a
	// full part (1% unblocked).
	bitsPerKey = 10
	probes     = 7
)

// newBloomPart makes a part of m bits, a power of two of at least 512
// (blocks are masked, not divided), for m/bitsPerKey keys.
func newBloomPart(m uint64) *bloomPart {
	return &bloomPart{bits: make([]uint64, m/64), blocks: m / 512, capacity: int(m / bitsPerKey)}
}

// block returns the block of a key's probes in the part (chosen by
// the hash's low bits) and the start and step of its positions in it,
// from a remix of the hash (a + i·b, b odd so that they differ).
func (p *bloomPart) block(h uint64) (blk []uint64, a, b uint64) {
	i := (h & (p.blocks - 1)) * 8
	g := h * 0x9e3779b97f4a7c15
	return p.bits[i : i+8 : i+8], g >> 32, g>>48 | 1
}

func (p *bloomPart) add(h uint64) {
	blk, a, b := p.block(h)
	for i := range uint64(probes) {
		pos := (a + i*b) & 511
		blk[pos/64] |= 1 << (pos % 64)
	}
	p.n++
}

func (p *bloomPart) has(h uint64) bool {
	blk, a, b := p.block(h)
	for i := range uint64(probes) {
		pos := (a + i*b) & 511
		if blk[pos/64]&(1<<(pos%64)) == 0 {
			return false
		}
	}
	return true
}

// add records a key that is being committed.
func (f *spilledKeys) add(key string) {
	h := xxhash.Sum64String(key)
	if f.has(h) {
		return // already there (or a false positive: reported either way)
	}
	f.addHash(h)
}

// addBytes records a key known to be new, or a key as bytes: looking
// each of a million keys up in every part first cost summary's rebuild a
// third of the time it took to write them.
func (f *spilledKeys) addBytes(key []byte) { f.addHash(xxhash.Sum64(key)) }

func (f *spilledKeys) addHash(h uint64) {
	if len(f.parts) == 0 || f.parts[len(f.parts)-1].n >= f.parts[len(f.parts)-1].capacity {
		m := uint64(firstPartBits)
		if len(f.parts) > 0 {
			m = 2 * uint64(len(f.parts[len(f.parts)-1].bits)) * 64
		}
		f.parts = append(f.parts, newBloomPart(m))
	}
	f.parts[len(f.parts)-1].add(h)
}

// mayHave is false only for a key that add never saw.
func (f *spilledKeys) mayHave(key string) bool {
	return f.has(xxhash.Sum64String(key))
}

func (f *spilledKeys) has(h uint64) bool {
	for _, p := range f.parts {
		if p.has(h) {
			return true
		}
	}
	return false
}
