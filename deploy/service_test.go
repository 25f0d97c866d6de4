package deploy

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slipway/internal/testutil"
	"strings"
	"sync"
	"testing"
	"time"

	"slipway/internal/sshdtest"
	"slipway/record"
)

func TestAutoDeploymentShipsPassedBuildToStagingOverSSH(t *testing.T) {
	t.Parallel()
	srv := sshdtest.New(t)
	path := filepath.Join(t.TempDir(), "staging")
	h := newHarness(t, 2, remoteEnv("staging", srv, path, "  auto = \"main\"\n  activate = 'echo \"activated $SLIPWAY_DEPLOY_ID of build $SLIPWAY_BUILD_ID\" > ../../activated'"))
	h.start()

	files := map[string]string{"bin/app": "v1", "static/logo": strings.Repeat("logo", 1000)}
	b1, ds := h.passedBuild("refs/heads/main", files)
	if len(ds) != 1 || ds[0].Env != "staging" || ds[0].Trigger != record.DeployAuto || ds[0].BuildID != b1.ID {
		t.Fatalf("deployments of a passed main build: %+v", ds)
	}
	d1 := h.waitState(ds[0].ID, record.DeploySucceeded)
	if got := readLink(t, filepath.Join(path, "current")); got != "releases/"+d1.ReleaseID {
		t.Fatalf("current -> %q, want releases/%s", got, d1.ReleaseID)
	}
	if !strings.HasSuffix(d1.ReleaseID, "-"+itoa(d1.ID)+"-"+b1.Commit[:7]) {
		t.Errorf("release id %q does not name the deployment and commit", d1.ReleaseID)
	}
	if got, _ := os.ReadFile(filepath.Join(path, "current", "bin", "app")); string(got) != "v1" {
		t.Errorf("current/bin/app = %q, want v1", got)
	}
	want := "activated " + itoa(d1.ID) + " of build " + itoa(b1.ID) + "\n"
	if got, _ := os.ReadFile(filepath.Join(path, "activated")); string(got) != want {
		t.Errorf("activate saw %q, want %q", got, want)
	}
	log := h.log(d1.ID)
	for _, line := range []string{
		"== deployment #" + itoa(d1.ID) + " of app build #" + itoa(b1.ID) + " (" + b1.Commit[:7] + ") to staging, automatic after the build passed",
		"== deployment #" + itoa(d1.ID) + " succeeded: release " + d1.ReleaseID + " is live",
	} {
		if !strings.Contains(log, line) {
			t.Errorf("log lacks %q:\n%s", line, log)
		}
	}

	// The next passing build: only the changed file travels, the rest are
	// hard links to the previous release.
	files["bin/app"] = "v2"
	_, ds = h.passedBuild("refs/heads/main", files)
	d2 := h.waitState(ds[0].ID, record.DeploySucceeded)
	if got, _ := os.ReadFile(filepath.Join(path, "current", "bin", "app")); string(got) != "v2" {
		t.Errorf("current/bin/app = %q after the second build, want v2", got)
	}
	r1, r2 := filepath.Join(path, "releases", d1.ReleaseID), filepath.Join(path, "releases", d2.ReleaseID)
	if inode(t, r1+"/static/logo") != inode(t, r2+"/static/logo") {
		t.Error("unchanged static/logo was copied, want a hard link to the previous release")
	}

	l, err := h.svc.Releases(t.Context(), "app", "staging")
	if err != nil {
		t.Fatal(err)
	}
	rels := l.Releases
	if len(rels) != 2 || rels[0].ID != d2.ReleaseID || !rels[0].Live || rels[1].ID != d1.ReleaseID || rels[1].Live || l.Note != "" {
		t.Errorf("Releases = %+v, want %s (live) then %s", l, d2.ReleaseID, d1.ReleaseID)
	}
	if rels[0].Deployment != d2.ID || rels[0].Build != d2.BuildID || rels[0].Digest != d2.Digest || rels[0].Digest == "" {
		t.Errorf("the live release %+v does not say it is deployment %d of build %d, %s", rels[0], d2.ID, d2.BuildID, d2.Digest)
	}
	if list, err := h.svc.List(t.Context(), "app", "staging", 0); err != nil || len(list) != 2 || list[0].ID != d2.ID {
		t.Errorf("List = %+v, %v; want the two deployments, newest first", list, err)
	}
}

