package deploy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"slipway/build/logs"
	"slipway/configs"
	"slipway/record"
)

// recoverTimeout bounds reading one target at start.
const recoverTimeout = 30 * time.Second

// orphanedDeployReason is the Reason of a deployment the watchdog found
// running with no worker of this process behind it, and recorded failed
// because current was not switched to its release.
const orphanedDeployReason = "the deployment lost its worker before its outcome was recorded"

// loss says how deployments recorded running came to have nobody behind
// them; its methods give the words their logs and records use.
type loss int

const (
	// lostAtStart: a previous daemon was cut off in them.
	lostAtStart loss = iota
	// lostWhileRunning: the watchdog found them while the daemon runs (an
	// outcome that could not be written for good, a worker that is gone).
	lostWhileRunning
)

// cut is what happened to the deployment.
func (l loss) cut() string {
	if l == lostWhileRunning {
		return "its worker was lost"
	}
	return "the daemon stopped"
}

// at is when it was found.
func (l loss) at() string {
	if l == lostWhileRunning {
		return "by the watchdog"
	}
	return "at start"
}

// reason is the Reason of a deployment recorded failed.
func (l loss) reason() string {
	if l == lostWhileRunning {
		return orphanedDeployReason
	}
	return record.RecoveredDeployReason
}

// recover settles, at start and before any worker claims, the deployments
// a previous daemon left running; see settle.
//
// The release gate's "was live on" reads these records, so a revision
// whose release went live before the daemon died can be promoted.
func (s *Service) recover(ctx, runCtx context.Context) (int, error) {
	ds, err := s.o.Store.RunningDeployments(ctx)
	if err != nil {
		return 0, err
	}
	return len(ds), s.settle(ctx, runCtx, ds, lostAtStart)
}

// recoverOrphans is the watchdog (run every watchEvery until the daemon
// stops claiming): it settles, by recovery's rule, the deployments recorded
// running that no worker of this process runs, so that none stays running
// for ever. mu is held while they are picked, so that a claim in progress
// is never taken for one; a deployment picked can no longer be claimed, and
// no worker of this process runs it.
func (s *Service) recoverOrphans(ctx, runCtx context.Context) {
	s.mu.Lock()
	ds, err := s.o.Store.RunningDeployments(ctx)
	orphans := slices.DeleteFunc(ds, func(d record.Deployment) bool { return s.running[d.ID] })
	s.mu.Unlock()
	if err == nil {
		err = s.settle(ctx, runCtx, orphans, lostWhileRunning)
	}
	if err != nil && ctx.Err() == nil {
		s.log.Error("watchdog: settle deployments that nobody runs", "err", err)
	}
	if len(orphans) > 0 {
		s.notify()
	}
}

