package build

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"slipway/build/checkout"
	"slipway/build/executor"
	"slipway/build/logs"
	"slipway/build/pipeline"
	"slipway/configs"
	"slipway/internal/gitrev"
	"slipway/internal/queue"
	"slipway/record"
)

// claim takes the next queued build and registers its run. mu is held
// across both, see cancel.
func (s *Service) claim(claimCtx, runCtx context.Context, worker string) (claimed, bool, error) {
	cfg := s.o.Config.Current()
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok, err := s.o.Store.ClaimBuildExcept(claimCtx, worker, s.unclaimableLocked(cfg))
	if err != nil || !ok {
		return claimed{}, false, err
	}
	ctx, cancel := context.WithCancelCause(runCtx)
	r := &run{ctx: ctx, cancel: cancel, life: runCtx, done: make(chan struct{}), executor: cfg.ExecutorOf(b.Repo)}
	s.running[b.ID] = r
	s.nRunning.Store(int64(len(s.running)))
	s.notifyLocked()
	return claimed{b, r}, true, nil
}

// buildLog is what a build writes its log to: a *logs.Writer, or nothing
// when the log could not be opened.
type buildLog interface {
	io.Writer
	Printf(format string, args ...any)
	Flush()
}

type discardLog struct{}

func (discardLog) Write(p []byte) (int, error) { return len(p), nil }
func (discardLog) Printf(string, ...any)       {}
func (discardLog) Flush()                      {}

// openLog opens a build's log for a run: a new log for a first attempt, the
// earlier attempts' log continued for a build that runs again.
func (s *Service) openLog(ctx context.Context, id int64, secrets []string) (*logs.Writer, error) {
	return s.o.Logs.CreateOrAppend(logID(id), configs.Snapshot(ctx, s.o.Config).Build.MaxLogBytes, secrets)
}

// secretSet is what a build gets of its repository's secrets.
type secretSet struct {
	env      []string // "NAME=value" for the steps
	err      error    // a secret in scope that could not be read: the build errs
	withheld []string // secrets out of this ref's scope, each with why
}

// errTimeout is the cause of a build's context ending at its deadline.
var errTimeout = errors.New("build timed out")

// outcome is how a build ended.
type outcome struct {
	state  record.State
	reason string // the build record's one line
	line   string // the last line of the log, without "== "
	// requeue: nothing ran because the executor could not be reached; the
	// build goes back to the queue with reason, its attempt not counted.
	requeue bool
	// cutOff: the daemon's stop ended the run; the build stays running in
	// the store for the next start to queue again.
	cutOff bool
}

