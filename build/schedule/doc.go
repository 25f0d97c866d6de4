// Package schedule fires the cron schedules of the server config
// ([[repo.schedule]]): at each instant a schedule names, it resolves the tip of
// each of its branches in the bare repository and records one scheduled build
// per branch in the store's queue, which the build workers then run like any
// other build (same sandbox, same logs, marked with the schedule's name).
//
// The store is the only record: each firing is written with store.FireSchedule,
// which in one transaction remembers the instant as the schedule's last fire
// and queues the builds, or records them as skipped (the previous run is still
// queued or running; with only_if_changed, the tip already passed) or as errors
// (the branch does not exist). At start the Scheduler compares what the store
// remembers with the config: a new, renamed or changed schedule starts fresh; a
// schedule whose time passed while the daemon was down fires once when
// catch_up is on, at the latest missed instant, and waits for the next time
// when it is off; a schedule that left the config is forgotten and its queued
// runs are cancelled.
//
// A configuration reload reaches the Scheduler through Reload, which applies
// the same rules to the running schedules without a restart: an unchanged
// schedule keeps its place (a reload never fires a nightly again nor makes it
// skip one), a new schedule or a changed spec starts fresh from the reload,
// other changed settings (branches, pipeline, catch_up, only_if_changed)
// apply from the next firing, and a removed schedule is forgotten with its
// queued runs cancelled. A firing in flight finishes on the schedules it
// started with; Reload waits for it, then wakes the timer loop, so that a
// schedule changed to fire in two seconds does so, not at the loop's next
// look at the clock a minute later.
//
// Specs are parsed by configs.ParseCron (robfig/cron/v3 syntax) and the next
// instant comes from robfig's Schedule.Next, so time zones and the
// spring-forward night behave as robfig documents: a job inside the skipped
// hour does not run that night. On the fall-back night robfig would fire a job
// pinned to the repeated hour twice; the Scheduler fires it once, as cron
// users expect (see nextAfter).
//
// The Scheduler runs its own timer loop instead of robfig's cron.Cron: Cron
// reads time.Now directly, so it can neither be driven by an injected Clock in
// tests nor tell which instant it is firing (which is what the store records
// and what catch-up is computed from).
package schedule