// settle records the outcome of deployments recorded running that nobody
// runs. Each one's target is read: when current points at the deployment's
// release, the switch happened and the release is live, so the deployment
// is recorded succeeded; if the environment has an activate command,
// whether it finished is unknown, so it is run again in the background
// (holding the environment, so that the next deployment there waits for
// it) and the outcome is added to the record. Otherwise, or when the
// target cannot be read, the deployment is recorded failed: Ship left
// current on the previous complete release, and the next deployment
// removes the partial one. Targets are read in parallel.
func (s *Service) settle(ctx, runCtx context.Context, ds []record.Deployment, how loss) error {
	errs := make([]error, len(ds))
	var wg sync.WaitGroup
	for i, d := range ds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.recoverOne(ctx, runCtx, d, how)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (s *Service) recoverOne(ctx, runCtx context.Context, d record.Deployment, how loss) error {
	log := s.log.With("deployment", d.ID, "repo", d.Repo, "env", d.Env, "release", d.ReleaseID, "found", how.at())
	failed := func(why string) error {
		log.Warn("deployment left running with nobody behind it; recorded failed", "cut", how.cut(), "why", why)
		if err := s.o.Store.FinishDeployment(ctx, d.ID, record.DeployFailed, how.reason()); err != nil {
			return err
		}
		s.appendLog(d.ID, fmt.Sprintf("== %s during deployment #%d; it is recorded as failed "+
			"(%s; current was switched only if the release was complete; retry to finish)", how.cut(), d.ID, why))
		return nil
	}
	env, ok := configs.Snapshot(ctx, s.o.Config).Environment(d.Repo, d.Env)
	if !ok {
		return failed("its environment is no longer configured")
	}
	if d.ReleaseID == "" {
		return failed("it had not reached the target")
	}
	if len(env.Hosts()) > 1 {
		return s.recoverHosts(ctx, d, env, how, failed)
	}
	t, err := s.target(d.Repo, env)
	if err != nil {
		return failed(err.Error())
	}
	sl := s.slot(d.Repo, d.Env)
	if err := sl.acquire(ctx); err != nil {
		return err
	}
	lctx, cancel := context.WithTimeout(ctx, recoverTimeout)
	rels, err := s.list(lctx, sl, t)
	cancel()
	if err != nil {
		sl.release()
		return failed(fmt.Sprintf("the target could not be read %s, so whether release %s went live is unknown: %v", how.at(), d.ReleaseID, err))
	}
	live, previous := "", ""
	for _, r := range rels { // newest first
		switch {
		case r.Live:
			live = r.ID
		case r.Complete && r.ID != d.ReleaseID && previous == "":
			previous = r.ID
		}
	}
	if live != d.ReleaseID {
		sl.release()
		return failed("current was not switched to release " + d.ReleaseID)
	}

	if env.Activate == "" {
		sl.release()
		reason := fmt.Sprintf("release %s is live (it went live before %s)", d.ReleaseID, how.cut())
		log.Warn("deployment left running after its switch; recorded succeeded", "cut", how.cut())
		if err := s.o.Store.FinishDeployment(ctx, d.ID, record.DeploySucceeded, reason); err != nil {
			return err
		}
		s.appendLog(d.ID, fmt.Sprintf("== %s during deployment #%d after current was switched; "+
			"deployment #%d succeeded: %s", how.cut(), d.ID, d.ID, reason))
		return nil
	}
	reason := fmt.Sprintf("release %s is live; %s during activate, which is run again", d.ReleaseID, how.cut())
	log.Warn("deployment left running during activate; recorded succeeded, running activate again", "cut", how.cut())
	if err := s.o.Store.FinishDeployment(ctx, d.ID, record.DeploySucceeded, reason); err != nil {
		sl.release()
		return err
	}
	vars, masked, secretErr := s.activateVars(ctx, d)
	w, err := s.o.Logs.CreateOrAppend(LogID(d.ID), configs.Snapshot(ctx, s.o.Config).Build.MaxLogBytes, masked)
	if secretErr != nil {
		// activate runs without the secret it could not read; say so.
		log.Error("read the deployment's secrets", "err", secretErr)
		if w != nil {
			w.Printf("== %v", secretErr)
		}
	}
	if err != nil {
		log.Error("append to deployment log", "err", err)
	}
	s.queue.Go(runCtx, func(runCtx context.Context) {
		defer sl.release()
		defer sl.ended()
		s.reactivate(runCtx, d, t, previous, vars, w, log, how)
	})
	return nil
}

// reactivate runs the activate of a deployment found live with nobody
// behind it and notes its outcome on the record. The caller holds the
// environment.
func (s *Service) reactivate(ctx context.Context, d record.Deployment, t Target, previous string, vars map[string]string, w *logs.Writer, log *slog.Logger, how loss) {
	if w != nil {
		w.Printf("== %s during deployment #%d after current was switched to release %s, "+
			"while activate ran; recorded succeeded, running activate again", how.cut(), d.ID, d.ReleaseID)
	}
	req := Request{
		Target: t, Release: d.ReleaseID, Repo: d.Repo, Env: d.Env, Commit: d.Commit, Vars: vars,
	}
	if w != nil {
		req.Log = w
	}
	actx, cancel := context.WithTimeoutCause(ctx, s.o.Timeout, fmt.Errorf("activate took longer than %s", s.o.Timeout))
	err := s.shipper.Reactivate(actx, req, previous)
	cancel()
	note := fmt.Sprintf("release %s is live; %s during activate, which ran again %s and succeeded", d.ReleaseID, how.cut(), how.at())
	if err != nil {
		note = fmt.Sprintf("release %s is live; %s during activate, which ran again %s and failed (%v); the release stays live", d.ReleaseID, how.cut(), how.at(), err)
		log.Warn("activate run again failed", "cut", how.cut(), "err", err)
	} else {
		log.Info("activate run again succeeded", "cut", how.cut())
	}
	// The log first: whoever reads the record's note finds the log
	// telling it already.
	if w != nil {
		w.Printf("== deployment #%d: %s", d.ID, note)
		if err := w.Close(); err != nil {
			log.Error("close deployment log", "err", err)
		}
	}
	nctx, ncancel := context.WithTimeout(context.WithoutCancel(ctx), finalGrace)
	defer ncancel()
	if err := s.o.Store.NoteDeployment(nctx, d.ID, oneLine(note)); err != nil {
		log.Error("note activate outcome", "err", err)
	}
	s.notify()
}
