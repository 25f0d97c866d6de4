package build

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slipway/configs"
	"slipway/internal/gitrev"
	"strings"
	"time"

	"slipway/build/checkout"
	"slipway/build/pipeline"
	"slipway/internal/gitobj"
	"slipway/internal/termsafe"
	"slipway/record"
)

// Verified pushes (`git push -o verify`, verify_branches).
//
// A push that must pass before it lands waits in its pre-receive hook while
// the revision each verified branch would get is built from the push's
// quarantine. The build is an ordinary build of the queue (trigger verify):
// the same workers, sandbox, limits, secrets, masking, timeout and log, and
// it counts against build.concurrency like any other, but it is claimed
// before every other queued build, since a pusher waits on it with an open
// connection. Its log streams to the pusher as `git push -o wait` does.
//
// A verification goes through these phases (guarded by Service.mu):
//
//	running  queued or running; its pusher waits in pre-receive
//	waiting  the steps passed; pre-receive said yes and git is moving the
//	         refs. The build stays "running" in the store: it is nobody's
//	         passed build until its push is recorded.
//	claimed  post-receive recorded the push, and with it the build as
//	         passed (store.RecordVerifiedPush): it is the branch's build,
//	         its artifacts are kept and its auto deployments are queued.
//	ended    it did not pass (recorded failed, error, skipped or
//	         cancelled), or it passed but its push did not land: then it is
//	         recorded cancelled when the push's session ends, and its
//	         artifacts are removed.
//
// While a push is being verified, and until its record is made, the branches
// it updates are held: any other push to them is refused with one line that
// says which build holds them and whose push it is. A daemon that dies
// leaves no verification behind: the next start ends them all as
// interrupted (store.RecoverInterrupted), and their pushers were refused when
// their hooks lost the daemon.

// verifyPhase is where a verification is; see above.
type verifyPhase int

const (
	phaseRunning verifyPhase = iota
	phaseWaiting
	phaseClaimed
	phaseEnded
)

// verification is one verified ref of a push.
type verification struct {
	id          int64 // the build
	repo        string
	ref, commit string
	quarantine  string
	hold        *pushHold
	// done is closed when the run has ended and its log is complete; out
	// and steps are set before.
	done  chan struct{}
	out   outcome
	steps []record.StepResult
	ran   time.Duration // how long the run took, set with out
	phase verifyPhase   // guarded by Service.mu
}

// pushHold is a push's hold on the branches it updates. Guarded by
// Service.mu.
type pushHold struct {
	user  string
	keys  []string
	build int64 // the build verifying the push now, for the refusal line
}

// verifyState is what the Service keeps of verified pushes. Guarded by
// Service.mu; the maps are made on first use.
type verifyState struct {
	byBuild map[int64]*verification  // running and waiting ones
	waiting map[string]*verification // by holdKey, passed and waiting for git
	held    map[string]*pushHold     // by holdKey
	closed  bool                     // Shutdown: no new verifications
}

func holdKey(repo, ref string) string { return repo + "\x00" + ref }

// source is where a build reads its commit: the repository, or the
// quarantine of the push a verify build waits for.
type source struct {
	gitDir     string
	quarantine string
	err        error // a verify build whose push this process does not know
}

// load reads the pipeline file of commit; objects reads the repository's
// objects in-process (a quarantine is always read by git).
func (src source) load(ctx context.Context, objects *gitobj.Pool, commit string) (*pipeline.File, error) {
	switch {
	case src.err != nil:
		return nil, src.err
	case src.quarantine != "":
		return pipeline.LoadGit(ctx, src.gitDir, commit, checkout.QuarantineEnv(src.gitDir, src.quarantine))
	}
	return pipeline.Load(ctx, objects, src.gitDir, commit)
}

func (src source) checkout(ctx context.Context, commit, ws string, o checkout.Options) (checkout.Result, error) {
	if src.quarantine != "" {
		return checkout.CheckoutQuarantined(ctx, src.gitDir, src.quarantine, commit, ws, o)
	}
	return checkout.Checkout(ctx, src.gitDir, commit, ws, o)
}

// sourceOf returns where build b reads its commit, and its verification
// when it verifies a push.
func (s *Service) sourceOf(b record.Build) (source, *verification) {
	src := source{gitDir: s.gitDir(b.Repo)}
	if b.Trigger != record.TriggerVerify {
		return src, nil
	}
	s.mu.Lock()
	v := s.verifs.byBuild[b.ID]
	s.mu.Unlock()
	if v == nil {
		src.err = errors.New("the push this build verified is gone (it was queued by another daemon)")
		return src, nil
	}
	src.quarantine = v.quarantine
	return src, v
}

