//go:build linux

package main

import (
	"os"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

// TestReloadParsesAtLowPriority: the function runs on a thread at nice
// reloadNice, and the caller's thread keeps its own priority.
func TestReloadParsesAtLowPriority(t *testing.T) {
	t.Parallel()
	var lp lowPriority
	defer lp.close()
	got := atLowPriority(&lp, threadNice(t))
	if got != reloadNice {
		t.Errorf("the function ran at nice %d, want %d", got, reloadNice)
	}
	if n := threadNice(t)(); n == reloadNice {
		t.Errorf("the caller's thread runs at nice %d too", n)
	}
}

// TestLowPriorityNeverEndsItsThread: the thread the parses ran on is
// alive after every parse and after close. A thread that ends kills the
// child processes started from it that asked for a Pdeathsig (a build's
// bubblewrap): a CI run saw a reload kill a running step that way when
// the parse's goroutine ended locked to its thread.
func TestLowPriorityNeverEndsItsThread(t *testing.T) {
	t.Parallel()
	var tids []int
	for range 20 {
		var lp lowPriority
		for range 3 {
			tids = append(tids, atLowPriority(&lp, unix.Gettid))
		}
		lp.close()
	}
	for _, tid := range tids {
		if _, err := os.Stat("/proc/self/task/" + strconv.Itoa(tid)); err != nil {
			t.Fatalf("thread %d, which ran a low-priority parse, ended: %v", tid, err)
		}
	}
}

// threadNice returns a function giving the nice value of the thread it
// runs on.
func threadNice(t *testing.T) func() int {
	return func() int {
		p, err := unix.Getpriority(unix.PRIO_PROCESS, unix.Gettid())
		if err != nil {
			t.Error(err)
		}
		return 20 - p // the raw getpriority(2) answers 20 - nice
	}
}
