package queue

import (
	"context"
	"errors"
	"fmt"
	"time"

	"slipway/record"
)

// The durability rules every queue follows (issue 11): a run's result that
// could not be written (a full disk, a busy database) is written again after
// RetryFirst, then after twice as long each time up to RetryMax; and every
// WatchEvery a watchdog hands the runs recorded running that no worker of
// the process runs to the queue's recovery.
const (
	RetryFirst = 100 * time.Millisecond
	RetryMax   = 30 * time.Second
	WatchEvery = 30 * time.Second
)

// Backoff is how WriteResult spaces its attempts: First after the first
// failure, then twice as long each time, up to Max.
type Backoff struct{ First, Max time.Duration }

// WriteResult writes a run's result with write and, while the write fails,
// tries it again with backoff b until it is written or life ends (the
// daemon's stop ran out of patience: the run then stays recorded running,
// for the next start's recovery). Each attempt gets its own context, not
// ended by life and bounded by grace, so that a run cut off still records
// why. An error wrapping record.ErrConflict, record.ErrNotFound or
// record.ErrInvalid is returned at once: the record moved on (cancelled
// meanwhile), is gone, or refuses the result, and no later attempt would
// do better. failed, if not nil, is told each failure whose message differs
// from the one before, with the delay until the next attempt, so that a
// reason is logged once however often it repeats. attempts counts the
// writes tried.
func WriteResult(life context.Context, b Backoff, grace time.Duration, write func(ctx context.Context) error, failed func(err error, retryIn time.Duration)) (attempts int, err error) {
	delay := max(b.First, time.Millisecond)
	var last string
	for attempts = 1; ; attempts++ {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(life), grace)
		err := write(ctx)
		cancel()
		switch {
		case err == nil:
			return attempts, nil
		case errors.Is(err, record.ErrConflict), errors.Is(err, record.ErrNotFound), errors.Is(err, record.ErrInvalid):
			return attempts, err
		}
		if msg := err.Error(); msg != last {
			last = msg
			if failed != nil {
				failed(err, delay)
			}
		}
		t := time.NewTimer(delay)
		select {
		case <-life.Done():
			t.Stop()
			return attempts, fmt.Errorf("gave up when the daemon stopped: %w", err)
		case <-t.C:
		}
		delay = min(2*delay, max(b.Max, b.First))
	}
}

// Watch runs f every interval beside the workers, counted with them (see
// Go), until claiming stops (StopClaiming) or runCtx ends; ctx, which f
// gets, then ends with cause. runCtx is the run context given to Start's
// before, for work f starts with Go. A watchdog never outlives the
// claiming: once a daemon stops, what it would find is the next start's to
// recover.
func (p *Pool[T]) Watch(runCtx context.Context, interval time.Duration, cause error, f func(ctx, runCtx context.Context)) {
	p.Go(runCtx, func(runCtx context.Context) {
		ctx, done := p.WhileClaiming(runCtx, cause)
		defer done()
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				f(ctx, runCtx)
			}
		}
	})
}
