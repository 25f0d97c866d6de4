// Package testutil holds the helpers every package's tests share: a buffer
// that goroutines may write at once, a wait on a condition with a
// deadline (tests never sleep to synchronise), git commands isolated from
// the machine's configuration, and git objects and packs as a hostile
// pusher may send them.
package testutil

import (
	"bytes"
	"io"
	"sync"
	"testing"
	"time"
)

// Buffer is a bytes.Buffer safe for concurrent use, for the output of
// processes and servers that tests read while it is written.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

var _ io.Writer = (*Buffer)(nil)

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Len is the number of bytes written so far.
func (s *Buffer) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Len()
}

// Eventually polls cond every few milliseconds until it holds, and fails
// the test, naming what it waited for, when timeout passes first.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}