// runBuild runs one claimed build to its end and records the result.
func (s *Service) runBuild(ctx context.Context, b record.Build, r *run) {
	start := time.Now()
	// The build runs to its end on the configuration it started with,
	// its result's auto deployments included.
	cfg := s.o.Config.Current()
	ctx = configs.WithSnapshot(ctx, cfg)
	life := configs.WithSnapshot(r.life, cfg)
	dir := filepath.Join(s.o.WorkDir, logID(b.ID))
	defer func() {
		r.cancel(nil)
		s.mu.Lock()
		delete(s.running, b.ID)
		s.nRunning.Store(int64(len(s.running)))
		s.notifyLocked()
		s.mu.Unlock()
		close(r.done)
		if r.executor == configs.ExecutorKubernetes {
			// A slot under its cap is free: a build of it may be waiting
			// in the queue while the other workers sleep.
			s.Wake()
		}
	}()
	log := s.log.With("build", b.ID, "repo", b.Repo, "ref", b.Ref)
	log.Info("build started", "attempt", b.Attempt)
	s.metrics.BuildStarted(b)
	src, verify := s.sourceOf(b)
	defer verify.runEnded()

	var sec secretSet
	given, withheld := configs.Snapshot(ctx, s.o.Config).SecretsForBranch(b.Repo, b.Ref)
	values, env, secretErr := readSecrets(given, os.LookupEnv)
	sec = secretSet{env: env, err: secretErr, withheld: withheld}
	var w buildLog = discardLog{}
	lw, err := s.openLog(ctx, b.ID, values)
	if err != nil {
		// The build still runs and is recorded; only its log is lost.
		log.Error("open build log", "err", err)
	} else {
		w = lw
	}
	// Followers waiting for the build to start can now read its log.
	s.mu.Lock()
	s.notifyLocked()
	s.mu.Unlock()

	out, steps := s.execute(ctx, b, w, sec, dir, start, src)

	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finalGrace)
	defer cancel()
	if err := removeAll(dir); err != nil {
		log.Error("remove workspace", "dir", dir, "err", err)
	}
	if verify != nil {
		s.endVerification(cctx, life, b, verify, out, steps, w, time.Since(start))
	} else if out.requeue {
		w.Printf("== %s", out.line)
		if err := s.o.Store.RequeueBuild(cctx, b.ID, out.reason); err != nil {
			log.Error("requeue build", "err", err)
		} else {
			log.Warn("build queued again: its executor cannot be reached", "reason", out.reason)
			s.holdClaims(r.executor)
		}
	} else if out.cutOff {
		w.Printf("== %s", out.line)
		log.Warn("build cut off by the daemon's stop; it runs again at the next start", "attempt", b.Attempt)
	} else {
		if err := s.recordResult(life, b, out, steps, w); err != nil {
			log.Error("record build result", "state", out.state, "err", err)
			w.Printf("== could not record the result (%s): %v", out.state, err)
		} else {
			s.metrics.BuildFinished(b, out.state, time.Since(start))
		}
		// Before the log ends, so that whoever waits for it finds the
		// older builds pruned. This build is the newest: never pruned now.
		s.prune(cctx, b.Repo)
		w.Printf("== %s", out.line)
		log.Info("build finished", "state", out.state, "reason", out.reason, "duration", time.Since(start))
	}
	if lw != nil {
		if err := lw.Close(); err != nil {
			log.Error("close build log", "err", err)
		}
	}
}

// execute does the work of a build and says how it ended, with the result
// of each step that ran; it writes everything a user should see to w. Its
// steps, in the order they run, are the methods of execution below.
func (s *Service) execute(ctx context.Context, b record.Build, w buildLog, sec secretSet,
	dir string, start time.Time, src source) (outcome, []record.StepResult) {
	e := &execution{s: s, b: b, w: w, sec: sec, src: src, dir: dir, start: start,
		cfg: configs.Snapshot(ctx, s.o.Config)}
	out := e.run(ctx)
	return out, e.steps
}

// execution is one attempt of a build: what the steps of execute share.
type execution struct {
	s     *Service
	b     record.Build
	w     buildLog
	cfg   *configs.Config
	sec   secretSet
	src   source
	dir   string // the build's folder; its workspace goes with it when the build ends
	start time.Time

	// Set by plan.
	p       pipeline.Pipeline
	section string // of the pipeline file, the one that runs
	timeout time.Duration
	network bool
	cache   string // the ref's cache folder, "" without one
	ex      executor.Executor

	unenforced []string            // the limits not in force for every step
	steps      []record.StepResult // each step that ran, in order
}

// run takes the build from its header line to its outcome. Each step
// returns nil to go on, or the outcome that ends the build there.
func (e *execution) run(ctx context.Context) outcome {
	if o := e.preflight(); o != nil {
		return *o
	}
	if o := e.plan(ctx); o != nil {
		return *o
	}
	ctx, cancel := context.WithDeadlineCause(ctx, e.start.Add(e.timeout), errTimeout)
	defer cancel()
	ws, o := e.checkout(ctx)
	if o != nil {
		return *o
	}
	job, o := e.job(ctx, ws)
	if o != nil {
		return *o
	}
	ran, err := e.ex.Run(ctx, job)
	e.w.Flush()
	var unavailable *executor.UnavailableError
	if errors.As(err, &unavailable) && len(ran.Steps) == 0 && ctx.Err() == nil {
		reason := fmt.Sprintf("waiting in the queue: %v", err)
		return outcome{requeue: true, reason: reason, line: reason}
	}
	if o := e.judge(ctx, ran, err); o != nil {
		return *o
	}
	if o := e.keepArtifacts(ctx, job.ArtifactsDir, ran); o != nil {
		return *o
	}
	d := fmtDuration(time.Since(e.start))
	return outcome{state: record.StatePassed, reason: "passed in " + d, line: "passed in " + d}
}

