package queue

import (
	"context"
	"errors"
	"slipway/internal/testutil"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// items is a queue of ints a test fills; claims take from its head.
type items struct {
	mu   sync.Mutex
	todo []int
	ran  []int
}

func (q *items) claim(context.Context, context.Context, int) (int, bool, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.todo) == 0 {
		return 0, false, nil
	}
	it := q.todo[0]
	q.todo = q.todo[1:]
	return it, true, nil
}

func (q *items) add(it int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.todo = append(q.todo, it)
}

func (q *items) done() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.ran)
}

var errStop = errors.New("stopping")

// A wake starts queued work at once (the tick is an hour), every item runs
// once, and Shutdown waits for the running ones.
func TestPoolRunsWhatIsQueuedOnWake(t *testing.T) {
	q := &items{}
	release := make(chan struct{})
	p, err := New(Options[int]{Workers: 2, Tick: time.Hour, Claim: q.claim, Run: func(_ context.Context, it int) {
		<-release
		q.mu.Lock()
		q.ran = append(q.ran, it)
		q.mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(t.Context(), errStop, nil); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		q.add(i)
	}
	p.Wake()
	close(release)
	testutil.Eventually(t, 10*time.Second, "every item to run", func() bool { return q.done() == 10 })
	if err := p.Shutdown(t.Context(), errStop); err != nil {
		t.Fatal(err)
	}
	if n := q.done(); n != 10 {
		t.Fatalf("%d of 10 items ran", n)
	}
}

// When Shutdown's patience runs out, runs are cancelled with the cause and
// Shutdown returns only once they are gone.
func TestPoolShutdownCancelsWithCause(t *testing.T) {
	q := &items{todo: []int{1}}
	started, gone := make(chan struct{}), make(chan error, 1)
	p, err := New(Options[int]{Claim: q.claim, Run: func(ctx context.Context, _ int) {
		close(started)
		<-ctx.Done()
		gone <- context.Cause(ctx)
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(t.Context(), errStop, nil); err != nil {
		t.Fatal(err)
	}
	<-started
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if err := p.Shutdown(ctx, errStop); !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, errStop) {
		t.Fatalf("Shutdown = %v; want the deadline and the cause", err)
	}
	select {
	case cause := <-gone:
		if !errors.Is(cause, errStop) {
			t.Fatalf("run cancelled with %v, want %v", cause, errStop)
		}
	default:
		t.Fatal("Shutdown returned before the run was gone")
	}
}

// A failing before cancels and waits for what it started, and no worker
// ever claims.
func TestPoolStartFailureLeavesNothingRunning(t *testing.T) {
	q := &items{todo: []int{1}}
	p, err := New(Options[int]{Claim: q.claim, Run: func(context.Context, int) { t.Error("a worker ran an item") }})
	if err != nil {
		t.Fatal(err)
	}
	var bgCause error
	bad := errors.New("recovery failed")
	err = p.Start(t.Context(), errStop, func(runCtx context.Context) error {
		p.Go(runCtx, func(ctx context.Context) {
			<-ctx.Done()
			bgCause = context.Cause(ctx)
		})
		return bad
	})
	if !errors.Is(err, bad) {
		t.Fatalf("Start = %v, want %v", err, bad)
	}
	if !errors.Is(bgCause, errStop) {
		t.Fatalf("background work was not cancelled and waited for: %v", bgCause)
	}
}

// Once StopClaiming (the start of Shutdown) has returned, no claim begins,
// however busy the workers were: every item claimed ran, and nothing was
// claimed after. The workers are kept claiming as fast as they can (every
// claim finds an item, a wake is always pending, the tick is 1 ms), so a
// worker is in or near a claim whenever the stop comes.
func TestNothingIsClaimedAfterShutdownBegins(t *testing.T) {
	var (
		stopped      atomic.Bool
		claims, late atomic.Int64
		mu           sync.Mutex
		ran          = map[int64]bool{}
		claimed      = map[int64]bool{}
	)
	p, err := New(Options[int64]{
		Workers: 4,
		Tick:    time.Millisecond,
		Claim: func(context.Context, context.Context, int) (int64, bool, error) {
			if stopped.Load() {
				late.Add(1)
			}
			n := claims.Add(1)
			mu.Lock()
			claimed[n] = true
			mu.Unlock()
			return n, true, nil
		},
		Run: func(_ context.Context, n int64) {
			mu.Lock()
			ran[n] = true
			mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(t.Context(), errors.New("stop"), nil); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "the workers to claim", func() bool { return claims.Load() >= 200 })
	shut := make(chan error, 1)
	go func() { shut <- p.Shutdown(context.Background(), errors.New("stop")) }()
	p.StopClaiming() // returns once Shutdown's own stop has too, or before it
	stopped.Store(true)
	atStop := claims.Load()
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
	if n := late.Load(); n > 0 {
		t.Fatalf("%d claims began after claiming stopped", n)
	}
	if n := claims.Load(); n != atStop {
		t.Fatalf("%d claims after claiming stopped (%d before)", n-atStop, atStop)
	}
	mu.Lock()
	defer mu.Unlock()
	for n := range claimed {
		if !ran[n] {
			t.Errorf("item %d was claimed but never ran", n)
		}
	}
}
