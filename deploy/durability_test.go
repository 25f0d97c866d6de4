package deploy

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"slipway/internal/sshdtest"
	"slipway/internal/testutil"
	"slipway/record"
)

// failingFinish is the real store whose writes of deployment outcomes fail
// the first n times, as a full disk or a busy database makes them fail.
type failingFinish struct {
	Records
	n        atomic.Int32 // failures left
	failed   atomic.Int32
	mu       sync.Mutex
	recorded map[int64]int // successful outcome writes per deployment
}

var errDiskFull = errors.New("database or disk is full (SQLITE_FULL)")

func (f *failingFinish) FinishDeployment(ctx context.Context, id int64, state record.DeployState, reason string) error {
	if f.n.Add(-1) >= 0 {
		f.failed.Add(1)
		return errDiskFull
	}
	err := f.Records.FinishDeployment(ctx, id, state, reason)
	if err == nil {
		f.mu.Lock()
		f.recorded[id]++
		f.mu.Unlock()
	}
	return err
}

// TestOutcomeWriteIsRetriedUntilItSucceeds: a deployment whose outcome
// cannot be written (the disk is full) does not stay running: the write is
// tried again with backoff until it succeeds, and the deployment ends
// succeeded, recorded once, its release live on the target and activate
// run once, its log telling the failure once.
func TestOutcomeWriteIsRetriedUntilItSucceeds(t *testing.T) {
	t.Parallel()
	srv := sshdtest.New(t)
	path := filepath.Join(t.TempDir(), "staging")
	h := newHarness(t, 1, remoteEnv("staging", srv, path, `  activate = 'echo "run of $SLIPWAY_DEPLOY_ID" >> ../../activations'`))
	st := &failingFinish{Records: h.st, recorded: map[int64]int{}}
	st.n.Store(4)
	h.svc.o.Store = st
	h.svc.retryFirst, h.svc.retryMax = time.Millisecond, 8*time.Millisecond
	h.start()

	b, _ := h.passedBuild("refs/heads/main", map[string]string{"app": "A"})
	d := h.releaseAndWait("staging", b.Commit, record.DeploySucceeded)
	if n := st.failed.Load(); n != 4 {
		t.Fatalf("%d failed writes, want 4", n)
	}
	st.mu.Lock()
	if n := st.recorded[d.ID]; n != 1 {
		t.Errorf("the outcome was written %d times, want once", n)
	}
	st.mu.Unlock()
	if d.Reason != "release "+d.ReleaseID+" is live" {
		t.Errorf("reason %q", d.Reason)
	}
	if got := readLink(t, filepath.Join(path, "current")); got != "releases/"+d.ReleaseID {
		t.Errorf("current -> %q, want releases/%s", got, d.ReleaseID)
	}
	if got, _ := os.ReadFile(filepath.Join(path, "current", "app")); string(got) != "A" {
		t.Errorf("current/app = %q, want A", got)
	}
	if got, _ := os.ReadFile(filepath.Join(path, "activations")); string(got) != "run of "+itoa(d.ID)+"\n" {
		t.Errorf("activations %q, want one run", got)
	}
	log := h.log(d.ID)
	if n := strings.Count(log, "== could not record the outcome (succeeded): "+errDiskFull.Error()+"; retrying"); n != 1 {
		t.Errorf("the log tells the failure %d times, want once:\n%s", n, log)
	}
	if !strings.Contains(log, "== outcome recorded (attempt 5 of the write)") ||
		!strings.Contains(log, "== deployment #"+itoa(d.ID)+" succeeded: release "+d.ReleaseID+" is live") {
		t.Errorf("log:\n%s", log)
	}
}

// TestOutcomeRefusedIsNotRetried: an outcome the store refuses for good
// (the deployment is no longer running) is written once, not retried.
func TestOutcomeRefusedIsNotRetried(t *testing.T) {
	t.Parallel()
	h, _ := localHarness(t, "staging", "")
	h.svc.retryFirst, h.svc.retryMax = time.Millisecond, time.Millisecond
	ctx := t.Context()
	b, _ := h.passedBuild("refs/heads/main", map[string]string{"app": "A"})
	d := h.enqueueRelease(b.ID, "staging")
	if c, ok, err := h.st.ClaimDeployment(ctx); err != nil || !ok || c.ID != d.ID {
		t.Fatalf("claim: %+v %v %v", c, ok, err)
	}
	if err := h.st.FinishDeployment(ctx, d.ID, record.DeployFailed, "ended elsewhere"); err != nil {
		t.Fatal(err)
	}
	calls := &countingFinish{Records: h.st}
	h.svc.o.Store = calls
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.svc.finish(ctx, d, nil, record.DeploySucceeded, "release x is live")
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("finish keeps retrying a write the store refuses for good")
	}
	if n := calls.n.Load(); n != 1 {
		t.Errorf("%d writes of a refused outcome, want 1", n)
	}
	if got := h.get(d.ID); got.State != record.DeployFailed || got.Reason != "ended elsewhere" {
		t.Errorf("deployment %s (%s), want failed: ended elsewhere", got.State, got.Reason)
	}
}

// countingFinish counts the writes of deployment outcomes.
type countingFinish struct {
	Records
	n atomic.Int32
}

func (c *countingFinish) FinishDeployment(ctx context.Context, id int64, state record.DeployState, reason string) error {
	c.n.Add(1)
	return c.Records.FinishDeployment(ctx, id, state, reason)
}