// preflight writes the build's header and stops a build that cannot run
// here: a secret that could not be read, a sandbox that does not work.
func (e *execution) preflight() *outcome {
	b, w := e.b, e.w
	w.Printf("== build #%d of %s: %s @ %s (attempt %d)", b.ID, b.Repo, b.Ref, b.Commit, b.Attempt)
	if e.cfg.Build.Sandbox == "none" {
		w.Printf("== WARNING: the server runs builds unsandboxed (sandbox = \"none\"): steps run as the daemon's user and see the host's files and network")
	}
	if e.sec.err != nil {
		return errorStop(e.sec.err.Error())
	}
	if len(e.sec.withheld) > 0 {
		w.Printf("== secrets withheld from %s: %s", b.Ref, strings.Join(e.sec.withheld, "; "))
	}
	if e.s.o.SandboxErr != nil && e.cfg.Build.Sandbox != "none" && e.cfg.ExecutorOf(b.Repo) != configs.ExecutorKubernetes {
		return errorStop("the sandbox cannot run builds on this server: " + e.s.o.SandboxErr.Error())
	}
	return nil
}

// plan reads the commit's pipeline file and settles what the build gets:
// its section, timeout, network and cache, each said in the log.
func (e *execution) plan(ctx context.Context) *outcome {
	b, w, cfg := e.b, e.w, e.cfg
	file, err := e.src.load(ctx, e.s.objects, b.Commit)
	var perr *pipeline.Error
	var serr *pipeline.SizeError
	switch {
	case errors.Is(err, pipeline.ErrNoFile):
		reason := fmt.Sprintf("no %s in commit %s", pipeline.FileName, gitrev.Short(b.Commit))
		return &outcome{state: record.StateSkipped, reason: reason, line: "skipped: " + reason}
	case errors.As(err, &serr):
		return errorStop(serr.Error())
	case errors.As(err, &perr):
		// Every problem goes to the log; the record keeps the first.
		for _, l := range strings.Split(err.Error(), "\n") {
			w.Printf("%s", l)
		}
		return &outcome{state: record.StateError, reason: perr.Error(), line: "error: " + perr.Error()}
	case err != nil:
		return errorStop(fmt.Sprintf("read %s: %v", pipeline.FileName, err))
	}
	p, section, ok := file.Section(b.Pipeline, pipeline.DefaultSection)
	if !ok {
		return errorStop(fmt.Sprintf("%s has no [%s] section", pipeline.FileName, b.Pipeline))
	}
	if section != b.Pipeline && b.Pipeline != "" {
		w.Printf("== %s has no [%s] section; running [%s]", pipeline.FileName, b.Pipeline, section)
	}
	e.p, e.section = p, section
	if o := e.chooseExecutor(); o != nil {
		return o
	}

	e.timeout = p.Timeout
	if e.timeout == 0 {
		e.timeout = cfg.Build.DefaultTimeout.Duration
	}
	if max := cfg.Build.MaxTimeout.Duration; max > 0 && e.timeout > max {
		w.Printf("== timeout %s asked, capped at the server's %s", fmtDuration(e.timeout), fmtDuration(max))
		e.timeout = max
	}
	repo := cfg.RepoOrDefault(b.Repo)
	e.network = p.Network && repo.Network
	switch {
	case e.network:
		w.Printf("== network: on")
	case p.Network:
		w.Printf("== network: off: the pipeline asks for it, but the server does not allow it for %s (its [[repo]] needs network = true)", b.Repo)
	default:
		w.Printf("== network: off (lookups and connections fail at once); to allow it, set network = true in [%s] of %s and in the server's [[repo]] of %s", section, pipeline.FileName, b.Repo)
	}
	if p.Cache {
		cache, from, err := e.s.refCache(ctx, b)
		if err != nil {
			return errorStop(fmt.Sprintf("prepare the cache: %v", err))
		}
		if from != "" {
			w.Printf("== cache: %s has none yet; starting from a copy of %s's", gitrev.ShortRef(b.Ref), from)
		}
		e.cache = cache
	}
	return nil
}

