package deploy

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"slipway/build/logs"
	"slipway/configs"
	"slipway/internal/gitrev"
	"slipway/internal/queue"
	"slipway/record"
)

// Records is what the Service needs of the store (*store.Store implements
// it): the deployment queue, whose head per repo and environment is claimed
// one at a time, and the build records the release gate asks about.
type Records interface {
	ClaimDeployment(ctx context.Context) (record.Deployment, bool, error)
	SetDeploymentRelease(ctx context.Context, id int64, releaseID string) error
	FinishDeployment(ctx context.Context, id int64, state record.DeployState, reason string) error
	RunningDeployments(ctx context.Context) ([]record.Deployment, error)
	NoteDeployment(ctx context.Context, id int64, reason string) error
	RetryDeployment(ctx context.Context, id int64, user string) (record.Deployment, error)
	RepeatDeployment(ctx context.Context, id int64, user string) (record.Deployment, error)
	GetDeployment(ctx context.Context, id int64) (record.Deployment, error)
	ListDeployments(ctx context.Context, repo, env string, limit int) ([]record.Deployment, error)
	EverLive(ctx context.Context, repo, env, commit string) (bool, error)
	LiveDeployment(ctx context.Context, repo, env string) (record.Deployment, bool, error)
	LiveWith(ctx context.Context, repo, env, commit string) (record.Deployment, bool, error)
	PassedBuildForCommit(ctx context.Context, repo, commit string) (record.Build, bool, error)
	GetBuild(ctx context.Context, id int64) (record.Build, error)
	SetArtifactsDigest(ctx context.Context, buildID int64, digest string) error
	SetDeploymentHost(ctx context.Context, h record.DeploymentHost) error
	DeploymentHosts(ctx context.Context, id int64) ([]record.DeploymentHost, error)
	LatestHostResults(ctx context.Context, repo, env string) ([]record.DeploymentHost, error)
}

// ServiceOptions configures a Service. Config, Store and Logs are required.
type ServiceOptions struct {
	Config configs.Source
	Store  Records
	// Shipper transfers and switches releases; nil means a Shipper with
	// default settings logging to Logger.
	Shipper *Shipper
	// Logs keeps each deployment's log under the id "deploy-<id>", so it
	// may be the build logs' store or one of its own.
	Logs *logs.Store
	// ArtifactsDir holds the artifacts of passed builds, <ArtifactsDir>/<build id>/,
	// as the build service keeps them; default <DataDir>/artifacts.
	ArtifactsDir string
	// DataDir is where local targets with relative paths live; default
	// Config.DataDir.
	DataDir string
	// Revisions names the commit that an object pushed to a release ref
	// stands for (annotated tags are peeled); default: git on the bare
	// repositories in Config.ReposDir().
	Revisions Revisions
	Logger    *slog.Logger // nil discards
	// Workers is how many deployments run at once, each to a different
	// environment; default 2.
	Workers int
	// Timeout bounds one deployment, activate included, so that a hung
	// command cannot block its environment's queue for ever; default 30m.
	Timeout time.Duration

	// SSHCommand is how pushers reach the daemon, shown in the command that
	// follows a deployment ("ssh -p 2222 git.example.com"). Default "ssh".
	SSHCommand string

	// Metrics counts the deployments the workers run, by environment and
	// outcome, with their durations; nil counts nothing.
	Metrics Metrics
}

// Metrics counts deployments for /metrics (package metrics provides it).
// Its method is called by the workers, concurrently, and must not block.
type Metrics interface {
	// DeploymentFinished counts d, whose outcome state was recorded
	// after it ran for took.
	DeploymentFinished(d record.Deployment, state record.DeployState, took time.Duration)
}

// Revisions names the commit an object id stands for in a repository.
type Revisions interface {
	// Peel returns id itself when it names a commit, the commit an
	// annotated tag points at when it names a tag, and an error wrapping
	// gitrev.ErrNotCommit when it names anything else.
	Peel(ctx context.Context, repo, id string) (string, error)
}

