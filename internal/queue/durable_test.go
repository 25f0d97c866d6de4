package queue

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"slipway/record"
)

// A write that fails is tried again with a growing delay until it is
// written; each new reason is told once.
func TestWriteResultRetriesUntilWritten(t *testing.T) {
	full, busy := errors.New("disk full"), errors.New("database is locked")
	fails := []error{full, full, busy, busy, full}
	var told []string
	var delays []time.Duration
	n, err := WriteResult(t.Context(), Backoff{First: time.Millisecond, Max: 4 * time.Millisecond}, time.Second,
		func(ctx context.Context) error {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if len(fails) == 0 {
				return nil
			}
			err := fails[0]
			fails = fails[1:]
			return err
		},
		func(err error, retryIn time.Duration) {
			told = append(told, err.Error())
			delays = append(delays, retryIn)
		})
	if err != nil || n != 6 {
		t.Fatalf("WriteResult = %d, %v; want written at attempt 6", n, err)
	}
	if fmt.Sprint(told) != "[disk full database is locked disk full]" {
		t.Errorf("told %q, want each new reason once", told)
	}
	if fmt.Sprint(delays) != "[1ms 4ms 4ms]" {
		t.Errorf("delays when told %v, want [1ms 4ms 4ms] (1, 2, 4, 4, 4 ms)", delays)
	}
}

// An error that no later attempt would mend ends the retries at once.
func TestWriteResultStopsOnRefusal(t *testing.T) {
	for _, sentinel := range []error{record.ErrConflict, record.ErrNotFound, record.ErrInvalid} {
		calls := 0
		n, err := WriteResult(t.Context(), Backoff{First: time.Millisecond, Max: time.Millisecond}, time.Second,
			func(context.Context) error { calls++; return fmt.Errorf("finish 7: %w", sentinel) },
			func(error, time.Duration) { t.Errorf("%v was told as a failure to retry", sentinel) })
		if !errors.Is(err, sentinel) || n != 1 || calls != 1 {
			t.Errorf("WriteResult = %d, %v after %d calls; want %v after one", n, err, calls, sentinel)
		}
	}
}

// When life ends the retries give up, with the last failure; an attempt
// under way gets its own context, not ended with life.
func TestWriteResultGivesUpWhenLifeEnds(t *testing.T) {
	life, cancel := context.WithCancel(t.Context())
	full := errors.New("disk full")
	n, err := WriteResult(life, Backoff{First: time.Millisecond, Max: time.Millisecond}, time.Second,
		func(ctx context.Context) error {
			cancel() // the daemon's patience ends during the first write
			if ctx.Err() != nil {
				t.Error("the write's context ended with life")
			}
			return full
		}, nil)
	if !errors.Is(err, full) || n != 1 {
		t.Errorf("WriteResult = %d, %v; want to give up after one attempt with %v", n, err, full)
	}
}

// Watch calls its function until claiming stops, then ends: Shutdown,
// which waits for it, returns in time.
func TestWatchEndsWhenClaimingStops(t *testing.T) {
	q := &items{}
	p, err := New(Options[int]{Tick: time.Hour, Claim: q.claim, Run: func(context.Context, int) {}})
	if err != nil {
		t.Fatal(err)
	}
	ticks := make(chan struct{}, 1)
	err = p.Start(t.Context(), errStop, func(runCtx context.Context) error {
		p.Watch(runCtx, time.Millisecond, errStop, func(context.Context, context.Context) {
			select {
			case ticks <- struct{}{}:
			default:
			}
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		select {
		case <-ticks:
		case <-time.After(30 * time.Second):
			t.Fatal("the watchdog does not tick")
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := p.Shutdown(ctx, errStop); err != nil {
		t.Fatalf("Shutdown: %v (the watchdog did not end when claiming stopped)", err)
	}
}
