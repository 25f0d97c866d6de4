package queue

import (
	"context"
	"sync"
)

// Background is the goroutines a service runs from its Start to its
// Shutdown (the outbox's consumers: notes, webhooks). The zero value is
// ready. Go and Stop are called by whoever starts and stops the service,
// not concurrently; Stop before Go, or twice, is harmless.
type Background struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// Go runs each loop in a goroutine of its own, on a context that ends
// with ctx or at Stop.
func (b *Background) Go(ctx context.Context, loops ...func(context.Context)) {
	ctx, b.cancel = context.WithCancel(ctx)
	b.done = make(chan struct{})
	var wg sync.WaitGroup
	for _, loop := range loops {
		wg.Go(func() { loop(ctx) })
	}
	go func() { wg.Wait(); close(b.done) }()
}

// Stop cancels the loops and waits for them to return. When ctx ends
// first it returns ctx's error; the loops return later, on their own.
func (b *Background) Stop(ctx context.Context) error {
	if b.cancel == nil {
		return nil
	}
	b.cancel()
	select {
	case <-b.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
