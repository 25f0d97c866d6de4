package store

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// manual returns a queued manual build of repo's ref at commit n.
func manual(repo, ref string, n int) Build {
	return Build{Repo: repo, Ref: ref, Commit: oid(n), Trigger: TriggerManual}
}

func mustEnqueue(t *testing.T, s *Store, bs ...Build) Enqueued {
	t.Helper()
	out, err := s.EnqueueBuilds(t.Context(), bs)
	if err != nil {
		t.Fatalf("EnqueueBuilds: %v", err)
	}
	return out
}

func mustClaim(t *testing.T, s *Store) Build {
	t.Helper()
	b, ok, err := s.ClaimBuild(t.Context(), "w")
	if err != nil || !ok {
		t.Fatalf("ClaimBuild = %v, %v; want a build", ok, err)
	}
	return b
}

func mustGet(t *testing.T, s *Store, id int64) Build {
	t.Helper()
	b, err := s.GetBuild(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// wantEnded checks that b, described by what, ended in state with reason
// and a finish time.
func wantEnded(t *testing.T, what string, b Build, state State, reason string) {
	t.Helper()
	if b.State != state || b.Reason != reason || b.FinishedAt.IsZero() {
		t.Errorf("%s = %+v; want %s with reason %q and a finish time", what, b, state, reason)
	}
}

// wantState checks that build id is recorded in state; why says what it
// means when it is not.
func wantState(t *testing.T, s *Store, id int64, state State, why string) {
	t.Helper()
	if got := mustGet(t, s, id); got.State != state {
		t.Errorf("%s: build %d is %s, want %s", why, id, got.State, state)
	}
}

// mustRecover runs RecoverInterrupted and returns the builds it queued
// again and those it stopped.
func mustRecover(t *testing.T, s *Store) (requeued, stopped []Build) {
	t.Helper()
	requeued, stopped, err := s.RecoverInterrupted(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return requeued, stopped
}

func TestRecordPushAndEnqueue(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	ctx := t.Context()
	p := Push{Repo: "app", User: "alice", Refs: []RefUpdate{
		{Name: "refs/heads/main", Old: oid(1), New: oid(2)},
		{Name: "refs/heads/dev", Old: zero, New: oid(3)},
	}}
	out, err := s.RecordPushAndEnqueue(ctx, p, []Build{
		{Repo: "app", Ref: "refs/heads/main", Commit: oid(2)},
		{Repo: "app", Ref: "refs/heads/dev", Commit: oid(3), State: StateSkipped, Reason: "no .slipway.toml in " + oid(3)[:7]},
	}, nil)
	if err != nil {
		t.Fatalf("RecordPushAndEnqueue: %v", err)
	}
	if out.PushID == 0 || len(out.Builds) != 2 {
		t.Fatalf("outcome = %+v", out)
	}
	q, sk := out.Builds[0], out.Builds[1]
	if q.PushID != out.PushID || q.Trigger != TriggerPush || q.Pipeline != DefaultPipeline || q.State != StateQueued || q.Attempt != 0 {
		t.Errorf("queued build = %+v", q)
	}
	if !q.StartedAt.IsZero() || !q.FinishedAt.IsZero() || q.CreatedAt.IsZero() {
		t.Errorf("queued build times: created %v started %v finished %v", q.CreatedAt, q.StartedAt, q.FinishedAt)
	}
	if sk.State != StateSkipped || sk.FinishedAt.IsZero() || !strings.HasPrefix(sk.Reason, "no .slipway.toml") {
		t.Errorf("skipped build = %+v", sk)
	}
	if got := mustGet(t, s, q.ID); !reflect.DeepEqual(got, q) {
		t.Errorf("GetBuild =\n %+v\nwant what enqueue returned\n %+v", got, q)
	}
	// Only the queued one is claimable.
	if c := mustClaim(t, s); c.ID != q.ID {
		t.Errorf("claimed %d, want %d", c.ID, q.ID)
	}
	if _, ok, _ := s.ClaimBuild(ctx, "w"); ok {
		t.Error("a skipped build was claimed")
	}
}

func TestRecordPushAndEnqueueIsAtomic(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	ctx := t.Context()
	p := Push{Repo: "app", User: "alice", Refs: []RefUpdate{{Name: "refs/heads/main", Old: oid(1), New: oid(2)}}}
	_, err := s.RecordPushAndEnqueue(ctx, p, []Build{
		{Repo: "app", Ref: "refs/heads/main", Commit: oid(2)},
		{Repo: "app", Ref: "refs/heads/main", Commit: "not-an-id"},
	}, nil)
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("err = %v, want ErrInvalid", err)
	}
	last, _ := s.LastPushes(ctx)
	bs, _ := s.ListBuilds(ctx, "", 0)
	if len(last) != 0 || len(bs) != 0 {
		t.Errorf("a refused push left %d push and %d build records", len(last), len(bs))
	}
}

func TestEnqueueRefusesBadBuilds(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	for name, b := range map[string]Build{
		"no repo":         {Ref: "refs/heads/main", Commit: oid(1), Trigger: TriggerManual},
		"short ref":       {Repo: "a", Ref: "main", Commit: oid(1), Trigger: TriggerManual},
		"zero commit":     {Repo: "a", Ref: "refs/heads/main", Commit: zero, Trigger: TriggerManual},
		"no trigger":      {Repo: "a", Ref: "refs/heads/main", Commit: oid(1)},
		"push no push":    {Repo: "a", Ref: "refs/heads/main", Commit: oid(1), Trigger: TriggerPush},
		"running":         {Repo: "a", Ref: "refs/heads/main", Commit: oid(1), Trigger: TriggerManual, State: StateRunning},
		"skip, no reason": {Repo: "a", Ref: "refs/heads/main", Commit: oid(1), Trigger: TriggerManual, State: StateSkipped},
		"unknown push":    {Repo: "a", Ref: "refs/heads/main", Commit: oid(1), PushID: 99},
	} {
		if _, err := s.EnqueueBuilds(t.Context(), []Build{b}); err == nil {
			t.Errorf("%s: enqueued %+v", name, b)
		}
	}
}

func TestNewerBuildSupersedesQueuedOfSameRef(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	first := mustEnqueue(t, s, manual("app", "refs/heads/main", 1)).Builds[0]
	running := mustClaim(t, s)
	if running.ID != first.ID {
		t.Fatal("expected the first build to run")
	}
	queued := mustEnqueue(t, s, manual("app", "refs/heads/main", 2)).Builds[0]
	other := mustEnqueue(t, s,
		manual("app", "refs/heads/dev", 3),    // other ref
		manual("other", "refs/heads/main", 4), // other repo
		Build{Repo: "app", Ref: "refs/heads/main", Commit: oid(5), Trigger: TriggerSchedule, Schedule: "nightly", Pipeline: "nightly"},
	).Builds

	out := mustEnqueue(t, s, manual("app", "refs/heads/main", 6))
	newest := out.Builds[0]
	if len(out.Superseded) != 1 || out.Superseded[0].ID != queued.ID {
		t.Fatalf("superseded = %+v, want only build %d", out.Superseded, queued.ID)
	}
	wantEnded(t, "superseded build", mustGet(t, s, queued.ID), StateSuperseded, fmt.Sprintf("superseded by build %d", newest.ID))
	if len(out.Running) != 1 || out.Running[0].ID != running.ID {
		t.Errorf("running builds of the ref = %+v, want build %d reported", out.Running, running.ID)
	}
	wantState(t, s, running.ID, StateRunning, "the running build must keep running")
	for _, b := range other {
		wantState(t, s, b.ID, StateQueued, fmt.Sprintf("build of %s %s pipeline %s was touched", b.Repo, b.Ref, b.Pipeline))
	}
	// A retry of an old build does not push newer work aside.
	if err := s.FinishBuild(t.Context(), running.ID, StateFailed, "", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RetryBuild(t.Context(), running.ID); err != nil {
		t.Fatal(err)
	}
	wantState(t, s, newest.ID, StateQueued, "a retry superseded the newest build")
}

func TestSupersedeWithinOneBatch(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	out := mustEnqueue(t, s, manual("app", "refs/heads/main", 1), manual("app", "refs/heads/main", 2))
	if out.Builds[0].State != StateSuperseded || out.Builds[1].State != StateQueued {
		t.Errorf("states in batch = %s, %s; want superseded, queued", out.Builds[0].State, out.Builds[1].State)
	}
}

// TestConcurrentClaimersClaimEachBuildOnce: 50 builds, two workers claiming
// and finishing at once; every build runs exactly once.
func TestConcurrentClaimersClaimEachBuildOnce(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	ctx := t.Context()
	var bs []Build
	for i := range 50 {
		// Distinct refs so nothing supersedes anything.
		bs = append(bs, manual(fmt.Sprint("repo", i%3), fmt.Sprintf("refs/heads/b%d", i), i))
	}
	want := mustEnqueue(t, s, bs...).Builds

	var mu sync.Mutex
	claims := map[int64]int{}
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Go(func() {
			for {
				b, ok, err := s.ClaimBuild(ctx, fmt.Sprint("worker", w))
				if err != nil {
					t.Error(err)
					return
				}
				if !ok {
					return
				}
				mu.Lock()
				claims[b.ID]++
				mu.Unlock()
				if err := s.FinishBuild(ctx, b.ID, StatePassed, "", []StepResult{{Name: "true", Duration: time.Millisecond}}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	for _, b := range want {
		if claims[b.ID] != 1 {
			t.Errorf("build %d claimed %d times", b.ID, claims[b.ID])
		}
		if got := mustGet(t, s, b.ID); got.State != StatePassed || got.Attempt != 1 {
			t.Errorf("build %d ended %s after %d attempts", b.ID, got.State, got.Attempt)
		}
	}
	if len(claims) != len(want) {
		t.Errorf("%d distinct builds claimed, want %d", len(claims), len(want))
	}
}

func TestClaimIsFairBetweenRepos(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	var busy []Build
	for i := range 10 {
		busy = append(busy, manual("busy", fmt.Sprintf("refs/heads/b%d", i), i))
	}
	mustEnqueue(t, s, busy...)
	// The quiet repo's builds come after all ten of the busy repo's.
	mustEnqueue(t, s, manual("quiet", "refs/heads/x", 100), manual("quiet", "refs/heads/y", 101))

	var order []string
	for range 5 {
		order = append(order, mustClaim(t, s).Repo)
	}
	want := []string{"busy", "quiet", "busy", "quiet", "busy"}
	if !slices.Equal(order, want) {
		t.Errorf("claim order = %v, want %v (fewest running first, then oldest)", order, want)
	}
}

func TestClaimSetsRunningFields(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	b := mustEnqueue(t, s, manual("app", "refs/heads/main", 1)).Builds[0]
	before := time.Now().Add(-time.Second)
	c, ok, err := s.ClaimBuild(t.Context(), "worker-7")
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	if c.ID != b.ID || c.State != StateRunning || c.Attempt != 1 || c.Worker != "worker-7" || c.StartedAt.Before(before) {
		t.Errorf("claimed build = %+v", c)
	}
	if _, ok, err := s.ClaimBuild(t.Context(), "w"); ok || err != nil {
		t.Errorf("claim from an empty queue = %v, %v", ok, err)
	}
}

func TestFinishBuildOnlyFromRunning(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	ctx := t.Context()
	b := mustEnqueue(t, s, manual("app", "refs/heads/main", 1)).Builds[0]
	if err := s.FinishBuild(ctx, b.ID, StatePassed, "", nil); !errors.Is(err, ErrConflict) {
		t.Errorf("finish of a queued build: %v, want ErrConflict", err)
	}
	mustClaim(t, s)
	if err := s.FinishBuild(ctx, b.ID, StateQueued, "", nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("finish as queued: %v, want ErrInvalid", err)
	}
	steps := []StepResult{{Name: "go vet ./...", ExitCode: 0, Duration: 1500 * time.Millisecond}, {Name: "go test ./...", ExitCode: 2, Duration: 3 * time.Second}}
	if err := s.FinishBuild(ctx, b.ID, StateFailed, "step 2 exited with 2", steps); err != nil {
		t.Fatal(err)
	}
	got := mustGet(t, s, b.ID)
	wantEnded(t, "finished build", got, StateFailed, "step 2 exited with 2")
	if !reflect.DeepEqual(got.Steps, steps) {
		t.Errorf("finished build steps = %+v, want %+v", got.Steps, steps)
	}
	if err := s.FinishBuild(ctx, b.ID, StatePassed, "", nil); !errors.Is(err, ErrConflict) {
		t.Errorf("second finish: %v, want ErrConflict", err)
	}
	wantState(t, s, b.ID, StateFailed, "a late finish overwrote the result")
	if err := s.FinishBuild(ctx, 999, StatePassed, "", nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("finish of a missing build: %v, want ErrNotFound", err)
	}
}

func TestCancelBuild(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	ctx := t.Context()
	out := mustEnqueue(t, s, manual("app", "refs/heads/a", 1), manual("app", "refs/heads/b", 2))
	run := mustClaim(t, s)
	queued := out.Builds[1]

	prev, err := s.CancelBuild(ctx, queued.ID, "cancelled by alice")
	if err != nil || prev != StateQueued {
		t.Fatalf("cancel queued = %s, %v", prev, err)
	}
	wantEnded(t, "cancelled build", mustGet(t, s, queued.ID), StateCancelled, "cancelled by alice")

	prev, err = s.CancelBuild(ctx, run.ID, "cancelled by alice")
	if err != nil || prev != StateRunning {
		t.Fatalf("cancel running = %s, %v", prev, err)
	}
	wantState(t, s, run.ID, StateRunning, "a running build's record changed before its processes were stopped")
	if err := s.FinishBuild(ctx, run.ID, StateCancelled, "cancelled by alice", nil); err != nil {
		t.Fatal(err)
	}
	prev, err = s.CancelBuild(ctx, run.ID, "")
	if !errors.Is(err, ErrConflict) || prev != StateCancelled {
		t.Errorf("cancel of a finished build = %s, %v; want cancelled, ErrConflict", prev, err)
	}
	if _, err := s.CancelBuild(ctx, 999, ""); !errors.Is(err, ErrNotFound) {
		t.Errorf("cancel of a missing build: %v", err)
	}
}

func TestRetryBuild(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	ctx := t.Context()
	b := mustEnqueue(t, s, Build{Repo: "app", Ref: "refs/heads/main", Commit: oid(1), Trigger: TriggerSchedule, Schedule: "nightly", Pipeline: "nightly"}).Builds[0]
	if _, err := s.RetryBuild(ctx, b.ID); !errors.Is(err, ErrConflict) {
		t.Errorf("retry of a queued build: %v, want ErrConflict", err)
	}
	mustClaim(t, s)
	if err := s.FinishBuild(ctx, b.ID, StateFailed, "", nil); err != nil {
		t.Fatal(err)
	}
	r, err := s.RetryBuild(ctx, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	if r.ID == b.ID || r.State != StateQueued || r.Trigger != TriggerRetry || r.RetryOf != b.ID || r.PushID != 0 ||
		r.Repo != b.Repo || r.Ref != b.Ref || r.Commit != b.Commit || r.Pipeline != "nightly" || r.Schedule != "nightly" {
		t.Errorf("retry = %+v", r)
	}
	if _, err := s.RetryBuild(ctx, 999); !errors.Is(err, ErrNotFound) {
		t.Errorf("retry of a missing build: %v", err)
	}
}

// TestRecoverInterruptedOnceOnly simulates the daemon dying twice during the
// same build: the first time it goes back to the queue as the same build,
// the second time it stays interrupted.
func TestRecoverInterruptedOnceOnly(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := t.TempDir() + "/slipway.db"
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	b := mustEnqueue(t, s, manual("app", "refs/heads/main", 1)).Builds[0]
	mustClaim(t, s)
	s.Close() // the daemon dies with the build running

	s, err = Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { s.Close() }()
	requeued, stopped := mustRecover(t, s)
	if len(requeued) != 1 || len(stopped) != 0 || requeued[0].ID != b.ID {
		t.Fatalf("first recovery: requeued %+v stopped %+v", requeued, stopped)
	}
	r := requeued[0]
	if r.State != StateQueued || r.Attempt != 1 || !r.StartedAt.IsZero() || r.Worker != "" || !strings.Contains(r.Reason, "interrupted") {
		t.Errorf("re-queued build = %+v", r)
	}
	again := mustClaim(t, s)
	if again.ID != b.ID || again.Attempt != 2 {
		t.Errorf("second claim = id %d attempt %d, want id %d attempt 2", again.ID, again.Attempt, b.ID)
	}
	s.Close() // dies again

	s, err = Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	requeued, stopped = mustRecover(t, s)
	if len(requeued) != 0 || len(stopped) != 1 {
		t.Fatalf("second recovery: requeued %+v stopped %+v", requeued, stopped)
	}
	if got := mustGet(t, s, b.ID); got.State != StateInterrupted || got.FinishedAt.IsZero() || !strings.Contains(got.Reason, "not queued again") {
		t.Errorf("twice interrupted build = %+v", got)
	}
	if _, ok, _ := s.ClaimBuild(ctx, "w"); ok {
		t.Error("a twice interrupted build was claimable")
	}
}

func TestRecoverInterruptedDefersToNewerQueuedBuild(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	old := mustEnqueue(t, s, manual("app", "refs/heads/main", 1)).Builds[0]
	mustClaim(t, s)
	newer := mustEnqueue(t, s, manual("app", "refs/heads/main", 2)).Builds[0]
	requeued, stopped := mustRecover(t, s)
	if len(requeued) != 0 || len(stopped) != 1 || stopped[0].State != StateSuperseded ||
		!strings.Contains(stopped[0].Reason, fmt.Sprintf("superseded by build %d", newer.ID)) {
		t.Errorf("recovery with a newer build queued: requeued %+v stopped %+v", requeued, stopped)
	}
	if got := mustClaim(t, s); got.ID != newer.ID || got.ID == old.ID {
		t.Errorf("claimed %d, want the newer build %d", got.ID, newer.ID)
	}
}

func TestListBuilds(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	ctx := t.Context()
	var ids []int64
	for i := range 6 {
		b := mustEnqueue(t, s, manual([]string{"a", "b"}[i%2], fmt.Sprintf("refs/heads/x%d", i), i)).Builds[0]
		ids = append(ids, b.ID)
	}
	all, err := s.ListBuilds(ctx, "", 0)
	if err != nil || len(all) != 6 || all[0].ID != ids[5] || all[5].ID != ids[0] {
		t.Fatalf("ListBuilds all = %d builds, %v", len(all), err)
	}
	a, err := s.ListBuilds(ctx, "a", 2)
	if err != nil || len(a) != 2 || a[0].ID != ids[4] || a[1].ID != ids[2] {
		t.Errorf("ListBuilds(a, 2) = %+v, %v", a, err)
	}
	none, err := s.ListBuilds(ctx, "nope", 10)
	if err != nil || len(none) != 0 {
		t.Errorf("ListBuilds of an unknown repo = %v, %v", none, err)
	}
}

func TestRecordSkipped(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	b, err := s.RecordSkipped(t.Context(), manual("app", "refs/heads/main", 1), "no .slipway.toml")
	if err != nil {
		t.Fatal(err)
	}
	wantEnded(t, "skipped", b, StateSkipped, "no .slipway.toml")
}

// ClaimBuildExcept passes over the builds of the repos it is told to skip,
// verify builds too, and leaves them queued in their place.
func TestClaimBuildExceptPassesOverSkippedRepos(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	ctx := t.Context()
	far := mustEnqueue(t, s, manual("far", "refs/heads/main", 1), manual("near", "refs/heads/main", 2)).Builds
	farVerify := mustEnqueue(t, s, verifyBuild("far", "refs/heads/next", 3)).Builds[0]
	skipFar := func(repo string) bool { return repo == "far" }
	b, ok, err := s.ClaimBuildExcept(ctx, "w", skipFar)
	if err != nil || !ok || b.ID != far[1].ID {
		t.Fatalf("ClaimBuildExcept(skip far) = build %d, %v, %v; want near's build %d", b.ID, ok, err, far[1].ID)
	}
	if _, ok, err := s.ClaimBuildExcept(ctx, "w", skipFar); ok || err != nil {
		t.Fatalf("with only far's builds queued, ClaimBuildExcept(skip far) = %v, %v; want nothing", ok, err)
	}
	wantState(t, s, far[0].ID, StateQueued, "skipped build")
	wantState(t, s, farVerify.ID, StateQueued, "skipped verify build")
	// Not skipped any more: the verify build first, then the other.
	if c := mustClaim(t, s); c.ID != farVerify.ID || c.Attempt != 1 {
		t.Errorf("claimed %d (attempt %d), want the verify build %d on attempt 1", c.ID, c.Attempt, farVerify.ID)
	}
	if c := mustClaim(t, s); c.ID != far[0].ID {
		t.Errorf("claimed %d, want %d", c.ID, far[0].ID)
	}
}