// gitRevisions answers with git from the bare repositories.
type gitRevisions struct{ reposDir string }

func (g gitRevisions) Peel(ctx context.Context, repo, id string) (string, error) {
	return gitrev.Peel(ctx, filepath.Join(g.reposDir, repo+".git"), id, nil)
}

// LogID is the id of deployment id's log in ServiceOptions.Logs.
func LogID(id int64) string { return "deploy-" + strconv.FormatInt(id, 10) }

// Service runs the deployment queue kept in the store: workers claim the
// head of each environment's queue, ship the build's artifacts to the
// environment's target and record the outcome. It also answers the release
// gate and turns passed builds and release pushes into deployments. The
// queue lives only in the store; the Service keeps nothing a restart would
// need.
type Service struct {
	o       ServiceOptions
	log     *slog.Logger
	shipper *Shipper

	// queue runs the workers, and the activate commands run again at start.
	queue   *queue.Pool[record.Deployment]
	changed queue.Signal // a deployment started or ended

	slotsMu sync.Mutex
	slots   map[slotKey]*slot // one per environment, made on first use

	// How a failed write of a deployment's outcome is retried, and how
	// often the watchdog looks for deployments recorded running that
	// nobody runs; tests shorten them.
	retryFirst, retryMax, watchEvery time.Duration

	// mu is held across a claim and the registration of its run, and by
	// the watchdog while it picks the deployments nobody runs.
	mu      sync.Mutex
	running map[int64]bool // deployments this process's workers run; guarded by mu
}

// safetyTick is how often idle workers and waiters look at the store
// although nobody woke them: wakes are what make deployments start at once;
// the tick covers one recorded by something that did not call Wake.
const safetyTick = time.Second

// finalGrace bounds recording a deployment's outcome once its own context
// has ended.
const finalGrace = 30 * time.Second

// errShutdown is the cause of a deployment's cancellation when the daemon
// stops.
var errShutdown = errors.New("the daemon is stopping")

