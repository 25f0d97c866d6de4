package store

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
)

// passedBuild enqueues, claims and passes a build of repo at commit n.
func passedBuild(t *testing.T, s *Store, repo string, n int) Build {
	t.Helper()
	b := mustEnqueue(t, s, manual(repo, fmt.Sprintf("refs/heads/d%d", n), n)).Builds[0]
	if c := mustClaim(t, s); c.ID != b.ID {
		t.Fatalf("claimed %d, want %d", c.ID, b.ID)
	}
	if err := s.FinishBuild(t.Context(), b.ID, StatePassed, "", nil); err != nil {
		t.Fatal(err)
	}
	return mustGet(t, s, b.ID)
}

func mustClaimDeploy(t *testing.T, s *Store) Deployment {
	t.Helper()
	d, ok, err := s.ClaimDeployment(t.Context())
	if err != nil || !ok {
		t.Fatalf("ClaimDeployment = %v, %v; want a deployment", ok, err)
	}
	return d
}

// mustEnqueueDeploy queues d.
func mustEnqueueDeploy(t *testing.T, s *Store, d Deployment) Deployment {
	t.Helper()
	d, err := s.EnqueueDeployment(t.Context(), d)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// endedDeploy queues d, claims it and finishes it in state end.
func endedDeploy(t *testing.T, s *Store, d Deployment, end DeployState) Deployment {
	t.Helper()
	d = mustEnqueueDeploy(t, s, d)
	if c := mustClaimDeploy(t, s); c.ID != d.ID {
		t.Fatalf("claimed %d, want %d", c.ID, d.ID)
	}
	if err := s.FinishDeployment(t.Context(), d.ID, end, ""); err != nil {
		t.Fatal(err)
	}
	return d
}

func TestDeploymentLifecycle(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	ctx := t.Context()
	b := passedBuild(t, s, "app", 1)
	d := mustEnqueueDeploy(t, s, Deployment{BuildID: b.ID, Env: "staging", Trigger: DeployAuto})
	if d.Repo != "app" || d.Commit != b.Commit || d.State != DeployQueued || d.CreatedAt.IsZero() {
		t.Errorf("queued deployment = %+v", d)
	}
	c := mustClaimDeploy(t, s)
	if c.ID != d.ID || c.State != DeployRunning || c.StartedAt.IsZero() {
		t.Errorf("claimed = %+v", c)
	}
	if err := s.SetDeploymentRelease(ctx, d.ID, "20250101-000000-"+b.Commit[:7]); err != nil {
		t.Fatal(err)
	}
	if err := s.FinishDeployment(ctx, d.ID, DeploySucceeded, ""); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetDeployment(ctx, d.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != DeploySucceeded || got.FinishedAt.IsZero() || !strings.HasSuffix(got.ReleaseID, b.Commit[:7]) {
		t.Errorf("finished deployment = %+v", got)
	}
	if err := s.FinishDeployment(ctx, d.ID, DeployFailed, "late"); !errors.Is(err, ErrConflict) {
		t.Errorf("second finish: %v, want ErrConflict", err)
	}
	if err := s.SetDeploymentRelease(ctx, d.ID, "x"); !errors.Is(err, ErrConflict) {
		t.Errorf("release of a finished deployment: %v, want ErrConflict", err)
	}
	if err := s.FinishDeployment(ctx, 999, DeployFailed, ""); !errors.Is(err, ErrNotFound) {
		t.Errorf("finish of a missing deployment: %v", err)
	}
	if _, err := s.GetDeployment(ctx, 999); !errors.Is(err, ErrNotFound) {
		t.Errorf("get of a missing deployment: %v", err)
	}
}

func TestOnlyPassedBuildsAreDeployed(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	ctx := t.Context()
	b := passedBuild(t, s, "app", 2)
	q := mustEnqueue(t, s, manual("app", "refs/heads/main", 1)).Builds[0]
	if _, err := s.EnqueueDeployment(ctx, Deployment{BuildID: q.ID, Env: "prod", Trigger: DeployRelease}); !errors.Is(err, ErrConflict) {
		t.Errorf("deployment of a queued build: %v, want ErrConflict", err)
	}
	for name, d := range map[string]Deployment{
		"missing build": {BuildID: 999, Env: "prod", Trigger: DeployRelease},
		"other repo":    {BuildID: b.ID, Repo: "other", Env: "prod", Trigger: DeployRelease},
		"other commit":  {BuildID: b.ID, Commit: oid(77), Env: "prod", Trigger: DeployRelease},
		"no env":        {BuildID: b.ID, Trigger: DeployRelease},
		"bad trigger":   {BuildID: b.ID, Env: "prod", Trigger: "yolo"},
	} {
		if _, err := s.EnqueueDeployment(ctx, d); err == nil {
			t.Errorf("%s: deployment recorded", name)
		}
	}
}

func TestClaimDeploymentOneAtATimePerEnvInOrder(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	ctx := t.Context()
	b1, b2, b3 := passedBuild(t, s, "app", 1), passedBuild(t, s, "app", 2), passedBuild(t, s, "app", 3)
	enq := func(b Build, env string) Deployment {
		return mustEnqueueDeploy(t, s, Deployment{BuildID: b.ID, Env: env, Trigger: DeployAuto})
	}
	s1, s2, p1, s3 := enq(b1, "staging"), enq(b2, "staging"), enq(b1, "prod"), enq(b3, "staging")

	if c := mustClaimDeploy(t, s); c.ID != s1.ID {
		t.Fatalf("first claim = %d, want staging's first %d", c.ID, s1.ID)
	}
	// staging is busy: prod's head goes next, then nothing.
	if c := mustClaimDeploy(t, s); c.ID != p1.ID {
		t.Fatalf("second claim = %d, want prod's %d", c.ID, p1.ID)
	}
	if d, ok, err := s.ClaimDeployment(ctx); ok || err != nil {
		t.Fatalf("claimed %+v while both environments are busy (err %v)", d, err)
	}
	if err := s.FinishDeployment(ctx, s1.ID, DeployFailed, "target unreachable"); err != nil {
		t.Fatal(err)
	}
	if c := mustClaimDeploy(t, s); c.ID != s2.ID {
		t.Fatalf("after staging's first ended, claimed %d, want %d (in order)", c.ID, s2.ID)
	}
	if err := s.FinishDeployment(ctx, s2.ID, DeploySucceeded, ""); err != nil {
		t.Fatal(err)
	}
	if c := mustClaimDeploy(t, s); c.ID != s3.ID {
		t.Fatalf("claimed %d, want %d", c.ID, s3.ID)
	}
}

func TestRunningDeploymentsAndNote(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	ctx := t.Context()
	b := passedBuild(t, s, "app", 1)
	run, _ := s.EnqueueDeployment(ctx, Deployment{BuildID: b.ID, Env: "staging", Trigger: DeployAuto})
	mustClaimDeploy(t, s)
	queued, _ := s.EnqueueDeployment(ctx, Deployment{BuildID: b.ID, Env: "staging", Trigger: DeployRetry})
	got, err := s.RunningDeployments(ctx)
	if err != nil || len(got) != 1 || got[0].ID != run.ID {
		t.Fatalf("running = %+v, %v; want deployment %d", got, err, run.ID)
	}
	if err := s.NoteDeployment(ctx, run.ID, "still running"); !errors.Is(err, ErrConflict) {
		t.Errorf("note on a running deployment: %v, want ErrConflict", err)
	}
	if err := s.FinishDeployment(ctx, run.ID, DeploySucceeded, "live; activate state unknown"); err != nil {
		t.Fatal(err)
	}
	if err := s.NoteDeployment(ctx, run.ID, "live; activate ran again: ok"); err != nil {
		t.Fatal(err)
	}
	if d, _ := s.GetDeployment(ctx, run.ID); d.State != DeploySucceeded || d.Reason != "live; activate ran again: ok" {
		t.Errorf("noted deployment = %+v", d)
	}
	if c := mustClaimDeploy(t, s); c.ID != queued.ID {
		t.Errorf("the queued deployment did not survive: claimed %d", c.ID)
	}
}

func digestOf(n int) string { return fmt.Sprintf("sha256:%064x", n) }

func TestArtifactsDigestTravelsWithDeployments(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	ctx := t.Context()
	b := mustEnqueue(t, s, manual("app", "refs/heads/main", 1)).Builds[0]
	mustClaim(t, s)
	if err := s.SetArtifactsDigest(ctx, b.ID, digestOf(1)); err != nil {
		t.Fatal(err)
	}
	// A running build may set it again (its artifacts were copied again).
	if err := s.SetArtifactsDigest(ctx, b.ID, digestOf(2)); err != nil {
		t.Fatal(err)
	}
	ds, err := s.FinishBuildAndDeploy(ctx, b.ID, StatePassed, "", nil, []Deployment{{Env: "staging", Trigger: DeployAuto}})
	if err != nil {
		t.Fatal(err)
	}
	if got := mustGet(t, s, b.ID); got.ArtifactsDigest != digestOf(2) {
		t.Errorf("build digest %q, want %q", got.ArtifactsDigest, digestOf(2))
	}
	if len(ds) != 1 || ds[0].Digest != digestOf(2) {
		t.Errorf("the auto deployment did not take the build's digest: %+v", ds)
	}
	if err := s.SetArtifactsDigest(ctx, b.ID, digestOf(3)); !errors.Is(err, ErrConflict) {
		t.Errorf("replacing a finished build's digest: %v, want ErrConflict", err)
	}
	if _, err := s.EnqueueDeployment(ctx, Deployment{BuildID: b.ID, Env: "prod", Trigger: DeployRelease, Digest: digestOf(3)}); !errors.Is(err, ErrConflict) {
		t.Errorf("a deployment claiming other artifacts than its build's: %v, want ErrConflict", err)
	}

	// A build from before digests: its deployments get the digest once a
	// deployment computes it.
	old := passedBuild(t, s, "app", 2)
	d, err := s.EnqueueDeployment(ctx, Deployment{BuildID: old.ID, Env: "prod", Trigger: DeployRelease})
	if err != nil || d.Digest != "" {
		t.Fatalf("deployment of a build without digest: %+v, %v", d, err)
	}
	if err := s.SetArtifactsDigest(ctx, old.ID, digestOf(4)); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetDeployment(ctx, d.ID); got.Digest != digestOf(4) {
		t.Errorf("adopted digest not on the deployment: %+v", got)
	}
	if got := mustGet(t, s, old.ID); got.ArtifactsDigest != digestOf(4) {
		t.Errorf("adopted digest not on the build: %+v", got)
	}
}

func TestLiveWithIsTheNewestSucceededDeploymentOfTheCommit(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	ctx := t.Context()
	// Two passed builds of one commit, with different artifacts.
	commit := oid(9)
	build := func(digest string) Build {
		b := mustEnqueue(t, s, Build{Repo: "app", Ref: "refs/heads/main", Commit: commit, Trigger: TriggerManual}).Builds[0]
		mustClaim(t, s)
		if err := s.SetArtifactsDigest(ctx, b.ID, digest); err != nil {
			t.Fatal(err)
		}
		if err := s.FinishBuild(ctx, b.ID, StatePassed, "", nil); err != nil {
			t.Fatal(err)
		}
		return b
	}
	first, second := build(digestOf(1)), build(digestOf(2))
	deploy := func(b Build, env string, end DeployState) Deployment {
		return endedDeploy(t, s, Deployment{BuildID: b.ID, Env: env, Trigger: DeployAuto}, end)
	}
	if _, ok, err := s.LiveWith(ctx, "app", "staging", commit); ok || err != nil {
		t.Fatalf("before any deployment: %v %v", ok, err)
	}
	live := deploy(first, "staging", DeploySucceeded)
	deploy(second, "staging", DeployFailed)
	d, ok, err := s.LiveWith(ctx, "app", "staging", commit)
	if err != nil || !ok || d.ID != live.ID || d.BuildID != first.ID || d.Digest != digestOf(1) {
		t.Errorf("LiveWith = %+v %v %v; want deployment %d of build %d (the newer build never went live)", d, ok, err, live.ID, first.ID)
	}
	if _, ok, _ := s.LiveWith(ctx, "app", "prod", commit); ok {
		t.Error("live on prod, where it never was")
	}
}

// TestConcurrentFinishesNeverQueueTheOlderBuildLast finishes two passed
// builds of one branch at the same moment, 20 times: the older build's
// automatic deployment is either queued before the newer's or not at all.
func TestConcurrentFinishesNeverQueueTheOlderBuildLast(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	ctx := t.Context()
	for i := range 20 {
		older := mustEnqueue(t, s, manual("app", "refs/heads/b"+fmt.Sprint(i), 2*i)).Builds[0]
		mustClaim(t, s)
		newer := mustEnqueue(t, s, manual("app", "refs/heads/c"+fmt.Sprint(i), 2*i+1)).Builds[0]
		mustClaim(t, s)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for _, b := range []Build{older, newer} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				if _, err := s.FinishBuildAndDeploy(ctx, b.ID, StatePassed, "", nil, []Deployment{{Env: "staging", Trigger: DeployAuto}}); err != nil {
					t.Error(err)
				}
			}()
		}
		close(start)
		wg.Wait()
		ds, err := s.ListDeployments(ctx, "app", "staging", 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) == 0 || ds[0].BuildID != newer.ID {
			t.Fatalf("iteration %d: newest queued deployment %+v, want build %d's", i, ds, newer.ID)
		}
		for {
			c, ok, err := s.ClaimDeployment(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				break
			}
			if err := s.FinishDeployment(ctx, c.ID, DeploySucceeded, ""); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestConcurrentRetriesQueueOne retries one failed deployment twice at the
// same moment, 20 times: exactly one retry is queued, the other is told
// which came first.
func TestConcurrentRetriesQueueOne(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	ctx := t.Context()
	b := passedBuild(t, s, "app", 1)
	d := mustEnqueueDeploy(t, s, Deployment{BuildID: b.ID, Env: "prod", Trigger: DeployRelease, User: "bob"})
	for i := range 20 {
		mustClaimDeploy(t, s)
		if err := s.FinishDeployment(ctx, d.ID, DeployFailed, "target unreachable"); err != nil {
			t.Fatal(err)
		}
		start := make(chan struct{})
		var wg sync.WaitGroup
		results := make(chan error, 2)
		queued := make(chan Deployment, 2)
		for _, u := range []string{"bob", "carol"} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				nd, err := s.RetryDeployment(ctx, d.ID, u)
				results <- err
				if err == nil {
					queued <- nd
				}
			}()
		}
		close(start)
		wg.Wait()
		close(results)
		close(queued)
		var refused []error
		for err := range results {
			if err != nil {
				refused = append(refused, err)
			}
		}
		var rr *RetryRefusal
		if len(queued) != 1 || len(refused) != 1 || !errors.As(refused[0], &rr) || !errors.Is(refused[0], ErrConflict) {
			t.Fatalf("iteration %d: %d retries queued, refusals %v; want exactly one of each", i, len(queued), refused)
		}
		nd := <-queued
		if rr.Latest != nd.ID || !strings.Contains(refused[0].Error(), fmt.Sprintf("is not the latest to prod (#%d came after it)", nd.ID)) {
			t.Fatalf("iteration %d: refusal %q does not name retry #%d", i, refused[0], nd.ID)
		}
		if all, _ := s.ListDeployments(ctx, "app", "prod", 0); len(all) != i+2 {
			t.Fatalf("iteration %d: %d deployments recorded, want %d", i, len(all), i+2)
		}
		d = nd
	}
	// Only failed and rolled-back deployments are retried.
	if _, err := s.RetryDeployment(ctx, d.ID, "bob"); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "is still queued") {
		t.Errorf("retry of a queued deployment: %v", err)
	}
	if _, err := s.RetryDeployment(ctx, 9999, "bob"); !errors.Is(err, ErrNotFound) {
		t.Errorf("retry of a missing deployment: %v", err)
	}
}

