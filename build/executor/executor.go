package executor

import (
	"context"
	"fmt"
	"io"
	"time"
)

// Executor runs the steps of one prepared build and hands back what they
// left: the log, a result per step and the artifacts. The build worker
// prepares the Job (pipeline, checkout, environment, cache) and calls Run
// once; sandbox.Local (bubblewrap, or no sandbox) is the implementation on
// this host, and one that runs the job elsewhere (a Kubernetes Job) is
// another. executortest.Run is the suite every implementation passes.
//
// Contract:
//   - Run and Layout are safe to call concurrently from several
//     goroutines, for jobs with distinct workspaces.
//   - Run runs Job.Steps in order, each as `sh -c <step>` with the
//     workspace as its working folder and Job.Env as its whole environment
//     (nothing of the daemon's, no variable of the executor's own). The
//     first step that does not exit 0 (or times out, or is cancelled) is
//     the last: no later step starts.
//   - A step after which the workspace is over Limits.Workspace is the
//     last, like a failed one (StepResult.WorkspaceFull).
//   - Output: every byte a step writes to stdout or stderr goes to Job.Log,
//     in the order it was written (one stream, interleaved as written),
//     steps in order, nothing of a step before its StepStarted call or after
//     its StepEnded call, and nothing at all once Run has returned. Log
//     writes and the Step* calls never overlap: they come from one goroutine
//     at a time.
//   - Timeout bounds the wall-clock time of all the steps together. When it
//     runs out, every process of the running step (background children
//     too) is killed and its result says TimedOut with ExitCode -1. When ctx
//     ends, the same happens with Cancelled, and Run returns promptly (in
//     seconds, not at the step's leisure). Neither is an error.
//   - Artifacts are copied into Job.ArtifactsDir only when every step
//     exited 0, with the rules of CopyArtifacts: a path that leaves the
//     workspace is refused, a symbolic link is never followed out of it, and
//     links inside it are kept as links. A refused or missing artifact is
//     Result.ArtifactsErr (the build's own fault), and ArtifactsDir is then
//     removed again.
//   - A non-nil error means the executor failed, not the build: the job
//     could not be set up (a bad workspace, no sandbox), or a step could not
//     be started or waited for (a *StepError then says which). Result still
//     holds the steps that ended before.
//   - Cleanup: when Run returns, on every path (success, failure, timeout,
//     cancellation, an error before or during a start), no process it
//     started is left, nothing is mounted, and every temporary folder or
//     remote resource it made is gone. There is no separate cleanup call to
//     forget. The workspace and the cache stay; they are the caller's. An
//     executor that runs the steps on this host leaves them changed by the
//     steps; one that runs them elsewhere ships the workspace there and
//     brings back only the artifacts.
//   - Layout says where the job's folders appear to its steps, so that the
//     caller can build HOME, TMPDIR and cache variables into Job.Env. It
//     depends on nothing but Job.Workspace and whether Job.Cache is set,
//     starts nothing, and may be called before or after Run.
//   - Limits: Job.Limits hold for every step, and Job.MaxArtifactBytes for
//     the artifacts, except those Unenforced names. Unenforced(job) lists
//     them before Run, each as "name: reason" with the names of the Limit*
//     constants ("memory: no memory cgroup ..."), so that the log can say
//     which limits hold before the first step; each StepResult.Unenforced
//     repeats it. Like Layout, it starts nothing.
type Executor interface {
	Layout(job Job) Layout
	Unenforced(job Job) []string
	Run(ctx context.Context, job Job) (Result, error)
}

