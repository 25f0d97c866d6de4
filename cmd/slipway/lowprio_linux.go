//go:build linux

package main

import (
	"runtime"

	"golang.org/x/sys/unix"
)

// reloadNice is the CPU priority a reload's parsing runs at: a reload is
// background work, and on a busy machine the pushes and clones it runs
// beside should win the CPU (a file of a thousand users is tens of
// milliseconds of decoding).
const reloadNice = 10

// atLowPriority runs fn on an OS thread of its own at nice reloadNice and
// returns its result. The thread ends with fn: a goroutine that exits
// while locked to its thread takes the thread with it, so the lowered
// priority never reaches other goroutines. If the priority cannot be
// lowered, fn runs at the usual one.
func atLowPriority[T any](fn func() T) T {
	out := make(chan T, 1)
	go func() {
		runtime.LockOSThread()
		// Deliberately never unlocked: see above.
		_ = unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), reloadNice)
		out <- fn()
	}()
	return <-out
}