// stopped is the outcome of a build whose context has ended (timed out,
// cancelled, cut off by the daemon's stop), nil while it runs.
func (e *execution) stopped(ctx context.Context) *outcome {
	if ctx.Err() == nil {
		return nil
	}
	o := stoppedOutcome(context.Cause(ctx), e.b, e.timeout)
	return &o
}

// checkout makes the build's folder afresh and checks the commit out into
// the workspace in it, which it returns.
func (e *execution) checkout(ctx context.Context) (string, *outcome) {
	b, w := e.b, e.w
	// The build's folder holds its checkout; it goes when the build ends.
	// The executor keeps the home its steps share.
	if err := removeAll(e.dir); err != nil {
		return "", errorStop(fmt.Sprintf("clear workspace: %v", err))
	}
	// The build's folder is searchable, not listable; the workspace in it
	// is the build's own (0700, handed to the build's uid by the executor).
	ws := filepath.Join(e.dir, "workspace")
	if err := os.MkdirAll(e.dir, 0o711); err != nil {
		return "", errorStop(fmt.Sprintf("make workspace: %v", err))
	}
	if err := os.Mkdir(ws, 0o700); err != nil {
		return "", errorStop(fmt.Sprintf("make workspace: %v", err))
	}
	res, err := e.src.checkout(ctx, b.Commit, ws, checkout.Options{MaxFileBytes: e.cfg.Build.MaxFileBytes, Objects: e.s.objects})
	if o := e.stopped(ctx); o != nil {
		return "", o
	}
	var big *checkout.FileSizeError
	switch {
	case errors.As(err, &big):
		return "", errorStop(fmt.Sprintf("check out %s: %s is %d bytes; the limit is %d (build.max_file_bytes)",
			gitrev.Short(b.Commit), big.Path, big.Size, big.Limit))
	case err != nil:
		return "", errorStop(fmt.Sprintf("check out %s: %v", gitrev.Short(b.Commit), err))
	}
	w.Printf("== checked out %d files in %s", res.Files, fmtDuration(time.Since(e.start)))
	if len(res.Submodules) > 0 {
		more := ""
		if res.MoreSubmodules > 0 {
			more = fmt.Sprintf(" and %d more", res.MoreSubmodules)
		}
		w.Printf("== note: submodules are not supported yet; left empty: %s%s", strings.Join(res.Submodules, ", "), more)
	}
	return ws, nil
}

// job is what the executor runs: the steps in the workspace ws with their
// environment, limits, artifacts and the log lines around each step.
func (e *execution) job(ctx context.Context, ws string) (executor.Job, *outcome) {
	b, w, p, cfg := e.b, e.w, e.p, e.cfg
	job := executor.Job{
		ID:        strconv.FormatInt(b.ID, 10),
		Image:     p.Image,
		Workspace: ws,
		Cache:     e.cache,
		Steps:     p.Steps,
		Network:   e.network,
		Limits: executor.Limits{
			Procs:     cfg.Build.MaxProcesses,
			FileSize:  cfg.Build.MaxFileBytes,
			Files:     cfg.Build.MaxOpenFiles,
			Memory:    cfg.Build.MaxMemoryBytes,
			Tmp:       cfg.Build.MaxTmpBytes,
			Workspace: cfg.Build.MaxWorkspaceBytes,
		},
		MaxArtifactBytes: cfg.Build.MaxArtifactBytes,
		Log:              w,
	}
	if len(p.Artifacts) > 0 {
		job.Artifacts = p.Artifacts
		job.ArtifactsDir = filepath.Join(e.s.o.ArtifactsDir, logID(b.ID))
		// What an earlier attempt, cut off, may have left is not this
		// attempt's.
		if err := removeAll(job.ArtifactsDir); err != nil {
			return job, errorStop(fmt.Sprintf("clear artifacts folder: %v", err))
		}
	}
	layout := e.ex.Layout(job)
	var cacheVars []string
	if e.cache != "" {
		var set []string
		cacheVars, set = cacheEnv(layout.Cache, p.Env)
		if len(set) > 0 {
			w.Printf("== cache: %s, kept between builds; set %s", layout.Cache, strings.Join(set, ", "))
		}
	}
	if !e.network {
		cacheVars = append(cacheVars, offlineEnv(p.Env)...)
	}
	job.Env = buildEnv(b, stepPaths{home: layout.Home, tmp: layout.Tmp, cache: layout.Cache}, cacheVars, p.Env, e.sec.env)
	// Which limits hold, before anything runs: the same words as the
	// daemon's banner.
	e.unenforced = e.ex.Unenforced(job)
	w.Printf("== limits of every step: %s", executor.DescribeLimits(job.Limits, job.MaxArtifactBytes, e.unenforced))
	job.Timeout = time.Until(e.start.Add(e.timeout))
	// The lines people read around each step's output are written here,
	// from the executor's calls, so that every executor shows the same log.
	job.StepStarted = func(i int) {
		w.Printf("== step %d/%d: %s", i+1, len(p.Steps), p.Steps[i])
	}
	job.StepEnded = func(i int, r executor.StepResult) { e.stepEnded(ctx, i, r) }
	job.Placed = func(where string) {
		w.Printf("== running on %s", where)
		if err := e.s.o.Store.PlaceBuild(ctx, b.ID, where); err != nil {
			e.s.log.Warn("record where a build runs", "build", b.ID, "err", err)
		}
	}
	return job, nil
}

