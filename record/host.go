package record

import "time"

// HostState is where one host of a deployment stands.
type HostState string

// Host states. A deployment to an environment of many hosts transfers the
// release to every host first (pending, then prepared or failed), then
// switches them in batches (switched, then live or failed); when a host
// fails after the switch, the hosts already switched go back to their
// previous release (rolled_back) and those not yet reached are skipped.
const (
	HostPending    HostState = "pending"     // not reached yet
	HostPrepared   HostState = "prepared"    // release transferred and verified, not switched
	HostFailed     HostState = "failed"      // this host failed (transfer, switch, activate or health); Detail says why
	HostSwitched   HostState = "switched"    // current points at the new release, activate/health not yet passed
	HostLive       HostState = "live"        // switched, activated, healthy
	HostRolledBack HostState = "rolled_back" // switched, then switched back to Previous
	HostSkipped    HostState = "skipped"     // never switched because another host failed
)

// DeploymentHost is one host's part in a deployment.
type DeploymentHost struct {
	DeploymentID int64
	Pos          int    // the host's position in the environment's targets, from 0
	Host         string // the target as written, e.g. "deploy@web1:/srv/app"
	Release      string // the release shipped to it
	Previous     string // the release live on it before this deployment ("" none)
	State        HostState
	Detail       string // one line: why it failed, what activate/health said
	UpdatedAt    time.Time
}
