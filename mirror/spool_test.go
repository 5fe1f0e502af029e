package mirror

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	"github.com/cespare/xxhash/v2"
	"github.com/mirrord/mirrord/internal/gitlog"
)

// The spool holds each blob streamed into it exactly, and writes only
// from the first byte that differs from what it held: an append writes
// what was appended, an edit from the edited byte on, the same blob
// nothing. The prefix asked for is hashed on the way.
func TestSpoolFillWritesOnlyFromTheFirstDifference(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 3*spoolChunk/16+1000) // more than 3 chunks
	edited := bytes.Clone(big)
	edited[2*spoolChunk+17] = 'X'
	for _, tc := range []struct {
		name        string
		blobs       [][]byte
		wantWritten int64 // by the last fill
	}{
		{"first fill", [][]byte{big}, int64(len(big))},
		{"the same blob again", [][]byte{big, big}, 0},
		{"an append", [][]byte{big[:len(big)-5000], big}, 5000},
		{"an append at a chunk boundary", [][]byte{big[:spoolChunk], big}, int64(len(big) - spoolChunk)},
		{"an edit in the third chunk", [][]byte{big, edited}, int64(len(big) - (2*spoolChunk + 17))},
		{"a truncation", [][]byte{big, big[:1000]}, 0},
		{"shorter and changed", [][]byte{big, []byte("0123X")}, 1},
		{"to empty", [][]byte{big, {}}, 0},
		{"from empty", [][]byte{{}, []byte("abc")}, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sp, err := newSpool(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			defer sp.close()
			var res fillResult
			for i, b := range tc.blobs {
				prefix := int64(len(b) / 2)
				res, err = sp.fill(context.Background(), bytes.NewReader(b), gitlog.ID(strings.Repeat("a", 39)+string(rune('0'+i))), int64(len(b)), prefix)
				if err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(io.NewSectionReader(sp.f, 0, 1<<40))
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, b) {
					t.Fatalf("fill %d: the spool holds %d bytes that differ from the blob's %d", i, len(got), len(b))
				}
				if res.prefixLen != prefix || res.prefixSum != xxhash.Sum64(b[:prefix]) {
					t.Fatalf("fill %d: prefix %d hashed %x, want %d hashed %x", i, res.prefixLen, res.prefixSum, prefix, xxhash.Sum64(b[:prefix]))
				}
			}
			if res.written != tc.wantWritten {
				t.Fatalf("the last fill wrote %d bytes, want %d", res.written, tc.wantWritten)
			}
		})
	}
}

// A stream that ends early, or runs on past the blob's size, fails the
// fill, and the spool then holds no known blob (its bytes are compared
// again by the next fill, never trusted).
func TestSpoolFillRefusesAStreamOfTheWrongLength(t *testing.T) {
	sp, err := newSpool(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer sp.close()
	id := gitlog.ID(strings.Repeat("b", 40))
	if _, err := sp.fill(context.Background(), strings.NewReader("short"), id, 10, 0); err == nil || !strings.Contains(err.Error(), "at 0 of 10 bytes") {
		t.Fatalf("a short stream: %v", err)
	}
	if sp.blob != "" {
		t.Fatalf("after a failed fill the spool claims blob %s", sp.blob)
	}
	if _, err := sp.fill(context.Background(), strings.NewReader("longer than five"), id, 5, 0); err == nil || !strings.Contains(err.Error(), "longer") {
		t.Fatalf("a long stream: %v", err)
	}
	if sp.blob != "" {
		t.Fatalf("after a failed fill the spool claims blob %s", sp.blob)
	}
	if _, err := sp.fill(context.Background(), strings.NewReader("exact"), id, 5, 0); err != nil || sp.blob != id {
		t.Fatalf("an exact stream: %v, blob %q", err, sp.blob)
	}
}

func TestFirstDiff(t *testing.T) {
	a := bytes.Repeat([]byte{7}, 1000)
	for _, at := range []int{0, 1, 63, 64, 65, 500, 998, 999} {
		b := bytes.Clone(a)
		b[at] = 8
		if got := firstDiff(a, b); got != at {
			t.Fatalf("difference at %d found at %d", at, got)
		}
	}
	if got := firstDiff(a, a); got != len(a) {
		t.Fatalf("equal slices: %d", got)
	}
}