// stepEnded records step i's result and says in the log how it ended.
func (e *execution) stepEnded(ctx context.Context, i int, r executor.StepResult) {
	w, cfg := e.w, e.cfg
	w.Flush()
	// What the header did not already say (a workspace that could
	// not be measured).
	if more := slices.DeleteFunc(slices.Clone(r.Unenforced), func(u string) bool { return slices.Contains(e.unenforced, u) }); len(more) > 0 {
		w.Printf("== note: limits not in force for step %d: %s", i+1, strings.Join(more, "; "))
	}
	e.steps = append(e.steps, record.StepResult{Name: e.p.Steps[i], ExitCode: r.ExitCode, Duration: r.Duration})
	if r.TimedOut || r.Cancelled || ctx.Err() != nil {
		return // the outcome says how it ended
	}
	if r.WorkspaceFull {
		how := "stopped"
		if r.ExitCode != -1 {
			how = fmt.Sprintf("exited %d", r.ExitCode)
		}
		w.Printf("== step %d %s after %s: %s; it held %d bytes", i+1, how, fmtDuration(r.Duration), workspaceFull(cfg.Build.MaxWorkspaceBytes), r.WorkspaceUsed)
		return
	}
	w.Printf("== step %d exited %d after %s", i+1, r.ExitCode, fmtDuration(r.Duration))
	if r.OutOfMemory {
		w.Printf("== step %d went over the memory limit (%d MiB) and the kernel killed a process of it", i+1, cfg.Build.MaxMemoryBytes>>20)
	}
}

// judge turns what the executor returned into the build's outcome when a
// step did not pass: timed out, stopped, could not run, failed.
func (e *execution) judge(ctx context.Context, ran executor.Result, err error) *outcome {
	for _, r := range ran.Steps {
		if r.TimedOut {
			o := stoppedOutcome(errTimeout, e.b, e.timeout)
			return &o
		}
	}
	if o := e.stopped(ctx); o != nil {
		return o
	}
	var stepErr *executor.StepError
	switch {
	case errors.As(err, &stepErr):
		e.steps = append(e.steps, record.StepResult{Name: e.p.Steps[stepErr.Step], ExitCode: -1})
		return errorStop(fmt.Sprintf("step %d could not run: %v", stepErr.Step+1, stepErr.Err))
	case err != nil:
		return errorStop(fmt.Sprintf("the steps could not run: %v", err))
	}
	for i, r := range ran.Steps {
		if r.WorkspaceFull {
			reason := fmt.Sprintf("step %d (%s) stopped: %s", i+1, stepName(e.p.Steps[i]), workspaceFull(e.cfg.Build.MaxWorkspaceBytes))
			return &outcome{state: record.StateFailed, reason: reason, line: "failed: " + reason}
		}
		if r.ExitCode != 0 || r.Cancelled {
			reason := fmt.Sprintf("step %d (%s) exited %d", i+1, stepName(e.p.Steps[i]), r.ExitCode)
			if r.OutOfMemory {
				reason += " (out of memory)"
			}
			return &outcome{state: record.StateFailed, reason: reason, line: "failed: " + reason}
		}
	}
	return nil
}

