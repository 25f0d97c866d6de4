package store

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// verifyBuild is a queued verify build of repo's ref at commit n.
func verifyBuild(repo, ref string, n int) Build {
	return Build{Repo: repo, Ref: ref, Commit: oid(n), Trigger: TriggerVerify}
}

// TestVerifyBuildIsClaimedFirstAndNeverSupersedes: a verify build waits for
// no other queued build, does not push aside the branch's queued build and
// is not pushed aside by a newer one.
func TestVerifyBuildIsClaimedFirstAndNeverSupersedes(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	older := mustEnqueue(t, s, manual("other", "refs/heads/main", 1), manual("app", "refs/heads/main", 2)).Builds
	v := mustEnqueue(t, s, verifyBuild("app", "refs/heads/main", 3))
	if len(v.Superseded) != 0 || len(v.Running) != 0 {
		t.Fatalf("a verify build superseded %v and reported running %v", v.Superseded, v.Running)
	}
	vb := v.Builds[0]
	if vb.Trigger != TriggerVerify || vb.PushID != 0 || vb.State != StateQueued {
		t.Fatalf("verify build recorded as %+v", vb)
	}
	newer := mustEnqueue(t, s, manual("app", "refs/heads/main", 4))
	if len(newer.Superseded) != 1 || newer.Superseded[0].ID != older[1].ID {
		t.Fatalf("a newer build superseded %+v; want only the older manual build #%d", newer.Superseded, older[1].ID)
	}
	if got := mustGet(t, s, vb.ID); got.State != StateQueued {
		t.Fatalf("the verify build is %s after a newer build of its branch was queued", got.State)
	}
	if c := mustClaim(t, s); c.ID != vb.ID || c.State != StateRunning || c.Attempt != 1 {
		t.Fatalf("first claim took build #%d (%s), want the verify build #%d", c.ID, c.State, vb.ID)
	}
	// A running verification is not a running build of the branch that a
	// newer push would cancel.
	if again := mustEnqueue(t, s, manual("app", "refs/heads/main", 5)); len(again.Running) != 0 {
		t.Fatalf("a running verify build was reported as a running build of its branch: %+v", again.Running)
	}
}

// TestRecordVerifiedPush: git accepted the push a verify build passed for;
// recording the push records the build as passed, linked to the push, with
// its automatic deployments, in the same transaction.
func TestRecordVerifiedPush(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	ctx := t.Context()
	vb := mustEnqueue(t, s, verifyBuild("app", "refs/heads/main", 1)).Builds[0]
	mustClaim(t, s)
	p := Push{Repo: "app", User: "alice", Options: []string{"verify"}, Refs: []RefUpdate{
		{Name: "refs/heads/main", Old: zero, New: oid(1)},
		{Name: "refs/heads/dev", Old: zero, New: oid(2)},
	}}
	steps := []StepResult{{Name: "make test", ExitCode: 0}}
	out, err := s.RecordVerifiedPush(ctx, p, []Build{{Repo: "app", Ref: "refs/heads/dev", Commit: oid(2)}}, nil,
		[]VerifiedBuild{{ID: vb.ID, Reason: "passed in 1s", Steps: steps,
			Deployments: []Deployment{{Env: "staging", Trigger: DeployAuto}}}})
	if err != nil {
		t.Fatalf("RecordVerifiedPush: %v", err)
	}
	if len(out.Verified) != 1 || len(out.Builds) != 1 || len(out.AutoDeployments) != 1 {
		t.Fatalf("outcome = %+v", out)
	}
	got := mustGet(t, s, vb.ID)
	if got.State != StatePassed || got.PushID != out.PushID || got.Reason != "passed in 1s" || len(got.Steps) != 1 ||
		got.FinishedAt.IsZero() || got.Trigger != TriggerVerify {
		t.Fatalf("verified build after the push was recorded: %+v", got)
	}
	if d := out.AutoDeployments[0]; d.BuildID != vb.ID || d.Commit != oid(1) || d.Env != "staging" {
		t.Errorf("auto deployment = %+v", d)
	}
	if b, ok, err := s.PassedBuildForCommit(ctx, "app", oid(1)); err != nil || !ok || b.ID != vb.ID {
		t.Errorf("the release gate's question finds %+v, %v, %v; want the verified build", b, ok, err)
	}
}

// TestRecordVerifiedPushOfEndedBuild: a verify build that ended meanwhile
// (cancelled, say) is left as it is, and the push is recorded all the same,
// since git has moved its refs.
func TestRecordVerifiedPushOfEndedBuild(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	ctx := t.Context()
	vb := mustEnqueue(t, s, verifyBuild("app", "refs/heads/main", 1)).Builds[0]
	mustClaim(t, s)
	if err := s.FinishBuild(ctx, vb.ID, StateCancelled, "cancelled by alice", nil); err != nil {
		t.Fatal(err)
	}
	p := Push{Repo: "app", User: "alice", Refs: []RefUpdate{{Name: "refs/heads/main", Old: zero, New: oid(1)}}}
	out, err := s.RecordVerifiedPush(ctx, p, nil, nil, []VerifiedBuild{{ID: vb.ID, Reason: "passed"}})
	if err != nil {
		t.Fatalf("RecordVerifiedPush: %v", err)
	}
	if out.PushID == 0 || len(out.Verified) != 0 {
		t.Fatalf("outcome = %+v", out)
	}
	if got := mustGet(t, s, vb.ID); got.State != StateCancelled || got.PushID != 0 {
		t.Fatalf("ended verify build changed to %+v", got)
	}
}

