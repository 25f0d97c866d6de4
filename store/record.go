// The records of package record under the names the store has always used
// for them: the store keeps them; package record, which links no database
// driver, is where every other package takes them from.

package store

import "slipway/record"

type (
	Build         = record.Build
	DeployState   = record.DeployState
	DeployTrigger = record.DeployTrigger
	Deployment    = record.Deployment
	Enqueued      = record.Enqueued
	Pruned        = record.Pruned
	Push          = record.Push
	OpenPush      = record.OpenPush
	RefUpdate     = record.RefUpdate
	RetryRefusal  = record.RetryRefusal
	ScheduleFire  = record.ScheduleFire
	ScheduleState = record.ScheduleState
	State         = record.State
	StepResult    = record.StepResult
	Trigger       = record.Trigger
	VerifiedBuild = record.VerifiedBuild
)

const (
	DefaultPipeline       = record.DefaultPipeline
	DeployAuto            = record.DeployAuto
	DeployFailed          = record.DeployFailed
	DeployQueued          = record.DeployQueued
	DeployRelease         = record.DeployRelease
	DeployRetry           = record.DeployRetry
	DeployRollback        = record.DeployRollback
	DeployRolledBack      = record.DeployRolledBack
	DeployRunning         = record.DeployRunning
	DeploySucceeded       = record.DeploySucceeded
	RecoveredDeployReason = record.RecoveredDeployReason
	StateCancelled        = record.StateCancelled
	StateError            = record.StateError
	StateFailed           = record.StateFailed
	StateInterrupted      = record.StateInterrupted
	StatePassed           = record.StatePassed
	StateQueued           = record.StateQueued
	StateRunning          = record.StateRunning
	StateSkipped          = record.StateSkipped
	StateSuperseded       = record.StateSuperseded
	TriggerManual         = record.TriggerManual
	TriggerPush           = record.TriggerPush
	TriggerRetry          = record.TriggerRetry
	TriggerSchedule       = record.TriggerSchedule
	TriggerVerify         = record.TriggerVerify
)

var (
	ErrConflict = record.ErrConflict
	ErrInvalid  = record.ErrInvalid
	ErrNotFound = record.ErrNotFound
)

// ZeroID is record.ZeroID.
func ZeroID(id string) bool { return record.ZeroID(id) }

func validObjectID(id string) bool { return record.ValidObjectID(id) }