// keepArtifacts seals the artifacts the steps left in dir and records their
// digest; artifacts that cannot be kept fail the build, and none are kept.
func (e *execution) keepArtifacts(ctx context.Context, dir string, ran executor.Result) *outcome {
	if len(e.p.Artifacts) == 0 {
		return nil
	}
	err := ran.ArtifactsErr
	var digest string
	if err == nil {
		digest, err = sealArtifacts(dir)
	}
	if err == nil {
		err = e.s.o.Store.SetArtifactsDigest(ctx, e.b.ID, digest)
	}
	if err != nil {
		_ = removeAll(dir)
		reason := "artifacts: " + err.Error()
		if executor.IsArtifactsTooLarge(err) {
			reason += " (build.max_artifact_bytes); none were kept"
		}
		return &outcome{state: record.StateFailed, reason: reason, line: "failed: " + reason}
	}
	e.w.Printf("== kept %d artifact files, %s", ran.Artifacts, digest)
	return nil
}

// workspaceFull says why a step was stopped at the workspace limit, in the
// words of the config.
func workspaceFull(limit int64) string {
	return fmt.Sprintf("the workspace reached its limit of %d bytes (build.max_workspace_bytes)", limit)
}

// errorStop ends a build in error: something other than its steps failed.
func errorStop(reason string) *outcome {
	return &outcome{state: record.StateError, reason: reason, line: "error: " + reason}
}

// stoppedOutcome says how a build whose context ended, with cause, ended.
func stoppedOutcome(cause error, b record.Build, timeout time.Duration) outcome {
	var cc *cancelCause
	switch {
	case errors.Is(cause, errTimeout):
		reason := "timed out after " + fmtDuration(timeout)
		return outcome{state: record.StateFailed, reason: reason, line: reason}
	case errors.As(cause, &cc):
		return outcome{state: record.StateCancelled, reason: cc.reason, line: cc.reason}
	default:
		return outcome{cutOff: true, line: fmt.Sprintf("the daemon is stopping: attempt %d cut off; the build runs again at the next start", b.Attempt)}
	}
}

// prune applies retention to the repo's records (store.Prune: the newest
// Config.Build.Keep finished builds stay, with the builds deployments still
// need) and removes the files of what was pruned: build logs and artifacts
// here, deployment logs through the Deployer. The records go first, in one
// transaction, so nothing that starts afterwards can find a pruned build;
// a file already gone (a superseded build never had a log) is what prune
// wanted anyway.
func (s *Service) prune(ctx context.Context, repo string) {
	keep := configs.Snapshot(ctx, s.o.Config).Build.Keep
	if keep <= 0 {
		return
	}
	p, err := s.o.Store.Prune(ctx, repo, keep)
	if err != nil {
		s.log.Error("prune old builds", "repo", repo, "err", err)
		return
	}
	for _, id := range p.Builds {
		switch err := s.o.Logs.Remove(logID(id)); {
		case err == nil, errors.Is(err, logs.ErrNotFound):
		case errors.Is(err, logs.ErrBusy):
			// Its worker recorded the result and has not closed the log
			// yet; the next start removes it (see sweep).
			s.log.Info("log of pruned build still open; removed at the next start", "build", id)
		default:
			s.log.Error("remove log of pruned build", "build", id, "err", err)
		}
		if err := removeAll(filepath.Join(s.o.ArtifactsDir, logID(id))); err != nil {
			s.log.Error("remove artifacts of pruned build", "build", id, "err", err)
		}
	}
	if len(p.Deployments) > 0 && s.o.Deployer != nil {
		s.o.Deployer.RemoveLogs(p.Deployments)
	}
	if len(p.Builds)+p.Pushes > 0 {
		s.log.Info("pruned old records", "repo", repo, "builds", len(p.Builds),
			"deployments", len(p.Deployments), "pushes", p.Pushes)
	}
}

