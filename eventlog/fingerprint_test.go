package eventlog

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/cespare/xxhash/v2"
)

// checkFP compares a fingerprint with what it should hold for the prefix
// p: its length, its xxhash and its last TailSize bytes.
func checkFP(t *testing.T, what string, f *Fingerprint, p []byte) {
	t.Helper()
	tail := p[max(0, len(p)-TailSize):]
	if f.Len() != int64(len(p)) || f.Sum64() != xxhash.Sum64(p) || !bytes.Equal(f.Tail(), tail) ||
		f.TailSum64() != xxhash.Sum64(tail) || TailSum64(tail) != f.TailSum64() {
		t.Errorf("%s: Len %d, tail of %d bytes; want %d and %d (hash equal: %v, tail equal: %v)",
			what, f.Len(), len(f.Tail()), len(p), len(tail), f.Sum64() == xxhash.Sum64(p), bytes.Equal(f.Tail(), tail))
	}
}

func TestFingerprintWrites(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	data := make([]byte, 5*TailSize+123)
	for i := range data {
		data[i] = byte(r.IntN(256))
	}
	checkFP(t, "new", NewFingerprint(), nil)
	// Chunkings that cross the window's bounds every way.
	for _, sizes := range [][]int{
		{1}, {7}, {TailSize - 1}, {TailSize}, {TailSize + 1}, {2 * TailSize}, {3*TailSize + 5}, {len(data)},
		{TailSize - 1, 2, TailSize, 1}, {100, 2 * TailSize, 3}, {0, 5, 0},
	} {
		f := NewFingerprint()
		n := 0
		for i := 0; n < len(data); i++ {
			k := min(sizes[i%len(sizes)], len(data)-n)
			if w, err := f.Write(data[n : n+k]); w != k || err != nil {
				t.Fatalf("Write = %d, %v", w, err)
			}
			n += k
			checkFP(t, "after a write", f, data[:n])
			if k == 0 && len(sizes) == 1 {
				break
			}
		}
	}
	// Random chunks, checking the state can be stored and resumed from
	// the tail bytes at every point.
	f := NewFingerprint()
	for n := 0; n < len(data); {
		k := min(r.IntN(3*TailSize/2), len(data)-n)
		_, _ = f.Write(data[n : n+k])
		n += k
		g, err := ResumeFingerprint(f.State(), data[max(0, n-TailSize):n])
		if err != nil {
			t.Fatalf("ResumeFingerprint at %d: %v", n, err)
		}
		checkFP(t, "resumed", g, data[:n])
		// Both go on the same way.
		more := data[:min(len(data), n+TailSize/3)]
		_, _ = g.Write(more[n:])
		checkFP(t, "resumed, then written", g, more)
	}
}

// TestFingerprintCopy: a copy is independent (the decoder keeps a copy to
// take back bytes of an incomplete tail).
func TestFingerprintCopy(t *testing.T) {
	f := NewFingerprint()
	_, _ = f.Write([]byte("abc"))
	g := *f
	_, _ = g.Write(bytes.Repeat([]byte("x"), TailSize+10))
	checkFP(t, "original after writing to a copy", f, []byte("abc"))
}

func TestResumeFingerprintErrors(t *testing.T) {
	f := NewFingerprint()
	_, _ = f.Write(bytes.Repeat([]byte("y"), 10))
	st := f.State()
	cases := map[string]struct{ state, tail []byte }{
		"no state":       {nil, nil},
		"short state":    {st[:5], bytes.Repeat([]byte("y"), 10)},
		"garbage state":  {[]byte("not a digest state at all"), bytes.Repeat([]byte("y"), 10)},
		"tail too short": {st, bytes.Repeat([]byte("y"), 9)},
		"tail too long":  {st, bytes.Repeat([]byte("y"), 11)},
	}
	for name, c := range cases {
		if g, err := ResumeFingerprint(c.state, c.tail); g != nil || !errors.Is(err, ErrFingerprintState) {
			t.Errorf("%s: %v, %v; want ErrFingerprintState", name, g, err)
		}
	}
}
