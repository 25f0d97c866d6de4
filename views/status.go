package views

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"slipway/internal/gitrev"
	"slipway/record"
)

// Revisions resolves revisions in the repositories on disk
// (gitserver.Disk).
type Revisions interface {
	Resolve(ctx context.Context, repo, rev string) (string, error)
	Branches(ctx context.Context, repo string) (map[string]string, error)
}

// The results of a revision (Status): what its last build says.
const (
	ResultPassed  = "passed"  // the last build passed (or was skipped: nothing to build)
	ResultFailed  = "failed"  // the last build failed, errored, was cancelled or interrupted
	ResultRunning = "running" // the last build is queued or running
	ResultNone    = "none"    // no build of the revision (superseded ones never ran)
)

// statusLimit bounds the builds and the deployments shown per revision.
const statusLimit = 10

// RevisionStatus is what Slipway did with one commit.
type RevisionStatus struct {
	// Name is the revision as asked, or the branch (full ref name).
	Name   string `json:"name"`
	Commit string `json:"commit"`
	// Result is the last build's: passed, failed, running or none.
	Result string `json:"result"`
	// Builds and Deployments of the commit, newest first, ten at most.
	Builds      []Build      `json:"builds"`
	Deployments []Deployment `json:"deployments"`
}

// Status is the builds and deployments of the revisions of a repository.
type Status struct {
	Repo      string           `json:"repo"`
	Revisions []RevisionStatus `json:"revisions"`
}

// Status returns the builds and deployments of rev in repo, or of each
// branch tip when rev is "", for a caller who may read repo.
func (s *Service) Status(ctx context.Context, c Caller, repo, rev string) (Status, error) {
	cfg := s.config(ctx)
	name, err := s.readableRepo(cfg, c, repo)
	if err != nil {
		return Status{}, err
	}
	if s.o.Revisions == nil {
		return Status{}, errors.New("no revision resolver")
	}
	st := Status{Repo: name, Revisions: []RevisionStatus{}}
	revs := map[string]string{}
	if rev != "" {
		commit, err := s.o.Revisions.Resolve(ctx, name, rev)
		if errors.Is(err, gitrev.ErrUnknownRev) {
			return Status{}, refuse(ErrNotFound, "repository %s has no revision %q (a branch, a tag or a commit)", name, clip(rev))
		}
		if err != nil {
			return Status{}, fmt.Errorf("resolve %q in %s: %w", clip(rev), name, err)
		}
		revs[rev] = commit
	} else if revs, err = s.o.Revisions.Branches(ctx, name); err != nil {
		return Status{}, fmt.Errorf("list the branches of %s: %w", name, err)
	}
	for _, r := range slices.Sorted(maps.Keys(revs)) {
		rs, err := s.revision(ctx, name, r, revs[r])
		if err != nil {
			return Status{}, err
		}
		st.Revisions = append(st.Revisions, rs)
	}
	return st, nil
}

func (s *Service) revision(ctx context.Context, repo, name, commit string) (RevisionStatus, error) {
	bs, err := s.o.Records.QueryBuilds(ctx, record.BuildQuery{Repos: []string{repo}, Commit: commit, Limit: statusLimit})
	if err != nil {
		return RevisionStatus{}, err
	}
	ds, err := s.o.Records.QueryDeployments(ctx, record.DeploymentQuery{Repos: []string{repo}, Commit: commit, Limit: statusLimit})
	if err != nil {
		return RevisionStatus{}, err
	}
	return RevisionStatus{Name: name, Commit: commit, Result: resultOf(bs), Builds: buildsOf(bs), Deployments: deploymentsOf(ds)}, nil
}

// resultOf is the result of the last build among bs (newest first) that
// ran or was to run: superseded builds never did.
func resultOf(bs []record.Build) string {
	for _, b := range bs {
		switch b.State {
		case record.StateSuperseded:
			continue
		case record.StatePassed, record.StateSkipped:
			return ResultPassed
		case record.StateQueued, record.StateRunning:
			return ResultRunning
		}
		return ResultFailed
	}
	return ResultNone
}