// TestWatchdogSettlesDeploymentsNobodyRuns: deployments recorded running
// that no worker of this process runs (a worker lost, an outcome never
// written) are settled by the watchdog as recovery at start settles them,
// from what the target says: one whose release is live is recorded
// succeeded and its activate runs again; one whose switch never happened
// is recorded failed and current stays where it was. A deployment that a
// worker runs meanwhile is left alone through many rounds.
func TestWatchdogSettlesDeploymentsNobodyRuns(t *testing.T) {
	t.Parallel()
	srv := sshdtest.New(t)
	dir := t.TempDir()
	staging, qa, prod := filepath.Join(dir, "staging"), filepath.Join(dir, "qa"), filepath.Join(dir, "prod")
	activate := `echo "run of $SLIPWAY_DEPLOY_ID in $SLIPWAY_RELEASE" >> ../../activations`
	// prod's activate polls for a file instead of sleeping long, so that it
	// ends with the test whatever happens; also when the test's folder is
	// removed right after the file is written, before a poll saw it.
	stop := filepath.Join(dir, "stop")
	t.Cleanup(func() { _ = os.WriteFile(stop, nil, 0o644) })
	h := newHarness(t, 1,
		remoteEnv("staging", srv, staging, "  activate = '"+activate+"'"),
		remoteEnv("qa", srv, qa, ""),
		remoteEnv("prod", srv, prod, "  activate = 'echo $SLIPWAY_ENV is waiting; while [ ! -e "+stop+" ] && [ -d "+dir+" ]; do sleep 0.05; done'"),
	)
	h.svc.watchEvery = 5 * time.Millisecond
	h.start()
	ctx := t.Context()

	b, _ := h.passedBuild("refs/heads/main", map[string]string{"app": "A"})
	busy := h.mustRelease("bob", "prod", b.Commit)
	testutil.Eventually(t, 30*time.Second, "the prod deployment to wait in activate", func() bool {
		return strings.Contains(h.log(busy.ID), "prod is waiting")
	})

	// Deployments a vanished worker claimed, recorded as far as it got.
	// mu keeps the watchdog from looking before the records are complete
	// (and the service's worker from claiming them).
	var live, cut record.Deployment
	func() {
		h.svc.mu.Lock()
		defer h.svc.mu.Unlock()
		live = cutAfterSwitch(t, h, "staging", activate, b)
		d := h.enqueueRelease(b.ID, "qa")
		if c, ok, err := h.st.ClaimDeployment(ctx); err != nil || !ok || c.ID != d.ID {
			t.Fatalf("claim: %+v %v %v", c, ok, err)
		}
		cut = d
		cut.ReleaseID = "20250101T000000-" + itoa(d.ID) + "-" + b.Commit[:7]
		if err := h.st.SetDeploymentRelease(ctx, cut.ID, cut.ReleaseID); err != nil {
			t.Fatal(err)
		}
	}()

	got := h.wait(live.ID)
	if got.State != record.DeploySucceeded || !strings.Contains(got.Reason, "release "+live.ReleaseID+" is live; its worker was lost during activate") {
		t.Fatalf("the orphan found live is %s (%s), want succeeded", got.State, got.Reason)
	}
	testutil.Eventually(t, 30*time.Second, "activate to have run again", func() bool {
		return strings.Contains(h.get(live.ID).Reason, "ran again by the watchdog and succeeded")
	})
	if link := readLink(t, filepath.Join(staging, "current")); link != "releases/"+live.ReleaseID {
		t.Errorf("staging current -> %q, want releases/%s", link, live.ReleaseID)
	}
	acts, _ := os.ReadFile(filepath.Join(staging, "activations"))
	if want := strings.Repeat("run of "+itoa(live.ID)+" in "+live.ReleaseID+"\n", 2); string(acts) != want {
		t.Errorf("activations %q, want %q", acts, want)
	}
	// The outcome is noted on the record before the log tells it.
	testutil.Eventually(t, 30*time.Second, "the log to tell activate ran again", func() bool {
		return strings.Contains(h.log(live.ID), "ran again by the watchdog and succeeded")
	})
	if log := h.log(live.ID); !strings.Contains(log, "== its worker was lost during deployment #"+itoa(live.ID)+" after current was switched") {
		t.Errorf("log of the orphan found live:\n%s", log)
	}

	got = h.wait(cut.ID)
	if got.State != record.DeployFailed || got.Reason != orphanedDeployReason {
		t.Errorf("the orphan never switched is %s (%s), want failed: %s", got.State, got.Reason, orphanedDeployReason)
	}
	if link := readLink(t, filepath.Join(qa, "current")); link != "" {
		t.Errorf("qa current -> %q, want none", link)
	}
	if log := h.log(cut.ID); !strings.Contains(log, "== its worker was lost during deployment #"+itoa(cut.ID)+"; it is recorded as failed (current was not switched") {
		t.Errorf("log of the orphan never switched:\n%s", log)
	}

	// The deployment a worker runs was left to it.
	if got := h.get(busy.ID); got.State != record.DeployRunning {
		t.Fatalf("the busy deployment is %s (%s) while its activate still runs", got.State, got.Reason)
	}
	if err := os.WriteFile(stop, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	d := h.waitState(busy.ID, record.DeploySucceeded)
	if link := readLink(t, filepath.Join(prod, "current")); link != "releases/"+d.ReleaseID {
		t.Errorf("prod current -> %q, want releases/%s", link, d.ReleaseID)
	}
	if log := h.log(busy.ID); strings.Contains(log, "worker was lost") {
		t.Errorf("the watchdog touched the busy deployment:\n%s", log)
	}
}