func TestReleaseThenRollbackReusesTheEarlierRelease(t *testing.T) {
	t.Parallel()
	srv := sshdtest.New(t)
	dir := t.TempDir()
	prod := filepath.Join(dir, "prod")
	h := newHarness(t, 2,
		localEnv("staging", filepath.Join(dir, "staging"), `  auto = "main"`),
		remoteEnv("prod", srv, prod, "  requires = \"staging\"\n  approvers = [\"bob\"]"),
	)
	h.start()

	a, ds := h.passedBuild("refs/heads/main", map[string]string{"app": "A"})
	h.waitState(ds[0].ID, record.DeploySucceeded)
	pa := h.mustRelease("bob", "prod", a.Commit)
	if pa.Trigger != record.DeployRelease || pa.User != "bob" || pa.PushID == 0 {
		t.Errorf("release deployment %+v", pa)
	}
	pa = h.waitState(pa.ID, record.DeploySucceeded)

	b, ds := h.passedBuild("refs/heads/main", map[string]string{"app": "B"})
	h.waitState(ds[0].ID, record.DeploySucceeded)
	pb := h.releaseAndWait("prod", b.Commit, record.DeploySucceeded)
	if got, _ := os.ReadFile(filepath.Join(prod, "current", "app")); string(got) != "B" {
		t.Fatalf("prod serves %q, want B", got)
	}

	// Rollback: push A again.
	rb := h.mustRelease("bob", "prod", a.Commit)
	if rb.Trigger != record.DeployRollback {
		t.Errorf("trigger %q, want rollback", rb.Trigger)
	}
	rb = h.waitState(rb.ID, record.DeploySucceeded)
	if rb.ReleaseID != pa.ReleaseID {
		t.Errorf("rollback shipped release %q, want the earlier %q reused", rb.ReleaseID, pa.ReleaseID)
	}
	if got := readLink(t, filepath.Join(prod, "current")); got != "releases/"+pa.ReleaseID {
		t.Errorf("current -> %q, want releases/%s", got, pa.ReleaseID)
	}
	if got, _ := os.ReadFile(filepath.Join(prod, "current", "app")); string(got) != "A" {
		t.Errorf("prod serves %q after the rollback, want A", got)
	}
	if log := h.log(rb.ID); !strings.Contains(log, "rollback by bob") || !strings.Contains(log, "switching without transfer") {
		t.Errorf("rollback log does not say what happened:\n%s", log)
	}
	if _, err := os.Stat(filepath.Join(prod, "releases", pb.ReleaseID)); err != nil {
		t.Errorf("release B is gone after the rollback: %v", err)
	}
	// Pushing the live revision again is a release, not a rollback.
	again := h.mustRelease("bob", "prod", a.Commit)
	if again.Trigger != record.DeployRelease {
		t.Errorf("re-release of the live revision: trigger %q, want release", again.Trigger)
	}
	h.waitState(again.ID, record.DeploySucceeded)
}

func TestActivateFailureRollsBackAndKeepsCurrent(t *testing.T) {
	t.Parallel()
	h, path := startedLocal(t, "staging", "  auto = \"main\"\n  activate = 'test -f healthy || { echo \"not healthy\" >&2; exit 3; }'")

	_, ds := h.passedBuild("refs/heads/main", map[string]string{"healthy": "yes", "app": "1"})
	good := h.waitState(ds[0].ID, record.DeploySucceeded)
	_, ds = h.passedBuild("refs/heads/main", map[string]string{"app": "2"})
	bad := h.waitState(ds[0].ID, record.DeployRolledBack)

	want := "activate failed with exit 3; switched back to release " + good.ReleaseID
	if bad.Reason != want {
		t.Errorf("reason %q, want %q", bad.Reason, want)
	}
	if got := readLink(t, filepath.Join(path, "current")); got != "releases/"+good.ReleaseID {
		t.Errorf("current -> %q, want back on releases/%s", got, good.ReleaseID)
	}
	log := h.log(bad.ID)
	if !strings.Contains(log, "not healthy") || !strings.Contains(log, "rolled back: "+want) {
		t.Errorf("log does not tell the story:\n%s", log)
	}
	// The store's view of what is live did not move.
	if live, ok, err := h.st.LiveDeployment(t.Context(), "app", "staging"); err != nil || !ok || live.ID != good.ID {
		t.Errorf("LiveDeployment = %+v %v %v, want #%d", live, ok, err, good.ID)
	}
}