// Job is one build's work, prepared by the build worker.
type Job struct {
	// ID names the job to executors that label what they make for it
	// (the build's id, "42"); it may be empty.
	ID string
	// Image is the container image the pipeline asks its steps to run in
	// ("golang:1.26"); empty means the executor's default. Executors that
	// run steps on the host ignore it (the worker logs that).
	Image string
	// Workspace is the host folder holding the checked-out source; it must
	// exist and be absolute. A local executor runs the steps in it; one that
	// runs elsewhere ships its content there (as a tar stream, say) and
	// copies the artifacts back.
	Workspace string
	// Cache is an optional host folder kept between builds of one ref,
	// read-write for the steps (Layout.Cache says where).
	Cache string
	// Steps are shell commands, each run with `sh -c`.
	Steps []string
	// Env is the complete environment of every step, "KEY=value", built by
	// the caller from an allow-list: secrets in scope, cache variables, the
	// pipeline's own. Nothing else is passed, not even PATH.
	Env []string
	// Network shares the host's network with the steps; without it they
	// have only their own loopback (where the executor can give them that).
	Network bool
	// Limits are per-step resource limits; zero fields mean no limit.
	Limits Limits
	// Timeout is the wall-clock limit of all the steps together; zero means
	// none.
	Timeout time.Duration
	// Log receives every step's stdout and stderr; nil discards them.
	Log io.Writer
	// StepStarted, if set, is called with a step's index (from 0) before
	// its first output; StepEnded after its last output, with its result,
	// for every step that started, unless it could not be run at all (Run's
	// *StepError). They are called in order, from Run's goroutine, never
	// during a Log write.
	StepStarted func(i int)
	StepEnded   func(i int, r StepResult)
	// Placed, if set, is called once, before the first StepStarted, by an
	// executor that runs the job elsewhere, with where ("kubernetes pod P
	// on node N"); from Run's goroutine, never during a Log write.
	Placed func(where string)
	// Artifacts are the paths to keep when every step passes: clean,
	// relative and slash-separated, as the pipeline parser guarantees; "."
	// is the whole workspace.
	Artifacts []string
	// ArtifactsDir is the host folder the artifacts are copied into; Run
	// makes it (with its parents). Required when Artifacts is not empty.
	ArtifactsDir string
	// MaxArtifactBytes caps the size of the artifacts kept (the sum of
	// their files' lengths); 0 means no cap. Over it, nothing is kept and
	// Result.ArtifactsErr is an *ArtifactsTooLargeError.
	MaxArtifactBytes int64
}

// Limits are per-step resource limits. Zero means unlimited. A limit an
// executor cannot enforce is named in Executor.Unenforced and
// StepResult.Unenforced.
type Limits struct {
	Procs    int   // processes and threads at once
	FileSize int64 // bytes of any one file written
	Files    int   // open descriptors per process
	Memory   int64 // bytes of memory of all the step's processes together
	// Tmp is the size in bytes of the step's private temporary folder
	// (Layout.Tmp): a write beyond it fails with "no space left on device".
	Tmp int64
	// Workspace is what the workspace and the home may hold on disk
	// together, in bytes, across the job's steps: the step that takes them
	// over it is stopped (StepResult.WorkspaceFull).
	Workspace int64
}

// Layout is where a job's folders appear to its steps, as paths the steps
// themselves see.
type Layout struct {
	Workspace string // the working folder
	Cache     string // empty when Job.Cache is
	Home      string // kept across the job's steps; empty when there is none to give
	Tmp       string // private to each step, empty at its start; empty when there is none
}

// Result is what a job's steps did.
type Result struct {
	// Steps holds one result per step that ran to an end, in order.
	Steps []StepResult
	// Artifacts is the number of files and symbolic links copied into
	// Job.ArtifactsDir.
	Artifacts int
	// ArtifactsErr says why the artifacts could not be kept (a path that
	// does not exist, or leaves the workspace, or artifacts over
	// Job.MaxArtifactBytes); the steps all passed.
	ArtifactsErr error
}

// StepResult is the outcome of one step.
type StepResult struct {
	// ExitCode is the exit status of `sh -c`; -1 when the executor killed
	// it (timeout, cancellation). A step killed by a signal of its own
	// reports 128+signal.
	ExitCode int
	// Duration is the wall-clock time from start to its last process gone.
	Duration time.Duration
	// TimedOut: Job.Timeout ran out during the step, which was killed.
	TimedOut bool
	// Cancelled: Run's context ended during the step, which was killed.
	Cancelled bool
	// OutOfMemory: a process of the step was killed for going over
	// Limits.Memory.
	OutOfMemory bool
	// WorkspaceFull: the workspace and the home reached Limits.Workspace
	// during the step, which was then stopped, every process of it killed
	// (ExitCode -1), or by its end (ExitCode its own): either way no later
	// step runs. WorkspaceUsed is what they held then.
	WorkspaceFull bool
	WorkspaceUsed int64
	// Unenforced lists requested limits (and isolation) not in force for
	// the step, each with the reason, for the build log: what
	// Executor.Unenforced said before.
	Unenforced []string
}

// UnavailableError is Run's error when nothing of the job ran because what
// the executor runs jobs on (a cluster's API server) cannot be reached now;
// the job may be tried again later.
type UnavailableError struct{ Err error }

func (e *UnavailableError) Error() string { return e.Err.Error() }
func (e *UnavailableError) Unwrap() error { return e.Err }

// StepError is Run's error when a step could not be started or waited for.
type StepError struct {
	Step int // index in Job.Steps, from 0
	Err  error
}

func (e *StepError) Error() string { return fmt.Sprintf("step %d: %v", e.Step+1, e.Err) }
func (e *StepError) Unwrap() error { return e.Err }