// NewService checks the options and fills in defaults. It starts nothing.
func NewService(o ServiceOptions) (*Service, error) {
	switch {
	case o.Config == nil:
		return nil, errors.New("new deploy service: Config is required")
	case o.Store == nil:
		return nil, errors.New("new deploy service: Store is required")
	case o.Logs == nil:
		return nil, errors.New("new deploy service: Logs is required")
	}
	if o.DataDir == "" {
		o.DataDir = o.Config.Current().DataDir
	}
	if o.ArtifactsDir == "" {
		o.ArtifactsDir = filepath.Join(o.DataDir, "artifacts")
	}
	if o.Revisions == nil {
		o.Revisions = gitRevisions{reposDir: o.Config.Current().ReposDir()}
	}
	if o.Workers <= 0 {
		o.Workers = 2
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Minute
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	sh := o.Shipper
	if sh == nil {
		sh = &Shipper{Logger: log}
	}
	s := &Service{
		o:       o,
		log:     log,
		shipper: sh,
		slots:   map[slotKey]*slot{},
		running: map[int64]bool{},

		retryFirst: queue.RetryFirst,
		retryMax:   queue.RetryMax,
		watchEvery: queue.WatchEvery,
	}
	q, err := queue.New(queue.Options[record.Deployment]{
		Workers:     o.Workers,
		Tick:        safetyTick,
		Claim:       func(claimCtx, _ context.Context, _ int) (record.Deployment, bool, error) { return s.claim(claimCtx) },
		Run:         s.run,
		ClaimFailed: func(err error) { log.Error("claim deployment", "err", err) },
	})
	if err != nil {
		return nil, fmt.Errorf("new deploy service: %w", err)
	}
	s.queue = q
	return s, nil
}

// Start settles the deployments a previous daemon left running (see
// recover), then starts the workers and the watchdog (recoverOrphans).
// ctx bounds the recovery; the workers run until Shutdown, or until ctx is
// cancelled, which is handled like a Shutdown whose deadline has passed.
func (s *Service) Start(ctx context.Context) error {
	var recovered int
	err := s.queue.Start(ctx, errShutdown, func(runCtx context.Context) error {
		var err error
		if recovered, err = s.recover(ctx, runCtx); err != nil {
			return err
		}
		s.queue.Watch(runCtx, s.watchEvery, errShutdown, s.recoverOrphans)
		return nil
	})
	if err != nil {
		return fmt.Errorf("start deploy service: %w", err)
	}
	s.log.Info("deploy workers started", "workers", s.o.Workers, "recovered", recovered)
	return nil
}

// claim takes the next deployment and registers its run, under mu, so
// that the watchdog never takes a deployment just claimed for one that
// nobody runs.
func (s *Service) claim(ctx context.Context) (record.Deployment, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok, err := s.o.Store.ClaimDeployment(ctx)
	if err == nil && ok {
		s.running[d.ID] = true
	}
	return d, ok, err
}

// appendLog adds a line to a deployment's log outside of a run.
func (s *Service) appendLog(id int64, line string) {
	if err := s.o.Logs.AppendLine(LogID(id), 0, line); err != nil {
		s.log.Error("append to deployment log", "deployment", id, "err", err)
	}
}

// BeginShutdown is the first step of a daemon's stop: no deployment starts
// any more (running ones go on until Shutdown), and release pushes that
// wait for their deployments are answered at once. Calling it again is
// harmless; Shutdown calls it.
func (s *Service) BeginShutdown() { s.queue.StopClaiming() }

// RemoveLogs removes the logs of deployments whose records were pruned
// (retention removes a build's deployments with it; see store.Prune). A
// log that does not exist is not an error. It implements part of
// build.Deployer.
func (s *Service) RemoveLogs(ids []int64) {
	for _, id := range ids {
		err := s.o.Logs.Remove(LogID(id))
		if err != nil && !errors.Is(err, logs.ErrNotFound) {
			s.log.Error("remove log of pruned deployment", "deployment", id, "err", err)
		}
	}
}

// Shutdown stops claiming deployments and waits for the running ones to
// end. When ctx ends first, they are cancelled: Ship stops the transfer
// (current stays on the previous complete release) or, if the switch had
// happened, finishes switching back; each is recorded failed with the
// reason, and Shutdown returns an error once the workers are gone.
func (s *Service) Shutdown(ctx context.Context) error {
	s.BeginShutdown()
	if err := s.queue.Shutdown(ctx, errShutdown); err != nil {
		return fmt.Errorf("shut down deploy service: %w", err)
	}
	return nil
}

// Wake tells the workers that a deployment may be waiting. Whoever records
// deployments (the push and build wiring, Retry) calls it; it never blocks.
func (s *Service) Wake() { s.queue.Wake() }

func (s *Service) changedChan() <-chan struct{} { return s.changed.C() }

func (s *Service) notify() { s.changed.Notify() }

// activateVars returns the variables of a deployment's activate: its ids,
// and the repository's secrets scoped to its environment (read now, so
// that a rotated secret takes effect without a restart). masked are the
// values its log hides. A secret that cannot be read fails the deployment
// with err, which names it and never its value.
func (s *Service) activateVars(ctx context.Context, d record.Deployment) (vars map[string]string, masked []string, err error) {
	vars = map[string]string{
		"SLIPWAY_BUILD_ID":  strconv.FormatInt(d.BuildID, 10),
		"SLIPWAY_DEPLOY_ID": strconv.FormatInt(d.ID, 10),
	}
	for _, sec := range configs.Snapshot(ctx, s.o.Config).SecretsForEnvironment(d.Repo, d.Env) {
		v, rerr := sec.Read(os.LookupEnv)
		if rerr != nil {
			err = cmp.Or(err, rerr)
			continue
		}
		vars[sec.Name] = v
		if v != "" {
			masked = append(masked, v)
		}
	}
	return vars, masked, err
}

// run performs one claimed deployment and records its outcome.
func (s *Service) run(runCtx context.Context, d record.Deployment) {
	defer func() {
		s.mu.Lock()
		delete(s.running, d.ID)
		s.mu.Unlock()
	}()
	log := s.log.With("deployment", d.ID, "repo", d.Repo, "env", d.Env, "build", d.BuildID)
	// The deployment runs to its end on the configuration it started
	// with: a target changed by a reload is the next deployment's.
	runCtx = configs.WithSnapshot(runCtx, s.o.Config.Current())
	ctx, cancel := context.WithTimeoutCause(runCtx, s.o.Timeout,
		fmt.Errorf("the deployment took longer than %s", s.o.Timeout))
	defer cancel()

	vars, masked, secretErr := s.activateVars(ctx, d)
	// A log left under this id (a database started afresh beside old
	// logs) is kept and continued rather than fail every time.
	w, err := s.o.Logs.CreateOrAppend(LogID(d.ID), configs.Snapshot(ctx, s.o.Config).Build.MaxLogBytes, masked)
	if err != nil {
		log.Error("create deployment log", "err", err)
		s.finish(runCtx, d, nil, record.DeployFailed, "could not create the deployment log: "+err.Error())
		return
	}
	s.notify() // followers waiting for the log to exist
	w.Printf("== deployment #%d of %s build #%d (%s) to %s, %s", d.ID, d.Repo, d.BuildID, gitrev.Short(d.Commit), d.Env, describeTrigger(d))
	if secretErr != nil {
		s.finish(runCtx, d, w, record.DeployFailed, secretErr.Error())
		return
	}

	// The environment's line to its target: a listing for `releases` or an
	// activate run again at start may hold it for a moment.
	sl := s.slot(d.Repo, d.Env)
	if err := sl.acquire(ctx); err != nil {
		s.finish(runCtx, d, w, record.DeployFailed, "cancelled before it started: "+err.Error())
		return
	}
	state, reason := s.ship(ctx, d, sl, w, log, vars)
	sl.ended()
	sl.release()
	if err := context.Cause(ctx); err != nil && state != record.DeploySucceeded && !strings.Contains(reason, err.Error()) {
		reason = "cancelled (" + err.Error() + "): " + reason
	}
	s.finish(runCtx, d, w, state, reason)
}

// ship does the work of run and returns the outcome to record. The
// caller holds sl, the environment's line to its target.
func (s *Service) ship(ctx context.Context, d record.Deployment, sl *slot, w *logs.Writer, log *slog.Logger, vars map[string]string) (record.DeployState, string) {
	env, ok := configs.Snapshot(ctx, s.o.Config).Environment(d.Repo, d.Env)
	if !ok {
		return record.DeployFailed, fmt.Sprintf("environment %s of %s is no longer configured", d.Env, d.Repo)
	}
	ts, err := s.targets(d.Repo, env)
	if err != nil {
		return record.DeployFailed, err.Error()
	}
	has, err := s.hasArtifacts(d.BuildID)
	if err != nil {
		log.Error("read artifacts", "err", err)
		return record.DeployFailed, err.Error()
	}
	if !has {
		return record.DeployFailed, fmt.Sprintf("build %d kept no artifacts", d.BuildID)
	}
	digest, err := s.checkArtifacts(ctx, d, w)
	if err != nil {
		log.Warn("kept artifacts refused", "err", err)
		return record.DeployFailed, err.Error()
	}
	d.Digest = digest
	id, err := s.releaseID(ctx, d, sl, ts[0])
	if err != nil {
		return record.DeployFailed, err.Error()
	}
	if len(ts) == 1 {
		w.Printf("== release %s on %s", id, ts[0])
	} else {
		w.Printf("== release %s on %d hosts", id, len(ts))
	}
	if err := s.o.Store.SetDeploymentRelease(ctx, d.ID, id); err != nil {
		log.Error("record release id", "err", err)
		return record.DeployFailed, "could not record the release id"
	}
	fallback := ""
	if !strings.HasSuffix(id, fmt.Sprintf("-%d-%s", d.ID, gitrev.Short(d.Commit))) {
		fallback = freshReleaseID(d)
	}
	reqs := make([]Request, len(ts))
	for i, t := range ts {
		reqs[i] = Request{
			Target:   t,
			Source:   s.artifactDir(d.BuildID),
			Release:  id,
			Fallback: fallback,
			Digest:   digest,
			Repo:     d.Repo,
			Env:      d.Env,
			Commit:   d.Commit,
			Activate: env.Activate,
			Vars:     vars,
			Keep:     env.Keep,
			Log:      w,
		}
	}
	rr := s.shipper.Roll(ctx, reqs, rolloutOf(env), func(h HostOutcome) { s.recordHost(ctx, d, h, log) })
	if rr.Release != "" && rr.Release != id {
		// The reused release had changed on the target; Ship shipped anew.
		id = rr.Release
		if err := s.o.Store.SetDeploymentRelease(ctx, d.ID, id); err != nil {
			log.Error("record release id", "err", err)
		}
	}
	switch rr.State {
	case record.DeploySucceeded:
		log.Info("deployed", "release", id, "hosts", len(ts), "digest", digest)
	case record.DeployRolledBack:
		log.Warn("switched back", "release", id, "reason", rr.Reason)
	default:
		log.Warn("deployment failed", "release", id, "reason", rr.Reason)
	}
	return rr.State, rr.Reason
}

// rolloutOf is how env's releases go out to its hosts.
func rolloutOf(env *configs.Environment) Rollout {
	return Rollout{
		Parallel:      env.Parallel,
		Batch:         env.Batch,
		Health:        strings.TrimSpace(env.Health),
		HealthTimeout: env.HealthTimeout.Duration,
		HealthRetries: env.HealthRetryCount(),
	}
}

// recordHost writes a host's new state in the deployment's record. A
// write that fails is logged: the deployment goes on (its outcome and log
// say what happened; recovery at start reads the hosts themselves).
func (s *Service) recordHost(ctx context.Context, d record.Deployment, h HostOutcome, log *slog.Logger) {
	err := s.o.Store.SetDeploymentHost(context.WithoutCancel(ctx), record.DeploymentHost{
		DeploymentID: d.ID, Pos: h.Pos, Host: h.Target.String(),
		Release: h.Release, Previous: h.Previous, State: h.State, Detail: h.Detail,
	})
	if err != nil {
		log.Error("record a host's state", "host", h.Target.String(), "state", h.State, "err", err)
	}
}

// finish records the outcome, then ends the log, so that a follower whose
// log ends finds the deployment final. A write the store refuses is tried
// again by queue.WriteResult's rule (after s.retryFirst, then twice as long
// each time up to s.retryMax) until it is written or runCtx ends (the
// daemon's stop ran out of patience: the deployment stays running for the
// next start's recovery); each new reason for a failure is logged once and
// told once in the deployment's log. A deployment no longer running in the
// store is not retried.
func (s *Service) finish(runCtx context.Context, d record.Deployment, w *logs.Writer, state record.DeployState, reason string) {
	reason = oneLine(reason)
	attempts, err := queue.WriteResult(runCtx, queue.Backoff{First: s.retryFirst, Max: s.retryMax}, finalGrace,
		func(ctx context.Context) error { return s.o.Store.FinishDeployment(ctx, d.ID, state, reason) },
		func(err error, retryIn time.Duration) {
			s.log.Error("record deployment outcome failed; retrying until it is written", "deployment", d.ID, "state", state, "err", err, "retry_in", retryIn)
			if w != nil {
				w.Printf("== could not record the outcome (%s): %v; retrying", state, err)
			}
		})
	if err == nil && s.o.Metrics != nil {
		took := time.Duration(0)
		if !d.StartedAt.IsZero() {
			took = time.Since(d.StartedAt)
		}
		s.o.Metrics.DeploymentFinished(d, state, took)
	}
	switch {
	case err != nil:
		s.log.Error("record deployment outcome", "deployment", d.ID, "state", state, "err", err)
		if w != nil {
			w.Printf("== could not record the outcome (%s): %v", state, err)
		}
	case attempts > 1:
		s.log.Info("deployment outcome recorded after failed writes", "deployment", d.ID, "state", state, "attempts", attempts)
		if w != nil {
			w.Printf("== outcome recorded (attempt %d of the write)", attempts)
		}
	}
	if w != nil {
		switch state {
		case record.DeploySucceeded:
			w.Printf("== deployment #%d succeeded: %s", d.ID, reason)
		case record.DeployRolledBack:
			w.Printf("== deployment #%d rolled back: %s", d.ID, reason)
		default:
			w.Printf("== deployment #%d failed: %s", d.ID, reason)
		}
		if err := w.Close(); err != nil {
			s.log.Error("close deployment log", "deployment", d.ID, "err", err)
		}
	}
	s.notify()
}

// oneLine keeps a reason to the single line the records and `deploys` show.
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = strings.TrimSpace(s[:i])
	}
	return s
}

