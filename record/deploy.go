package record

import (
	"fmt"
	"time"
)

// DeployState is where a deployment is in its life.
type DeployState string

// Deployment states.
const (
	DeployQueued    DeployState = "queued"
	DeployRunning   DeployState = "running"
	DeploySucceeded DeployState = "succeeded"
	DeployFailed    DeployState = "failed"
	// DeployRolledBack: the release was switched to, its activate command
	// failed, and the previous release was switched back.
	DeployRolledBack DeployState = "rolled_back"
)

// DeployTrigger says why a deployment exists.
type DeployTrigger string

// Deployment triggers.
const (
	DeployAuto     DeployTrigger = "auto"     // a passing build of the environment's auto branch
	DeployRelease  DeployTrigger = "release"  // a push to refs/release/<env>
	DeployRollback DeployTrigger = "rollback" // a release push of an earlier revision
	DeployRetry    DeployTrigger = "retry"
)

// RecoveredDeployReason is the Reason of a deployment that was running when
// the daemon stopped and did not switch `current`.
const RecoveredDeployReason = "daemon stopped during deployment"

// Deployment is the shipping of one passed build's artifacts to one
// environment.
type Deployment struct {
	ID        int64
	Repo      string
	Env       string
	BuildID   int64
	Commit    string // the build's commit; filled from the build when empty
	Trigger   DeployTrigger
	User      string // who pushed the release ref; empty for auto
	PushID    int64  // the release push; 0 otherwise
	State     DeployState
	Reason    string
	ReleaseID string // the release directory's name on the target, once chosen
	// Digest identifies the artifact set shipped: the build's
	// ArtifactsDigest, taken from the build when the deployment is queued.
	// Empty only for a build from before digests, until the deployment
	// runs and computes it.
	Digest string

	CreatedAt, StartedAt, FinishedAt time.Time
}

// RetryRefusal is the error RetryDeployment returns (wrapping ErrConflict)
// when a deployment may not be retried; Latest is the deployment that came
// after it, when that is why.
type RetryRefusal struct {
	ID     int64
	State  DeployState
	Env    string
	Latest int64
}

func (r *RetryRefusal) Error() string {
	switch {
	case r.Latest != 0:
		return fmt.Sprintf("deployment #%d is not the latest to %s (#%d came after it)", r.ID, r.Env, r.Latest)
	case r.State == DeploySucceeded:
		return fmt.Sprintf("deployment #%d succeeded; there is nothing to retry", r.ID)
	}
	return fmt.Sprintf("deployment #%d is still %s", r.ID, r.State)
}

// Is makes a refusal match ErrConflict.
func (r *RetryRefusal) Is(target error) bool { return target == ErrConflict }