func TestEverLiveAndLiveDeployment(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	ctx := t.Context()
	good, bad := passedBuild(t, s, "app", 1), passedBuild(t, s, "app", 2)
	deploy := func(b Build, env string, end DeployState) Deployment {
		return endedDeploy(t, s, Deployment{BuildID: b.ID, Env: env, Trigger: DeployRelease, User: "bob"}, end)
	}
	if _, ok, err := s.LiveDeployment(ctx, "app", "staging"); ok || err != nil {
		t.Errorf("live before any deployment: %v %v", ok, err)
	}
	dg := deploy(good, "staging", DeploySucceeded)
	deploy(bad, "staging", DeployRolledBack)
	deploy(bad, "staging", DeployFailed)

	for _, c := range []struct {
		env, commit string
		want        bool
	}{
		{"staging", good.Commit, true},
		{"staging", bad.Commit, false}, // deployed but never successfully
		{"prod", good.Commit, false},
	} {
		got, err := s.EverLive(ctx, "app", c.env, c.commit)
		if err != nil || got != c.want {
			t.Errorf("EverLive(%s, %s) = %v, %v; want %v", c.env, c.commit[:7], got, err, c.want)
		}
	}
	live, ok, err := s.LiveDeployment(ctx, "app", "staging")
	if err != nil || !ok || live.ID != dg.ID {
		t.Errorf("live on staging = %+v %v %v; want the last succeeded %d", live, ok, err, dg.ID)
	}
	hist, err := s.ListDeployments(ctx, "app", "staging", 0)
	if err != nil || len(hist) != 3 || hist[0].State != DeployFailed || hist[2].ID != dg.ID || hist[2].User != "bob" {
		t.Errorf("history = %+v, %v", hist, err)
	}
	if all, _ := s.ListDeployments(ctx, "app", "", 2); len(all) != 2 {
		t.Errorf("limited history has %d entries", len(all))
	}
}

