package views

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"slipway/build/logs"
	"slipway/configs"
	"slipway/deploy"
	"slipway/record"
)

// Repos lists the repositories on disk that c may read, with their last
// push; a repository the configuration does not name shows only to
// admins.
func (s *Service) Repos(ctx context.Context, c Caller) ([]Repo, error) {
	if s.o.Repos == nil {
		return nil, errors.New("no repository listing")
	}
	names, err := s.o.Repos.Repos(ctx)
	if err != nil {
		return nil, fmt.Errorf("list repositories: %w", err)
	}
	last, err := s.o.Records.LastPushes(ctx)
	if err != nil {
		return nil, fmt.Errorf("read last pushes: %w", err)
	}
	cfg := s.config(ctx)
	out := []Repo{}
	for _, n := range names {
		a := c.Access(cfg, n)
		if !a.Has(configs.Read) {
			continue
		}
		r := Repo{Name: n, Access: AccessWords(a), Configured: cfg.Configured(n)}
		if p, ok := last[n]; ok {
			refs := p.Refs
			if refs == nil {
				refs = []record.RefUpdate{}
			}
			r.LastPush = &LastPush{ID: p.ID, Time: p.Time.UTC(), User: p.User, Refs: refs}
		}
		out = append(out, r)
	}
	return out, nil
}

// BuildQuery selects builds. Every field is optional.
type BuildQuery struct {
	Repo    string // a repository name as people write it ("team/app", "app.git")
	Branch  string // a branch name ("main"); a full ref name is taken as it is
	State   string // one build state
	Trigger string // push, schedule, retry, manual, verify
	Cursor  int64  // builds older than this id (the previous page's NextCursor)
	Limit   int    // DefaultLimit when <= 0
}

// BuildPage is one page of a listing of builds, newest first.
type BuildPage struct {
	Builds []Build `json:"builds"`
	// NextCursor is the cursor of the next page; 0 when this is the last.
	NextCursor int64 `json:"next_cursor"`
}

// maxBranch bounds a branch name in a filter; git allows longer, nobody
// names one so.
const maxBranch = 255

func refOf(branch string) (string, error) {
	switch {
	case branch == "":
		return "", nil
	case len(branch) > maxBranch:
		return "", refuse(ErrInvalid, "branch name longer than %d bytes", maxBranch)
	case strings.ContainsFunc(branch, func(r rune) bool { return r < 0x20 || r == 0x7f || r == ' ' || r == '~' || r == '^' || r == ':' }):
		return "", refuse(ErrInvalid, "%q is not a branch name", branch)
	case strings.HasPrefix(branch, "refs/"):
		return branch, nil
	}
	return "refs/heads/" + branch, nil
}

func stateOf(s string) (record.State, error) {
	st := record.State(s)
	switch st {
	case "", record.StateQueued, record.StateRunning:
		return st, nil
	}
	if st.Final() {
		return st, nil
	}
	return "", refuse(ErrInvalid, "unknown build state %q (queued, running, passed, failed, error, cancelled, superseded, interrupted, skipped)", clip(s))
}

func triggerOf(s string) (record.Trigger, error) {
	t := record.Trigger(s)
	switch t {
	case "", record.TriggerPush, record.TriggerSchedule, record.TriggerRetry, record.TriggerManual, record.TriggerVerify:
		return t, nil
	}
	return "", refuse(ErrInvalid, "unknown build trigger %q (push, schedule, retry, manual, verify)", clip(s))
}

// clip keeps hostile input short in messages.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// Builds lists the builds q selects among those c may read, newest first.
// Naming a repository c may not read is "not found".
func (s *Service) Builds(ctx context.Context, c Caller, q BuildQuery) (BuildPage, error) {
	cfg := s.config(ctx)
	ref, err := refOf(q.Branch)
	if err != nil {
		return BuildPage{}, err
	}
	state, err := stateOf(q.State)
	if err != nil {
		return BuildPage{}, err
	}
	trigger, err := triggerOf(q.Trigger)
	if err != nil {
		return BuildPage{}, err
	}
	if q.Cursor < 0 {
		return BuildPage{}, refuse(ErrInvalid, "cursor %d is not a build id", q.Cursor)
	}
	repos, none, err := s.readable(cfg, c, q.Repo)
	if err != nil || none {
		return BuildPage{Builds: []Build{}}, err
	}
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultLimit
	}
	// One more than the page tells whether there is a next one.
	bs, err := s.o.Records.QueryBuilds(ctx, record.BuildQuery{Repos: repos, Ref: ref, State: state, Trigger: trigger,
		Before: q.Cursor, Limit: limit + 1})
	if err != nil {
		return BuildPage{}, err
	}
	var page BuildPage
	if len(bs) > limit {
		bs = bs[:limit]
		page.NextCursor = bs[limit-1].ID
	}
	page.Builds = buildsOf(bs)
	return page, nil
}

