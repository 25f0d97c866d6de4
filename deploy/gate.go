package deploy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"slipway/configs"
	"slipway/internal/gitrev"
	"slipway/internal/manifest"
	"slipway/record"
)

// ErrReleaseRefused is matched (errors.Is) by every refusal of the release
// gate. An error from CheckRelease that does not match it means the gate
// could not decide (the database failed); the push is refused all the same.
var ErrReleaseRefused = errors.New("release refused")

// refusal is one sentence saying why a release is refused. Its text is the
// reason alone: the hooks print it after the ref name.
type refusal string

func (r refusal) Error() string             { return string(r) }
func (refusal) Is(target error) bool        { return target == ErrReleaseRefused }
func refusef(format string, a ...any) error { return refusal(fmt.Sprintf(format, a...)) }

// CheckRelease is the release gate, asked in pre-receive for every update
// of refs/release/<env> that creates or moves the ref, with the commit the
// pushed object names (the caller peels annotated tags: in pre-receive only
// it can read the push's quarantine). It returns nil when
// user may put commit on env of repo: env exists, user has the release
// right (and is one of env's approvers when the config names them), and
// there is an artifact set to ship (see shipment): when env requires
// another environment, commit is or was live there and the build whose
// artifacts were live there still has them; otherwise commit has a passed
// build of the default pipeline that kept artifacts. Otherwise the error is
// one line for the pusher (and matches ErrReleaseRefused).
//
// The rights are checked again here although the hooks check them first:
// the gate must hold whoever calls it.
func (s *Service) CheckRelease(ctx context.Context, repo, env, commit, user string) error {
	// Rights first: only releasers learn which environments there are.
	if !configs.Snapshot(ctx, s.o.Config).Access(user, repo).Has(configs.Release) {
		return refusef("user %s may not release repository %s (needs the release right)", user, repo)
	}
	e, ok := configs.Snapshot(ctx, s.o.Config).Environment(repo, env)
	if !ok {
		return refusef("unknown environment %q (%s)", env, s.envNames(ctx, repo))
	}
	if len(e.Approvers) > 0 && !slices.Contains(e.Approvers, user) {
		return refusef("user %s is not an approver of %s (approvers: %s)", user, env, strings.Join(e.Approvers, ", "))
	}
	_, err := s.shipment(ctx, repo, e, commit)
	return err
}

// shipping is the artifact set a release of a revision ships.
type shipping struct {
	Build record.Build
	// Via is the deployment in which these artifacts were live on the
	// required environment; zero when the environment requires none.
	Via record.Deployment
}

// describe says, for the pusher, which artifacts a deployment ships and
// why those.
func (sh shipping) describe() string {
	what := fmt.Sprintf("build #%d (%s)", sh.Build.ID, manifest.Short(sh.Build.ArtifactsDigest))
	if sh.Via.ID != 0 {
		return fmt.Sprintf("%s, the artifacts that went live on %s in deployment #%d", what, sh.Via.Env, sh.Via.ID)
	}
	return fmt.Sprintf("%s, the newest passed build of %s", what, gitrev.Short(sh.Build.Commit))
}

// shipment chooses what a release of commit to e ships. When e requires
// another environment, it is the artifact set that is or was live there for
// commit, byte for byte: the build of the newest succeeded deployment of
// commit to that environment, not whichever build of commit passed last (a
// rebuild of the same commit may hold other bytes). Otherwise it is the
// newest passed build of commit that kept artifacts. The gate and the
// deployment it approves choose with this one function. A refusal matches
// ErrReleaseRefused.
func (s *Service) shipment(ctx context.Context, repo string, e *configs.Environment, commit string) (shipping, error) {
	if e.Requires != "" {
		via, ok, err := s.o.Store.LiveWith(ctx, repo, e.Requires, commit)
		if err != nil {
			return shipping{}, s.gateFailed("check requires", repo, e.Name, commit, err)
		}
		if !ok {
			if _, passed, err := s.o.Store.PassedBuildForCommit(ctx, repo, commit); err == nil && !passed {
				return shipping{}, refusef("revision %s has no passed build", gitrev.Short(commit))
			}
			return shipping{}, refusef("revision %s has not been live on %s (%s requires %s)", gitrev.Short(commit), e.Requires, e.Name, e.Requires)
		}
		b, err := s.o.Store.GetBuild(ctx, via.BuildID)
		if err != nil {
			return shipping{}, s.gateFailed("read the build live on "+e.Requires, repo, e.Name, commit, err)
		}
		if err := s.shippable(b); err != nil {
			return shipping{}, err
		}
		return shipping{Build: b, Via: via}, nil
	}
	b, ok, err := s.o.Store.PassedBuildForCommit(ctx, repo, commit)
	if err != nil {
		return shipping{}, s.gateFailed("find passed build", repo, e.Name, commit, err)
	}
	if !ok {
		return shipping{}, refusef("revision %s has no passed build", gitrev.Short(commit))
	}
	if err := s.shippable(b); err != nil {
		return shipping{}, err
	}
	return shipping{Build: b}, nil
}

// shippable refuses a build whose artifacts are gone.
func (s *Service) shippable(b record.Build) error {
	has, err := s.hasArtifacts(b.ID)
	if err != nil {
		return s.gateFailed("read artifacts", b.Repo, "", b.Commit, err)
	}
	if !has {
		return refusef("build %d kept no artifacts", b.ID)
	}
	return nil
}

// gateFailed logs the detail of a failure to decide and returns the one
// sentence the pusher sees.
func (s *Service) gateFailed(what, repo, env, commit string, err error) error {
	s.log.Error("release gate: "+what, "repo", repo, "env", env, "commit", commit, "err", err)
	return errors.New("the release gate could not read Slipway's records; nothing was released, try again")
}

