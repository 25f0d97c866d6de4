package record

import "time"

// EventKind names what an Event tells: the kinds webhooks subscribe to
// and the git notes are written from.
type EventKind string

const (
	EventPush            EventKind = "push"             // a push was recorded
	EventBuildStarted    EventKind = "build.started"    // a build began to run (again after a restart)
	EventBuildFinished   EventKind = "build.finished"   // a build reached a final state
	EventDeployStarted   EventKind = "deploy.started"   // a deployment began to run
	EventDeployFinished  EventKind = "deploy.finished"  // a deployment reached a final state
	EventReleaseRefused  EventKind = "release.refused"  // the release gate refused a push
	EventScheduleSkipped EventKind = "schedule.skipped" // a schedule's firing made no build
)

// EventKinds are the kinds, in the order people read them.
var EventKinds = []EventKind{
	EventPush, EventBuildStarted, EventBuildFinished, EventDeployStarted,
	EventDeployFinished, EventReleaseRefused, EventScheduleSkipped,
}

// Event is one row of the outbox: something Slipway tells the world
// about. Pushes, builds and deployments add theirs in the transaction
// that changes their state (the store's triggers), so an event is never
// lost to a crash nor told of a change that did not commit; the release
// gate and the scheduler add theirs with Store.AddEvent.
type Event struct {
	ID   int64
	Kind EventKind
	Time time.Time
	Repo string
	// Ref is the build's ref; for a deployment or a refused release, the
	// release ref of its environment (refs/release/<env>); "" for a
	// push, whose refs are in its record.
	Ref          string
	Env          string // deployments and refused releases
	Commit       string
	User         string // who pushed or released, where known
	PushID       int64  // 0: none
	BuildID      int64
	DeploymentID int64
	Schedule     string // schedule.skipped, and builds a schedule made
	State        string // the build's or deployment's state at the event
	Reason       string // the record's reason, or why a release was refused or a firing skipped
}
