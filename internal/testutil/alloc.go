package testutil

import "runtime"

// Allocated returns how many bytes the Go heap allocated while fn ran,
// freed or not: a read that inflated an object whole shows its size here.
// The count is the whole process's, so the tests that use it must not be
// parallel (Go runs those alone, before the parallel ones).
func Allocated(fn func()) uint64 {
	var a, b runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&a)
	fn()
	runtime.ReadMemStats(&b)
	return b.TotalAlloc - a.TotalAlloc
}
