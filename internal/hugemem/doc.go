// Package hugemem allocates the large, short-lived byte buffers of a bulk
// load (the sorters' chunks, the generators' spill logs) so that the
// kernel may back them with transparent huge pages.
//
// Why: on the virtual machine the benchmark runs on, the first touch of a
// fresh 4 KiB page costs about 12 µs (128 MiB took 0.41 s to touch, against
// 8 ms for a copy of the same bytes once touched), and a 100k-event load
// spent a sixth of its CPU faulting in its sorters' buffers. Go's heap asks
// for no huge pages of its own, and most distributions leave transparent
// huge pages to those that ask (madvise mode): with them the same 128 MiB
// took 8 ms to touch.
//
// The buffers stay ordinary Go memory, owned by the collector: Alloc only
// advises the kernel about the address range, so a slice kept too long
// is never a use after free. Release takes the advice back, so that once
// the load is over the kernel's background collapsing (khugepaged) does
// not fill the range again after the Go runtime returned it: without it a
// following daemon's memory could grow back by the whole buffer.
// Elsewhere than on Linux both are plain allocation and nothing.
package hugemem
