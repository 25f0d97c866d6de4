//go:build linux

package main

import (
	"runtime"
	"sync"

	"golang.org/x/sys/unix"
)

// reloadNice is the CPU priority a reload's parsing runs at: a reload is
// background work, and on a busy machine the pushes and clones it runs
// beside should win the CPU (a file of a thousand users is tens of
// milliseconds of decoding).
const reloadNice = 10

// lowPriority is one OS thread at nice reloadNice that runs the functions
// given to it. The thread is never let end: a goroutine that returns
// while locked to its thread ends the thread, and a thread that ends
// sends its Pdeathsig to every child process it started. The thread a
// goroutine locks may be one on which the daemon started a build's
// bubblewrap earlier (a CI run saw a reload kill a running step with
// SIGKILL that way). So the thread is kept for the daemon's life, and
// given back to the runtime at close, at its usual priority where that
// can be restored (lowering nice again needs CAP_SYS_NICE).
type lowPriority struct {
	once sync.Once
	work chan func()
}

// run runs fn on the low-priority thread, started at the first call. If
// the priority cannot be lowered, fn runs at the usual one.
func (lp *lowPriority) run(fn func()) {
	lp.once.Do(func() {
		lp.work = make(chan func())
		go lp.loop()
	})
	done := make(chan struct{})
	lp.work <- func() { defer close(done); fn() }
	<-done
}

func (lp *lowPriority) loop() {
	runtime.LockOSThread()
	tid := unix.Gettid()
	old, err := unix.Getpriority(unix.PRIO_PROCESS, tid)
	_ = unix.Setpriority(unix.PRIO_PROCESS, tid, reloadNice)
	for fn := range lp.work {
		fn()
	}
	// The raw getpriority(2) answers 20 - nice.
	if err == nil && unix.Setpriority(unix.PRIO_PROCESS, tid, 20-old) == nil {
		runtime.UnlockOSThread()
		return
	}
	// Still lowered: give it back all the same rather than end it (see
	// above); it runs goroutines at nice reloadNice from now on, which
	// only happens as the daemon stops.
	runtime.UnlockOSThread()
}

// close ends the thread's work; run must not be called after it.
func (lp *lowPriority) close() {
	lp.once.Do(func() {})
	if lp.work != nil {
		close(lp.work)
	}
}

// atLowPriority runs fn on lp's thread and returns its result.
func atLowPriority[T any](lp *lowPriority, fn func() T) T {
	var out T
	lp.run(func() { out = fn() })
	return out
}
