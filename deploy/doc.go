// Package deploy ships a passing build's artifacts to an environment's
// target and switches releases there.
//
// A target is a folder, local or on a host reached with ssh, laid out as
//
//	<path>/releases/<id>/   one folder per release, complete ones carry .slipway-release
//	<path>/current          relative symlink to releases/<id>, the live release
//
// Shipper.Ship copies an artifact folder with rsync into a new release,
// hard-linking unchanged files against the live release so only changes
// travel, verifies the release against the artifacts (an rsync --checksum
// dry run that must find nothing to change), marks it complete, switches
// current with a single rename, runs the environment's activate command
// inside it (switching back if that fails) and prunes old releases. Every command runs over one multiplexed ssh
// connection with strict host key checking, as plain POSIX sh on the target:
// nothing of Slipway needs to be installed there. A deployment either
// switches current to a complete release or leaves it as it was.
//
// An environment of many hosts is deployed by Shipper.Roll, with Ship's
// steps (stage.go) in two phases: every host prepared (transfer and verify)
// at once, then switched in batches, each batch activated and health-checked
// before the next; a failure anywhere switches every switched host back,
// and a failure before the switch switches nothing. With one host Roll is
// Ship, plus the health check. Each host's state is recorded with the
// deployment, and recovery at start switches back a rollout cut off
// between its hosts (recover_hosts.go).
//
// Because releases share unchanged files as hard links, an activate command
// must replace files (write and rename), never edit them in place: an
// in-place edit would change every release that shares the file.
//
// Service is the daemon's side of deploying. Its workers run the deployment
// queue kept in the store (one deployment at a time per environment, in the
// order queued): each checks the build's kept artifacts against the
// digest recorded with the build (package internal/manifest), ships them
// to the environment's target with Ship, under its own log, and records
// succeeded, failed or rolled back. Service.CheckRelease is the release gate
// that pre-receive asks before refs/release/<env> may move; a release to an
// environment that requires another ships the artifact set that was live
// there for the revision, not whichever build of it passed last.
// ReleaseDeployments and AutoDeployments turn an accepted release push and a
// passed build into deployments that the store records atomically with the
// push or the build's result. At start, deployments a killed daemon left
// running are settled from what each target's current points at; while the
// daemon runs, a watchdog settles the same way any deployment recorded
// running that no worker runs, and an outcome whose write fails is written
// again with backoff. Whatever
// connects to an environment's target (a deployment, the start-up check, a
// listing for `releases`, which is cached for a few seconds) holds that
// environment's one line to it, so readers cannot flood a target. Targets
// and deploy keys are read from the config here only; builds never see
// them.
package deploy
