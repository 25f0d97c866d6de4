package build

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"slipway/internal/testutil"
	"slipway/record"
	"slipway/store"
)

// failingFinish is the real store whose writes of build results fail the
// first n times, as a full disk or a busy database makes them fail.
type failingFinish struct {
	*store.Store
	n        atomic.Int32 // failures left
	failed   atomic.Int32
	mu       sync.Mutex
	recorded map[int64]int // successful result writes per build
}

var errDiskFull = errors.New("database or disk is full (SQLITE_FULL)")

func (f *failingFinish) fail() bool {
	if f.n.Add(-1) >= 0 {
		f.failed.Add(1)
		return true
	}
	return false
}

func (f *failingFinish) count(id int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.recorded[id]++
}

func (f *failingFinish) FinishBuild(ctx context.Context, id int64, state record.State, reason string, steps []record.StepResult) error {
	if f.fail() {
		return errDiskFull
	}
	err := f.Store.FinishBuild(ctx, id, state, reason, steps)
	if err == nil {
		f.count(id)
	}
	return err
}

func (f *failingFinish) FinishBuildAndDeploy(ctx context.Context, id int64, state record.State, reason string, steps []record.StepResult, ds []record.Deployment) ([]record.Deployment, error) {
	if f.fail() {
		return nil, errDiskFull
	}
	out, err := f.Store.FinishBuildAndDeploy(ctx, id, state, reason, steps, ds)
	if err == nil {
		f.count(id)
	}
	return out, err
}

// newServiceOn is newService with another Records in front of the store.
func (e *testEnv) newServiceOn(st Records) *Service {
	e.t.Helper()
	svc := e.newService()
	svc.o.Store = st
	return svc
}

// TestResultWriteIsRetriedUntilItSucceeds: a build whose result cannot be
// written (the disk is full) does not stay running: the write is tried
// again with backoff until it succeeds, and the build ends passed, recorded
// once, its log saying what happened once.
func TestResultWriteIsRetriedUntilItSucceeds(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "concurrency = 1", appRepo)
	st := &failingFinish{Store: e.st, recorded: map[int64]int{}}
	st.n.Store(4)
	e.svc = e.newServiceOn(st)
	e.svc.retryFirst, e.svc.retryMax = time.Millisecond, 8*time.Millisecond
	e.start()
	r := e.newRepo("app")
	e.pushPipeline(r, "refs/heads/main", "[build]\nsteps = [\"echo result-retry\"]\n")
	b := e.waitFinal(1)
	if b.State != record.StatePassed || b.Attempt != 1 {
		t.Fatalf("build %s after attempt %d: %s", b.State, b.Attempt, b.Reason)
	}
	if n := st.failed.Load(); n != 4 {
		t.Fatalf("%d failed writes, want 4", n)
	}
	st.mu.Lock()
	if n := st.recorded[1]; n != 1 {
		t.Errorf("the result was written %d times, want once", n)
	}
	st.mu.Unlock()
	log := e.logOf(1)
	if n := strings.Count(log, "== could not record the result (passed): "+errDiskFull.Error()+"; retrying"); n != 1 {
		t.Errorf("the log tells the failure %d times, want once:\n%s", n, log)
	}
	if !strings.Contains(log, "== result recorded (attempt 5 of the write)") || !strings.Contains(log, "== passed in ") {
		t.Errorf("log:\n%s", log)
	}
}

// TestWatchdogRequeuesBuildsNobodyRuns: a build recorded running that no
// worker of this process runs (its worker lost, its result never written)
// is queued again by the watchdog, by recovery's rule, and runs as attempt
// 2; a build that is running meanwhile is left alone through many rounds.
func TestWatchdogRequeuesBuildsNobodyRuns(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "concurrency = 1", appRepo)
	e.svc.watchEvery = 5 * time.Millisecond
	e.start()
	r := e.newRepo("app")
	// The first build runs until the test has claimed the second (with
	// the one worker free, the service would claim it first), and long
	// enough for the watchdog to look at it many times: its step waits
	// for a file the test puts in its workspace.
	e.pushPipeline(r, "refs/heads/main", "[build]\nsteps = [\"echo live; touch started; while [ ! -e go-on ]; do sleep 0.05; done\"]\n")
	var workspace string
	testutil.Eventually(t, 30*time.Second, "build 1 to start", func() bool {
		_ = filepath.WalkDir(filepath.Join(e.data, "work"), func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.Name() == "started" {
				workspace = filepath.Dir(p)
				return fs.SkipAll
			}
			return nil
		})
		return workspace != ""
	})
	goOn := func() error { return os.WriteFile(filepath.Join(workspace, "go-on"), nil, 0o644) }
	defer func() { _ = goOn() }() // whatever fails below, build 1 ends
	// Build 2, of another branch, claimed by a worker that then vanished
	// (the one worker of the service is busy with build 1).
	e.pushPipeline(r, "refs/heads/other", "[build]\nsteps = [\"echo orphan ran\"]\n")
	const id = 2
	e.svc.mu.Lock() // no worker of the service claims it before we do
	c, ok, err := e.st.ClaimBuild(t.Context(), "vanished")
	e.svc.mu.Unlock()
	if !ok || err != nil || c.ID != id {
		t.Fatalf("claim: %+v %v %v", c, ok, err)
	}
	time.Sleep(100 * time.Millisecond) // twenty rounds of the watchdog
	if err := goOn(); err != nil {
		t.Fatal(err)
	}

	first := e.waitFinal(1)
	if first.State != record.StatePassed || first.Attempt != 1 {
		t.Fatalf("the live build: %s after attempt %d: %s", first.State, first.Attempt, first.Reason)
	}
	if log := e.logOf(1); strings.Contains(log, "no worker") {
		t.Errorf("the watchdog touched the live build:\n%s", log)
	}
	b := e.waitFinal(id)
	if b.State != record.StatePassed || b.Attempt != 2 {
		t.Fatalf("the orphaned build: %s after attempt %d: %s", b.State, b.Attempt, b.Reason)
	}
	log := e.logOf(id)
	if !strings.Contains(log, "== attempt 1 has no worker any more (its result was never recorded); running again") ||
		!strings.Contains(log, "(attempt 2)") || !strings.Contains(log, "orphan ran") {
		t.Errorf("log of the orphaned build:\n%s", log)
	}
}
