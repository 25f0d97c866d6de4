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
type Local struct {
	// Runner runs each step; required.
	Runner Runner
	// TempDir holds the jobs' home folders while they run; empty means
	// os.TempDir(). With Bwrap.UID set, it and every folder above it must
	// be searchable (mode o+x) by that uid.
	TempDir string
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
			Procs:    job.Limits.Procs,
			FileSize: job.Limits.FileSize,
			Files:    job.Limits.Files,
			Memory:   job.Limits.Memory,
		},
	}
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
			r, err = l.Runner.Run(ctx, spec, step)
			if err != nil {
				return res, &executor.StepError{Step: i, Err: err}
			}
		}
		sr := executor.StepResult{
			ExitCode:    r.ExitCode,
			Duration:    r.Duration,
			TimedOut:    r.TimedOut,
			Cancelled:   r.Cancelled,
			OutOfMemory: r.OutOfMemory,
			Unenforced:  r.Unenforced,
		}
		res.Steps = append(res.Steps, sr)
		if job.StepEnded != nil {
			job.StepEnded(i, sr)
		}
		if sr.ExitCode != 0 || sr.TimedOut || sr.Cancelled {
			return res, nil
		}
	}

	if len(job.Artifacts) > 0 {
		res.Artifacts, res.ArtifactsErr = executor.CopyArtifacts(job.Workspace, job.ArtifactsDir, job.Artifacts)
		if res.ArtifactsErr != nil {
			res.Artifacts = 0
			if err := removeTree(job.ArtifactsDir); err != nil {
				return res, fmt.Errorf("remove the artifacts that could not be kept: %w", err)
			}
		}
	}
	return res, nil
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