func describeTrigger(d record.Deployment) string {
	who := d.User
	if who == "" {
		who = "someone unknown"
	}
	switch d.Trigger {
	case record.DeployAuto:
		return "automatic after the build passed"
	case record.DeployRelease:
		return "release by " + who
	case record.DeployRollback:
		return "rollback by " + who
	case record.DeployRetry:
		return "retry by " + who
	}
	return string(d.Trigger)
}

// targets are where env's releases of repo live, one per host. Deploy
// keys and targets are read here only, never handed to builds.
func (s *Service) targets(repo string, env *configs.Environment) ([]Target, error) {
	hosts := env.Hosts()
	if len(hosts) == 0 {
		return nil, fmt.Errorf("environment %s has no target", env.Name)
	}
	ts := make([]Target, len(hosts))
	for i, h := range hosts {
		t, err := s.hostTarget(repo, h)
		if err != nil {
			return nil, fmt.Errorf("environment %s: %w", env.Name, err)
		}
		ts[i] = t
	}
	return ts, nil
}

// target is the first host of env: the one whose listing `releases` shows
// and recovery reads for an environment of one host.
func (s *Service) target(repo string, env *configs.Environment) (Target, error) {
	ts, err := s.targets(repo, env)
	if err != nil {
		return Target{}, err
	}
	return ts[0], nil
}