func TestTargetDownFailsThenRetrySucceeds(t *testing.T) {
	t.Parallel()
	srv := sshdtest.New(t)
	path := filepath.Join(t.TempDir(), "prod")
	h := newHarness(t, 1, remoteEnv("prod", srv, path, ""))
	h.start()

	a, _ := h.passedBuild("refs/heads/main", map[string]string{"app": "A"})
	first := h.releaseAndWait("prod", a.Commit, record.DeploySucceeded)

	srv.Stop()
	b, _ := h.passedBuild("refs/heads/main", map[string]string{"app": "B"})
	down := h.releaseAndWait("prod", b.Commit, record.DeployFailed)
	if !strings.HasPrefix(down.Reason, "target unreachable: ") || !strings.Contains(down.Reason, "Connection refused") {
		t.Errorf("reason %q, want target unreachable: ... Connection refused", down.Reason)
	}
	if got := readLink(t, filepath.Join(path, "current")); got != "releases/"+first.ReleaseID {
		t.Fatalf("current -> %q after the failed deployment, want releases/%s", got, first.ReleaseID)
	}
	if !strings.Contains(h.log(down.ID), "failed: target unreachable") {
		t.Errorf("log does not say the target was unreachable:\n%s", h.log(down.ID))
	}

	ctx := t.Context()
	for _, c := range []struct {
		id   int64
		user string
		want string
	}{
		{down.ID, "dave", "user dave may not deploy app to prod"},
		{first.ID, "bob", "succeeded; there is nothing to retry"},
	} {
		if _, err := h.svc.Retry(ctx, c.id, c.user); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Retry(%d, %s) = %v, want %q", c.id, c.user, err, c.want)
		}
	}
	if _, err := h.svc.Retry(ctx, 999, "bob"); !errors.Is(err, record.ErrNotFound) {
		t.Errorf("Retry of a missing deployment: %v, want ErrNotFound", err)
	}

	srv.Start()
	r, err := h.svc.Retry(ctx, down.ID, "bob")
	if err != nil {
		t.Fatal(err)
	}
	if r.Trigger != record.DeployRetry || r.BuildID != b.ID || r.User != "bob" {
		t.Errorf("retry deployment %+v", r)
	}
	r = h.waitState(r.ID, record.DeploySucceeded)
	if got, _ := os.ReadFile(filepath.Join(path, "current", "app")); string(got) != "B" {
		t.Errorf("prod serves %q after the retry, want B", got)
	}
	// The failed deployment is no longer the latest: retrying it now
	// would replace what came after it.
	if _, err := h.svc.Retry(ctx, down.ID, "bob"); err == nil || !strings.Contains(err.Error(), "is not the latest to prod") {
		t.Errorf("Retry of a superseded deployment: %v", err)
	}
}

