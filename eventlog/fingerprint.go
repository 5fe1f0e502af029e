package eventlog

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cespare/xxhash/v2"
)

// TailSize is how many bytes before an offset the cheap fingerprint
// covers.
const TailSize = 4096

// Fingerprint accumulates the bytes of a log consumed so far, [0, Len()):
// an xxhash64 of all of them (checked at start and after any doubt), and
// the last TailSize of them, whose hash is checked on every change. It is
// a plain value: copying it copies its state, which the decoder relies on
// to take back bytes that turn out to belong to an incomplete tail.
//
// The zero value is the fingerprint of the empty prefix.
type Fingerprint struct {
	digest xxhash.Digest
	ready  bool // digest was Reset (xxhash's zero Digest is not)
	n      int64
	win    [2 * TailSize]byte // the last bytes, window[:wlen]
	wlen   int
}

// NewFingerprint returns the fingerprint of the empty prefix.
func NewFingerprint() *Fingerprint { return &Fingerprint{} }

func (f *Fingerprint) init() {
	if !f.ready {
		f.digest.Reset()
		f.ready = true
	}
}

// Write adds p to the consumed bytes. It never fails.
func (f *Fingerprint) Write(p []byte) (int, error) {
	f.init()
	_, _ = f.digest.Write(p)
	f.n += int64(len(p))
	f.push(p)
	return len(p), nil
}

func (f *Fingerprint) push(p []byte) {
	if len(p) >= TailSize {
		f.wlen = copy(f.win[:], p[len(p)-TailSize:])
		return
	}
	if f.wlen+len(p) > len(f.win) {
		keep := TailSize - len(p)
		copy(f.win[:keep], f.win[f.wlen-keep:f.wlen])
		f.wlen = keep
	}
	f.wlen += copy(f.win[f.wlen:], p)
}

// Len returns the number of bytes consumed.
func (f *Fingerprint) Len() int64 { return f.n }

// Sum64 returns the hash of every byte consumed.
func (f *Fingerprint) Sum64() uint64 {
	f.init()
	return f.digest.Sum64()
}

// Tail returns the last min(Len(), TailSize) bytes consumed.
func (f *Fingerprint) Tail() []byte {
	return f.win[max(0, f.wlen-TailSize):f.wlen]
}

// TailSum64 returns the hash of Tail().
func (f *Fingerprint) TailSum64() uint64 { return xxhash.Sum64(f.Tail()) }

// TailSum64 is the tail fingerprint of a prefix whose last bytes are tail
// (at most TailSize of them, as Tail returns).
func TailSum64(tail []byte) uint64 { return xxhash.Sum64(tail) }

// State returns the hash state, to be stored and later given to
// ResumeFingerprint with the tail bytes read back from the file.
func (f *Fingerprint) State() []byte {
	f.init()
	b, _ := f.digest.MarshalBinary()
	return binary.BigEndian.AppendUint64(b, uint64(f.n))
}

// ErrFingerprintState: a stored fingerprint state cannot be read back.
var ErrFingerprintState = errors.New("fingerprint state is not valid")

// ResumeFingerprint rebuilds a fingerprint from State and the last bytes
// of the prefix it covers (min(n, TailSize) of them, read from the file).
// The caller checks TailSum64 against the stored tail hash.
func ResumeFingerprint(state, tail []byte) (*Fingerprint, error) {
	if len(state) < 8 {
		return nil, ErrFingerprintState
	}
	f := &Fingerprint{ready: true}
	if err := f.digest.UnmarshalBinary(state[:len(state)-8]); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFingerprintState, err)
	}
	f.n = int64(binary.BigEndian.Uint64(state[len(state)-8:]))
	if want := min(f.n, TailSize); int64(len(tail)) != want {
		return nil, fmt.Errorf("%w: %d tail bytes given, want %d", ErrFingerprintState, len(tail), want)
	}
	f.push(tail)
	return f, nil
}
