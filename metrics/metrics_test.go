package metrics

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"slipway/configs"
	"slipway/metrics/metricstest"
	"slipway/record"
)

func newTestMetrics(t testing.TB, toml string) *Metrics {
	t.Helper()
	cfg, err := configs.Loader{}.Parse([]byte(toml), "test.toml")
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(Options{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

const twoRepos = `
[[repo]]
name = "app"
  [[repo.environment]]
  name = "staging"
  target = "/srv/app"
[[repo]]
name = "team/lib"
`

// scrape fetches m's page through its handler and parses it as Prometheus
// would.
func scrape(t *testing.T, m *Metrics) metricstest.Families {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics: %d\n%s", rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("Content-Type %q", ct)
	}
	return metricstest.Parse(t, rec.Body)
}

// value is fams.Value with the labels of a map.
func value(fams metricstest.Families, name string, labels map[string]string) (float64, bool) {
	var kv []string
	for k, v := range labels {
		kv = append(kv, k, v)
	}
	return fams.Value(name, kv...)
}

// TestEveryCallShowsOnThePage: each method moves its own series, with the
// labels it was given, and the page a scraper reads says so.
func TestEveryCallShowsOnThePage(t *testing.T) {
	t.Parallel()
	m := newTestMetrics(t, twoRepos)
	created := time.Now().Add(-3 * time.Second)

	m.SSHConnection(StageAccepted)
	m.SSHConnection(StageAccepted)
	m.SSHConnection(StageAuthenticated)
	m.SSHRefused("max_startups")
	m.GitOperation("push", true, 1500*time.Millisecond)
	m.GitOperation("fetch", false, 20*time.Millisecond)
	m.PushRecorded("app")
	m.PushRecorded("team/lib")
	m.PushRecorded("team/lib")
	m.BuildStarted(record.Build{Repo: "app", Trigger: record.TriggerPush, Attempt: 1, CreatedAt: created, StartedAt: created.Add(2 * time.Second)})
	m.BuildStarted(record.Build{Repo: "app", Trigger: record.TriggerPush, Attempt: 2, CreatedAt: created, StartedAt: created.Add(time.Hour)})
	m.BuildFinished(record.Build{Repo: "app"}, record.StatePassed, 42*time.Second)
	m.BuildFinished(record.Build{Repo: "team/lib"}, record.StateFailed, 3*time.Second)
	m.BuildEnded("app", record.StateSuperseded)
	m.DeploymentFinished(record.Deployment{Repo: "app", Env: "staging"}, record.DeploySucceeded, 2*time.Second)
	m.ScheduleFired("app", "nightly", record.TriggerSchedule)
	m.ScheduleSkipped("app", "nightly", SkipBuild, 2)
	m.ScheduleSkipped("app", "nightly", SkipMissed, 0)
	m.LogWritten("build", 100)
	m.LogWritten("deployment", 7)
	m.LogDiscarded("build", 1<<20)

	fams := scrape(t, m)
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"slipway_ssh_connections_total", map[string]string{"stage": "accepted"}, 2},
		{"slipway_ssh_connections_total", map[string]string{"stage": "authenticated"}, 1},
		{"slipway_ssh_connections_refused_total", map[string]string{"reason": "max_startups"}, 1},
		{"slipway_git_operation_duration_seconds", map[string]string{"kind": "push", "result": "ok"}, 1},
		{"slipway_git_operation_duration_seconds", map[string]string{"kind": "fetch", "result": "failed"}, 1},
		{"slipway_pushes_total", map[string]string{"repo": "app"}, 1},
		{"slipway_pushes_total", map[string]string{"repo": "team/lib"}, 2},
		// The second attempt waited for the daemon, not for a worker.
		{"slipway_build_queue_wait_seconds", map[string]string{"trigger": "push"}, 1},
		{"slipway_builds_total", map[string]string{"repo": "app", "state": "passed"}, 1},
		{"slipway_builds_total", map[string]string{"repo": "team/lib", "state": "failed"}, 1},
		{"slipway_builds_total", map[string]string{"repo": "app", "state": "superseded"}, 1},
		{"slipway_build_duration_seconds", map[string]string{"state": "passed"}, 1},
		{"slipway_deployments_total", map[string]string{"repo": "app", "env": "staging", "state": "succeeded"}, 1},
		{"slipway_deployment_duration_seconds", map[string]string{"env": "staging", "state": "succeeded"}, 1},
		{"slipway_schedule_fires_total", map[string]string{"repo": "app", "schedule": "nightly", "trigger": "schedule"}, 1},
		{"slipway_schedule_skips_total", map[string]string{"repo": "app", "schedule": "nightly", "reason": "build_skipped"}, 2},
		{"slipway_log_bytes_total", map[string]string{"kind": "build"}, 100},
		{"slipway_log_bytes_total", map[string]string{"kind": "deployment"}, 7},
		{"slipway_log_discarded_bytes_total", map[string]string{"kind": "build"}, 1 << 20},
	} {
		got, ok := value(fams, c.name, c.labels)
		if !ok || got != c.want {
			t.Errorf("%s%v = %v (present %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	if _, ok := value(fams, "slipway_schedule_skips_total", map[string]string{"repo": "app", "schedule": "nightly", "reason": "missed"}); ok {
		t.Error("ScheduleSkipped with n = 0 made a series")
	}
	// The queue wait is the time from queued to claimed: 2 s.
	if sum, _ := fams.Sum("slipway_build_queue_wait_seconds", "trigger", "push"); sum != 2 {
		t.Errorf("queue wait sum %v s, want 2", sum)
	}
	if testutil.CollectAndCount(m.buildTime) != 2 {
		t.Errorf("build durations: %d series, want 2", testutil.CollectAndCount(m.buildTime))
	}
	// The process's own figures come with it: the daemon's memory.
	if _, ok := value(fams, "process_resident_memory_bytes", nil); !ok {
		t.Error("no process_resident_memory_bytes")
	}
	if _, ok := value(fams, "go_goroutines", nil); !ok {
		t.Error("no go_goroutines")
	}
}

// TestUnconfiguredRepositoriesShareOneLabel: a repository the
// configuration does not name (made by an admin's push) is counted under
// "_other", so pushes to a thousand new names make one series, not a
// thousand.
func TestUnconfiguredRepositoriesShareOneLabel(t *testing.T) {
	t.Parallel()
	m := newTestMetrics(t, twoRepos)
	for i := range 1000 {
		m.PushRecorded("scratch/r" + string(rune('a'+i%26)) + strings.Repeat("x", i%7))
	}
	m.PushRecorded("app")
	if n := testutil.CollectAndCount(m.pushes); n != 2 {
		t.Errorf("%d series of slipway_pushes_total, want 2 (app and _other)", n)
	}
	if v := testutil.ToFloat64(m.pushes.WithLabelValues(OtherRepo)); v != 1000 {
		t.Errorf("_other = %v, want 1000", v)
	}
	if v := testutil.ToFloat64(m.pushes.WithLabelValues("app")); v != 1 {
		t.Errorf("app = %v, want 1", v)
	}
}

// TestReloadDecidesTheLabel: the configuration in force when a push is
// counted decides whether its repository has a label of its own.
func TestReloadDecidesTheLabel(t *testing.T) {
	t.Parallel()
	before, err := configs.Loader{}.Parse([]byte(`[[repo]]
name = "app"`), "a.toml")
	if err != nil {
		t.Fatal(err)
	}
	after, err := configs.Loader{}.Parse([]byte(twoRepos), "b.toml")
	if err != nil {
		t.Fatal(err)
	}
	live := configs.NewLive(before, configs.Origin{Generation: 1})
	m, err := New(Options{Config: live})
	if err != nil {
		t.Fatal(err)
	}
	m.PushRecorded("team/lib")
	live.Swap(after, configs.Origin{Generation: 2})
	m.PushRecorded("team/lib")
	if a, b := testutil.ToFloat64(m.pushes.WithLabelValues(OtherRepo)), testutil.ToFloat64(m.pushes.WithLabelValues("team/lib")); a != 1 || b != 1 {
		t.Errorf("_other %v, team/lib %v; want 1 and 1", a, b)
	}
}

// TestGaugesAreReadAtScrapeTime: the queue and connection gauges show what
// their functions say at the moment of the scrape; a queue that cannot be
// read leaves its gauges out of that scrape, and the rest is still served.
func TestGaugesAreReadAtScrapeTime(t *testing.T) {
	t.Parallel()
	m := newTestMetrics(t, twoRepos)
	queued, running, pre, authed := 0, 0, 0, 0
	var loadErr error
	if err := m.WatchBuilds(func(context.Context) (int, int, error) { return queued, running, loadErr }); err != nil {
		t.Fatal(err)
	}
	if err := m.WatchSSH(func() (int, int) { return pre, authed }); err != nil {
		t.Fatal(err)
	}
	if err := m.WatchSSH(func() (int, int) { return 0, 0 }); err == nil {
		t.Error("a second WatchSSH was accepted")
	}
	queued, running, pre, authed = 7, 2, 3, 5
	fams := scrape(t, m)
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"slipway_builds_queued", nil, 7},
		{"slipway_builds_running", nil, 2},
		{"slipway_ssh_connections", map[string]string{"state": "preauth"}, 3},
		{"slipway_ssh_connections", map[string]string{"state": "authenticated"}, 5},
	} {
		if got, ok := value(fams, c.name, c.labels); !ok || got != c.want {
			t.Errorf("%s%v = %v (present %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	queued = 9
	if got, _ := value(scrape(t, m), "slipway_builds_queued", nil); got != 9 {
		t.Errorf("second scrape: queued %v, want 9", got)
	}

	loadErr = errors.New("database is locked")
	m.PushRecorded("app")
	fams = scrape(t, m)
	if _, ok := value(fams, "slipway_builds_queued", nil); ok {
		t.Error("a queue that could not be read was shown")
	}
	if got, ok := value(fams, "slipway_pushes_total", map[string]string{"repo": "app"}); !ok || got != 1 {
		t.Errorf("the other series went with the failing gauge: pushes %v %v", got, ok)
	}
	// Counted once that scrape was gathered: the next one shows it.
	if got, ok := value(scrape(t, m), "promhttp_metric_handler_errors_total", map[string]string{"cause": "gathering"}); !ok || got != 1 {
		t.Errorf("the failure was not counted: %v %v", got, ok)
	}
}

// TestLint: the whole registry, every series made, passes Prometheus'
// metric lint (promtool check metrics), and each of our collectors alone.
func TestLint(t *testing.T) {
	t.Parallel()
	m := newTestMetrics(t, twoRepos)
	if err := m.WatchBuilds(func(context.Context) (int, int, error) { return 1, 1, nil }); err != nil {
		t.Fatal(err)
	}
	if err := m.WatchSSH(func() (int, int) { return 1, 1 }); err != nil {
		t.Fatal(err)
	}
	m.SSHConnection(StageAccepted)
	m.SSHRefused("failed")
	m.GitOperation("fetch", true, time.Second)
	m.PushRecorded("app")
	m.BuildStarted(record.Build{Trigger: record.TriggerSchedule, Attempt: 1, CreatedAt: time.Now(), StartedAt: time.Now()})
	m.BuildFinished(record.Build{Repo: "app"}, record.StatePassed, time.Minute)
	m.BuildEnded("x", record.StateCancelled)
	m.DeploymentFinished(record.Deployment{Repo: "app", Env: "staging"}, record.DeployFailed, time.Second)
	m.ScheduleFired("app", "nightly", record.TriggerManual)
	m.ScheduleSkipped("app", "nightly", SkipMissed, 1)
	m.LogWritten("build", 1)
	m.LogDiscarded("build", 1)
	problems, err := testutil.GatherAndLint(m.Gatherer())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	for _, c := range m.own() {
		problems, err := testutil.CollectAndLint(c)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range problems {
			t.Errorf("lint: %s: %s", p.Metric, p.Text)
		}
	}
}

// TestHandlerText: the page is Prometheus' text format with HELP and TYPE
// lines for our series.
func TestHandlerText(t *testing.T) {
	t.Parallel()
	m := newTestMetrics(t, twoRepos)
	m.PushRecorded("app")
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{
		"# HELP slipway_pushes_total Pushes recorded",
		"# TYPE slipway_pushes_total counter",
		`slipway_pushes_total{repo="app"} 1`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("no %q in\n%s", want, body)
		}
	}
}