// Holder says why another push may not update ref of repo now: a push that
// updates it is being verified, or has passed and is landing. It returns ""
// when none is.
func (s *Service) Holder(repo, ref string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.holderLocked(repo, ref)
}

func (s *Service) holderLocked(repo, ref string) string {
	h := s.verifs.held[holdKey(repo, ref)]
	switch {
	case h == nil:
		return ""
	case h.build != 0:
		return fmt.Sprintf("another push is being verified (build #%d by %s); push again when it ends", h.build, h.user)
	}
	return fmt.Sprintf("another push by %s is being verified; push again when it ends", h.user)
}

// Verify builds, before git moves any ref, the revisions that refs (branch
// updates of push p, none a deletion) would get, reading the pushed objects
// from quarantine, a folder the caller has checked is one of the
// repository's. It streams each build's log to out and returns once every
// build passed, or at the first that did not. While it runs, and until the
// push is recorded (RecordPush) or release is called, every branch p
// updates is held; a branch another push holds refuses p at once.
//
// On success the caller must call release once git is done with the push
// (the receive-pack session ended): a passed build whose push was not
// recorded by then is recorded cancelled, its artifacts removed. On error
// nothing is held and err is one line for the pusher that names the ref and
// why: "refs/heads/main: build #12 failed: step 2 (go test ./...) exited 1".
// When ctx ends (the pusher went away) the running build is cancelled.
func (s *Service) Verify(ctx context.Context, p record.Push, refs []record.RefUpdate, quarantine string, out io.Writer) (release func(), err error) {
	h, err := s.holdPush(p)
	if err != nil {
		return nil, err
	}
	var vs []*verification
	fail := func(err error) (func(), error) {
		s.settle(vs, "cancelled: steps passed, but the push was refused")
		s.unhold(h)
		return nil, err
	}
	if limit := configs.Snapshot(ctx, s.o.Config).Build.MaxPerPush; limit > 0 && len(refs) > limit {
		return fail(fmt.Errorf("slipway: this push updates %d branches that must pass their build first; at most %d are verified in one push (build.max_per_push)", len(refs), limit))
	}
	for _, u := range refs {
		v, err := s.verifyRef(ctx, p, u, quarantine, h, out)
		if v != nil {
			vs = append(vs, v)
		}
		if err != nil {
			return fail(err)
		}
	}
	return func() {
		s.settle(vs, "cancelled: steps passed, but the push did not land")
		s.unhold(h)
	}, nil
}

// holdPush holds every branch p updates, or none when another push holds
// one of them.
func (s *Service) holdPush(p record.Push) (*pushHold, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.verifs.closed || s.stopping() {
		return nil, errors.New("slipway: the daemon is stopping; push again once it is back")
	}
	h := &pushHold{user: p.User}
	for _, u := range p.Refs {
		if !strings.HasPrefix(u.Name, "refs/heads/") {
			continue
		}
		if why := s.holderLocked(p.Repo, u.Name); why != "" {
			return nil, fmt.Errorf("%s: %s", u.Name, why)
		}
		h.keys = append(h.keys, holdKey(p.Repo, u.Name))
	}
	if s.verifs.held == nil {
		s.verifs.held = make(map[string]*pushHold)
	}
	for _, k := range h.keys {
		s.verifs.held[k] = h
	}
	return h, nil
}

// unhold gives up a push's branches; calling it again is harmless.
func (s *Service) unhold(h *pushHold) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range h.keys {
		if s.verifs.held[k] == h {
			delete(s.verifs.held, k)
		}
	}
}

