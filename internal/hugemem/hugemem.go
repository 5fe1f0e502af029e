package hugemem

// pageSize is the size of a transparent huge page on the platforms that
// have them (x86-64, arm64 with 4 KiB base pages).
const pageSize = 2 << 20

// Min is the smallest buffer Alloc advises: a smaller one, placed where
// the allocator put it, rarely holds a whole huge page.
const Min = 2 * pageSize

// Alloc returns a zeroed byte slice of length and capacity n. When n is at
// least Min, the whole huge pages within it are advised for huge pages
// before it is first touched. (Aligning the slice to a huge page would
// advise its ends too, but the collector would count the bytes skipped
// as heap: a load near the soft memory limit then collected without end.)
func Alloc(n int) []byte {
	b := make([]byte, n)
	if n >= Min {
		advise(b, true)
	}
	return b
}

// Release takes back Alloc's advice on b (the whole slice Alloc returned),
// before the caller lets it go. b stays valid.
func Release(b []byte) {
	if cap(b) >= Min {
		advise(b[:cap(b)], false)
	}
}

// aligned returns the offsets [from, to) within n bytes at addr that cover
// the whole huge pages there (from == to when there are none).
func aligned(addr uintptr, n int) (from, to int) {
	start := (addr + pageSize - 1) &^ (pageSize - 1)
	end := (addr + uintptr(n)) &^ (pageSize - 1)
	if end <= start {
		return 0, 0
	}
	return int(start - addr), int(end - addr)
}
