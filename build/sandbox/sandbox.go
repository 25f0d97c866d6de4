package sandbox

import (
	"context"
	"io"
	"time"
)

// Fixed paths inside a Bwrap sandbox. Callers should not build on them:
// Runner.Layout says where a step of a given runner finds its folders.
const (
	// WorkspaceDir is where Spec.Workspace appears; it is the working folder.
	WorkspaceDir = "/workspace"
	// CacheDir is where Spec.Cache appears when set.
	CacheDir = "/cache"
	// HomeDir is where Spec.Home appears, or, without one, a fresh tmpfs of
	// the step: tools keep logins, settings and caches in ~, and one step
	// of a build expects to find what the one before it put there.
	HomeDir = "/home/build"
	// TmpDir is a fresh tmpfs of every step: a link to /dev/shm, so that
	// the step's temporary files and its POSIX shared memory share one
	// size (Limits.Tmp).
	TmpDir = "/tmp"
)

// Spec describes one step.
type Spec struct {
	// Workspace is the host folder mounted read-write at /workspace. It must
	// exist. When steps run as another uid (see UID), Run hands it (and
	// everything in it) to that uid, and every folder above it must be
	// searchable (mode o+x) by it.
	Workspace string
	// Cache is an optional host folder mounted read-write at /cache, kept
	// between builds of one ref. When steps run as another uid, Run hands
	// it to that uid: everything in it, unless the folder itself is that
	// uid's already (it is handed over last, so it is the uid's only once
	// everything in it is).
	Cache string
	// Home is an optional host folder, made by the caller for one build,
	// that steps see as their home folder (Layout.Home), so that what one
	// step keeps in ~ the next one finds. When steps run as another uid,
	// Run hands it (and everything in it) to that uid, like the workspace.
	// Empty: Bwrap gives every step a fresh empty home (a tmpfs of
	// Limits.Tmp); None has none to give (Layout.Home is empty).
	Home string
	// UID and GID, when UID is not 0, are the host ids this step runs as
	// when the daemon is root, instead of Bwrap.UID and Bwrap.GID: each
	// build its own (IDPool). Ignored when the daemon is not root, and by
	// None.
	UID, GID int
	// Env is the complete environment of the step, built by the caller from
	// an allow-list, as "KEY=value". Nothing else is passed, not even PATH.
	Env []string
	// Network shares the host's network; by default the step has only its
	// own loopback.
	Network bool
	// Timeout is the wall-clock limit of the step; zero means none. On
	// timeout every process of the step is killed.
	Timeout time.Duration
	// Stdout and Stderr receive the step's output as it is written; nil
	// discards it.
	Stdout, Stderr io.Writer
	// Limits are resource limits; zero fields mean no limit.
	Limits Limits
}

// Limits are per-step resource limits. Zero means unlimited.
type Limits struct {
	// Procs caps the processes (and threads) the step may have at once
	// (RLIMIT_NPROC, counted inside the sandbox's user namespace).
	Procs int
	// FileSize caps the size in bytes of any file the step writes
	// (RLIMIT_FSIZE).
	FileSize int64
	// Files caps open file descriptors per process (RLIMIT_NOFILE).
	Files int
	// Memory caps the memory of all the step's processes together, in
	// bytes, through a cgroup (Bwrap.Cgroups); where none can be made it is
	// listed in Result.Unenforced.
	Memory int64
	// Tmp caps, in bytes, the step's /tmp, which is also its /dev/shm (one
	// tmpfs, so memory), and its fresh home when Spec.Home is empty. Bwrap
	// needs bubblewrap 0.8 or later for it (--size); with an older one it
	// is listed in Result.Unenforced.
	Tmp int64
	// Workspace caps, in bytes, what the workspace and the home hold on
	// disk together. Runners do not hold it: Local does, by measuring
	// (usageWatch), across all the steps of a job.
	Workspace int64
}

// Result is the outcome of a step that started.
type Result struct {
	// ExitCode is the exit status of `sh -c`; -1 when it was killed by us.
	// A step killed by a signal of its own reports 128+signal.
	ExitCode int
	// Duration is the wall-clock time from start to the last process gone.
	Duration time.Duration
	// TimedOut is set when Spec.Timeout expired and the step was killed.
	TimedOut bool
	// Cancelled is set when the context ended and the step was killed.
	Cancelled bool
	// Unenforced lists requested limits that were not in force, each as
	// "name: reason" ("memory: no delegated cgroup v2"), for the build log;
	// Runner.Unenforced says the same before the step runs.
	Unenforced []string
	// OutOfMemory is set when the kernel killed a process of the step for
	// going over Limits.Memory.
	OutOfMemory bool
}

// Layout is where a step finds its folders, as paths the step itself sees:
// the caller builds the step's environment from it (HOME=Home,
// TMPDIR=Tmp, GOCACHE=Cache+"/go-build"), because the paths differ from
// one runner to another.
type Layout struct {
	// Workspace is the working folder.
	Workspace string
	// Cache is the per-repo cache; empty when Spec.Cache is.
	Cache string
	// Home is the home folder; empty when the runner has none to give.
	Home string
	// Tmp is a folder private to the step and empty when it starts; empty
	// when the runner has none to give.
	Tmp string
}

// Runner runs build steps one at a time on host folders. Local, the
// executor of this host, runs a job's steps through it; Bwrap and None
// implement it. Executors that run elsewhere implement executor.Executor
// instead.
//
// Contract:
//   - Run is safe to call concurrently from several goroutines, for steps
//     with distinct workspaces.
//   - Run returns only when no process started for the step is left, on
//     every path: normal exit, timeout, cancellation, and failure to start
//     (a half-started sandbox is torn down before Run returns the error).
//     There is no separate cleanup call to forget.
//   - A non-nil error means the runner failed (sandbox could not be set up,
//     workspace missing): the step's own failure is a non-zero ExitCode
//     with a nil error. TimedOut and Cancelled come with a nil error.
//   - Run never passes the daemon's environment to the step, nor sets a
//     variable of its own: HOME, TMPDIR and the like come from the caller,
//     built from Layout.
//   - Layout(spec) says where the folders of spec appear to the step. It
//     depends on nothing but spec, starts nothing, and is safe to call
//     concurrently, before or after Run.
//   - Unenforced(spec) lists the limits of spec (and the isolation) that
//     the runner cannot hold on this host, each as "name: reason", named
//     as executor.Limit* name them; Run's Result.Unenforced is the same
//     list.
//     Like Layout it starts nothing; it may look at the host once.
type Runner interface {
	Run(ctx context.Context, spec Spec, command string) (Result, error)
	Layout(spec Spec) Layout
	Unenforced(spec Spec) []string
}