// removeAll removes a tree, also one in which a build made folders
// read-only (Go's module cache does).
func removeAll(dir string) error {
	if err := os.RemoveAll(dir); err == nil {
		return nil
	}
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(p, 0o700)
		}
		return nil
	})
	return os.RemoveAll(dir)
}

// stepName is a step shortened for one-line messages.
func stepName(step string) string {
	step, _, cut := strings.Cut(strings.TrimSpace(step), "\n")
	if len(step) > 40 {
		step, cut = step[:40], true
	}
	if cut {
		step += "…"
	}
	return step
}

// fmtDuration prints durations the way people say them: "3.4s", "10m",
// "1h30m".
func fmtDuration(d time.Duration) string {
	if d < time.Second {
		return d.Round(time.Millisecond).String()
	}
	if d < time.Minute {
		return d.Round(100 * time.Millisecond).String()
	}
	s := d.Round(time.Second).String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// recordResult records a build's result (finish), trying again while the
// store refuses it, by queue.WriteResult's rule (after s.retryFirst, then
// twice as long each time up to s.retryMax), until it is written or life
// ends (the daemon's stop ran out of patience; the build then stays running
// for the next start's recovery). Each new reason for a failure is logged
// once, and told in the build's log. A build that is no longer running in
// the store (cancelled meanwhile) is not retried.
func (s *Service) recordResult(life context.Context, b record.Build, out outcome, steps []record.StepResult, w buildLog) error {
	attempts, err := queue.WriteResult(life, queue.Backoff{First: s.retryFirst, Max: s.retryMax}, finalGrace,
		func(ctx context.Context) error { return s.finish(ctx, b, out, steps, w) },
		func(err error, retryIn time.Duration) {
			s.log.Error("record build result failed; retrying until it is written", "build", b.ID, "state", out.state, "err", err, "retry_in", retryIn)
			w.Printf("== could not record the result (%s): %v; retrying", out.state, err)
		})
	if err == nil && attempts > 1 {
		s.log.Info("build result recorded after failed writes", "build", b.ID, "state", out.state, "attempts", attempts)
		w.Printf("== result recorded (attempt %d of the write)", attempts)
	}
	return err
}

// finish records a build's result; a passed build's automatic deployments
// are recorded in the same transaction, so that none is lost in between.
func (s *Service) finish(ctx context.Context, b record.Build, out outcome, steps []record.StepResult, w buildLog) error {
	if out.state != record.StatePassed || s.o.Deployer == nil {
		return s.o.Store.FinishBuild(ctx, b.ID, out.state, out.reason, steps)
	}
	passed := b
	passed.State = record.StatePassed
	autos := s.o.Deployer.AutoDeployments(ctx, passed)
	ds, err := s.o.Store.FinishBuildAndDeploy(ctx, b.ID, out.state, out.reason, steps, autos)
	if err != nil {
		return err
	}
	for _, d := range ds {
		w.Printf("== deployment #%d to %s queued", d.ID, d.Env)
	}
	if len(ds) > 0 {
		s.o.Deployer.Wake()
	}
	return nil
}

// chooseExecutor settles where the build runs: on Kubernetes when its
// repository's executor says so, else on this host.
func (e *execution) chooseExecutor() *outcome {
	if e.cfg.ExecutorOf(e.b.Repo) == configs.ExecutorKubernetes {
		if e.s.o.Kubernetes == nil {
			return errorStop(fmt.Sprintf("%s's builds run on Kubernetes (executor = %q), but the daemon started without it; restart it to use [kubernetes]",
				e.b.Repo, configs.ExecutorKubernetes))
		}
		e.ex = e.s.o.Kubernetes
		return nil
	}
	e.ex = e.s.o.Executor
	if e.p.Image != "" {
		e.w.Printf("== image %q ignored: %s's builds run on this host (executor = %q)", e.p.Image, e.b.Repo, configs.ExecutorBubblewrap)
	}
	return nil
}