// verifyRef queues the verify build of one ref, streams its log to out and
// waits for its end. The verification is returned whenever it was queued.
func (s *Service) verifyRef(ctx context.Context, p record.Push, u record.RefUpdate, quarantine string, h *pushHold, out io.Writer) (*verification, error) {
	v := &verification{repo: p.Repo, ref: u.Name, commit: u.New, quarantine: quarantine, hold: h, done: make(chan struct{})}
	// Registered under mu with the enqueue: a worker claims (under mu too)
	// only once the build's source is known.
	s.mu.Lock()
	if s.verifs.closed {
		s.mu.Unlock()
		return nil, fmt.Errorf("%s: the daemon is stopping; push again once it is back", u.Name)
	}
	enq, err := s.o.Store.EnqueueBuilds(ctx, []record.Build{{Repo: p.Repo, Ref: u.Name, Commit: u.New,
		Trigger: record.TriggerVerify, Pipeline: record.DefaultPipeline}})
	if err != nil {
		s.mu.Unlock()
		s.log.Error("queue a verify build", "repo", p.Repo, "ref", u.Name, "err", err)
		return nil, fmt.Errorf("%s: could not queue its build (see the daemon's log)", u.Name)
	}
	v.id = enq.Builds[0].ID
	if s.verifs.byBuild == nil {
		s.verifs.byBuild = make(map[int64]*verification)
	}
	s.verifs.byBuild[v.id] = v
	h.build = v.id
	busy := len(s.running)
	s.notifyLocked()
	s.mu.Unlock()
	s.Wake()

	fmt.Fprintf(out, "build #%d verifies %s @ %s before the push lands — follow: %s\n",
		v.id, gitrev.ShortRef(u.Name), gitrev.Short(u.New), s.followCommand(v.id))
	if workers := max(1, configs.Snapshot(ctx, s.o.Config).Build.Concurrency); busy >= workers {
		fmt.Fprintf(out, "build #%d waits for a free worker (%d builds running)\n", v.id, busy)
	}
	// A stopping daemon ends the wait as a pusher who left would: the
	// build is cancelled and the push refused, at once rather than when
	// the SSH server's grace runs out.
	ctx, done := s.whileRunning(ctx)
	defer done()
	if err := s.Follow(ctx, v.id, out, true); err != nil && ctx.Err() == nil {
		s.log.Warn("stream a verify build's log to its pusher", "build", v.id, "err", err)
	}
	select {
	case <-v.done:
	case <-ctx.Done():
		s.stopVerification(v, context.Cause(ctx))
	}
	s.mu.Lock()
	phase, res := v.phase, v.out
	s.mu.Unlock()
	switch {
	case phase == phaseWaiting && ctx.Err() != nil:
		return v, fmt.Errorf("%s: build #%d passed, but the push ended: %v", u.Name, v.id, context.Cause(ctx))
	case phase == phaseRunning:
		// Its run did not end in time after the cancel; it ends later.
		return v, fmt.Errorf("%s: build #%d cancelled: %v", u.Name, v.id, context.Cause(ctx))
	case phase != phaseWaiting:
		return v, fmt.Errorf("%s: %s", u.Name, buildResult(v.id, res))
	}
	fmt.Fprintf(out, "build #%d passed: %s may move to %s\n", v.id, gitrev.ShortRef(u.Name), gitrev.Short(u.New))
	return v, nil
}

// buildResult says how a build ended in a few words: "build #12 failed:
// step 2 (make) exited 1", "build #12 cancelled by alice".
func buildResult(id int64, out outcome) string {
	out.reason = termsafe.Line(out.reason) // one line, whatever it quotes
	if strings.HasPrefix(out.reason, string(out.state)) {
		return fmt.Sprintf("build #%d %s", id, out.reason)
	}
	return fmt.Sprintf("build #%d %s: %s", id, out.state, out.reason)
}

// stopVerification cancels the build of a verification whose pusher went
// away and waits, bounded, for its run to end.
func (s *Service) stopVerification(v *verification, cause error) {
	ctx, cancel := context.WithTimeout(context.Background(), finalGrace)
	defer cancel()
	if _, err := s.cancel(ctx, v.id, "cancelled: "+cause.Error()); err != nil && !errors.Is(err, record.ErrConflict) {
		s.log.Error("cancel a verify build", "build", v.id, "err", err)
	}
	select {
	case <-v.done:
	case <-ctx.Done():
		s.log.Error("a cancelled verify build did not stop in time", "build", v.id)
	}
}

