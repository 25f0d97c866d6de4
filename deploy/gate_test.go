package deploy

import (
	"errors"
	"path/filepath"
	"slipway/internal/gitrev"
	"strings"
	"testing"

	"slipway/record"
)

func TestReleaseGateRefusesAndAccepts(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	h := newHarness(t, 1,
		localEnv("staging", filepath.Join(dir, "staging"), `  auto = "main"`),
		localEnv("prod", filepath.Join(dir, "prod"), "  requires = \"staging\"\n  approvers = [\"bob\"]"),
	)
	h.start()
	ctx := t.Context()

	good, auto := h.passedBuild("refs/heads/main", map[string]string{"app": "v1"})
	bare, _ := h.passedBuild("refs/heads/feature", nil)
	feature, _ := h.passedBuild("refs/heads/feature", map[string]string{"app": "feature"})
	failedCommit := h.commit()
	if _, err := h.st.EnqueueBuilds(ctx, []record.Build{{Repo: "app", Ref: "refs/heads/x", Commit: failedCommit, Trigger: record.TriggerManual}}); err != nil {
		t.Fatal(err)
	}
	fb, _, err := h.st.ClaimBuild(ctx, "test")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.st.FinishBuild(ctx, fb.ID, record.StateFailed, "step 1 exited 1", nil); err != nil {
		t.Fatal(err)
	}

	// The passing build of main went to staging by itself.
	if len(auto) != 1 || auto[0].Env != "staging" {
		t.Fatalf("auto deployments of main: %+v, want one to staging", auto)
	}
	h.waitState(auto[0].ID, record.DeploySucceeded)

	for _, c := range []struct {
		name, env, commit, user, want string
	}{
		{"unknown environment", "qa", good.Commit, "bob", `unknown environment "qa" (repository app has staging, prod)`},
		{"reader", "prod", good.Commit, "dave", "user dave may not release repository app (needs the release right)"},
		{"writer", "staging", good.Commit, "alice", "user alice may not release repository app (needs the release right)"},
		{"releaser, not approver", "prod", good.Commit, "carol", "user carol is not an approver of prod (approvers: bob)"},
		{"no build", "staging", h.commit(), "bob", "has no passed build"},
		{"failed build", "staging", failedCommit, "bob", "revision " + failedCommit[:7] + " has no passed build"},
		{"no artifacts", "staging", bare.Commit, "bob", "build " + itoa(bare.ID) + " kept no artifacts"},
		{"never on staging", "prod", feature.Commit, "bob",
			"revision " + feature.Commit[:7] + " has not been live on staging (prod requires staging)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := h.svc.CheckRelease(ctx, "app", c.env, c.commit, c.user)
			if err == nil {
				t.Fatalf("release of %s to %s by %s accepted; want refused", gitrev.Short(c.commit), c.env, c.user)
			}
			if !strings.HasSuffix(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("refusal %q, want one line ending in %q", err, c.want)
			}
			if !errors.Is(err, ErrReleaseRefused) {
				t.Errorf("refusal %v does not match ErrReleaseRefused", err)
			}
		})
	}

	// Accepted: a revision live on staging goes to prod by its approver;
	// any passing revision goes to staging by hand, by any releaser.
	if err := h.svc.CheckRelease(ctx, "app", "prod", good.Commit, "bob"); err != nil {
		t.Errorf("release of a revision live on staging to prod by bob: %v", err)
	}
	d := h.mustRelease("carol", "staging", feature.Commit)
	if d.Trigger != record.DeployRelease || d.User != "carol" || d.BuildID != feature.ID {
		t.Errorf("release deployment %+v", d)
	}
	h.waitState(d.ID, record.DeploySucceeded)
	// Now that feature was live on staging it may go to prod.
	p := h.mustRelease("bob", "prod", feature.Commit)
	h.waitState(p.ID, record.DeploySucceeded)
	if got := readLink(t, filepath.Join(dir, "prod", "current")); got != "releases/"+h.get(p.ID).ReleaseID {
		t.Errorf("prod current -> %q after the release", got)
	}
}