func (s *Service) hostTarget(repo string, h configs.Host) (Target, error) {
	if !h.Remote() {
		return Target{Local: h.LocalPath(s.o.DataDir, repo)}, nil
	}
	t, err := ParseTarget(strings.ReplaceAll(h.Target, "{repo}", repo))
	if err != nil {
		return Target{}, err
	}
	if t.Port == 0 {
		t.Port = h.Port
	}
	t.KeyFile, t.KnownHostsFile, t.AcceptNewHostKey = h.SSHKey, h.KnownHosts, h.AcceptNewHostKey
	return t, nil
}

// reuseWindow is how far back releaseID looks for an earlier deployment of
// the same revision.
const reuseWindow = 200

// releaseID names the release d ships into. A revision that was deployed
// to this environment before, and whose release is still complete on the
// target, reuses that release: a rollback then switches back without a
// transfer, and ships what actually ran then. A retry whose earlier attempt
// left a partial release resumes into it. Anything else gets a new name,
// <UTC time>-<deployment id>-<short commit>, which sorts by time on the
// target.
func (s *Service) releaseID(ctx context.Context, d record.Deployment, sl *slot, t Target) (string, error) {
	fresh := freshReleaseID(d)
	past, err := s.o.Store.ListDeployments(ctx, d.Repo, d.Env, reuseWindow)
	if err != nil {
		s.log.Warn("list earlier deployments", "deployment", d.ID, "err", err)
		return fresh, nil
	}
	var cands []record.Deployment
	for _, p := range past { // newest first
		// Only a release of the very same artifact set is reused (Ship
		// verifies its content before switching to it).
		if p.ID < d.ID && p.Commit == d.Commit && p.Digest == d.Digest && checkReleaseID(p.ReleaseID) == nil {
			cands = append(cands, p)
		}
	}
	if len(cands) == 0 {
		return fresh, nil
	}
	newest := cands[0]
	// What ran successfully is the best thing to go back to.
	slices.SortStableFunc(cands, func(a, b record.Deployment) int {
		ao, bo := a.State == record.DeploySucceeded, b.State == record.DeploySucceeded
		switch {
		case ao && !bo:
			return -1
		case bo && !ao:
			return 1
		}
		return 0
	})
	rels, err := s.list(ctx, sl, t)
	if err != nil {
		// Ship would fail to connect the same way; say it once, as Ship would.
		return "", err
	}
	complete, partial := map[string]bool{}, map[string]bool{}
	for _, r := range rels {
		if r.Complete {
			complete[r.ID] = true
		} else {
			partial[strings.TrimSuffix(r.ID, partialSuffix)] = true
		}
	}
	for _, c := range cands {
		if complete[c.ReleaseID] {
			return c.ReleaseID, nil
		}
	}
	if d.Trigger == record.DeployRetry && partial[newest.ReleaseID] {
		return newest.ReleaseID, nil
	}
	return fresh, nil
}

