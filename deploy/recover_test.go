package deploy

import (
	"os"
	"path/filepath"
	"slipway/internal/testutil"
	"strings"
	"testing"
	"time"

	"slipway/record"
)

// cutAfterSwitch records what a daemon killed during activate leaves: a
// deployment recorded running, its release complete on the target and
// current switched to it (activate having run once, as far as it got).
func cutAfterSwitch(t *testing.T, h *harness, env, activate string, b record.Build) record.Deployment {
	t.Helper()
	ctx := t.Context()
	d := h.enqueueRelease(b.ID, env)
	if c, ok, err := h.st.ClaimDeployment(ctx); err != nil || !ok || c.ID != d.ID {
		t.Fatalf("claim: %+v %v %v", c, ok, err)
	}
	rel := freshReleaseID(d)
	if err := h.st.SetDeploymentRelease(ctx, d.ID, rel); err != nil {
		t.Fatal(err)
	}
	e, _ := h.cfg.Environment("app", env)
	tg, err := h.svc.target("app", e)
	if err != nil {
		t.Fatal(err)
	}
	w, err := h.logs.Create(LogID(d.ID), 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (&Shipper{}).Ship(ctx, Request{Target: tg, Source: h.svc.artifactDir(b.ID), Release: rel, Repo: "app", Env: env,
		Commit: b.Commit, Activate: activate, Vars: map[string]string{"SLIPWAY_DEPLOY_ID": itoa(d.ID)}, Log: w}); err != nil {
		t.Fatal(err)
	}
	w.Close()
	d.ReleaseID = rel
	return d
}

// TestDeploymentFoundLiveAtStartIsRecordedLive starts the service on the
// records of a daemon that died after switching current, during activate:
// the deployment is recorded succeeded, activate runs again, the record
// and log say so, and the revision can be promoted to an environment that
// requires this one.
func TestDeploymentFoundLiveAtStartIsRecordedLive(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	staging := filepath.Join(dir, "staging")
	activate := `echo "run of $SLIPWAY_DEPLOY_ID in $SLIPWAY_RELEASE" >> ../../activations`
	h := newHarness(t, 2,
		localEnv("staging", staging, "  activate = '"+activate+"'"),
		localEnv("prod", filepath.Join(dir, "prod"), `  requires = "staging"`),
	)
	b, _ := h.passedBuild("refs/heads/main", map[string]string{"app": "A"})
	d := cutAfterSwitch(t, h, "staging", activate, b)

	h.start()
	got := h.get(d.ID)
	if got.State != record.DeploySucceeded || !strings.Contains(got.Reason, "release "+d.ReleaseID+" is live; the daemon stopped during activate") {
		t.Fatalf("after the start the deployment is %s (%s), want succeeded: live, activate unknown", got.State, got.Reason)
	}
	testutil.Eventually(t, 30*time.Second, "activate to have run again", func() bool {
		return strings.Contains(h.get(d.ID).Reason, "ran again at start and succeeded")
	})
	acts, _ := os.ReadFile(filepath.Join(staging, "activations"))
	if want := strings.Repeat("run of "+itoa(d.ID)+" in "+d.ReleaseID+"\n", 2); string(acts) != want {
		t.Errorf("activations %q, want %q", acts, want)
	}
	if log := h.log(d.ID); !strings.Contains(log, "recorded succeeded, running activate again") ||
		!strings.Contains(log, "ran again at start and succeeded") {
		t.Errorf("the deployment log does not tell the story:\n%s", log)
	}
	// The gate reads the settled record.
	p := h.mustRelease("bob", "prod", b.Commit)
	if p.BuildID != b.ID {
		t.Errorf("promotion ships build %d, want %d", p.BuildID, b.ID)
	}
	h.waitState(p.ID, record.DeploySucceeded)
}

// TestDeploymentFoundAtStartWithoutSwitchOrActivate covers the other
// outcomes: a release that went live on an environment without activate is
// recorded succeeded without more ado; one whose switch never happened is
// recorded failed, as before.
func TestDeploymentFoundAtStartWithoutSwitchOrActivate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	h := newHarness(t, 1,
		localEnv("staging", filepath.Join(dir, "staging"), ""),
		localEnv("qa", filepath.Join(dir, "qa"), ""),
	)
	b, _ := h.passedBuild("refs/heads/main", map[string]string{"app": "A"})
	live := cutAfterSwitch(t, h, "staging", "", b)
	ctx := t.Context()
	cut := h.enqueueRelease(b.ID, "qa")
	if c, ok, err := h.st.ClaimDeployment(ctx); err != nil || !ok || c.ID != cut.ID {
		t.Fatalf("claim: %+v %v %v", c, ok, err)
	}
	if err := h.st.SetDeploymentRelease(ctx, cut.ID, "20250101T000000-9-"+b.Commit[:7]); err != nil {
		t.Fatal(err)
	}

	h.start()
	if got := h.get(live.ID); got.State != record.DeploySucceeded || !strings.Contains(got.Reason, "went live before the daemon stopped") {
		t.Errorf("switched deployment without activate: %s (%s)", got.State, got.Reason)
	}
	if got := h.get(cut.ID); got.State != record.DeployFailed || got.Reason != record.RecoveredDeployReason {
		t.Errorf("deployment cut before its switch: %s (%s), want failed: %s", got.State, got.Reason, record.RecoveredDeployReason)
	}
}
