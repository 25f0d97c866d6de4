package build

import (
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
	"sync/atomic"
	"time"

	"slipway/build/executor"
	"slipway/build/logs"
	"slipway/build/pipeline"
	"slipway/configs"
	"slipway/internal/gitobj"
	"slipway/internal/queue"
	"slipway/record"
)

// Records is what the build service needs of the store (package store
// implements it, on SQLite): the build queue, in transactions that keep it
// consistent whatever runs at once.
type Records interface {
	EnqueueBuilds(ctx context.Context, bs []record.Build) (record.Enqueued, error)
	ClaimBuildExcept(ctx context.Context, worker string, skip func(repo string) bool) (b record.Build, ok bool, err error)
	GetBuild(ctx context.Context, id int64) (record.Build, error)
	ListBuilds(ctx context.Context, repo string, limit int) ([]record.Build, error)
	SetArtifactsDigest(ctx context.Context, id int64, digest string) error
	FinishBuild(ctx context.Context, id int64, state record.State, reason string, steps []record.StepResult) error
	FinishBuildAndDeploy(ctx context.Context, id int64, state record.State, reason string, steps []record.StepResult, ds []record.Deployment) ([]record.Deployment, error)
	CancelBuild(ctx context.Context, id int64, reason string) (prev record.State, err error)
	RetryBuild(ctx context.Context, id int64) (record.Build, error)
	Prune(ctx context.Context, repo string, keep int) (record.Pruned, error)
	RecoverInterrupted(ctx context.Context) (requeued, stopped []record.Build, err error)
	RecoverOrphaned(ctx context.Context, live map[int64]bool) (requeued, stopped []record.Build, err error)
	RequeueBuild(ctx context.Context, id int64, reason string) error
	PlaceBuild(ctx context.Context, id int64, where string) error
	// QueuedBuilds counts the queued builds without waiting for a write.
	QueuedBuilds(ctx context.Context) (int, error)
}

// Options configures a Service. Config, Store, Logs and Executor are
// required.
type Options struct {
	Config configs.Source
	Store  Records
	Logs   *logs.Store
	// Executor runs the steps of every build; see executor.Executor.
	Executor executor.Executor
	// Kubernetes, if set, runs the builds of the repositories whose
	// executor is "kubernetes".
	Kubernetes executor.Executor
	// SandboxErr, when not nil while the server's sandbox is not "none",
	// says why bubblewrap cannot be used: every claimed build then ends in
	// state error with this reason instead of running unconfined.
	SandboxErr error

	// ReposDir holds the bare repositories (<name>.git); default
	// Config.ReposDir(). WorkDir holds the per-build workspaces,
	// ArtifactsDir the artifacts of passing builds (<id>/...) and CacheDir
	// the per-repository caches; they default to folders of the data dir.
	ReposDir, WorkDir, ArtifactsDir, CacheDir string

	// SSHHost and SSHPort are shown to pushers in the command that follows a
	// build ("ssh -p PORT HOST log 12 -f"). Defaults come from
	// Config.SSH.Listen; set them when the daemon listens on an address
	// people do not use to reach it (0.0.0.0, behind NAT).
	SSHHost string
	SSHPort int

	Logger *slog.Logger // nil: discard

	// Deployer, if set, adds the automatic deployments of a passed build to
	// the transaction that records it as passed, so that none is lost in
	// between. (A push's release deployments are deploy's own part of the
	// way of a push, package push.)
	Deployer Deployer

	// Metrics counts builds by result, their durations and queue waits;
	// nil counts nothing.
	Metrics Metrics
}

// Deployer is what the build service needs of deployments (package deploy
// provides it): the deployments a passed build triggers by itself. Its
// methods are called concurrently.
type Deployer interface {
	// AutoDeployments returns the deployments a build that just passed
	// triggers by itself (environments with auto = its branch).
	AutoDeployments(ctx context.Context, b record.Build) []record.Deployment
	// Wake tells the deployment workers that something was queued.
	Wake()
	// RemoveLogs removes the logs of deployments whose records retention
	// pruned (they went with their builds); a log that does not exist is
	// not an error.
	RemoveLogs(ids []int64)
}

