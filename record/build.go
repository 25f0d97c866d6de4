package record

import "time"

// State is where a build is in its life. Queued and running are the only
// states a build leaves; every other state is final.
type State string

// Build states.
const (
	StateQueued      State = "queued"
	StateRunning     State = "running"
	StatePassed      State = "passed"
	StateFailed      State = "failed"
	StateError       State = "error" // our fault or a broken pipeline file
	StateCancelled   State = "cancelled"
	StateSuperseded  State = "superseded"  // a newer build of the same ref was queued first
	StateInterrupted State = "interrupted" // the daemon stopped twice while it ran
	StateSkipped     State = "skipped"     // nothing to build, e.g. no .slipway.toml
)

// Final reports whether s is an end state.
func (s State) Final() bool {
	switch s {
	case StatePassed, StateFailed, StateError, StateCancelled, StateSuperseded, StateInterrupted, StateSkipped:
		return true
	}
	return false
}

// Trigger says why a build exists.
type Trigger string

// Build triggers.
const (
	TriggerPush     Trigger = "push"
	TriggerSchedule Trigger = "schedule"
	TriggerRetry    Trigger = "retry"
	TriggerManual   Trigger = "manual"
	// TriggerVerify is the build of a push that waits for it in
	// pre-receive (`git push -o verify`, verify_branches). It is queued
	// without a push, since the push is only recorded once git has
	// accepted it; RecordVerifiedPush then links the two and records the
	// build as passed. It is claimed before every other queued build, never
	// supersedes nor is superseded, and never runs again after a daemon
	// stop: its pusher has been refused by then.
	TriggerVerify Trigger = "verify"
)

// DefaultPipeline is the section of .slipway.toml a build runs when none is
// named.
const DefaultPipeline = "build"

// StepResult is the outcome of one pipeline step.
type StepResult struct {
	Name     string
	ExitCode int
	Duration time.Duration
}

// Build is one run of a pipeline on one commit.
type Build struct {
	ID       int64
	Repo     string
	Ref      string // full ref name, e.g. refs/heads/main
	Commit   string
	PushID   int64   // the push that caused it; 0 for scheduled, manual and retried builds, and for verify builds until their push is recorded
	Trigger  Trigger // TriggerPush when empty and PushID is set
	Schedule string  // the schedule's name for scheduled builds
	Pipeline string  // section of .slipway.toml; DefaultPipeline when empty
	State    State
	Reason   string // one line: why it errored, was skipped, superseded or interrupted

	CreatedAt  time.Time
	StartedAt  time.Time // zero until claimed
	FinishedAt time.Time // zero until final

	// Attempt counts the times a worker claimed the build. A build the
	// daemon's death interrupted goes back to the queue as the same build
	// (same ID, so `log ID -f` still follows it), and its next claim is
	// attempt 2.
	Attempt int
	Steps   []StepResult
	Worker  string
	RetryOf int64 // the build this one re-runs (TriggerRetry); 0 otherwise
	// ArtifactsDigest identifies the artifact set a passed build kept
	// ("sha256:..." of its manifest); empty when it kept none.
	ArtifactsDigest string
}

// Enqueued is what an enqueueing operation recorded.
type Enqueued struct {
	// PushID is the recorded push (RecordPushAndEnqueue only).
	PushID int64
	// Builds are the builds recorded, in the order given, with their IDs:
	// queued ones and the ones recorded as skipped.
	Builds []Build
	// Superseded are builds that were still queued for the same repo, ref,
	// pipeline and schedule as a new build; they are now StateSuperseded
	// with a reason naming the new build.
	Superseded []Build
	// Running are builds of the same repo, ref, pipeline and schedule that
	// were already running. They keep running; the caller cancels them when
	// the repo's config asks for that.
	Running []Build
	// Deployments are the deployments recorded (RecordPushAndEnqueue only).
	Deployments []Deployment
	// Verified are the verify builds that RecordVerifiedPush recorded as
	// passed builds of the push, and AutoDeployments the deployments they
	// triggered.
	Verified        []Build
	AutoDeployments []Deployment
}

// VerifiedBuild is a verify build whose steps passed while its push waited
// in pre-receive, and that git then accepted: RecordVerifiedPush records it
// as passed, with the push.
type VerifiedBuild struct {
	ID     int64
	Reason string
	Steps  []StepResult
	// Deployments are the automatic deployments its pass triggers.
	Deployments []Deployment
}
