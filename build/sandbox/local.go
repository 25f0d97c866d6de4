package sandbox

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"slipway/build/executor"
)

// Local is the executor.Executor of this host: it runs a job's steps one
// after the other through Runner (Bwrap, or None where the server says
// sandbox = "none") in the job's own workspace, stops at the first step that
// fails, and copies the artifacts of a job whose steps all passed.
//
// The steps of a job share a home folder, made by Run under TempDir and
// removed when it returns: tools keep state in ~ between "install" and
// "test". Its name is derived from the workspace's, so that Layout can name
// it before Run makes it.
//
// Local holds the limits no runner can hold for one step: what the
// workspace and the home keep on disk across the steps
// (Limits.Workspace, by measuring: see usageWatch), and the artifacts'
// size. With IDs, every job runs as a host uid of its own, leased for the
// job's life; its workspace, home and cache are that uid's and mode 0700,
// so that no other job's steps, and no other local account, can read
// them.
type Local struct {
	// Runner runs each step; required.
	Runner Runner
	// TempDir holds the jobs' home folders while they run; empty means
	// os.TempDir(). When steps run as another uid, it and every folder
	// above it must be searchable (mode o+x) by that uid.
	TempDir string
	// IDs, if set, gives every job its own host uid when the daemon is
	// root (Spec.UID); jobs sharing a cache share its uid. Nil: every step
	// runs as the runner's own ids.
	IDs *IDPool
}

var _ executor.Executor = (*Local)(nil)

// Layout says where the job's folders appear to its steps. See
// executor.Executor.
func (l *Local) Layout(job executor.Job) executor.Layout {
	sl := l.Runner.Layout(l.spec(job))
	return executor.Layout{Workspace: sl.Workspace, Cache: sl.Cache, Home: sl.Home, Tmp: sl.Tmp}
}

// home is the host folder of job's home.
func (l *Local) home(job executor.Job) string {
	dir := l.TempDir
	if dir == "" {
		dir = os.TempDir()
	}
	sum := sha256.Sum256([]byte(job.Workspace))
	return filepath.Join(dir, "slipway-home-"+hex.EncodeToString(sum[:12]))
}

// spec is the Spec of every step of job, but for its output and timeout.
func (l *Local) spec(job executor.Job) Spec {
	return Spec{
		Workspace: job.Workspace,
		Cache:     job.Cache,
		Home:      l.home(job),
		Env:       job.Env,
		Network:   job.Network,
		Limits: Limits{
			Procs:     job.Limits.Procs,
			FileSize:  job.Limits.FileSize,
			Files:     job.Limits.Files,
			Memory:    job.Limits.Memory,
			Tmp:       job.Limits.Tmp,
			Workspace: job.Limits.Workspace,
		},
	}
}

// Unenforced lists the limits of job this host cannot hold. See
// executor.Executor.
func (l *Local) Unenforced(job executor.Job) []string {
	spec := l.spec(job)
	if l.IDs != nil && os.Geteuid() == 0 {
		// Run leases one of them; which one does not change what holds.
		first, _ := l.IDs.Range()
		spec.UID, spec.GID = first, first
	}
	return l.Runner.Unenforced(spec)
}

// errWorkspaceFull is the cause of a step's end when its workspace reached
// the limit.
type errWorkspaceFull struct{ used int64 }

func (e *errWorkspaceFull) Error() string {
	return fmt.Sprintf("the workspace holds %d bytes, its limit reached", e.used)
}

