// Package executor declares the seam between the build queue and what runs
// a build's steps: an [Executor] takes a prepared [Job] (the checked-out
// workspace, the steps, their complete environment, the network switch,
// limits, a timeout, the cache folder and the artifact paths) and returns
// the steps' log (written to the job's writer as it comes), a [StepResult]
// per step and the artifacts, copied into a folder the job names.
//
// The build worker (package build) prepares the job and calls the executor
// once per build; it writes the lines people read ("== step 1/2: ...")
// from the job's StepStarted and StepEnded calls, so every executor shows
// the same log. The local implementation is sandbox.Local, on bubblewrap or
// on no sandbox at all; an executor that runs jobs on a cluster (a
// Kubernetes Job per build) is another, with the queue, records and deploy
// path staying on the Slipway host. The contract is written on [Executor];
// package executortest holds the conformance suite that every
// implementation runs in its own tests. [CopyArtifacts] is the one home of
// the rules artifacts are copied by, for implementations to share.
//
// This package imports nothing of Slipway's, so that implementations can
// depend on it without depending on the build queue.
package executor
