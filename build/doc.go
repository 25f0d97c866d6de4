// Package build turns an accepted push into a tested revision.
//
// The [Service] is the build queue's front and its workers. Its part of the
// way of a push ([Service.Pushes], run by package push from post-receive)
// decides which pushed refs build, reads each commit's pipeline file
// (.slipway.toml) to record commits without one as skipped, has the push
// recorded with its builds in one database transaction, then tells the
// pusher what was queued; with `git push -o wait` it then streams the logs. Workers, woken through a channel the moment a build
// is queued, claim builds from the store (fair between repositories), check
// the commit out into a fresh workspace, prepare the job (steps, an
// allow-listed environment, the cache, a wall-clock timeout, resource
// limits, the artifact paths) and hand it whole to an executor.Executor
// (sandbox.Local on bubblewrap in production), with the repository's
// secrets masked in the log; they keep the artifacts of a passing build and
// record every step's exit code and duration. The database is the only record of queued work: a build
// the daemon's death cut off is found running at the next [Service.Start]
// and queued again once.
//
// [Service.Verify], called from pre-receive, builds a push that must pass
// before it lands (`git push -o verify`, verify_branches) from the push's
// quarantine, as a build of the same queue that goes before the others;
// post-receive then records it as the branch's passed build with the push,
// instead of queueing another (verify.go tells the whole life).
//
// The parts live in sub-packages with one job each: pipeline (the file),
// checkout (the workspace), executor (the seam a build's steps run behind,
// and its conformance suite), sandbox (isolation and limits, and the local
// executor), logs (stored,
// masked, followable logs) and schedule (cron builds that enqueue here).
package build