// TestRecoverInterruptedEndsVerifyBuilds: after a daemon stop, verify
// builds (queued, running, or passed but not yet recorded with their push)
// end as interrupted and are never run again, while other builds are queued
// again as before.
func TestRecoverInterruptedEndsVerifyBuilds(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	running := mustEnqueue(t, s, verifyBuild("app", "refs/heads/main", 1)).Builds[0]
	mustClaim(t, s)
	plain := mustEnqueue(t, s, manual("app", "refs/heads/dev", 2)).Builds[0]
	mustClaim(t, s)
	queued := mustEnqueue(t, s, verifyBuild("app", "refs/heads/topic", 3)).Builds[0]

	requeued, stopped := mustRecover(t, s)
	if len(requeued) != 1 || requeued[0].ID != plain.ID {
		t.Fatalf("requeued %+v; want only the plain build #%d", requeued, plain.ID)
	}
	if len(stopped) != 2 {
		t.Fatalf("stopped %+v; want both verify builds", stopped)
	}
	for _, id := range []int64{running.ID, queued.ID} {
		b := mustGet(t, s, id)
		if b.State != StateInterrupted || !strings.Contains(b.Reason, "does not count") || b.FinishedAt.IsZero() {
			t.Errorf("verify build #%d after recovery: %s (%q)", id, b.State, b.Reason)
		}
	}
	if c := mustClaim(t, s); c.ID != plain.ID {
		t.Fatalf("claimed #%d after recovery, want the requeued plain build", c.ID)
	}
}

// TestUpgradeToVerifyKeepsBuildsAndReferences: the migration that rebuilds
// the builds table keeps every row and every reference to it (deployments,
// retries), and foreign keys are enforced afterwards.
func TestUpgradeToVerifyKeepsBuildsAndReferences(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "v4.db")
	old, err := openWith(ctx, path, migrations[:4])
	if err != nil {
		t.Fatal(err)
	}
	// Rows as a version-4 daemon wrote them: the code of today would write
	// columns of later versions, so they are written by hand.
	const v4Rows = `
INSERT INTO pushes (id, repo, user, key_fingerprint, time) VALUES (1, 'app', 'alice', 'SHA256:x', 1000);
INSERT INTO push_refs (push_id, seq, name, old, new) VALUES (1, 0, 'refs/heads/main', '` + zero + `', '` + "%[1]s" + `');
INSERT INTO builds (id, repo, ref, commit_id, push_id, trigger, pipeline, state, reason, created_at, started_at, finished_at, attempt)
	VALUES (1, 'app', 'refs/heads/main', '%[1]s', 1, 'push', 'build', 'passed', 'passed', 1000, 1001, 1002, 1);
INSERT INTO builds (id, repo, ref, commit_id, trigger, pipeline, state, created_at, retry_of)
	VALUES (2, 'app', 'refs/heads/main', '%[1]s', 'retry', 'build', 'queued', 1003, 1);
INSERT INTO deployments (repo, env, build_id, commit_id, trigger, state, created_at)
	VALUES ('app', 'staging', 1, '%[1]s', 'auto', 'queued', 1002);
`
	if _, err := old.w.ExecContext(ctx, fmt.Sprintf(v4Rows, oid(1))); err != nil {
		t.Fatal(err)
	}
	b, retry := Build{ID: 1}, Build{ID: 2}
	before := []Build{ // newest first, as ListBuilds gives them
		{ID: 2, State: StateQueued, RetryOf: 1, CreatedAt: time.Unix(0, 1003)},
		{ID: 1, State: StatePassed, PushID: 1, CreatedAt: time.Unix(0, 1000), FinishedAt: time.Unix(0, 1002)},
	}
	s := upgrade(t, old, path)
	after, err := s.ListBuilds(ctx, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before) {
		t.Fatalf("%d builds after the upgrade, %d before", len(after), len(before))
	}
	for i := range before {
		if a, b := after[i], before[i]; a.ID != b.ID || a.State != b.State || a.PushID != b.PushID || a.RetryOf != b.RetryOf ||
			!a.CreatedAt.Equal(b.CreatedAt) || !a.FinishedAt.Equal(b.FinishedAt) {
			t.Errorf("build changed by the upgrade:\n%+v\n%+v", a, b)
		}
	}
	if got := mustGet(t, s, retry.ID); got.RetryOf != b.ID {
		t.Errorf("retry lost its original: %+v", got)
	}
	if _, ok, err := s.LiveDeployment(ctx, "app", "staging"); err != nil || ok {
		t.Errorf("LiveDeployment after upgrade: %v, %v", ok, err)
	}
	ds, err := s.ListDeployments(ctx, "app", "", 0)
	if err != nil || len(ds) != 1 || ds[0].BuildID != b.ID {
		t.Errorf("deployments after upgrade: %+v, %v", ds, err)
	}
	var fk int
	if err := s.w.QueryRowContext(ctx, `PRAGMA foreign_keys`).Scan(&fk); err != nil || fk != 1 {
		t.Errorf("foreign_keys = %d (%v) on the writer after the upgrade, want 1", fk, err)
	}
	// A deployment cannot refer to a build that does not exist.
	if _, err := s.w.ExecContext(ctx, `INSERT INTO deployments (repo, env, build_id, commit_id, trigger, state, created_at)
		VALUES ('app', 'x', 999, 'c', 'auto', 'queued', 1)`); err == nil {
		t.Error("a deployment of a missing build was inserted after the upgrade")
	}
	if _, err := s.EnqueueBuilds(ctx, []Build{verifyBuild("app", "refs/heads/main", 2)}); err != nil {
		t.Errorf("enqueue a verify build after the upgrade: %v", err)
	}
}