func TestStartRecordsInterruptedDeploymentsFailedAndGoesOn(t *testing.T) {
	t.Parallel()
	h, path := localHarness(t, "staging", "")
	ctx := t.Context()

	a, _ := h.passedBuild("refs/heads/main", map[string]string{"app": "A"})
	b, _ := h.passedBuild("refs/heads/main", map[string]string{"app": "B"})
	cut := h.enqueueRelease(a.ID, "staging")
	next := h.enqueueRelease(b.ID, "staging")
	// A daemon claimed the first, started its log and transfer, and died.
	if c, ok, err := h.st.ClaimDeployment(ctx); err != nil || !ok || c.ID != cut.ID {
		t.Fatalf("claim: %+v %v %v", c, ok, err)
	}
	if err := h.st.SetDeploymentRelease(ctx, cut.ID, "20250101T000000-1-"+a.Commit[:7]); err != nil {
		t.Fatal(err)
	}
	w, err := h.logs.Create(LogID(cut.ID), 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	w.Printf("==> rsync to releases/20250101T000000-1-%s.partial", a.Commit[:7])
	w.Close()
	writeFiles(t, filepath.Join(path, "releases", "20250101T000000-1-"+a.Commit[:7]+".partial"), map[string]string{"app": "half"})

	h.start()
	got := h.waitState(cut.ID, record.DeployFailed)
	if got.Reason != record.RecoveredDeployReason {
		t.Errorf("reason %q, want %q", got.Reason, record.RecoveredDeployReason)
	}
	if log := h.log(cut.ID); !strings.Contains(log, "rsync to releases") || !strings.Contains(log, "the daemon stopped during deployment #"+itoa(cut.ID)) {
		t.Errorf("log of the interrupted deployment:\n%s", log)
	}
	n := h.waitState(next.ID, record.DeploySucceeded)
	if got, _ := os.ReadFile(filepath.Join(path, "current", "app")); string(got) != "B" {
		t.Errorf("serves %q, want B", got)
	}
	if _, err := os.Stat(filepath.Join(path, "releases", "20250101T000000-1-"+a.Commit[:7]+".partial")); !os.IsNotExist(err) {
		t.Errorf("the partial release of the interrupted deployment is still there: %v", err)
	}
	if !strings.Contains(h.log(n.ID), "removed stale partial release") {
		t.Errorf("log does not say the stale partial release was removed:\n%s", h.log(n.ID))
	}
}

func TestOneDeploymentAtATimePerEnvironmentInOrder(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	order := filepath.Join(dir, "order")
	act := "  activate = 'echo start $SLIPWAY_DEPLOY_ID >> " + order + "; echo end $SLIPWAY_DEPLOY_ID >> " + order + "'"
	h := newHarness(t, 3, localEnv("staging", filepath.Join(dir, "staging"), act))
	ctx := t.Context()

	var ids []int64
	for _, v := range []string{"1", "2", "3"} {
		b, _ := h.passedBuild("refs/heads/main", map[string]string{"app": v})
		d := h.enqueueRelease(b.ID, "staging")
		ids = append(ids, d.ID)
	}
	// Someone follows the last one before it starts.
	var followed bytes.Buffer
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := h.svc.Follow(ctx, ids[2], &followed, true); err != nil {
			t.Errorf("follow: %v", err)
		}
	}()
	var queued bytes.Buffer
	if err := h.svc.Follow(ctx, ids[2], &queued, false); err != nil || queued.String() != "deployment #"+itoa(ids[2])+" is queued; it has no log yet\n" {
		t.Errorf("Follow of a queued deployment wrote %q, %v", queued.String(), err)
	}

	h.start()
	var ds []record.Deployment
	for _, id := range ids {
		ds = append(ds, h.waitState(id, record.DeploySucceeded))
	}
	for i := 1; i < len(ds); i++ {
		if ds[i].StartedAt.Before(ds[i-1].FinishedAt) {
			t.Errorf("deployment #%d started at %v, before #%d finished at %v", ds[i].ID, ds[i].StartedAt, ds[i-1].ID, ds[i-1].FinishedAt)
		}
	}
	got, err := os.ReadFile(order)
	if err != nil {
		t.Fatal(err)
	}
	want := ""
	for _, id := range ids {
		want += "start " + itoa(id) + "\nend " + itoa(id) + "\n"
	}
	if string(got) != want {
		t.Errorf("activate ran in the order\n%s\nwant\n%s", got, want)
	}
	wg.Wait()
	if !strings.Contains(followed.String(), "== deployment #"+itoa(ids[2])+" of app") ||
		!strings.HasSuffix(strings.TrimSpace(followed.String()), "succeeded: release "+ds[2].ReleaseID+" is live") {
		t.Errorf("following the queued deployment gave:\n%s", followed.String())
	}
}

