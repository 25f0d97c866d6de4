package build

import (
	"testing"
	"time"

	"slipway/internal/testutil"
	"slipway/metrics"
	"slipway/metrics/metricstest"
	"slipway/record"
)

// withMetrics gives e's service a real metrics registry.
func withMetrics(e *testEnv) *metrics.Metrics {
	e.t.Helper()
	m, err := metrics.New(metrics.Options{Config: e.cfg})
	if err != nil {
		e.t.Fatal(err)
	}
	e.metrics = m
	e.svc = e.newService()
	if err := m.WatchBuilds(e.svc.Load); err != nil {
		e.t.Fatal(err)
	}
	return m
}

// TestMetricsBuildsByResultAndQueue: real pushes and builds, and what
// /metrics shows of them: builds by repository and final state (ran or
// not), the runs' durations, the queue's waits, and the queue's depth and
// running builds read at the moment of the scrape.
func TestMetricsBuildsByResultAndQueue(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "concurrency = 1", appRepo)
	m := withMetrics(e)
	gather := func() metricstest.Families { return metricstest.Gather(t, m.Gatherer()) }
	value := func(f metricstest.Families, name string, labels ...string) float64 {
		v, _ := f.Value(name, labels...)
		return v
	}
	r := e.newRepo("app")
	scratch := e.newRepo("scratch") // not configured: an admin's repository

	// Before any worker runs: build 1 is superseded by build 2, a
	// commit without a pipeline file is skipped, in app and in scratch.
	sha1 := e.pushPipeline(r, "refs/heads/main", "[build]\nsteps = [\"true\"]\n")
	sha2 := r.pipelineCommit("refs/heads/main", "[build]\nsteps = [\"true\"]\n")
	e.push(t.Context(), "app", nil, record.RefUpdate{Name: "refs/heads/main", Old: sha1, New: sha2})
	e.push(t.Context(), "app", nil, update("refs/heads/bare", r.commit("refs/heads/bare", map[string]*string{".slipway.toml": nil})))
	e.push(t.Context(), "scratch", nil, update("refs/heads/main", scratch.commit("refs/heads/main", map[string]*string{"a": ptr("a")})))
	f := gather()
	if q, run := value(f, "slipway_builds_queued"), value(f, "slipway_builds_running"); q != 1 || run != 0 {
		t.Errorf("before the workers start: queued %v running %v, want 1 and 0", q, run)
	}
	for _, c := range []struct {
		repo, state string
	}{{"app", "superseded"}, {"app", "skipped"}, {metrics.OtherRepo, "skipped"}} {
		if n := value(f, "slipway_builds_total", "repo", c.repo, "state", c.state); n != 1 {
			t.Errorf("builds %s %s: %v, want 1", c.repo, c.state, n)
		}
	}

	// Build 2 passes; a slow one runs while another waits behind it.
	e.start()
	if b := e.waitFinal(2); b.State != record.StatePassed {
		t.Fatalf("build 2: %s %s", b.State, b.Reason)
	}
	e.push(t.Context(), "app", nil, update("refs/heads/slow", r.pipelineCommit("refs/heads/slow", "[build]\nsteps = [\"echo started-$((40+2)); sleep 4246.5\"]\n")))
	slow := e.builds("app")[0].ID
	e.waitLog(slow, "started-42")
	e.push(t.Context(), "app", nil, update("refs/heads/next", r.pipelineCommit("refs/heads/next", "[build]\nsteps = [\"true\"]\n")))
	next := e.builds("app")[0].ID
	e.push(t.Context(), "app", nil, update("refs/heads/dropped", r.pipelineCommit("refs/heads/dropped", "[build]\nsteps = [\"true\"]\n")))
	dropped := e.builds("app")[0].ID
	f = gather()
	if q, run := value(f, "slipway_builds_queued"), value(f, "slipway_builds_running"); q != 2 || run != 1 {
		t.Errorf("while the slow build runs: queued %v running %v, want 2 and 1", q, run)
	}
	// One cancelled while queued (no run), the slow one while it runs.
	if err := e.svc.CancelBy(t.Context(), dropped, "alice"); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.CancelBy(t.Context(), slow, "alice"); err != nil {
		t.Fatal(err)
	}
	if b := e.waitFinal(next); b.State != record.StatePassed {
		t.Fatalf("build %d: %s %s", next, b.State, b.Reason)
	}
	testutil.Eventually(t, 10*time.Second, "no build running", func() bool {
		return value(gather(), "slipway_builds_running") == 0
	})

	f = gather()
	for _, c := range []struct {
		repo, state string
		want        float64
	}{
		{"app", "passed", 2},
		{"app", "cancelled", 2},
		{"app", "superseded", 1},
		{"app", "skipped", 1},
		{metrics.OtherRepo, "skipped", 1},
	} {
		if n := value(f, "slipway_builds_total", "repo", c.repo, "state", c.state); n != c.want {
			t.Errorf("builds %s %s: %v, want %v", c.repo, c.state, n, c.want)
		}
	}
	if n := f.Series("slipway_builds_total"); n != 5 {
		t.Errorf("%d series of slipway_builds_total, want 5", n)
	}
	// Runs only: the two passed and the slow one cancelled.
	if n := value(f, "slipway_build_duration_seconds", "state", "passed"); n != 2 {
		t.Errorf("durations of passed builds: %v, want 2", n)
	}
	if n := value(f, "slipway_build_duration_seconds", "state", "cancelled"); n != 1 {
		t.Errorf("durations of cancelled builds: %v, want 1 (the one cancelled while queued did not run)", n)
	}
	if n := value(f, "slipway_build_queue_wait_seconds", "trigger", "push"); n != 3 {
		t.Errorf("queue waits: %v, want 3", n)
	}
	// Build 2 waited from its push until the workers started, the next
	// one while the slow one ran: seconds, not nothing.
	if sum, _ := f.Sum("slipway_build_queue_wait_seconds", "trigger", "push"); sum <= 0 {
		t.Errorf("queue wait sum %v", sum)
	}
	if q := value(f, "slipway_builds_queued"); q != 0 {
		t.Errorf("queued at the end: %v", q)
	}
}

