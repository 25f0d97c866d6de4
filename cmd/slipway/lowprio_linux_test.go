//go:build linux

package main

import (
	"testing"

	"golang.org/x/sys/unix"
)

// TestReloadParsesAtLowPriority: the function runs on a thread at nice
// reloadNice, and the caller's thread keeps its own priority.
func TestReloadParsesAtLowPriority(t *testing.T) {
	t.Parallel()
	// The raw getpriority(2) answers 20 - nice.
	nice := func() int {
		p, err := unix.Getpriority(unix.PRIO_PROCESS, unix.Gettid())
		if err != nil {
			t.Fatal(err)
		}
		return 20 - p
	}
	got := atLowPriority(nice)
	if got != reloadNice {
		t.Errorf("the function ran at nice %d, want %d", got, reloadNice)
	}
	for range 50 {
		// The lowered thread ended with the function: no other goroutine
		// runs at its priority.
		if n := atLowPriority(func() int { return 0 }); n != 0 {
			t.Fatal(n)
		}
	}
	if n := nice(); n == reloadNice {
		t.Errorf("the caller's thread runs at nice %d too", n)
	}
}