// Run runs the job. See executor.Executor.
func (l *Local) Run(ctx context.Context, job executor.Job) (executor.Result, error) {
	var res executor.Result
	if l.Runner == nil {
		return res, errors.New("local executor: no Runner")
	}
	if err := checkDir(job.Workspace); err != nil {
		return res, fmt.Errorf("workspace: %w", err)
	}
	if job.Cache != "" {
		if err := checkDir(job.Cache); err != nil {
			return res, fmt.Errorf("cache: %w", err)
		}
	}
	if len(job.Artifacts) > 0 && !filepath.IsAbs(job.ArtifactsDir) {
		return res, fmt.Errorf("artifacts folder %q is not an absolute path", job.ArtifactsDir)
	}
	var deadline time.Time
	if job.Timeout > 0 {
		deadline = time.Now().Add(job.Timeout)
	}

	spec := l.spec(job)
	// Nobody but the job's own uid may read what it builds.
	if err := os.Chmod(job.Workspace, 0o700); err != nil {
		return res, fmt.Errorf("workspace: %w", err)
	}
	if job.Cache != "" {
		if err := os.Chmod(job.Cache, 0o700); err != nil {
			return res, fmt.Errorf("cache: %w", err)
		}
	}
	if l.IDs != nil && os.Geteuid() == 0 {
		prefer := -1
		if job.Cache != "" {
			if fi, err := os.Stat(job.Cache); err == nil {
				prefer = int(fi.Sys().(*syscall.Stat_t).Uid)
			}
		}
		id, release, err := l.IDs.Lease(ctx, job.Cache, prefer)
		if err != nil {
			return res, err
		}
		// Released once the job is over: no process of it is left, and
		// what it leaves (its cache) is handed over to the next job's
		// uid by that job.
		defer release()
		spec.UID, spec.GID = id, id
	}
	// A home left by a run the daemon's death cut off is not this job's.
	if err := removeTree(spec.Home); err != nil {
		return res, fmt.Errorf("clear the home folder: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(spec.Home), 0o711); err != nil {
		return res, fmt.Errorf("make the home folder: %w", err)
	}
	if err := os.Mkdir(spec.Home, 0o700); err != nil {
		return res, fmt.Errorf("make the home folder: %w", err)
	}
	defer removeTree(spec.Home)

	// Every process of a step is gone when Runner.Run returns, so nothing
	// writes after that; the gate makes it so whatever a runner does.
	log := &gate{w: job.Log}
	defer log.close()
	spec.Stdout, spec.Stderr = log, log

	var (
		wsFull bool
		wsUsed int64
	)
	for i, step := range job.Steps {
		if job.StepStarted != nil {
			job.StepStarted(i)
		}
		// A step whose time is up before it starts ends at once, so that
		// every step that started has its result.
		var r Result
		switch {
		case ctx.Err() != nil:
			r = Result{ExitCode: -1, Cancelled: true}
		case !deadline.IsZero() && !time.Now().Before(deadline):
			r = Result{ExitCode: -1, TimedOut: true}
		default:
			if !deadline.IsZero() {
				spec.Timeout = time.Until(deadline)
			}
			var err error
			var full *errWorkspaceFull
			r, full, err = l.runStep(ctx, spec, step)
			if err != nil {
				return res, &executor.StepError{Step: i, Err: err}
			}
			if full != nil {
				if r.Cancelled {
					// Stopped by the watch, not by the caller.
					r.Cancelled, r.ExitCode = false, -1
				}
				wsFull, wsUsed = true, full.used
			}
		}
		sr := executor.StepResult{
			ExitCode:      r.ExitCode,
			Duration:      r.Duration,
			TimedOut:      r.TimedOut,
			Cancelled:     r.Cancelled,
			OutOfMemory:   r.OutOfMemory,
			WorkspaceFull: wsFull,
			WorkspaceUsed: wsUsed,
			Unenforced:    r.Unenforced,
		}
		wsFull, wsUsed = false, 0
		res.Steps = append(res.Steps, sr)
		if job.StepEnded != nil {
			job.StepEnded(i, sr)
		}
		if sr.ExitCode != 0 || sr.TimedOut || sr.Cancelled || sr.WorkspaceFull {
			return res, nil
		}
	}

	if len(job.Artifacts) > 0 {
		res.Artifacts, res.ArtifactsErr = executor.CopyArtifacts(job.Workspace, job.ArtifactsDir, job.Artifacts, job.MaxArtifactBytes)
		if res.ArtifactsErr != nil {
			res.Artifacts = 0
			if err := removeTree(job.ArtifactsDir); err != nil {
				return res, fmt.Errorf("remove the artifacts that could not be kept: %w", err)
			}
		}
	}
	return res, nil
}

// runStep runs one step through the runner, while a usageWatch holds
// spec.Limits.Workspace on the workspace and the home. full is set when
// the watch stopped the step. A workspace that could not be measured is
// added to the result's Unenforced: the limit did not hold.
func (l *Local) runStep(ctx context.Context, spec Spec, step string) (Result, *errWorkspaceFull, error) {
	if spec.Limits.Workspace <= 0 {
		r, err := l.Runner.Run(ctx, spec, step)
		return r, nil, err
	}
	stepCtx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	w := usageWatch{dirs: []string{spec.Workspace, spec.Home}, limit: spec.Limits.Workspace}
	watched := make(chan error, 1)
	go func() {
		watched <- w.run(stepCtx, func(used int64) { stop(&errWorkspaceFull{used: used}) })
	}()
	r, err := l.Runner.Run(stepCtx, spec, step)
	cause := context.Cause(stepCtx)
	stop(context.Canceled)
	werr := <-watched
	var full *errWorkspaceFull
	if errors.As(cause, &full) && ctx.Err() == nil {
		return r, full, err
	}
	if werr != nil {
		r.Unenforced = append(r.Unenforced, fmt.Sprintf("%s: could not be measured: %v", executor.LimitWorkspace, werr))
		return r, nil, err
	}
	// A step that ended between two measurements is measured once more:
	// what it left over the limit fails it, as if it had been stopped.
	if err == nil && !r.TimedOut && !r.Cancelled && ctx.Err() == nil {
		if used, _, uerr := diskUsage(w.dirs); uerr == nil && used >= w.limit {
			return r, &errWorkspaceFull{used: used}, nil
		}
	}
	return r, nil, err
}

// gate passes writes on until it is closed, and drops them after; close
// waits for a write in progress.
type gate struct {
	mu     sync.Mutex
	w      io.Writer
	closed bool
}

func (g *gate) Write(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed || g.w == nil {
		return len(p), nil
	}
	return g.w.Write(p)
}

func (g *gate) close() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
}