// freshReleaseID is the name of a new release for d:
// <UTC time>-<deployment id>-<short commit>, which sorts by time on the
// target.
func freshReleaseID(d record.Deployment) string {
	return fmt.Sprintf("%s-%d-%s", time.Now().UTC().Format("20060102T150405"), d.ID, gitrev.Short(d.Commit))
}

// final reports whether a deployment state is an end state.
func final(st record.DeployState) bool {
	return st != record.DeployQueued && st != record.DeployRunning
}

// Wait returns deployment id once it has ended: succeeded, failed or
// rolled back. It returns early with ctx's cause when ctx ends.
func (s *Service) Wait(ctx context.Context, id int64) (record.Deployment, error) {
	tick := time.NewTicker(safetyTick)
	defer tick.Stop()
	for {
		changed := s.changedChan()
		d, err := s.o.Store.GetDeployment(ctx, id)
		if err != nil {
			return record.Deployment{}, err
		}
		if final(d.State) {
			return d, nil
		}
		select {
		case <-changed:
		case <-tick.C:
		case <-ctx.Done():
			return d, context.Cause(ctx)
		}
	}
}

// Follow copies a deployment's log to w. With follow it waits for a queued
// deployment to start and streams until it ends; without, it copies what
// there is. A deployment that has no log says so in one line.
func (s *Service) Follow(ctx context.Context, id int64, w io.Writer, follow bool) error {
	tick := time.NewTicker(safetyTick)
	defer tick.Stop()
	for {
		changed := s.changedChan()
		d, err := s.o.Store.GetDeployment(ctx, id)
		if err != nil {
			return err
		}
		if d.State == record.DeployQueued && !follow {
			_, err := fmt.Fprintf(w, "deployment #%d is queued; it has no log yet\n", id)
			return err
		}
		if d.State != record.DeployQueued {
			err := s.o.Logs.Follow(ctx, LogID(id), 0, w, follow)
			if !errors.Is(err, logs.ErrNotFound) {
				return err
			}
			if final(d.State) || !follow {
				_, err := fmt.Fprintf(w, "deployment #%d has no log (%s: %s)\n", id, d.State, d.Reason)
				return err
			}
			// Claimed, its log not created yet: wait for the worker.
		}
		select {
		case <-changed:
		case <-tick.C:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

// List returns the deployment history of repo, of one environment or of
// all when env is empty, newest first; at most limit (all when limit <= 0).
func (s *Service) List(ctx context.Context, repo, env string, limit int) ([]record.Deployment, error) {
	return s.o.Store.ListDeployments(ctx, repo, env, limit)
}

// MayRetry reports whether user, holding access on the repository, may
// queue a failed deployment to env again: whoever may release to it (an
// approver, when it names approvers), or, on an environment that a branch
// deploys to by itself and that names no approvers, a writer. Callers that
// narrow a user's rights (an API token's scope) pass the narrowed access.
func MayRetry(env *configs.Environment, user string, access configs.Access) bool {
	if access.Has(configs.Release) && (len(env.Approvers) == 0 || slices.Contains(env.Approvers, user)) {
		return true
	}
	return env.Auto != "" && len(env.Approvers) == 0 && access.Has(configs.Write)
}

// Retry queues deployment id again, as a new deployment of the same build
// triggered by user, and wakes the workers. Only a failed or rolled-back
// deployment that is still the newest to its environment can be retried
// (retrying an older one would silently replace what came after it), or a
// succeeded one when hosts were added to its environment since (the retry
// ships the release to them); and only by someone who may release to that
// environment, or, on an environment with an auto branch and no
// approvers, by a writer. A retry resumes a partial transfer, or switches
// to the release if it is complete.
func (s *Service) Retry(ctx context.Context, id int64, user string) (record.Deployment, error) {
	d, err := s.o.Store.GetDeployment(ctx, id)
	if err != nil {
		return record.Deployment{}, fmt.Errorf("retry deployment %d: %w", id, err)
	}
	env, ok := configs.Snapshot(ctx, s.o.Config).Environment(d.Repo, d.Env)
	retry := s.o.Store.RetryDeployment
	switch d.State {
	case record.DeployFailed, record.DeployRolledBack:
	case record.DeploySucceeded:
		added, err := s.hostsNotReached(ctx, d, env)
		if err != nil {
			return record.Deployment{}, fmt.Errorf("retry deployment %d: %w", id, err)
		}
		if len(added) == 0 {
			return record.Deployment{}, &record.RetryRefusal{ID: id, State: d.State, Env: d.Env}
		}
		// Hosts were added to the environment since: ship the live
		// release to them (and switch the others to it again).
		retry = s.o.Store.RepeatDeployment
	default:
		return record.Deployment{}, &record.RetryRefusal{ID: id, State: d.State, Env: d.Env}
	}
	if !ok {
		return record.Deployment{}, fmt.Errorf("environment %s of %s is no longer configured", d.Env, d.Repo)
	}
	if !MayRetry(env, user, configs.Snapshot(ctx, s.o.Config).Access(user, d.Repo)) {
		return record.Deployment{}, fmt.Errorf("user %s may not deploy %s to %s", user, d.Repo, d.Env)
	}
	nd, err := retry(ctx, id, user)
	var refusal *record.RetryRefusal
	if errors.As(err, &refusal) && refusal.Latest != 0 {
		// Another deployment came after it, perhaps a retry made at the same moment.
		return record.Deployment{}, fmt.Errorf("%s; push the revision to %s%s instead", refusal, gitrev.ReleasePrefix, d.Env)
	}
	if errors.As(err, &refusal) {
		return record.Deployment{}, refusal
	}
	if err != nil {
		return record.Deployment{}, fmt.Errorf("retry deployment %d: %w", id, err)
	}
	s.log.Info("deployment retried", "deployment", id, "retry", nd.ID, "user", user)
	s.Wake()
	return nd, nil
}

// hostsNotReached are the hosts of env (nil when it is gone) that
// succeeded deployment d did not make live: hosts added to the
// environment after it. An environment of one host that d reached has
// none, whatever d recorded.
func (s *Service) hostsNotReached(ctx context.Context, d record.Deployment, env *configs.Environment) ([]string, error) {
	if env == nil {
		return nil, nil
	}
	ts, err := s.targets(d.Repo, env)
	if err != nil || len(ts) == 1 {
		return nil, err
	}
	rows, err := s.o.Store.DeploymentHosts(ctx, d.ID)
	if err != nil {
		return nil, err
	}
	live := map[string]bool{}
	for _, r := range rows {
		live[r.Host] = r.State == record.HostLive
	}
	if len(rows) == 0 {
		// A deployment from before the environment had many hosts: its
		// one target was the first.
		live[ts[0].String()] = true
	}
	var out []string
	for _, t := range ts {
		if !live[t.String()] {
			out = append(out, t.String())
		}
	}
	return out, nil
}