func TestPassedBuildForCommit(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	ctx := t.Context()
	commit := oid(5)
	if _, ok, err := s.PassedBuildForCommit(ctx, "app", commit); ok || err != nil {
		t.Fatalf("before any build: %v %v", ok, err)
	}
	run := func(b Build, end State) Build {
		b = mustEnqueue(t, s, b).Builds[0]
		mustClaim(t, s)
		if err := s.FinishBuild(ctx, b.ID, end, "", nil); err != nil {
			t.Fatal(err)
		}
		return b
	}
	first := run(Build{Repo: "app", Ref: "refs/heads/main", Commit: commit, Trigger: TriggerManual}, StatePassed)
	run(Build{Repo: "app", Ref: "refs/heads/main", Commit: commit, Trigger: TriggerManual}, StateFailed)
	run(Build{Repo: "app", Ref: "refs/heads/main", Commit: commit, Trigger: TriggerSchedule, Schedule: "nightly", Pipeline: "nightly"}, StatePassed)
	run(Build{Repo: "other", Ref: "refs/heads/main", Commit: commit, Trigger: TriggerManual}, StatePassed)
	b, ok, err := s.PassedBuildForCommit(ctx, "app", commit)
	if err != nil || !ok || b.ID != first.ID {
		t.Errorf("PassedBuildForCommit = %d %v %v; want build %d (the passed build pipeline run)", b.ID, ok, err, first.ID)
	}
}