// build is the build id that c may read, or "not found".
func (s *Service) build(ctx context.Context, cfg *configs.Config, c Caller, id int64) (record.Build, configs.Access, error) {
	b, err := s.o.Records.GetBuild(ctx, id)
	if err != nil {
		return record.Build{}, 0, check(err, "build %d", id)
	}
	a := c.Access(cfg, b.Repo)
	if !a.Has(configs.Read) {
		return record.Build{}, 0, notFound("build %d", id)
	}
	return b, a, nil
}

// Build returns build id with its steps.
func (s *Service) Build(ctx context.Context, c Caller, id int64) (Build, error) {
	b, _, err := s.build(ctx, s.config(ctx), c, id)
	if err != nil {
		return Build{}, err
	}
	return BuildOf(b), nil
}

// FollowBuild copies the log of build id to w, following it to the end
// with follow (see build.Service.Follow).
func (s *Service) FollowBuild(ctx context.Context, c Caller, id int64, w io.Writer, follow bool) error {
	if _, _, err := s.build(ctx, s.config(ctx), c, id); err != nil {
		return err
	}
	if s.o.Builds == nil {
		return errors.New("no build service")
	}
	return s.o.Builds.Follow(ctx, id, w, follow)
}

// BuildLog opens the stored log of build id for reading by range. f is nil
// when the build has no log (yet): it was never claimed, or ended
// without running. The caller closes f.
func (s *Service) BuildLog(ctx context.Context, c Caller, id int64) (Build, *os.File, error) {
	b, _, err := s.build(ctx, s.config(ctx), c, id)
	if err != nil {
		return Build{}, nil, err
	}
	if s.o.Logs == nil {
		return Build{}, nil, errors.New("no log store")
	}
	f, err := s.o.Logs.Open(strconv.FormatInt(id, 10))
	if errors.Is(err, logs.ErrNotFound) {
		return BuildOf(b), nil, nil
	}
	if err != nil {
		return Build{}, nil, err
	}
	return BuildOf(b), f, nil
}

// DeploymentLog opens the stored log of deployment id for reading by
// range, as BuildLog does for builds.
func (s *Service) DeploymentLog(ctx context.Context, c Caller, id int64) (Deployment, *os.File, error) {
	d, _, err := s.deployment(ctx, s.config(ctx), c, id)
	if err != nil {
		return Deployment{}, nil, err
	}
	if s.o.Logs == nil {
		return Deployment{}, nil, errors.New("no log store")
	}
	f, err := s.o.Logs.Open(deploy.LogID(id))
	if errors.Is(err, logs.ErrNotFound) {
		return DeploymentOf(d), nil, nil
	}
	if err != nil {
		return Deployment{}, nil, err
	}
	return DeploymentOf(d), f, nil
}

// DeploymentQuery selects deployments.
type DeploymentQuery struct {
	Repo   string // optional: every repository c may read when empty
	Env    string // optional
	Cursor int64
	Limit  int // DefaultLimit when <= 0
}

// DeploymentPage is one page of a deployment history, newest first.
type DeploymentPage struct {
	Deployments []Deployment `json:"deployments"`
	NextCursor  int64        `json:"next_cursor"` // 0: the last page
}

// Deployments lists the deployments q selects among those c may read.
func (s *Service) Deployments(ctx context.Context, c Caller, q DeploymentQuery) (DeploymentPage, error) {
	cfg := s.config(ctx)
	if q.Env != "" {
		if err := configs.CheckName(q.Env); err != nil {
			return DeploymentPage{}, refuse(ErrInvalid, "environment %v", err)
		}
	}
	if q.Cursor < 0 {
		return DeploymentPage{}, refuse(ErrInvalid, "cursor %d is not a deployment id", q.Cursor)
	}
	repos, none, err := s.readable(cfg, c, q.Repo)
	if err != nil || none {
		return DeploymentPage{Deployments: []Deployment{}}, err
	}
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultLimit
	}
	ds, err := s.o.Records.QueryDeployments(ctx, record.DeploymentQuery{Repos: repos, Env: q.Env, Before: q.Cursor, Limit: limit + 1})
	if err != nil {
		return DeploymentPage{}, err
	}
	var page DeploymentPage
	if len(ds) > limit {
		ds = ds[:limit]
		page.NextCursor = ds[limit-1].ID
	}
	page.Deployments = deploymentsOf(ds)
	for i := range page.Deployments {
		hs, err := s.o.Records.DeploymentHosts(ctx, page.Deployments[i].ID)
		if err != nil {
			return DeploymentPage{}, err
		}
		page.Deployments[i].Hosts = deploymentHostsOf(hs)
	}
	return page, nil
}

func (s *Service) deployment(ctx context.Context, cfg *configs.Config, c Caller, id int64) (record.Deployment, configs.Access, error) {
	d, err := s.o.Records.GetDeployment(ctx, id)
	if err != nil {
		return record.Deployment{}, 0, check(err, "deployment %d", id)
	}
	a := c.Access(cfg, d.Repo)
	if !a.Has(configs.Read) {
		return record.Deployment{}, 0, notFound("deployment %d", id)
	}
	return d, a, nil
}