// Service runs the build queue: it turns pushes into queued builds and runs
// them with a fixed number of workers. The queue itself lives in the store;
// the Service only keeps what a process can: which builds its workers are
// running, so that they can be cancelled.
type Service struct {
	o       Options
	log     *slog.Logger
	metrics Metrics // never nil

	queue *queue.Pool[claimed] // the workers

	// How a failed write of a build's result is retried, and how often the
	// watchdog looks for builds recorded running that nobody runs; tests
	// shorten them.
	retryFirst, retryMax, watchEvery time.Duration

	// objects bounds what the daemon reads of repositories into its own
	// memory: pipeline files and small checkouts (see objectCap).
	objects *gitobj.Pool

	// nRunning mirrors len(running) for readers that must not take mu
	// (the metrics' scrape).
	nRunning atomic.Int64

	mu      sync.Mutex
	running map[int64]*run // by build id; guarded by mu
	// held stops claims of an executor's builds for a while after one of
	// them went back to the queue because it could not be reached: until
	// (unix nanoseconds) by executor name ([build] executor); guarded by mu.
	held    map[string]int64
	verifs  verifyState   // pushes waiting for their verify builds; guarded by mu
	changed chan struct{} // closed and replaced when a build starts or ends; guarded by mu
}

// claimed is a build a worker claimed, with its registered run.
type claimed struct {
	b record.Build
	r *run
}

// run is one build a worker of this process is running.
type run struct {
	ctx    context.Context // the build's work; cancelled with a cause
	cancel context.CancelCauseFunc
	// life is the pool's run context: it ends when the daemon's stop runs
	// out of patience, and bounds the retries of the result's write.
	life context.Context
	done chan struct{} // closed once the final state is recorded (or left to recovery)
	// executor is the name of the executor the build was claimed for
	// ([build] executor), which counts it against its cap (limited).
	executor string
}

// limited is an executor that runs at most MaxConcurrent builds at once (0:
// no cap), such as the Kubernetes executor's max_concurrent. The workers
// claim no more of its builds than that: one over the cap waits in the
// queue, shown as queued, instead of as a running build that holds a
// worker the other executor's builds could use.
type limited interface{ MaxConcurrent() int }

// safetyTick is how often an idle worker looks at the queue although nobody
// woke it. Wakes are what start builds quickly; the tick only covers a build
// queued by something that cannot wake this process (another process on the
// same database).
const safetyTick = time.Second

// finalGrace bounds the cleanup work of a build (recording its final state,
// removing its workspace) once its own context has ended.
const finalGrace = 30 * time.Second

// objectCap is the largest git object the daemon reads into its own
// memory: a commit, a tree, the pipeline file (whose own limit it is), a
// file of a small checkout. Larger objects, and objects rebuilt from
// larger ones, are read by git in a child process, which streams them.
// objectReadsAtOnce bounds how many such reads hold object data at a time,
// across pushes being planned and builds starting (each read takes
// milliseconds; the others wait), so the object data the daemon holds is
// at most objectReadsAtOnce x 3 x objectCap = 12 MiB (gitobj.Pool.Bound:
// a delta's base, the delta and its result) whatever is pushed.
const (
	objectCap         = pipeline.MaxFileSize
	objectReadsAtOnce = 4
)