// TestMetricsVerifiedBuild: a verify build that passes is counted passed
// once its push is recorded, with its run's duration and its wait under
// trigger verify.
func TestMetricsVerifiedBuild(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "concurrency = 1", appRepo)
	m := withMetrics(e)
	e.start()
	r := e.newRepo("app")
	v := r.toVerify("refs/heads/main", pipelineFile("[build]\nsteps = [\"echo verifying\"]\n"))
	release, err := e.svc.Verify(t.Context(), v.push, v.refs, v.quarantine, newWatcher(""))
	if err != nil {
		t.Fatal(err)
	}
	f := metricstest.Gather(t, m.Gatherer())
	if n := f.Series("slipway_builds_total"); n != 0 {
		t.Errorf("a verify build that waits for its push is counted already: %d series", n)
	}
	r.land("refs/heads/main")
	if _, err := e.handlePush(t.Context(), v.push, newWatcher("")); err != nil {
		t.Fatal(err)
	}
	release()
	f = metricstest.Gather(t, m.Gatherer())
	if n, _ := f.Value("slipway_builds_total", "repo", "app", "state", "passed"); n != 1 {
		t.Errorf("passed verify builds: %v, want 1", n)
	}
	if n, _ := f.Value("slipway_build_duration_seconds", "state", "passed"); n != 1 {
		t.Errorf("durations: %v, want 1", n)
	}
	if n, _ := f.Value("slipway_build_queue_wait_seconds", "trigger", "verify"); n != 1 {
		t.Errorf("queue waits of verify builds: %v, want 1", n)
	}
}