func TestFinishBuildAndDeployIsAtomic(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	ctx := t.Context()
	b := mustEnqueue(t, s, manual("app", "refs/heads/main", 1)).Builds[0]
	mustClaim(t, s)
	// A deployment that cannot be recorded keeps the build running: no
	// passed build without the deployment that was due.
	if _, err := s.FinishBuildAndDeploy(ctx, b.ID, StatePassed, "", nil, []Deployment{{Env: "staging", Trigger: "bogus"}}); err == nil {
		t.Fatal("bogus deployment accepted")
	}
	if got := mustGet(t, s, b.ID); got.State != StateRunning {
		t.Fatalf("build is %s after a refused finish; want running", got.State)
	}
	ds, err := s.FinishBuildAndDeploy(ctx, b.ID, StatePassed, "", nil, []Deployment{{Env: "staging", Trigger: DeployAuto}})
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 1 || ds[0].BuildID != b.ID || ds[0].State != DeployQueued || ds[0].Commit != b.Commit {
		t.Errorf("deployments = %+v", ds)
	}
	// A failed build cannot carry deployments.
	f := mustEnqueue(t, s, manual("app", "refs/heads/dev", 2)).Builds[0]
	mustClaim(t, s)
	if _, err := s.FinishBuildAndDeploy(ctx, f.ID, StateFailed, "", nil, []Deployment{{Env: "staging", Trigger: DeployAuto}}); !errors.Is(err, ErrConflict) {
		t.Errorf("deploying a failed build: %v, want ErrConflict", err)
	}
}

func TestReleasePushRecordsDeploymentAtomically(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	ctx := t.Context()
	b := passedBuild(t, s, "app", 1)
	p := Push{Repo: "app", User: "bob", Refs: []RefUpdate{{Name: "refs/release/prod", Old: zero, New: b.Commit}}}
	out, err := s.RecordPushAndEnqueue(ctx, p, nil, []Deployment{{BuildID: b.ID, Env: "prod", Trigger: DeployRelease, User: "bob"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Deployments) != 1 || out.Deployments[0].PushID != out.PushID || out.Deployments[0].User != "bob" {
		t.Errorf("release push outcome = %+v", out)
	}
	// A refused deployment refuses the push record with it.
	_, err = s.RecordPushAndEnqueue(ctx, Push{Repo: "app", User: "eve"}, nil, []Deployment{{BuildID: 999, Env: "prod", Trigger: DeployRelease}})
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("err = %v, want ErrNotFound", err)
	}
	last, _ := s.LastPushes(ctx)
	if last["app"].User != "bob" {
		t.Errorf("the refused push was recorded: %+v", last["app"])
	}
}