func TestReleaseDeploymentsIgnoresOtherRefs(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	h := newHarness(t, 1, localEnv("staging", filepath.Join(dir, "staging"), ""))
	b, _ := h.passedBuild("refs/heads/main", map[string]string{"a": "1"})
	other := h.commit()
	ds, err := h.svc.ReleaseDeployments(t.Context(), record.Push{Repo: "app", User: "bob", Refs: []record.RefUpdate{
		{Name: "refs/heads/main", Old: zeroID, New: b.Commit},
		{Name: "refs/release/staging", Old: b.Commit, New: zeroID}, // deletion: refused by the hooks
		{Name: "refs/release/gone", Old: zeroID, New: b.Commit},    // not configured
		{Name: "refs/releases/staging", Old: zeroID, New: b.Commit},
		{Name: "refs/tags/v1", Old: zeroID, New: other},
	}})
	if err != nil || len(ds) != 0 {
		t.Fatalf("ReleaseDeployments = %+v, %v; want none", ds, err)
	}
}

// A release ref that moved without a push through Slipway (found at start:
// no user) is recorded but deploys nothing: nobody allowed to release
// asked. The same ref pushed by a releaser deploys.
func TestReleaseRefFoundAtStartIsNotDeployed(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	h := newHarness(t, 1, localEnv("staging", filepath.Join(dir, "staging"), ""))
	b, _ := h.passedBuild("refs/heads/main", map[string]string{"a": "1"})
	refs := []record.RefUpdate{{Name: "refs/release/staging", Old: zeroID, New: b.Commit}}
	found := record.Push{Repo: "app", Refs: refs}
	if !found.Found() {
		t.Fatal("a push without a user is not found")
	}
	if ds, err := h.svc.ReleaseDeployments(t.Context(), found); err != nil || len(ds) != 0 {
		t.Fatalf("ReleaseDeployments of a push found at start = %+v, %v; want none", ds, err)
	}
	if ds, err := h.svc.ReleaseDeployments(t.Context(), record.Push{Repo: "app", User: "bob", Refs: refs}); err != nil || len(ds) != 1 {
		t.Fatalf("ReleaseDeployments of bob's push = %+v, %v; want one", ds, err)
	}
}

func TestAutoDeploymentsOnlyForTheBuildPipelineOfTheAutoBranch(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	h := newHarness(t, 1,
		localEnv("staging", filepath.Join(dir, "staging"), `  auto = "main"`),
		localEnv("preview", filepath.Join(dir, "preview"), `  auto = "main"`),
		localEnv("prod", filepath.Join(dir, "prod"), ""),
	)
	files := map[string]string{"a": "1"}
	if _, ds := h.passedBuild("refs/heads/feature", files); len(ds) != 0 {
		t.Errorf("a feature branch build deployed: %+v", ds)
	}
	if _, ds := h.build("refs/heads/main", "nightly", files); len(ds) != 0 {
		t.Errorf("a nightly build of main deployed: %+v", ds)
	}
	if _, ds := h.passedBuild("refs/tags/main", files); len(ds) != 0 {
		t.Errorf("a tag named like the branch deployed: %+v", ds)
	}
	older := h.running("refs/heads/main", record.DefaultPipeline, files)
	_, ds := h.passedBuild("refs/heads/main", files)
	if len(ds) != 2 || ds[0].Env != "staging" || ds[1].Env != "preview" || ds[0].Trigger != record.DeployAuto {
		t.Fatalf("main build deployments: %+v, want auto to staging and preview", ds)
	}
	// The older build of main finishing after the newer one was queued
	// must not put the older revision back.
	if _, got := h.finish(older); len(got) != 0 {
		t.Errorf("older build after a newer one: %+v, want none", got)
	}
}
