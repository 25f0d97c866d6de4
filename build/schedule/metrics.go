package schedule

import "slipway/record"

// Metrics counts what the schedules do, for /metrics (package metrics
// provides it). Its methods are called by the firings, concurrently, and
// must not block.
type Metrics interface {
	// ScheduleFired counts one firing of repo's schedule name, at its
	// time (trigger schedule) or by hand (trigger manual).
	ScheduleFired(repo, name string, trigger record.Trigger)
	// ScheduleSkipped counts n runs of repo's schedule name that did not
	// happen, for reason: "build_skipped" (a branch's build of a firing
	// recorded skipped: its previous run was still queued or running, or
	// only_if_changed and the tip already passed) or "missed" (instants
	// missed while the daemon was down or stalled, and not caught up).
	ScheduleSkipped(repo, name, reason string, n int)
	// BuildEnded counts a build of repo recorded final without a run:
	// skipped or error when fired, cancelled when its schedule left the
	// configuration.
	BuildEnded(repo string, state record.State)
}

type noMetrics struct{}

func (noMetrics) ScheduleFired(string, string, record.Trigger) {}
func (noMetrics) ScheduleSkipped(string, string, string, int)  {}
func (noMetrics) BuildEnded(string, record.State)              {}