// Deployment returns deployment id.
func (s *Service) Deployment(ctx context.Context, c Caller, id int64) (Deployment, error) {
	d, _, err := s.deployment(ctx, s.config(ctx), c, id)
	if err != nil {
		return Deployment{}, err
	}
	doc := DeploymentOf(d)
	hs, err := s.o.Records.DeploymentHosts(ctx, id)
	if err != nil {
		return Deployment{}, err
	}
	doc.Hosts = deploymentHostsOf(hs)
	return doc, nil
}

// FollowDeployment copies the log of deployment id to w (see
// deploy.Service.Follow).
func (s *Service) FollowDeployment(ctx context.Context, c Caller, id int64, w io.Writer, follow bool) error {
	if _, _, err := s.deployment(ctx, s.config(ctx), c, id); err != nil {
		return err
	}
	if s.o.Deploys == nil {
		return errors.New("no deployment service")
	}
	return s.o.Deploys.Follow(ctx, id, w, follow)
}

// Releases lists what is on env's target of repo (see
// deploy.Service.Releases: a listing at most a few seconds old).
func (s *Service) Releases(ctx context.Context, c Caller, repo, env string) (Releases, error) {
	cfg := s.config(ctx)
	name, err := s.readableRepo(cfg, c, repo)
	if err != nil {
		return Releases{}, err
	}
	if err := configs.CheckName(env); err != nil {
		return Releases{}, refuse(ErrInvalid, "environment %v", err)
	}
	if _, ok := cfg.Environment(name, env); !ok {
		return Releases{}, refuse(ErrNotFound, "unknown environment %q (%s)", env, envNames(cfg, name))
	}
	if s.o.Deploys == nil {
		return Releases{}, errors.New("no deployment service")
	}
	l, err := s.o.Deploys.Releases(ctx, name, env)
	if err != nil {
		return Releases{}, fmt.Errorf("releases of %s on %s: %w", name, env, err)
	}
	return releasesOf(l), nil
}

// Schedules lists the schedules of repo, or of every repository c may
// read when repo is empty, with their next fire time and last run.
func (s *Service) Schedules(ctx context.Context, c Caller, repo string) ([]Schedule, error) {
	cfg := s.config(ctx)
	if repo != "" {
		name, err := s.readableRepo(cfg, c, repo)
		if err != nil {
			return nil, err
		}
		repo = name
	}
	if s.o.Schedules == nil {
		return nil, errors.New("no scheduler")
	}
	all, err := s.o.Schedules.List(ctx, repo)
	if err != nil {
		return nil, fmt.Errorf("list schedules: %w", err)
	}
	out := []Schedule{}
	for _, st := range all {
		if c.Access(cfg, st.Repo).Has(configs.Read) {
			out = append(out, scheduleOf(st))
		}
	}
	return out, nil
}

// PushQuery selects pushes.
type PushQuery struct {
	Repo   string // optional: every repository c may read when empty
	Cursor int64
	Limit  int // DefaultLimit when <= 0
}

// PushPage is one page of recorded pushes, newest first.
type PushPage struct {
	Pushes     []Push `json:"pushes"`
	NextCursor int64  `json:"next_cursor"` // 0: the last page
}

// Pushes lists the recorded pushes q selects among those c may read.
func (s *Service) Pushes(ctx context.Context, c Caller, q PushQuery) (PushPage, error) {
	cfg := s.config(ctx)
	if q.Cursor < 0 {
		return PushPage{}, refuse(ErrInvalid, "cursor %d is not a push id", q.Cursor)
	}
	repos, none, err := s.readable(cfg, c, q.Repo)
	if err != nil || none {
		return PushPage{Pushes: []Push{}}, err
	}
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultLimit
	}
	ps, err := s.o.Records.QueryPushes(ctx, record.PushQuery{Repos: repos, Before: q.Cursor, Limit: limit + 1})
	if err != nil {
		return PushPage{}, err
	}
	var page PushPage
	if len(ps) > limit {
		ps = ps[:limit]
		page.NextCursor = ps[limit-1].ID
	}
	page.Pushes = docsOf(ps, PushOf)
	return page, nil
}

// Push returns push id with the builds and deployments it caused.
func (s *Service) Push(ctx context.Context, c Caller, id int64) (Push, error) {
	p, err := s.o.Records.GetPush(ctx, id)
	if err != nil {
		return Push{}, check(err, "push %d", id)
	}
	if !c.Access(s.config(ctx), p.Repo).Has(configs.Read) {
		return Push{}, notFound("push %d", id)
	}
	bs, ds, err := s.o.Records.PushWork(ctx, id)
	if err != nil {
		return Push{}, err
	}
	doc := PushOf(p)
	doc.Builds, doc.Deployments = buildsOf(bs), deploymentsOf(ds)
	return doc, nil
}

// envNames lists a repository's environments for a message.
func envNames(cfg *configs.Config, repo string) string {
	envs := cfg.EnvironmentsOf(repo)
	if len(envs) == 0 {
		return "repository " + repo + " has no environments"
	}
	names := make([]string, len(envs))
	for i, e := range envs {
		names[i] = e.Name
	}
	return "repository " + repo + " has " + strings.Join(names, ", ")
}
