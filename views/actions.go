package views

import (
	"context"
	"errors"
	"fmt"

	"slipway/build/schedule"
	"slipway/configs"
	"slipway/deploy"
	"slipway/record"
)

// The actions. Each finds its object as the queries do (what c may not
// read is "not found"), then checks the right the action needs within
// c's scope: write to cancel, retry or run, release (or the environment's
// own rule, deploy.MayRetry) to retry a deployment.

// Cancel cancels a queued or running build of a repository c may write
// to, and returns it as it is once cancelled (a running build's
// processes are stopped first, bounded by ctx).
func (s *Service) Cancel(ctx context.Context, c Caller, id int64) (Build, error) {
	b, err := s.buildToChange(ctx, c, id)
	if err != nil {
		return Build{}, err
	}
	if b.State.Final() {
		return Build{}, refuse(ErrConflict, "build %d already ended: %s", b.ID, b.State)
	}
	if s.o.Builds == nil {
		return Build{}, errors.New("no build service")
	}
	if err := s.o.Builds.CancelBy(ctx, b.ID, c.User); err != nil {
		return Build{}, actionError(err, "cancel build %d", b.ID)
	}
	nb, err := s.o.Records.GetBuild(ctx, b.ID)
	if err != nil {
		return Build{}, err
	}
	return BuildOf(nb), nil
}

// Retry queues a new build of a finished build's commit, for a caller who
// may write to its repository, and returns the new build.
func (s *Service) Retry(ctx context.Context, c Caller, id int64) (Build, error) {
	b, err := s.buildToChange(ctx, c, id)
	if err != nil {
		return Build{}, err
	}
	if !b.State.Final() {
		return Build{}, refuse(ErrConflict, "build %d is still %s", b.ID, b.State)
	}
	if s.o.Builds == nil {
		return Build{}, errors.New("no build service")
	}
	nb, err := s.o.Builds.Retry(ctx, b.ID)
	if err != nil {
		return Build{}, actionError(err, "retry build %d", b.ID)
	}
	return BuildOf(nb), nil
}

// buildToChange finds build id as the queries do, for a caller who may
// write to its repository.
func (s *Service) buildToChange(ctx context.Context, c Caller, id int64) (record.Build, error) {
	b, a, err := s.build(ctx, s.config(ctx), c, id)
	if err != nil {
		return record.Build{}, err
	}
	if !a.Has(configs.Write) {
		return record.Build{}, forbidden(c, "may read %q but not change its builds", b.Repo)
	}
	return b, nil
}

// RetryDeploy queues a failed deployment again (see deploy.Service.Retry)
// for a caller who may deploy to its environment, and returns the new
// deployment.
func (s *Service) RetryDeploy(ctx context.Context, c Caller, id int64) (Deployment, error) {
	cfg := s.config(ctx)
	d, a, err := s.deployment(ctx, cfg, c, id)
	if err != nil {
		return Deployment{}, err
	}
	env, ok := cfg.Environment(d.Repo, d.Env)
	if !ok {
		return Deployment{}, refuse(ErrConflict, "environment %s of %s is no longer configured", d.Env, d.Repo)
	}
	if !deploy.MayRetry(env, c.User, a) {
		return Deployment{}, forbidden(c, "may not deploy %s to %s", d.Repo, d.Env)
	}
	switch d.State {
	case record.DeployFailed, record.DeployRolledBack:
	case record.DeploySucceeded:
		// The deployment service refuses it unless hosts were added to
		// the environment since.
	default:
		return Deployment{}, refuse(ErrConflict, "deployment #%d is still %s", id, d.State)
	}
	if s.o.Deploys == nil {
		return Deployment{}, errors.New("no deployment service")
	}
	nd, err := s.o.Deploys.Retry(ctx, id, c.User)
	if err != nil {
		return Deployment{}, actionError(err, "retry deployment %d", id)
	}
	return DeploymentOf(nd), nil
}

// RunSchedule fires schedule name of repo now, for a caller who may write
// to repo, and returns the builds it recorded (queued, or skipped with
// the reason).
func (s *Service) RunSchedule(ctx context.Context, c Caller, repo, name string) ([]Build, error) {
	cfg := s.config(ctx)
	repo, err := s.readableRepo(cfg, c, repo)
	if err != nil {
		return nil, err
	}
	if err := configs.CheckName(name); err != nil {
		return nil, refuse(ErrInvalid, "schedule %v", err)
	}
	if !c.Access(cfg, repo).Has(configs.Write) {
		return nil, forbidden(c, "may read %q but not run its schedules", repo)
	}
	if s.o.Schedules == nil {
		return nil, errors.New("no scheduler")
	}
	bs, err := s.o.Schedules.RunNow(ctx, repo, name, c.User)
	if errors.Is(err, schedule.ErrUnknownSchedule) {
		return nil, notFound("schedule %q of %q", name, repo)
	}
	if err != nil {
		return nil, fmt.Errorf("run %s %s: %w", repo, name, err)
	}
	return buildsOf(bs), nil
}

// forbidden says what c may not do, naming the user ("user bob may read
// ...").
func forbidden(c Caller, format string, args ...any) error {
	who := "user " + c.User
	if c.User == "" {
		who = "an anonymous caller"
	}
	return refuse(ErrForbidden, who+" "+format, args...)
}

// actionError classifies what a service answered to an action: a record
// gone meanwhile is "not found", a state changed meanwhile a conflict,
// anything else as it is.
func actionError(err error, format string, args ...any) error {
	what := fmt.Sprintf(format, args...)
	switch {
	case errors.Is(err, record.ErrNotFound):
		return refuse(ErrNotFound, "%s: not found", what)
	case errors.Is(err, record.ErrConflict):
		return refuse(ErrConflict, "%s: %v", what, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}
