package hugemem

import (
	"testing"
)

func TestAligned(t *testing.T) {
	const p = pageSize
	for _, tc := range []struct {
		addr     uintptr
		n        int
		from, to int
	}{
		{0, p, 0, p},
		{0, 3 * p, 0, 3 * p},
		{p, 2*p + 100, 0, 2 * p},
		{p - 4096, p, 0, 0}, // across a boundary, no whole page
		{p - 4096, 2 * p, 4096, p + 4096},
		{p + 8192, 4 * p, p - 8192, 4*p - 8192},
		{p + 1, p - 1, 0, 0}, // within one page
		{5 * p, 0, 0, 0},
	} {
		from, to := aligned(tc.addr, tc.n)
		if from != tc.from || to != tc.to {
			t.Errorf("aligned(%#x, %#x) = [%#x, %#x), want [%#x, %#x)", tc.addr, tc.n, from, to, tc.from, tc.to)
		}
		if from != to && ((tc.addr+uintptr(from))%p != 0 || (tc.addr+uintptr(to))%p != 0 || to > tc.n) {
			t.Errorf("aligned(%#x, %#x) = [%#x, %#x): not whole pages within", tc.addr, tc.n, from, to)
		}
	}
}

func TestAllocIsZeroedAndSized(t *testing.T) {
	for _, n := range []int{0, 1, Min - 1, Min, 3*Min + 12345} {
		b := Alloc(n)
		if len(b) != n || cap(b) != n {
			t.Fatalf("Alloc(%d): len %d, cap %d", n, len(b), cap(b))
		}
		for i, c := range b {
			if c != 0 {
				t.Fatalf("Alloc(%d)[%d] = %d", n, i, c)
			}
		}
		for i := range b {
			b[i] = byte(i)
		}
		Release(b)
		for i, c := range b {
			if c != byte(i) {
				t.Fatalf("Release changed byte %d of %d", i, n)
			}
		}
	}
}