// New checks the options and fills in defaults. It starts nothing.
func New(o Options) (*Service, error) {
	switch {
	case o.Config == nil:
		return nil, errors.New("new build service: Config is required")
	case o.Store == nil:
		return nil, errors.New("new build service: Store is required")
	case o.Logs == nil:
		return nil, errors.New("new build service: Logs is required")
	case o.Executor == nil:
		return nil, errors.New("new build service: Executor is required")
	}
	// Paths, the SSH address and the workers are the configuration's at
	// start: they need a restart.
	cfg := o.Config.Current()
	dataDir := cfg.DataDir
	if o.ReposDir == "" {
		o.ReposDir = cfg.ReposDir()
	}
	if o.WorkDir == "" {
		o.WorkDir = dataDir + "/work"
	}
	if o.ArtifactsDir == "" {
		o.ArtifactsDir = dataDir + "/artifacts"
	}
	if o.CacheDir == "" {
		o.CacheDir = dataDir + "/cache"
	}
	if o.SSHHost == "" || o.SSHPort == 0 {
		h, p := configs.DisplayAddr(cfg.SSH.Listen)
		if o.SSHHost == "" {
			o.SSHHost = h
		}
		if o.SSHPort == 0 {
			o.SSHPort = p
		}
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Service{
		o:       o,
		log:     log,
		metrics: o.Metrics,
		running: make(map[int64]*run),
		changed: make(chan struct{}),
		objects: gitobj.NewPool(objectCap, objectReadsAtOnce),

		retryFirst: queue.RetryFirst,
		retryMax:   queue.RetryMax,
		watchEvery: queue.WatchEvery,
	}
	if s.metrics == nil {
		s.metrics = noMetrics{}
	}
	q, err := queue.New(queue.Options[claimed]{
		Workers: cfg.Build.Concurrency,
		Tick:    safetyTick,
		Claim: func(claimCtx, runCtx context.Context, worker int) (claimed, bool, error) {
			return s.claim(claimCtx, runCtx, fmt.Sprintf("worker-%d", worker))
		},
		Run:         func(_ context.Context, c claimed) { s.runBuild(c.r.ctx, c.b, c.r) },
		ClaimFailed: func(err error) { log.Error("claim a build", "err", err) },
	})
	if err != nil {
		return nil, fmt.Errorf("new build service: %w", err)
	}
	s.queue = q
	return s, nil
}

// Start recovers the builds a previous daemon left running (each goes back
// to the queue once, and its log says so) and starts Config.Build.Concurrency
// workers. ctx bounds the recovery; the workers run until Shutdown, or until
// ctx is cancelled, which is handled like a Shutdown whose deadline passed.
func (s *Service) Start(ctx context.Context) error {
	// Cancelling Start's ctx is an abrupt stop: builds are cut off and left
	// to the next start's recovery, as if the daemon had died.
	err := s.queue.Start(ctx, errShutdown, func(runCtx context.Context) error {
		if err := s.recover(ctx); err != nil {
			return err
		}
		s.queue.Watch(runCtx, s.watchEvery, errShutdown, func(ctx, _ context.Context) { s.recoverOrphans(ctx) })
		return nil
	})
	if err != nil {
		return fmt.Errorf("start build service: %w", err)
	}
	s.log.Info("build workers started", "workers", max(1, configs.Snapshot(ctx, s.o.Config).Build.Concurrency), "sandbox", configs.Snapshot(ctx, s.o.Config).Build.Sandbox)
	return nil
}

// recover hands builds found running back to the queue (or ends them, as the
// store decides) and writes what happened into their logs.
func (s *Service) recover(ctx context.Context) error {
	requeued, stopped, err := s.o.Store.RecoverInterrupted(ctx)
	if err != nil {
		return fmt.Errorf("start build service: %w", err)
	}
	for _, b := range requeued {
		s.log.Warn("build interrupted by a daemon stop; queued again", "build", b.ID, "attempt", b.Attempt)
		s.appendLog(b.ID, fmt.Sprintf("== the daemon stopped during attempt %d; running again", b.Attempt))
	}
	for _, b := range stopped {
		s.log.Warn("build interrupted by a daemon stop; not run again", "build", b.ID, "state", b.State, "reason", b.Reason)
		s.appendLog(b.ID, "== "+b.Reason)
		// A build that ends here did not pass; anything it copied out
		// before the stop (a verify build whose push was never recorded)
		// is not kept.
		if err := removeAll(filepath.Join(s.o.ArtifactsDir, logID(b.ID))); err != nil {
			s.log.Error("remove artifacts of an interrupted build", "build", b.ID, "err", err)
		}
	}
	s.ended(stopped)
	s.sweep(ctx)
	// A lowered keep, and records from before retention covered them all.
	s.prune(ctx, "")
	return nil
}

// recoverOrphans is the watchdog (run every watchEvery until the daemon
// stops claiming): it applies recovery's rule to the builds recorded running
// that this process neither runs nor holds for a verified push (a result
// that could not be written for good, a worker that is gone), so that none
// stays running for ever. At start, recovery has just done the same. mu is held
// across the store's write, so that no claim registers a run in between.
func (s *Service) recoverOrphans(ctx context.Context) {
	s.mu.Lock()
	live := make(map[int64]bool, len(s.running)+len(s.verifs.byBuild))
	for id := range s.running {
		live[id] = true
	}
	for id := range s.verifs.byBuild {
		live[id] = true
	}
	requeued, stopped, err := s.o.Store.RecoverOrphaned(ctx, live)
	if len(requeued)+len(stopped) > 0 {
		s.notifyLocked()
	}
	s.mu.Unlock()
	if err != nil {
		if ctx.Err() == nil {
			s.log.Error("watchdog: look for builds that nobody runs", "err", err)
		}
		return
	}
	for _, b := range requeued {
		s.log.Warn("watchdog: build recorded running had no worker; queued again", "build", b.ID, "attempt", b.Attempt)
		s.appendLog(b.ID, fmt.Sprintf("== attempt %d has no worker any more (its result was never recorded); running again", b.Attempt))
	}
	for _, b := range stopped {
		s.log.Warn("watchdog: build recorded running had no worker; not run again", "build", b.ID, "state", b.State, "reason", b.Reason)
		s.appendLog(b.ID, fmt.Sprintf("== attempt %d has no worker any more (its result was never recorded); %s", b.Attempt, b.Reason))
		if err := removeAll(filepath.Join(s.o.ArtifactsDir, logID(b.ID))); err != nil {
			s.log.Error("remove artifacts of an orphaned build", "build", b.ID, "err", err)
		}
	}
	s.ended(stopped)
	if len(requeued) > 0 {
		s.Wake()
	}
}

// sweep removes, at start, what earlier runs of the daemon left behind: the
// workspaces of builds that are not queued (a build that recovery ended or
// that was superseded while the daemon was down never runs again to clear
// its own), the homes of steps cut off (homePrefix), and the artifacts and
// logs of builds whose records are gone (a crash between a prune and the
// removal of its files, or a log still open when it was pruned). Nothing
// runs yet: the workers start after recovery, and no push can arrive
// before the SSH server starts, last. It logs one line with the counts.
func (s *Service) sweep(ctx context.Context) {
	bs, err := s.o.Store.ListBuilds(ctx, "", 0)
	if err != nil {
		s.log.Error("sweep leftovers of earlier runs: list builds", "err", err)
		return
	}
	known, queued := map[string]bool{}, map[string]bool{}
	for _, b := range bs {
		known[logID(b.ID)] = true
		if b.State == record.StateQueued || b.State == record.StateRunning {
			queued[logID(b.ID)] = true
		}
	}
	var workspaces, homes, artifacts, logFiles int
	remove := func(dir, name string, n *int) {
		if err := removeAll(filepath.Join(dir, name)); err != nil {
			s.log.Error("sweep leftovers of earlier runs", "path", filepath.Join(dir, name), "err", err)
			return
		}
		*n++
	}
	for _, name := range dirNames(s.o.WorkDir) {
		switch {
		case isID(name) && !queued[name]:
			remove(s.o.WorkDir, name, &workspaces)
		case strings.HasPrefix(name, homePrefix):
			remove(s.o.WorkDir, name, &homes)
		}
	}
	for _, name := range dirNames(s.o.ArtifactsDir) {
		if isID(name) && !known[name] {
			remove(s.o.ArtifactsDir, name, &artifacts)
		}
	}
	ids, err := s.o.Logs.IDs()
	if err != nil {
		s.log.Error("sweep leftovers of earlier runs", "err", err)
	}
	for _, id := range ids {
		if isID(id) && !known[id] {
			if err := s.o.Logs.Remove(id); err != nil && !errors.Is(err, logs.ErrNotFound) {
				s.log.Error("sweep leftovers of earlier runs: remove log", "log", id, "err", err)
				continue
			}
			logFiles++
		}
	}
	s.log.Info("removed leftovers of earlier runs", "workspaces", workspaces, "homes", homes,
		"artifacts", artifacts, "logs", logFiles)
}

// homePrefix starts the names of the step homes that the local executor
// (sandbox.Local) keeps beside the workspaces in the daemon's wiring.
const homePrefix = "slipway-home-"

// dirNames lists the names in dir; a missing dir has none.
func dirNames(dir string) []string {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	names := make([]string, 0, len(des))
	for _, d := range des {
		names = append(names, d.Name())
	}
	return names
}

// isID reports whether name is a build id as its folders and logs are
// named (logID).
func isID(name string) bool {
	n, err := strconv.ParseInt(name, 10, 64)
	return err == nil && n > 0 && logID(n) == name
}

// appendLog adds a line to a build's log outside of a run.
func (s *Service) appendLog(id int64, line string) {
	if err := s.o.Logs.AppendLine(logID(id), s.o.Config.Current().Build.MaxLogBytes, line); err != nil {
		s.log.Error("append to build log", "build", id, "err", err)
	}
}

// errShutdown is the cause of a build's cancellation when the daemon stops.
var errShutdown = errors.New("the daemon is stopping")

// BeginShutdown is the first step of a daemon's stop, taken before the SSH
// server drains its sessions: no build starts any more (builds running go
// on until Shutdown), no verification begins, and pushers who wait are
// answered at once. A `-o wait` push is told that its build continues after
// the restart (its push is recorded; git's exit status stays 0); a push
// waiting in pre-receive for its verification is refused, its build
// cancelled. Calling it again is harmless; Shutdown calls it.
func (s *Service) BeginShutdown() {
	s.queue.StopClaiming()
}

// whileRunning is ctx, ended with errShutdown by BeginShutdown; see
// queue.Pool.WhileClaiming.
func (s *Service) whileRunning(ctx context.Context) (context.Context, context.CancelFunc) {
	return s.queue.WhileClaiming(ctx, errShutdown)
}

// stopping reports whether BeginShutdown was called.
func (s *Service) stopping() bool { return s.queue.Stopping() }

// Shutdown stops claiming builds and waits for the running ones to end. When
// ctx ends first, the running builds are cut off: their processes are
// killed, their logs say so, and they stay recorded as running, so that the
// next Start queues each of them again (as if the daemon had died; a build
// cut off twice ends as interrupted). It returns ctx's error in that case,
// once the workers are gone.
func (s *Service) Shutdown(ctx context.Context) error {
	// Once no worker runs: no verify build queued now would ever start.
	defer s.closeVerifications(context.WithoutCancel(ctx))
	s.BeginShutdown()
	if err := s.queue.Shutdown(ctx, errShutdown); err != nil {
		return fmt.Errorf("shut down build service: running builds cut off: %w", err)
	}
	return nil
}

// Wake tells the workers that a build may be waiting. Enqueuers outside this
// package (schedules) call it after recording builds; it never blocks.
func (s *Service) Wake() { s.queue.Wake() }

// notify wakes everyone waiting for a build to start or end. Callers hold mu.
func (s *Service) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// List returns builds newest first, of one repository or of all when repo
// is empty; at most limit (all when limit <= 0).
func (s *Service) List(ctx context.Context, repo string, limit int) ([]record.Build, error) {
	return s.o.Store.ListBuilds(ctx, repo, limit)
}

// Get returns one build; the error wraps record.ErrNotFound when there is
// none.
func (s *Service) Get(ctx context.Context, id int64) (record.Build, error) {
	return s.o.Store.GetBuild(ctx, id)
}

// Follow copies a build's log to w. With follow it keeps streaming until the
// build ends, waiting first for a queued build to start; without, it copies
// what there is. A build that never ran (skipped, superseded, cancelled
// while queued) has no log: Follow writes one line saying why.
func (s *Service) Follow(ctx context.Context, id int64, w io.Writer, follow bool) error {
	// A build that runs again continues its log; counting what was copied
	// lets a follower that waited for the next attempt resume where it was.
	cw := &countingWriter{w: w}
	for {
		s.mu.Lock()
		changed := s.changed
		s.mu.Unlock()
		b, err := s.o.Store.GetBuild(ctx, id)
		if err != nil {
			return err
		}
		if b.State == record.StateQueued && (follow || b.Attempt == 0) {
			if !follow {
				_, err := fmt.Fprintf(w, "build #%d is queued; it has no log yet\n", id)
				return err
			}
			// Wait for a worker to take it; a build queued again after a
			// daemon stop shows its earlier attempt's log then too.
			select {
			case <-changed:
				continue
			case <-ctx.Done():
				return context.Cause(ctx)
			}
		}
		if b.Attempt == 0 && b.State.Final() {
			_, err := fmt.Fprintf(w, "build #%d %s: %s\n", id, b.State, b.Reason)
			return err
		}
		err = s.o.Logs.Follow(ctx, logID(id), cw.n, cw, follow)
		if errors.Is(err, logs.ErrNotFound) {
			if follow && !b.State.Final() {
				// Claimed, and its log about to be opened; the worker
				// notifies once it is.
				select {
				case <-changed:
					continue
				case <-ctx.Done():
					return context.Cause(ctx)
				}
			}
			_, err := fmt.Fprintf(w, "build #%d %s; it has no log\n", id, b.State)
			return err
		}
		if err != nil {
			return fmt.Errorf("follow log of build %d: %w", id, err)
		}
		if !follow {
			return nil
		}
		// The log ends when a run ends. A run the daemon's stop cut off
		// leaves the build queued again for the next start; keep
		// following when that happens in this process's life.
		b, err = s.o.Store.GetBuild(ctx, id)
		if err != nil {
			return err
		}
		if b.State.Final() {
			return nil
		}
		s.mu.Lock()
		r := s.running[id]
		s.mu.Unlock()
		if r == nil {
			return nil
		}
		select {
		case <-r.done:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

// cancelCause is the cause of a cancellation asked for by someone.
type cancelCause struct{ reason string }

func (c *cancelCause) Error() string { return c.reason }

// Cancel cancels a build on behalf of nobody in particular; see CancelBy.
func (s *Service) Cancel(ctx context.Context, id int64) error {
	return s.CancelBy(ctx, id, "")
}

// CancelBy cancels a build on behalf of user (shown in the log and the
// build's reason). A queued build is cancelled at once. A running build's
// processes are killed and it is then recorded as cancelled; CancelBy waits
// for that (bounded by ctx). A build that already ended is an error wrapping
// record.ErrConflict.
func (s *Service) CancelBy(ctx context.Context, id int64, user string) error {
	reason := "cancelled"
	if user != "" {
		reason = "cancelled by " + user
	}
	r, err := s.cancel(ctx, id, reason)
	if err != nil || r == nil {
		return err
	}
	select {
	case <-r.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("cancel build %d: waiting for it to stop: %w", id, context.Cause(ctx))
	}
}

// cancel asks for a build to be cancelled and returns its run when one of
// this process's workers is running it.
func (s *Service) cancel(ctx context.Context, id int64, reason string) (*run, error) {
	// mu is held across the store's check so that a worker cannot claim the
	// build and register its run in between: a build the store calls
	// running but that has no run here was left by an earlier daemon.
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.waitingLocked(id) {
		return nil, fmt.Errorf("cancel build %d: %w: it passed, and git is landing the push it verified", id, record.ErrConflict)
	}
	prev, err := s.o.Store.CancelBuild(ctx, id, reason)
	if err != nil {
		return nil, err
	}
	if prev == record.StateQueued {
		s.endQueuedLocked(id, reason)
		s.notifyLocked()
		s.dropWorkspace(id)
		s.endedByID(ctx, id)
		return nil, nil
	}
	r := s.running[id]
	if r == nil {
		if err := s.o.Store.FinishBuild(ctx, id, record.StateCancelled, reason, nil); err != nil {
			return nil, fmt.Errorf("cancel orphaned build %d: %w", id, err)
		}
		s.notifyLocked()
		s.endedByID(ctx, id)
		return nil, nil
	}
	r.cancel(&cancelCause{reason: reason})
	return r, nil
}

// Retry queues a new build of a finished build's commit and wakes a worker.
func (s *Service) Retry(ctx context.Context, id int64) (record.Build, error) {
	if old, err := s.o.Store.GetBuild(ctx, id); err == nil && s.verifiedCommitGone(ctx, old) {
		return record.Build{}, fmt.Errorf("build %d verified a push that did not land, so its commit is not in the repository: push it again", id)
	}
	b, err := s.o.Store.RetryBuild(ctx, id)
	if err != nil {
		return record.Build{}, err
	}
	s.Wake()
	return b, nil
}

// Enqueue records one build (scheduled or manual; b.State empty, queued,
// skipped or error as store.EnqueueBuilds allows) and wakes a worker.
func (s *Service) Enqueue(ctx context.Context, b record.Build) (record.Build, error) {
	out, err := s.o.Store.EnqueueBuilds(ctx, []record.Build{b})
	if err != nil {
		return record.Build{}, err
	}
	s.afterEnqueue(out)
	return out.Builds[0], nil
}

// afterEnqueue wakes the workers and the waiters after builds were recorded.
func (s *Service) afterEnqueue(out record.Enqueued) {
	for _, b := range out.Superseded {
		s.dropWorkspace(b.ID)
	}
	s.ended(out.Superseded)
	s.ended(out.Builds)
	s.mu.Lock()
	s.notifyLocked()
	s.mu.Unlock()
	s.Wake()
}

// dropWorkspace removes the workspace of queued build id, which will never
// run (superseded, cancelled): one queued again after the daemon died holds
// its interrupted attempt's, which no run clears now.
func (s *Service) dropWorkspace(id int64) {
	if err := removeAll(filepath.Join(s.o.WorkDir, logID(id))); err != nil {
		s.log.Error("remove the workspace of a build that will not run", "build", id, "err", err)
	}
}

func logID(id int64) string { return strconv.FormatInt(id, 10) }

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// claimHold is how long claims wait after a build was queued again because
// its executor could not be reached.
const claimHold = 3 * time.Second

// holdClaims stops claims of executor's builds for claimHold; the other
// executors' builds are claimed as before.
func (s *Service) holdClaims(executor string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.held == nil {
		s.held = map[string]int64{}
	}
	s.held[executor] = time.Now().Add(claimHold).UnixNano()
}

// unclaimableLocked says which repositories' builds are not to be claimed
// now, nil when there are none: those of an executor held (holdClaims) or
// at its cap (limited). Callers hold mu.
func (s *Service) unclaimableLocked(cfg *configs.Config) func(repo string) bool {
	now := time.Now().UnixNano()
	var out []string
	for ex, until := range s.held {
		if now < until {
			out = append(out, ex)
		} else {
			delete(s.held, ex)
		}
	}
	if l, ok := s.o.Kubernetes.(limited); ok && l.MaxConcurrent() > 0 {
		n := 0
		for _, r := range s.running {
			if r.executor == configs.ExecutorKubernetes {
				n++
			}
		}
		if n >= l.MaxConcurrent() {
			out = append(out, configs.ExecutorKubernetes)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return func(repo string) bool { return slices.Contains(out, cfg.ExecutorOf(repo)) }
}