// endVerification records how a verify build's run ended (runBuild calls
// it instead of finish). A pass is not recorded: the build stays running
// until its push is recorded or given up. Anything else is recorded as a
// normal build's end; a run the daemon's stop cut off is cancelled, since
// its pusher is refused and the build never runs again.
func (s *Service) endVerification(ctx, life context.Context, b record.Build, v *verification, out outcome, steps []record.StepResult, w buildLog, ran time.Duration) {
	if out.state == record.StatePassed && !out.cutOff {
		s.mu.Lock()
		v.out, v.steps, v.ran, v.phase = out, steps, ran, phaseWaiting
		if s.verifs.waiting == nil {
			s.verifs.waiting = make(map[string]*verification)
		}
		s.verifs.waiting[holdKey(v.repo, v.ref)] = v
		s.mu.Unlock()
		w.Printf("== %s; %s moves to %s if git accepts the push", out.line, gitrev.ShortRef(b.Ref), gitrev.Short(b.Commit))
		return
	}
	if out.cutOff {
		reason := "cancelled: the daemon stopped during the build"
		out = outcome{state: record.StateCancelled, reason: reason, line: reason}
	}
	if err := s.recordResult(life, b, out, steps, w); err != nil {
		s.log.Error("record verify build result", "build", b.ID, "state", out.state, "err", err)
		w.Printf("== could not record the result (%s): %v", out.state, err)
	} else {
		s.metrics.BuildFinished(b, out.state, ran)
	}
	s.prune(ctx, b.Repo)
	w.Printf("== %s", out.line)
	s.mu.Lock()
	v.out, v.steps, v.phase = out, steps, phaseEnded
	delete(s.verifs.byBuild, v.id)
	s.mu.Unlock()
}

// build is the record of v's build, as far as the metrics need it.
func (v *verification) build() record.Build {
	return record.Build{ID: v.id, Repo: v.repo, Ref: v.ref, Commit: v.commit, Trigger: record.TriggerVerify}
}

// runEnded tells the pusher's hook that the run of v is over and its log
// complete. runBuild defers it; v may be nil.
func (v *verification) runEnded() {
	if v != nil {
		close(v.done)
	}
}

// endQueuedLocked ends the verification of build id, cancelled while still
// queued: no worker will run it. The caller holds mu.
func (s *Service) endQueuedLocked(id int64, reason string) {
	v := s.verifs.byBuild[id]
	if v == nil || v.phase != phaseRunning {
		return
	}
	v.out = outcome{state: record.StateCancelled, reason: reason, line: reason}
	v.phase = phaseEnded
	delete(s.verifs.byBuild, id)
	close(v.done)
}

// waitingLocked reports whether build id passed and waits for its push to
// be recorded; it cannot be cancelled then. The caller holds mu.
func (s *Service) waitingLocked(id int64) bool {
	v := s.verifs.byBuild[id]
	return v != nil && v.phase == phaseWaiting
}

// settle gives up the verifications of a push that did not land: a build
// that passed and still waits is recorded as cancelled with reason, and its
// artifacts are removed.
func (s *Service) settle(vs []*verification, reason string) {
	ctx, cancel := context.WithTimeout(context.Background(), finalGrace)
	defer cancel()
	for _, v := range vs {
		s.mu.Lock()
		if v.phase != phaseWaiting {
			s.mu.Unlock()
			continue
		}
		v.phase = phaseEnded
		delete(s.verifs.byBuild, v.id)
		if k := holdKey(v.repo, v.ref); s.verifs.waiting[k] == v {
			delete(s.verifs.waiting, k)
		}
		s.mu.Unlock()
		if err := s.o.Store.FinishBuild(ctx, v.id, record.StateCancelled, reason, v.steps); err != nil {
			s.log.Error("record a verify build whose push did not land", "build", v.id, "err", err)
		} else {
			s.metrics.BuildFinished(v.build(), record.StateCancelled, v.ran)
		}
		if err := removeAll(filepath.Join(s.o.ArtifactsDir, logID(v.id))); err != nil {
			s.log.Error("remove artifacts of a verify build whose push did not land", "build", v.id, "err", err)
		}
		s.appendLog(v.id, "== "+reason+"; nothing kept")
		s.log.Info("verify build passed but its push did not land", "build", v.id, "repo", v.repo, "ref", v.ref)
		s.prune(ctx, v.repo)
	}
	s.mu.Lock()
	s.notifyLocked()
	s.mu.Unlock()
}

// claimVerified takes the waiting verifications that push p (being
// recorded by post-receive) lands: same repository, ref and commit.
func (s *Service) claimVerified(p record.Push) []*verification {
	s.mu.Lock()
	defer s.mu.Unlock()
	var vs []*verification
	for _, u := range p.Refs {
		k := holdKey(p.Repo, u.Name)
		v := s.verifs.waiting[k]
		if v == nil || v.commit != u.New || v.phase != phaseWaiting {
			continue
		}
		v.phase = phaseClaimed
		delete(s.verifs.waiting, k)
		vs = append(vs, v)
	}
	return vs
}

