package queue

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Options configures a Pool. Claim and Run are required.
type Options[T any] struct {
	// Workers is how many items run at once; at least 1.
	Workers int
	// Claim takes the next item to run, in a transaction of the caller's
	// store; ok is false when there is none. claimCtx ends when the pool
	// stops claiming; runCtx is the context the item's run gets, for claims
	// that register the run (so that it can be cancelled) before it starts.
	// worker numbers the worker from 1, for records that say who claimed.
	Claim func(claimCtx, runCtx context.Context, worker int) (item T, ok bool, err error)
	// Run runs one claimed item to its end. runCtx is cancelled, with the
	// cause given to Shutdown, when the pool's patience runs out.
	Run func(runCtx context.Context, item T)
	// ClaimFailed is told about a failed claim (the worker tries again at
	// the next wake or tick); nil ignores it.
	ClaimFailed func(error)
	// Tick is how often an idle worker looks at the queue although nobody
	// woke it, for work queued by something that cannot wake this process.
	// Default one second.
	Tick time.Duration
}

// Pool is a set of workers that claim and run items. Its methods are safe
// for concurrent use.
type Pool[T any] struct {
	o    Options[T]
	wake chan struct{} // one token: "something may be queued"

	// stopping is set once claiming stops; claiming is held for reading by
	// each claim in progress, so that StopClaiming can wait for them.
	stopping atomic.Bool
	claiming sync.RWMutex
	// waiters ends once claiming has stopped; see WhileClaiming.
	waiters     context.Context
	stopWaiters context.CancelFunc

	mu      sync.Mutex
	started bool
	stop    context.CancelFunc
	kill    context.CancelCauseFunc
	workers sync.WaitGroup
}

// New checks the options. It starts nothing.
func New[T any](o Options[T]) (*Pool[T], error) {
	if o.Claim == nil || o.Run == nil {
		return nil, errors.New("new queue: Claim and Run are required")
	}
	o.Workers = max(1, o.Workers)
	if o.Tick <= 0 {
		o.Tick = time.Second
	}
	waiters, stopWaiters := context.WithCancel(context.Background())
	return &Pool[T]{o: o, wake: make(chan struct{}, 1), waiters: waiters, stopWaiters: stopWaiters}, nil
}

// Start makes the contexts of the pool's runs, calls before with the run
// context (recovery of what an earlier daemon left, which may start runs
// of its own, with Go), then starts the workers. If before fails, what it
// started is cancelled and waited for, and its error is returned. Cancelling ctx is an abrupt stop: runs
// are cancelled with cause, as if Shutdown's patience had run out.
func (p *Pool[T]) Start(ctx context.Context, cause error, before func(runCtx context.Context) error) error {
	p.mu.Lock()
	if p.started {
		p.mu.Unlock()
		return errors.New("start queue: already started")
	}
	p.started = true
	claimCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	runCtx, kill := context.WithCancelCause(context.WithoutCancel(ctx))
	p.stop, p.kill = stop, kill
	p.mu.Unlock()
	context.AfterFunc(ctx, func() { p.StopClaiming(); kill(cause) })

	if before != nil {
		if err := before(runCtx); err != nil {
			stop()
			kill(cause)
			p.workers.Wait() // what before started with Go
			return err
		}
	}
	for i := range p.o.Workers {
		p.workers.Add(1)
		go func() {
			defer p.workers.Done()
			p.work(claimCtx, runCtx, i+1)
		}()
	}
	p.Wake()
	return nil
}

// Go runs f beside the workers, counted with them: Shutdown waits for it,
// and cancels its context with the workers' runs.
func (p *Pool[T]) Go(runCtx context.Context, f func(runCtx context.Context)) {
	p.workers.Add(1)
	go func() {
		defer p.workers.Done()
		f(runCtx)
	}()
}

// work claims and runs items until claimCtx ends.
func (p *Pool[T]) work(claimCtx, runCtx context.Context, worker int) {
	tick := time.NewTicker(p.o.Tick)
	defer tick.Stop()
	for claimCtx.Err() == nil {
		item, ok, err, stopped := p.claim(claimCtx, runCtx, worker)
		if stopped {
			return
		}
		switch {
		case err != nil && claimCtx.Err() == nil:
			if p.o.ClaimFailed != nil {
				p.o.ClaimFailed(err)
			}
		case ok:
			// Pass the wake on: more may be waiting for an idle worker.
			p.Wake()
			p.o.Run(runCtx, item)
			continue
		}
		select {
		case <-claimCtx.Done():
		case <-p.wake:
		case <-tick.C:
		}
	}
}

// claim calls Claim unless claiming has stopped (stopped is then true).
func (p *Pool[T]) claim(claimCtx, runCtx context.Context, worker int) (item T, ok bool, err error, stopped bool) {
	p.claiming.RLock()
	defer p.claiming.RUnlock()
	if p.stopping.Load() {
		return item, false, nil, true
	}
	item, ok, err = p.o.Claim(claimCtx, runCtx, worker)
	return item, ok, err, false
}

// StopClaiming makes the workers claim nothing more and returns once no
// claim is in progress: a claim that began before it may still succeed (its
// item then runs), none begins after. Runs go on; Shutdown waits for them.
// It is the first thing Shutdown does; a daemon calls it early, for every
// queue at once, so that nothing new starts while it stops. Calling it
// again, or on a pool never started, is harmless.
func (p *Pool[T]) StopClaiming() {
	p.stopping.Store(true)
	p.mu.Lock()
	stop := p.stop
	p.mu.Unlock()
	if stop != nil {
		stop() // wakes idle workers and ends claims waiting on the store
	}
	p.claiming.Lock()
	p.claiming.Unlock() // an empty section: it waits for the claims in progress
	p.stopWaiters()
}

// Stopping reports whether claiming has stopped (or is stopping).
func (p *Pool[T]) Stopping() bool { return p.stopping.Load() }

// WhileClaiming returns a context that ends with ctx, or with cause once
// claiming has stopped (StopClaiming), and its cancel, to call when done.
// Someone who waits for an item to run or end (a pusher following its
// build) waits with it, so that a stopping daemon does not keep them
// waiting for work that will only run after the next start.
func (p *Pool[T]) WhileClaiming(ctx context.Context, cause error) (context.Context, context.CancelFunc) {
	wctx, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(p.waiters, func() { cancel(cause) })
	return wctx, func() { stop(); cancel(nil) }
}

// Wake tells the workers that something may be queued; it never blocks.
func (p *Pool[T]) Wake() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Shutdown stops claiming (StopClaiming) and waits for the running items to
// end. When ctx ends first, their runs are cancelled with cause and
// Shutdown returns ctx's error once they are gone. A pool never started
// returns at once.
func (p *Pool[T]) Shutdown(ctx context.Context, cause error) error {
	p.StopClaiming()
	p.mu.Lock()
	kill := p.kill
	p.mu.Unlock()
	if kill == nil {
		return nil
	}
	done := make(chan struct{})
	go func() { p.workers.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		kill(cause)
		<-done
		return fmt.Errorf("runs cancelled (%w): %w", cause, ctx.Err())
	}
}
