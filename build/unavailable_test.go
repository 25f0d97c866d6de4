package build

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"slipway/build/executor"
	"slipway/record"
)

// startFar starts a service with buildTOML, repository "app" on the local
// executor and "far" on the Kubernetes one, which kube makes out of the
// local executor.
func startFar(t *testing.T, buildTOML string, kube func(local executor.Executor) executor.Executor) *testEnv {
	t.Helper()
	e := newEnv(t, buildTOML, appRepo+`[[repo]]
name = "far"
executor = "kubernetes"
[kubernetes]
helper_image = "helper"
transfer_listen = "127.0.0.1:0"
transfer_url = "http://127.0.0.1:1"
`)
	e.kube = kube
	e.svc = e.newService()
	e.start()
	return e
}

// unreachable stands for a Kubernetes executor whose API server cannot be
// reached while down is set; otherwise it runs jobs on the local executor.
type unreachable struct {
	executor.Executor
	down  atomic.Bool
	tries atomic.Int32
}

func (u *unreachable) Run(ctx context.Context, job executor.Job) (executor.Result, error) {
	u.tries.Add(1)
	if u.down.Load() {
		return executor.Result{}, &executor.UnavailableError{Err: errors.New("the Kubernetes API server cannot be reached: connection refused")}
	}
	return u.Executor.Run(ctx, job)
}

// A build whose executor cannot be reached goes back to the queue without
// spending an attempt and waits there with the reason, while the builds of
// the other executor are claimed at once, not held with it; once the
// executor answers, the build runs on its first attempt.
func TestUnreachableExecutorHoldsOnlyItsBuilds(t *testing.T) {
	t.Parallel()
	far := &unreachable{}
	far.down.Store(true)
	e := startFar(t, "", func(local executor.Executor) executor.Executor { far.Executor = local; return far })
	const pipeline = "[build]\nsteps = [\"true\"]\n"
	e.pushPipeline(e.newRepo("far"), "refs/heads/main", pipeline)

	var requeued time.Time
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		b, err := e.st.GetBuild(t.Context(), 1)
		if err != nil {
			t.Fatal(err)
		}
		if far.tries.Load() > 0 && b.State == record.StateQueued {
			if !strings.Contains(b.Reason, "waiting in the queue") || !strings.Contains(b.Reason, "cannot be reached") {
				t.Fatalf("queued again with reason %q, want it to say it waits and why", b.Reason)
			}
			requeued = time.Now()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("build 1 is %s (%s) after 30 s, %d runs; want queued again", b.State, b.Reason, far.tries.Load())
		}
	}

	e.pushPipeline(e.newRepo("app"), "refs/heads/main", pipeline)
	local := e.waitFinal(2)
	if local.State != record.StatePassed {
		t.Fatalf("the local build: %s %s", local.State, local.Reason)
	}
	if waited := local.StartedAt.Sub(requeued); waited > claimHold-time.Second {
		t.Errorf("the local build started %s after the other executor's build went back to the queue: held with it", waited)
	}
	if b, _ := e.st.GetBuild(t.Context(), 1); b.State != record.StateQueued {
		t.Fatalf("the unreachable executor's build is %s (%s) while it is down, want queued", b.State, b.Reason)
	}

	far.down.Store(false)
	b := e.waitFinal(1)
	if b.State != record.StatePassed || b.Attempt != 1 {
		t.Errorf("once reachable, build 1 ended %s on attempt %d (%s); want passed on attempt 1", b.State, b.Attempt, b.Reason)
	}
	if n := far.tries.Load(); n < 2 {
		t.Errorf("the executor was tried %d times, want the requeued build tried again", n)
	}
}

// capped stands for a Kubernetes executor with max_concurrent = 1: each
// Run waits for a release, and the most Runs at once is recorded.
type capped struct {
	executor.Executor
	release chan struct{}
	mu      sync.Mutex
	now     int
	most    int
}

func (c *capped) MaxConcurrent() int { return 1 }

func (c *capped) Run(ctx context.Context, job executor.Job) (executor.Result, error) {
	c.mu.Lock()
	c.now++
	c.most = max(c.most, c.now)
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.now--
		c.mu.Unlock()
	}()
	select {
	case <-c.release:
	case <-ctx.Done():
	}
	return c.Executor.Run(ctx, job)
}

func (c *capped) inRun() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Builds over an executor's cap wait in the queue, shown as queued, and
// hold no worker: the other executor's builds run meanwhile, and each
// waiting build starts when a slot frees.
func TestExecutorCapKeepsBuildsQueued(t *testing.T) {
	t.Parallel()
	far := &capped{release: make(chan struct{})}
	e := startFar(t, "concurrency = 3", func(local executor.Executor) executor.Executor { far.Executor = local; return far })
	const pipeline = "[build]\nsteps = [\"true\"]\n"
	repo := e.newRepo("far")
	sha := repo.pipelineCommit("refs/heads/main", pipeline)
	for _, ref := range []string{"refs/heads/a", "refs/heads/b", "refs/heads/c"} {
		e.push(t.Context(), "far", nil, update(ref, sha))
	}
	for deadline := time.Now().Add(30 * time.Second); far.inRun() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no build reached the capped executor in 30 s")
		}
	}
	e.pushPipeline(e.newRepo("app"), "refs/heads/main", pipeline)
	if b := e.waitFinal(4); b.State != record.StatePassed {
		t.Fatalf("the local build beside the capped ones: %s %s", b.State, b.Reason)
	}
	queued := 0
	for _, b := range e.builds("far") {
		if b.State == record.StateQueued {
			queued++
		}
	}
	if queued != 2 {
		t.Errorf("%d of far's builds queued while one runs, want 2 (the others wait in the queue)", queued)
	}
	close(far.release)
	for id := int64(1); id <= 3; id++ {
		if b := e.waitFinal(id); b.State != record.StatePassed || b.Attempt != 1 {
			t.Errorf("build %d: %s on attempt %d (%s), want passed on attempt 1", id, b.State, b.Attempt, b.Reason)
		}
	}
	far.mu.Lock()
	defer far.mu.Unlock()
	if far.most != 1 {
		t.Errorf("%d builds ran on the executor at once, want at most its cap of 1", far.most)
	}
}
