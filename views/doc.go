// Package views is Slipway's read model: the documents people and scripts
// read about repositories, builds, deployments, releases, schedules and
// pushes, the queries that find them and the actions on them (cancel,
// retry, run a schedule), each filtered by what the caller may see and do.
//
// It is the one implementation behind both faces of Slipway: the SSH
// commands of package console (`builds --json`, `deploys`, ...), which
// print its documents as JSON or as tables, and the JSON API of package
// web. The JSON names of its documents are those the SSH `--json` output
// has always had, and a test pins them.
//
// A Caller is a user and a scope (an API token narrows its user's rights;
// SSH sessions have them whole). Whatever the caller may not read is "not
// found", exactly like what does not exist, so that names and ids cannot
// be probed; acting needs write (cancel, retry, run) or release (retry a
// deployment) on top. The rights are always those of the configuration
// snapshot the request carries (configs.Snapshot).
//
// Queries read the store's read-only pool and the services' listings; none
// takes a lock that pushes or builds wait for.
package views