// unclaim puts back claimed verifications, to be given up (settle).
func (s *Service) unclaim(vs []*verification) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range vs {
		v.phase = phaseWaiting
		s.verifs.waiting[holdKey(v.repo, v.ref)] = v
	}
}

// verifiedBuilds prepares the records of claimed verifications: each is
// recorded as passed with its push, with the deployments its pass triggers.
func (s *Service) verifiedBuilds(ctx context.Context, vs []*verification) []record.VerifiedBuild {
	var out []record.VerifiedBuild
	for _, v := range vs {
		vb := record.VerifiedBuild{ID: v.id, Reason: v.out.reason, Steps: v.steps}
		if s.o.Deployer != nil {
			vb.Deployments = s.o.Deployer.AutoDeployments(ctx, record.Build{ID: v.id, Repo: v.repo, Ref: v.ref,
				Commit: v.commit, Trigger: record.TriggerVerify, Pipeline: record.DefaultPipeline, State: record.StatePassed})
		}
		out = append(out, vb)
	}
	return out
}

// landed finishes the claimed verifications of push pushID once it is
// recorded: their logs say so, their pushes' holds end.
func (s *Service) landed(ctx context.Context, pushID int64, vs []*verification, enq record.Enqueued) {
	for _, v := range vs {
		counted := false
		for _, b := range enq.Verified {
			counted = counted || b.ID == v.id
		}
		if counted {
			s.metrics.BuildFinished(v.build(), record.StatePassed, v.ran)
			s.appendLog(v.id, fmt.Sprintf("== push #%d landed: %s is at %s, and this is its build", pushID, gitrev.ShortRef(v.ref), gitrev.Short(v.commit)))
			for _, d := range enq.AutoDeployments {
				if d.BuildID == v.id {
					s.appendLog(v.id, fmt.Sprintf("== deployment #%d to %s queued", d.ID, d.Env))
				}
			}
		} else {
			s.log.Warn("verify build ended before its push was recorded; the push has no build for the ref",
				"build", v.id, "push", pushID, "ref", v.ref)
		}
		s.mu.Lock()
		v.phase = phaseEnded
		delete(s.verifs.byBuild, v.id)
		s.mu.Unlock()
		s.unhold(v.hold)
	}
	if len(vs) > 0 {
		s.prune(ctx, vs[0].repo)
		s.mu.Lock()
		s.notifyLocked()
		s.mu.Unlock()
	}
	if len(enq.AutoDeployments) > 0 {
		s.o.Deployer.Wake()
	}
}

// withoutRefs is p without the refs of vs: those have their build already.
func withoutRefs(p record.Push, vs []*verification) record.Push {
	if len(vs) == 0 {
		return p
	}
	skip := make(map[string]bool, len(vs))
	for _, v := range vs {
		skip[v.ref] = true
	}
	q := p
	q.Refs = nil
	for _, u := range p.Refs {
		if !skip[u.Name] {
			q.Refs = append(q.Refs, u)
		}
	}
	return q
}

// closeVerifications is part of Shutdown, once no worker runs: no new
// verification starts, and those still queued end as cancelled.
func (s *Service) closeVerifications(ctx context.Context) {
	s.mu.Lock()
	s.verifs.closed = true
	var queued []int64
	for id, v := range s.verifs.byBuild {
		if v.phase == phaseRunning {
			queued = append(queued, id)
		}
	}
	s.mu.Unlock()
	for _, id := range queued {
		if _, err := s.cancel(ctx, id, "cancelled: the daemon stopped before the build started; the push was refused"); err != nil &&
			!errors.Is(err, record.ErrConflict) {
			s.log.Error("cancel a queued verify build at shutdown", "build", id, "err", err)
		}
	}
}

// verifiedCommitGone reports whether b verified a push whose commit never
// reached the repository: such a build cannot be retried. It asks git, not
// go-git: go-git also looks into the quarantine folder of any push that is
// in flight.
func (s *Service) verifiedCommitGone(ctx context.Context, b record.Build) bool {
	if b.Trigger != record.TriggerVerify {
		return false
	}
	cmd := exec.CommandContext(ctx, "git", "--git-dir="+s.gitDir(b.Repo), "cat-file", "-e", b.Commit+"^{commit}")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", "HOME=/nonexistent"}
	return cmd.Run() != nil
}
