package schedule_test

import (
	"testing"

	"slipway/metrics"
	"slipway/metrics/metricstest"
	"slipway/record"
)

// TestMetricsFiresAndSkips: what /metrics shows of a schedule's life —
// firings at their time and by hand, a branch's build skipped because
// the previous run is still queued, a missing branch's error builds, and
// the nights missed while the daemon was down, not caught up.
func TestMetricsFiresAndSkips(t *testing.T) {
	t.Parallel()
	e := newAppEnv(t)
	cfg := e.config(`
[[repo]]
name = "app"

  [[repo.schedule]]
  name = "nightly"
  cron = "0 2 * * *"
  branch = ["main", "gone"]
  catch_up = false
`)
	m, err := metrics.New(metrics.Options{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	e.metrics = m

	// Two nights: main is queued the first, skipped the second (nobody
	// built the first run); gone errs both times.
	clock := newFakeClock(utc("2025-01-01T01:00:00Z"))
	first := e.start(cfg, clock)
	clock.advanceTo(t, utc("2025-01-02T03:00:00Z"))
	if _, err := first.RunNow(t.Context(), "app", "nightly", "alice"); err != nil {
		t.Fatal(err)
	}
	if err := first.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	// Down over three nights, back mid-morning: catch_up is off.
	e.start(cfg, newFakeClock(utc("2025-01-05T10:00:00Z")))

	runs := e.runs("app", "nightly")
	states := map[record.State]int{}
	for _, b := range runs {
		states[b.State]++
	}
	if len(runs) != 6 || states[record.StateQueued] != 1 || states[record.StateSkipped] != 2 || states[record.StateError] != 3 {
		t.Fatalf("runs recorded: %v; want 1 queued, 2 skipped, 3 errors", states)
	}
	f := metricstest.Gather(t, m.Gatherer())
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"slipway_schedule_fires_total", []string{"repo", "app", "schedule", "nightly", "trigger", "schedule"}, 2},
		{"slipway_schedule_fires_total", []string{"repo", "app", "schedule", "nightly", "trigger", "manual"}, 1},
		{"slipway_schedule_skips_total", []string{"repo", "app", "schedule", "nightly", "reason", "build_skipped"}, 2},
		{"slipway_schedule_skips_total", []string{"repo", "app", "schedule", "nightly", "reason", "missed"}, 3},
		// The builds recorded final when fired count with every build.
		{"slipway_builds_total", []string{"repo", "app", "state", "skipped"}, 2},
		{"slipway_builds_total", []string{"repo", "app", "state", "error"}, 3},
	} {
		if got, ok := f.Value(c.name, c.labels...); !ok || got != c.want {
			t.Errorf("%s%v = %v (present %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
}
