package store

import (
	"errors"
	"fmt"
	"slices"
	"testing"
)

// finished enqueues, claims and finishes a build of repo at commit n in
// state.
func finished(t *testing.T, s *Store, repo string, n int, state State) Build {
	t.Helper()
	b := mustEnqueue(t, s, manual(repo, fmt.Sprintf("refs/heads/p%d", n), n)).Builds[0]
	if c := mustClaim(t, s); c.ID != b.ID {
		t.Fatalf("claimed %d, want %d", c.ID, b.ID)
	}
	if err := s.FinishBuild(t.Context(), b.ID, state, "", nil); err != nil {
		t.Fatal(err)
	}
	return b
}

// deployed queues a deployment of b to env, runs it into release and ends
// it in state (left running when state is DeployRunning, queued when
// DeployQueued).
func deployed(t *testing.T, s *Store, b Build, env, release string, state DeployState) Deployment {
	t.Helper()
	ctx := t.Context()
	d := mustEnqueueDeploy(t, s, Deployment{BuildID: b.ID, Env: env, Trigger: DeployRelease})
	if state == DeployQueued {
		return d
	}
	if c := mustClaimDeploy(t, s); c.ID != d.ID {
		t.Fatalf("claimed deployment %d, want %d", c.ID, d.ID)
	}
	if err := s.SetDeploymentRelease(ctx, d.ID, release); err != nil {
		t.Fatal(err)
	}
	if state != DeployRunning {
		if err := s.FinishDeployment(ctx, d.ID, state, ""); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

func buildIDs(bs ...Build) []int64 {
	var ids []int64
	for _, b := range bs {
		ids = append(ids, b.ID)
	}
	slices.Sort(ids)
	return ids
}

func mustPrune(t *testing.T, s *Store, repo string, keep int) Pruned {
	t.Helper()
	p, err := s.Prune(t.Context(), repo, keep)
	if err != nil {
		t.Fatalf("Prune(%q, %d): %v", repo, keep, err)
	}
	slices.Sort(p.Builds)
	slices.Sort(p.Deployments)
	return p
}

func TestPruneKeepsTheNewestFinishedBuildsPerRepo(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	ctx := t.Context()
	a1 := finished(t, s, "a", 1, StatePassed)
	a2 := finished(t, s, "a", 2, StateFailed)
	a3 := finished(t, s, "a", 3, StatePassed)
	a4 := finished(t, s, "a", 4, StatePassed)
	b1 := finished(t, s, "b", 5, StatePassed)
	sup := mustEnqueue(t, s, manual("a", "refs/heads/s", 6)).Builds[0]
	mustEnqueue(t, s, manual("a", "refs/heads/s", 7)) // supersedes sup, stays queued
	running := mustEnqueue(t, s, manual("a", "refs/heads/r", 8)).Builds[0]
	for {
		if c := mustClaim(t, s); c.ID == running.ID {
			break
		}
	}
	if got := mustGet(t, s, sup.ID); got.State != StateSuperseded {
		t.Fatalf("build %d is %s, want superseded", sup.ID, got.State)
	}

	p := mustPrune(t, s, "a", 2)
	// Finished in a, newest first: sup, a4, a3, a2, a1.
	if want := buildIDs(a1, a2, a3); !slices.Equal(p.Builds, want) {
		t.Errorf("pruned %v, want %v", p.Builds, want)
	}
	for _, gone := range p.Builds {
		if _, err := s.GetBuild(ctx, gone); !errors.Is(err, ErrNotFound) {
			t.Errorf("build %d should be gone: %v", gone, err)
		}
	}
	left, err := s.ListBuilds(ctx, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 5 { // sup, a4, the queued one, the running one, b1
		t.Errorf("%d builds left, want 5: %+v", len(left), left)
	}
	if _, err := s.GetBuild(ctx, b1.ID); err != nil {
		t.Errorf("build of another repo pruned: %v", err)
	}
	if again := mustPrune(t, s, "a", 2); len(again.Builds) != 0 {
		t.Errorf("second prune removed %v", again.Builds)
	}
	p = mustPrune(t, s, "", 0)
	if want := buildIDs(a4, b1, sup); !slices.Equal(p.Builds, want) {
		t.Errorf("prune of all repos keeping 0 = %v, want %v", p.Builds, want)
	}
	if _, err := s.Prune(ctx, "", -1); !errors.Is(err, ErrInvalid) {
		t.Errorf("negative keep: %v", err)
	}
}

// TestPruneKeepsWhatDeploymentsNeed: every environment's live release,
// the release live before it and its newest deployment keep their builds,
// as do queued and running deployments; the deployments of every other
// build beyond keep go with it.
func TestPruneKeepsWhatDeploymentsNeed(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	ctx := t.Context()
	var bs []Build
	for i := range 12 {
		bs = append(bs, finished(t, s, "app", i, StatePassed))
	}
	rel := func(b Build) string { return fmt.Sprintf("rel-%d", b.ID) }
	// staging: 0, 1, 2 went live in turn, then a rollback to 1 reused
	// its release: live is 1, previous is 2.
	var gone []Deployment
	gone = append(gone, deployed(t, s, bs[0], "staging", rel(bs[0]), DeploySucceeded))
	deployed(t, s, bs[1], "staging", rel(bs[1]), DeploySucceeded)
	deployed(t, s, bs[2], "staging", rel(bs[2]), DeploySucceeded)
	deployed(t, s, bs[1], "staging", rel(bs[1]), DeploySucceeded)
	// prod: 3 live, 4 failed after it (the newest, which retry may run
	// again); 5's deployment failed before 3 went live.
	gone = append(gone, deployed(t, s, bs[5], "prod", rel(bs[5]), DeployFailed))
	deployed(t, s, bs[3], "prod", rel(bs[3]), DeploySucceeded)
	deployed(t, s, bs[4], "prod", rel(bs[4]), DeployFailed)
	// test: 6 runs now, 7 waits behind it.
	deployed(t, s, bs[6], "test", rel(bs[6]), DeployRunning)
	deployed(t, s, bs[7], "test", "", DeployQueued)

	p := mustPrune(t, s, "app", 2) // 10 and 11 are the newest two
	if want := buildIDs(bs[0], bs[5], bs[8], bs[9]); !slices.Equal(p.Builds, want) {
		t.Errorf("pruned builds %v, want %v", p.Builds, want)
	}
	var wantDeps []int64
	for _, d := range gone {
		wantDeps = append(wantDeps, d.ID)
	}
	if !slices.Equal(p.Deployments, wantDeps) {
		t.Errorf("pruned deployments %v, want %v", p.Deployments, wantDeps)
	}
	for _, d := range gone {
		if _, err := s.GetDeployment(ctx, d.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("deployment %d should be gone: %v", d.ID, err)
		}
	}
	for _, i := range []int{1, 2, 3, 4, 6, 7, 10, 11} {
		if _, err := s.GetBuild(ctx, bs[i].ID); err != nil {
			t.Errorf("build %d (index %d) should be kept: %v", bs[i].ID, i, err)
		}
	}
	if live, ok, err := s.LiveDeployment(ctx, "app", "staging"); err != nil || !ok || live.BuildID != bs[1].ID {
		t.Errorf("live on staging = %+v, %v, %v", live, ok, err)
	}

	// A deployment of a pruned build cannot be queued any more: it was
	// either queued before the prune (and kept its build) or is refused.
	if _, err := s.EnqueueDeployment(ctx, Deployment{BuildID: bs[0].ID, Env: "staging", Trigger: DeployRollback}); !errors.Is(err, ErrNotFound) {
		t.Errorf("deployment of a pruned build: %v, want ErrNotFound", err)
	}
}

func TestPruneRemovesPushesNothingNeeds(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	ctx := t.Context()
	push := func(refs ...RefUpdate) int64 {
		t.Helper()
		id, err := s.RecordPush(ctx, Push{Repo: "app", User: "alice", Refs: refs})
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	withBuild := func(ref string, n int) (int64, Build) {
		t.Helper()
		out, err := s.RecordPushAndEnqueue(ctx, Push{Repo: "app", User: "alice",
			Refs: []RefUpdate{{Name: ref, Old: oid(n - 1), New: oid(n)}}},
			[]Build{{Repo: "app", Ref: ref, Commit: oid(n)}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if c := mustClaim(t, s); c.ID != out.Builds[0].ID {
			t.Fatalf("claimed %d, want %d", c.ID, out.Builds[0].ID)
		}
		if err := s.FinishBuild(ctx, out.Builds[0].ID, StatePassed, "", nil); err != nil {
			t.Fatal(err)
		}
		return out.PushID, out.Builds[0]
	}
	tagPush := push(RefUpdate{Name: "refs/tags/v1", Old: zero, New: oid(100)}) // newest record of v1
	p1, _ := withBuild("refs/heads/main", 1)                                   // its build pruned below
	p2, _ := withBuild("refs/heads/main", 2)                                   // its build pruned below
	gonePush := push(RefUpdate{Name: "refs/heads/tmp", Old: zero, New: oid(200)})
	deleted := push(RefUpdate{Name: "refs/heads/tmp", Old: oid(200), New: zero})
	p3, b3 := withBuild("refs/heads/main", 3) // kept build, newest record of main
	if _, err := s.RecordPush(ctx, Push{Repo: "other", User: "bob"}); err != nil {
		t.Fatal(err)
	}

	pr := mustPrune(t, s, "app", 1)
	if len(pr.Builds) != 2 {
		t.Errorf("pruned builds %v, want the first two", pr.Builds)
	}
	// Left: tagPush (the newest record of a tag that exists) and p3 (its
	// build is kept; the newest push of the repo, keep = 1; the newest
	// record of main). Gone: p1, p2 (builds pruned, main moved since),
	// gonePush (tmp moved since) and deleted (its ref no longer exists).
	if pr.Pushes != 4 {
		t.Errorf("pruned %d pushes, want 4", pr.Pushes)
	}
	for _, id := range []int64{tagPush, p3} {
		if _, err := s.GetPush(ctx, id); err != nil {
			t.Errorf("push %d should be kept: %v", id, err)
		}
	}
	for _, id := range []int64{p1, p2, gonePush, deleted} {
		if _, err := s.GetPush(ctx, id); !errors.Is(err, ErrNotFound) {
			t.Errorf("push %d should be gone: %v", id, err)
		}
	}
	var orphans int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM push_refs WHERE push_id NOT IN (SELECT id FROM pushes)`).Scan(&orphans); err != nil || orphans != 0 {
		t.Errorf("%d ref rows of deleted pushes left (%v)", orphans, err)
	}
	if _, err := s.GetBuild(ctx, b3.ID); err != nil {
		t.Error(err)
	}
	last, err := s.LastPushes(ctx)
	if err != nil || last["other"].User != "bob" || last["app"].ID != p3 {
		t.Errorf("LastPushes after prune = %+v, %v", last, err)
	}
}
