package record

import "time"

// ScheduleState is what the store remembers of a schedule between runs of
// the daemon.
type ScheduleState struct {
	Repo, Name string
	Spec       string    // the cron spec the schedule had when it last fired
	LastFire   time.Time // the scheduled instant of its last firing
}

// ScheduleFire is one firing of a schedule: the builds it asks for, one per
// branch.
type ScheduleFire struct {
	Repo, Name, Spec string
	// At is the scheduled instant being fired, recorded as the last fire.
	// Zero for a run by hand (`run REPO SCHEDULE`), which leaves the
	// remembered last fire as it was.
	At time.Time
	// Builds are one per branch: Ref, Commit and Pipeline. The store sets
	// Repo and Schedule, and Trigger to TriggerSchedule when empty (a run
	// by hand passes TriggerManual). A build given as StateError with a
	// Reason (the branch does not exist) is recorded as such.
	Builds []Build
	// OnlyIfChanged skips a branch whose commit already passed a run of
	// this schedule.
	OnlyIfChanged bool
}
