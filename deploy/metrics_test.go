package deploy

import (
	"testing"
	"time"

	"slipway/metrics"
	"slipway/metrics/metricstest"
	"slipway/record"
)

// TestMetricsDeploymentsByEnvironmentAndOutcome: real deployments to a
// local folder that succeed, roll back and fail, and what /metrics shows
// of them: one count per outcome under the repository and environment,
// and each run's duration.
func TestMetricsDeploymentsByEnvironmentAndOutcome(t *testing.T) {
	t.Parallel()
	h, _ := localHarness(t, "staging", "  auto = \"main\"\n  activate = 'test -f healthy || exit 3'")
	m, err := metrics.New(metrics.Options{Config: h.cfg})
	if err != nil {
		t.Fatal(err)
	}
	if h.svc, err = NewService(ServiceOptions{
		Revisions: commitsOnly{},
		Config:    h.cfg, Store: h.st, Logs: h.logs, Workers: 1,
		Logger:  testLogger(t),
		Metrics: m,
	}); err != nil {
		t.Fatal(err)
	}
	h.start()

	start := time.Now()
	_, ds := h.passedBuild("refs/heads/main", map[string]string{"healthy": "yes"})
	h.waitState(ds[0].ID, record.DeploySucceeded)
	_, ds = h.passedBuild("refs/heads/main", map[string]string{"app": "2"})
	h.waitState(ds[0].ID, record.DeployRolledBack)
	_, ds = h.passedBuild("refs/heads/main", nil)
	h.waitState(ds[0].ID, record.DeployFailed)
	took := time.Since(start)

	f := metricstest.Gather(t, m.Gatherer())
	total := 0.0
	for _, state := range []string{"succeeded", "rolled_back", "failed"} {
		if n, _ := f.Value("slipway_deployments_total", "repo", "app", "env", "staging", "state", state); n != 1 {
			t.Errorf("deployments %s: %v, want 1", state, n)
		}
		if n, _ := f.Value("slipway_deployment_duration_seconds", "env", "staging", "state", state); n != 1 {
			t.Errorf("durations of %s deployments: %v, want 1", state, n)
		}
		sum, _ := f.Sum("slipway_deployment_duration_seconds", "env", "staging", "state", state)
		if sum <= 0 {
			t.Errorf("duration of the %s deployment: %v s", state, sum)
		}
		total += sum
	}
	if total > took.Seconds() {
		t.Errorf("deployments took %.3f s in all by the metrics, %.3f s measured around them", total, took.Seconds())
	}
}
