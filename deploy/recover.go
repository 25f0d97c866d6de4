package deploy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"slipway/build/logs"
	"slipway/record"
)

// recoverTimeout bounds reading one target at start.
const recoverTimeout = 30 * time.Second

// recover settles, at start and before any worker claims, the deployments
// a previous daemon left running. Each one's target is read: when current
// points at the deployment's release, the switch happened and the release
// is live, so the deployment is recorded succeeded; if the environment has
// an activate command, whether it finished is unknown, so it is run again
// in the background (holding the environment, so that the next deployment
// there waits for it) and the outcome is added to the record. Otherwise,
// or when the target cannot be read, the deployment is recorded failed:
// Ship left current on the previous complete release, and the next
// deployment removes the partial one. Targets are read in parallel.
//
// The release gate's "was live on" reads these records, so a revision
// whose release went live before the daemon died can be promoted.
func (s *Service) recover(ctx, runCtx context.Context) (int, error) {
	ds, err := s.o.Store.RunningDeployments(ctx)
	if err != nil {
		return 0, err
	}
	errs := make([]error, len(ds))
	var wg sync.WaitGroup
	for i, d := range ds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.recoverOne(ctx, runCtx, d)
		}()
	}
	wg.Wait()
	return len(ds), errors.Join(errs...)
}

func (s *Service) recoverOne(ctx, runCtx context.Context, d record.Deployment) error {
	log := s.log.With("deployment", d.ID, "repo", d.Repo, "env", d.Env, "release", d.ReleaseID)
	failed := func(why string) error {
		log.Warn("deployment cut off by a daemon stop; recorded failed", "why", why)
		if err := s.o.Store.FinishDeployment(ctx, d.ID, record.DeployFailed, record.RecoveredDeployReason); err != nil {
			return err
		}
		s.appendLog(d.ID, fmt.Sprintf("== the daemon stopped during deployment #%d; it is recorded as failed "+
			"(%s; current was switched only if the release was complete; retry to finish)", d.ID, why))
		return nil
	}
	env, ok := s.o.Config.Environment(d.Repo, d.Env)
	if !ok {
		return failed("its environment is no longer configured")
	}
	if d.ReleaseID == "" {
		return failed("it had not reached the target")
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
		return failed(fmt.Sprintf("the target could not be read at start, so whether release %s went live is unknown: %v", d.ReleaseID, err))
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
		reason := fmt.Sprintf("release %s is live (it went live before the daemon stopped)", d.ReleaseID)
		log.Warn("deployment cut off by a daemon stop after its switch; recorded succeeded")
		if err := s.o.Store.FinishDeployment(ctx, d.ID, record.DeploySucceeded, reason); err != nil {
			return err
		}
		s.appendLog(d.ID, fmt.Sprintf("== the daemon stopped during deployment #%d after current was switched; "+
			"deployment #%d succeeded: %s", d.ID, d.ID, reason))
		return nil
	}
	reason := fmt.Sprintf("release %s is live; the daemon stopped during activate, which is run again", d.ReleaseID)
	log.Warn("deployment cut off by a daemon stop during activate; recorded succeeded, running activate again")
	if err := s.o.Store.FinishDeployment(ctx, d.ID, record.DeploySucceeded, reason); err != nil {
		sl.release()
		return err
	}
	vars, masked, secretErr := s.activateVars(d)
	w, err := s.o.Logs.Append(LogID(d.ID), s.o.Config.Build.MaxLogBytes, masked)
	if errors.Is(err, logs.ErrNotFound) {
		w, err = s.o.Logs.Create(LogID(d.ID), s.o.Config.Build.MaxLogBytes, masked)
	}
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
		s.reactivate(runCtx, d, t, previous, vars, w, log)
	})
	return nil
}

// reactivate runs the activate of a deployment found live at start and
// notes its outcome on the record. The caller holds the environment.
func (s *Service) reactivate(ctx context.Context, d record.Deployment, t Target, previous string, vars map[string]string, w *logs.Writer, log *slog.Logger) {
	if w != nil {
		w.Printf("== the daemon stopped during deployment #%d after current was switched to release %s, "+
			"while activate ran; recorded succeeded, running activate again", d.ID, d.ReleaseID)
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
	note := fmt.Sprintf("release %s is live; the daemon stopped during activate, which ran again at start and succeeded", d.ReleaseID)
	if err != nil {
		note = fmt.Sprintf("release %s is live; the daemon stopped during activate, which ran again at start and failed (%v); the release stays live", d.ReleaseID, err)
		log.Warn("activate run again after a daemon stop failed", "err", err)
	} else {
		log.Info("activate run again after a daemon stop succeeded")
	}
	nctx, ncancel := context.WithTimeout(context.WithoutCancel(ctx), finalGrace)
	defer ncancel()
	if err := s.o.Store.NoteDeployment(nctx, d.ID, oneLine(note)); err != nil {
		log.Error("note activate outcome", "err", err)
	}
	if w != nil {
		w.Printf("== deployment #%d: %s", d.ID, note)
		if err := w.Close(); err != nil {
			log.Error("close deployment log", "err", err)
		}
	}
	s.notify()
}