// envNames lists a repository's environments for a refusal message.
func (s *Service) envNames(ctx context.Context, repo string) string {
	envs := configs.Snapshot(ctx, s.o.Config).EnvironmentsOf(repo)
	if len(envs) == 0 {
		return "repository " + repo + " has no environments"
	}
	names := make([]string, len(envs))
	for i, e := range envs {
		names[i] = e.Name
	}
	return "repository " + repo + " has " + strings.Join(names, ", ")
}

// artifactDir is where the build service keeps the artifacts of a passed
// build.
func (s *Service) artifactDir(buildID int64) string {
	return filepath.Join(s.o.ArtifactsDir, strconv.FormatInt(buildID, 10))
}

// hasArtifacts reports whether a build kept anything to deploy. A build
// whose pipeline named no artifacts has no folder at all; shipping an empty
// folder would make `current` point at nothing useful.
func (s *Service) hasArtifacts(buildID int64) (bool, error) {
	f, err := os.Open(s.artifactDir(buildID))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("open artifacts of build %d: %w", buildID, err)
	}
	defer f.Close()
	names, err := f.Readdirnames(1)
	if len(names) > 0 {
		return true, nil
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return false, fmt.Errorf("read artifacts of build %d: %w", buildID, err)
	}
	return false, nil
}

// ReleaseDeployments returns the deployments that the release refs of an
// accepted push ask for, for the wiring to record together with the push
// (store.RecordPushAndEnqueue), then Wake the service. A created or moved
// refs/release/<env> becomes a deployment of the artifact set the gate
// chose (shipment: what was live on the required environment, else the
// newest passed build of the new revision), triggered as a rollback when
// that revision was live on env before and is not live now, else as a
// release; User is the pusher.
//
// The gate has approved these refs in pre-receive. A ref that can no
// longer be deployed by the time post-receive runs (the environment left the
// config, the build records changed) is skipped and logged rather than
// failing: git has already moved the ref and the push must still be
// recorded. The error is only for records that could not be read.
func (s *Service) ReleaseDeployments(ctx context.Context, p record.Push) ([]record.Deployment, error) {
	var out []record.Deployment
	for _, u := range p.Refs {
		env, ok := gitrev.ReleaseEnv(u.Name)
		if !ok || record.ZeroID(u.New) {
			continue
		}
		log := s.log.With("repo", p.Repo, "env", env, "rev", u.New, "user", p.User)
		if p.Found() {
			// Moved without Slipway: nobody allowed to release asked.
			log.Warn("release ref moved without a push through Slipway; not deploying (push it again to release)")
			continue
		}
		e, ok := configs.Snapshot(ctx, s.o.Config).Environment(p.Repo, env)
		if !ok {
			log.Warn("release ref of an unknown environment accepted; not deploying")
			continue
		}
		// An annotated tag (a rollback by `+v1.2:refs/release/prod`) names
		// the commit it points at; the gate peeled it the same way.
		commit, err := s.o.Revisions.Peel(ctx, p.Repo, u.New)
		if errors.Is(err, gitrev.ErrNotCommit) {
			log.Warn("release ref of something other than a commit accepted; not deploying", "err", err)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("deployment for %s: %w", u.Name, err)
		}
		sh, err := s.shipment(ctx, p.Repo, e, commit)
		if errors.Is(err, ErrReleaseRefused) {
			log.Warn("release ref accepted but nothing can be shipped now; not deploying", "why", err)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("deployment for %s: %w", u.Name, err)
		}
		b := sh.Build
		trigger, err := s.releaseTrigger(ctx, p.Repo, env, commit)
		if err != nil {
			return nil, fmt.Errorf("deployment for %s: %w", u.Name, err)
		}
		out = append(out, record.Deployment{
			Repo: p.Repo, Env: env, BuildID: b.ID, Commit: commit, Trigger: trigger, User: p.User,
			Digest: b.ArtifactsDigest,
		})
	}
	return out, nil
}

// releaseTrigger tells a rollback (a revision that was live on env and is
// not now) from a release.
func (s *Service) releaseTrigger(ctx context.Context, repo, env, commit string) (record.DeployTrigger, error) {
	was, err := s.o.Store.EverLive(ctx, repo, env, commit)
	if err != nil || !was {
		return record.DeployRelease, err
	}
	live, ok, err := s.o.Store.LiveDeployment(ctx, repo, env)
	if err != nil {
		return "", err
	}
	if ok && live.Commit == commit {
		return record.DeployRelease, nil
	}
	return record.DeployRollback, nil
}

// AutoDeployments returns the deployments due when build b passes: one per
// environment of b's repository whose auto branch is b's branch, for builds
// of the default pipeline only (a nightly suite passing does not ship). The
// build service records them in the same transaction as the build's result
// (store.FinishBuildAndDeploy), then the service is woken. That transaction
// leaves out an environment that already has an automatic deployment of a
// newer build: a slow build of an older commit finishing last must not put
// that commit back on the environment, and the check has to be made where
// the deployment is queued for two builds finishing at once.
func (s *Service) AutoDeployments(ctx context.Context, b record.Build) []record.Deployment {
	if b.Pipeline != "" && b.Pipeline != record.DefaultPipeline {
		return nil
	}
	branch, ok := strings.CutPrefix(b.Ref, "refs/heads/")
	if !ok || branch == "" {
		return nil
	}
	var out []record.Deployment
	for _, e := range configs.Snapshot(ctx, s.o.Config).EnvironmentsOf(b.Repo) {
		if e.Auto != branch {
			continue
		}
		out = append(out, record.Deployment{
			Repo: b.Repo, Env: e.Name, BuildID: b.ID, Commit: b.Commit, Trigger: record.DeployAuto,
		})
	}
	return out
}