func TestShutdownCancelsRunningDeploymentAndKeepsCurrent(t *testing.T) {
	t.Parallel()
	srv := sshdtest.New(t)
	path := filepath.Join(t.TempDir(), "prod")
	// The hung activate polls for a file instead of sleeping long, so
	// that it ends with the test even if the cut connection leaves it
	// running on the target. It also ends when the test's folder is gone:
	// the cleanup that writes the file runs just before the folder is
	// removed, and a poll between the two would never see it (a loop left
	// running for ever, 10 sleeps a second).
	stop := filepath.Join(path, "stop")
	t.Cleanup(func() { _ = os.WriteFile(stop, nil, 0o644) })
	h := newHarness(t, 1, remoteEnv("prod", srv, path, "  activate = 'if [ -f slow ]; then echo $SLIPWAY_ENV is hanging; while [ ! -e "+stop+" ] && [ -d "+path+" ]; do sleep 0.1; done; fi'"))
	if err := h.svc.Start(t.Context()); err != nil {
		t.Fatal(err)
	}

	a, _ := h.passedBuild("refs/heads/main", map[string]string{"app": "A"})
	first := h.releaseAndWait("prod", a.Commit, record.DeploySucceeded)
	b, _ := h.passedBuild("refs/heads/main", map[string]string{"app": "B", "slow": "1"})
	d := h.mustRelease("bob", "prod", b.Commit)
	testutil.Eventually(t, 30*time.Second, "activate of the second deployment hangs", func() bool {
		return strings.Contains(h.log(d.ID), "prod is hanging")
	})

	ctx, cancel := context.WithCancel(context.Background())
	cancel() // no grace: cancel at once
	if err := h.svc.Shutdown(ctx); err == nil {
		t.Error("Shutdown cut a deployment off and returned nil")
	}
	got := h.get(d.ID)
	if !final(got.State) || got.State == record.DeploySucceeded || !strings.Contains(got.Reason, "the daemon is stopping") {
		t.Errorf("cut-off deployment recorded as %s (%s), want failed or rolled back because the daemon is stopping", got.State, got.Reason)
	}
	if link := readLink(t, filepath.Join(path, "current")); link != "releases/"+first.ReleaseID {
		t.Errorf("current -> %q after the cancelled deployment, want releases/%s", link, first.ReleaseID)
	}
}

func TestRetryResumesThePartialReleaseOfTheFailedAttempt(t *testing.T) {
	t.Parallel()
	h, path := localHarness(t, "staging", "")
	ctx := t.Context()

	b, _ := h.passedBuild("refs/heads/main", map[string]string{"app": "B"})
	cut := h.enqueueRelease(b.ID, "staging")
	if _, _, err := h.st.ClaimDeployment(ctx); err != nil {
		t.Fatal(err)
	}
	rel := "20250101T000000-" + itoa(cut.ID) + "-" + b.Commit[:7]
	if err := h.st.SetDeploymentRelease(ctx, cut.ID, rel); err != nil {
		t.Fatal(err)
	}
	// The daemon died mid-transfer: half a release, and a file the
	// artifacts do not have.
	writeFiles(t, filepath.Join(path, "releases", rel+".partial"), map[string]string{"app": "hal", "stray": "x"})
	h.start()
	h.waitState(cut.ID, record.DeployFailed)

	r, err := h.svc.Retry(ctx, cut.ID, "bob")
	if err != nil {
		t.Fatal(err)
	}
	r = h.waitState(r.ID, record.DeploySucceeded)
	if r.ReleaseID != rel {
		t.Errorf("retry shipped into %q, want the interrupted %q resumed", r.ReleaseID, rel)
	}
	if !strings.Contains(h.log(r.ID), "rsync to releases/"+rel+".partial") {
		t.Errorf("retry did not transfer into the partial release:\n%s", h.log(r.ID))
	}
	if got, _ := os.ReadFile(filepath.Join(path, "current", "app")); string(got) != "B" {
		t.Errorf("serves %q, want B", got)
	}
	if _, err := os.Stat(filepath.Join(path, "current", "stray")); !os.IsNotExist(err) {
		t.Errorf("a file of the interrupted transfer that the artifacts lack is live: %v", err)
	}
}
