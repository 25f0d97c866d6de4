package queue

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestBackgroundStopWaitsForEveryLoop(t *testing.T) {
	var b Background
	if err := b.Stop(t.Context()); err != nil {
		t.Fatalf("Stop before Go: %v", err)
	}
	ended := make(chan int, 2)
	loop := func(n int) func(context.Context) {
		return func(ctx context.Context) { <-ctx.Done(); ended <- n }
	}
	b.Go(t.Context(), loop(1), loop(2))
	if err := b.Stop(t.Context()); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if len(ended) != 2 {
		t.Fatalf("Stop returned with %d of 2 loops ended", len(ended))
	}
	if err := b.Stop(t.Context()); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
}

func TestBackgroundStopGivesUpWithItsContext(t *testing.T) {
	var b Background
	release := make(chan struct{})
	b.Go(t.Context(), func(context.Context) { <-release })
	defer close(release)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Millisecond)
	defer cancel()
	if err := b.Stop(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Stop of a loop that does not return: %v, want the deadline", err)
	}
}
