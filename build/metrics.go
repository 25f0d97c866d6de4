package build

import (
	"context"
	"fmt"
	"time"

	"slipway/record"
)

// Metrics counts builds for /metrics (package metrics provides it). Its
// methods are called by the workers and the push path, concurrently, and
// must not block.
type Metrics interface {
	// BuildStarted is called when a worker has claimed b (StartedAt
	// set): how long it waited in the queue.
	BuildStarted(b record.Build)
	// BuildFinished counts b, which ran on a worker for ran and ended in
	// state.
	BuildFinished(b record.Build, state record.State, ran time.Duration)
	// BuildEnded counts a build of repo that ended in state without a
	// run of its own: superseded, cancelled while queued, skipped when
	// its push was recorded, ended by the recovery of a daemon's stops.
	BuildEnded(repo string, state record.State)
}

type noMetrics struct{}

func (noMetrics) BuildStarted(record.Build)                               {}
func (noMetrics) BuildFinished(record.Build, record.State, time.Duration) {}
func (noMetrics) BuildEnded(string, record.State)                         {}

// Load is what the build queue holds now, for the metrics' scrape: the
// builds queued (counted by the store, the queue's record, without waiting
// for a write) and the builds this process's workers run (kept in an
// atomic: no lock the workers take).
func (s *Service) Load(ctx context.Context) (queued, running int, err error) {
	if queued, err = s.o.Store.QueuedBuilds(ctx); err != nil {
		return 0, 0, fmt.Errorf("build queue: %w", err)
	}
	return queued, int(s.nRunning.Load()), nil
}

// ended counts the builds of bs that are final, recorded so without a run.
func (s *Service) ended(bs []record.Build) {
	for _, b := range bs {
		if b.State.Final() {
			s.metrics.BuildEnded(b.Repo, b.State)
		}
	}
}

// endedByID counts build id, just ended without a run (cancelled while
// queued, or left running by an earlier daemon), under its repository.
func (s *Service) endedByID(ctx context.Context, id int64) {
	if _, off := s.metrics.(noMetrics); off {
		return
	}
	if b, err := s.o.Store.GetBuild(ctx, id); err == nil {
		s.ended([]record.Build{b})
	}
}
