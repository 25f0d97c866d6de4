package build

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"slipway/internal/gitrev"
	"strings"

	"slipway/build/pipeline"
	"slipway/configs"
	"slipway/internal/termsafe"
	"slipway/push"
	"slipway/record"
)

// maxNotBuiltLines bounds the lines that list refs a push did not build; a
// mirror push of 1,500 refs gets a count, not 1,500 lines.
const maxNotBuiltLines = 20

// WaitOption is the push option (`git push -o wait`) that keeps the push
// open and streams its builds' logs to the pusher.
const WaitOption = "wait"

// Pushes returns the builds' part of the way of a push (package push): it
// plans the builds of a push's updated refs and reports them to the pusher.
func (s *Service) Pushes() push.Part { return pushes{s} }

// pushes is the builds' push.Part.
type pushes struct{ s *Service }

// Plan decides which refs build (updated branches matching the repo's
// build_branches, tags when build_tags is on, never deleted refs, at most
// build.max_per_push) and records each commit without a .slipway.toml as a
// skipped build. A ref whose revision passed its verify build while the push
// waited in pre-receive gets no new build: that build is recorded as passed
// with the push instead (verify.go), claimed here and settled once the
// record is made or has failed.
func (ps pushes) Plan(ctx context.Context, p record.Push) (push.Plan, error) {
	s := ps.s
	vs := s.claimVerified(p)
	bs, notes := s.planPush(ctx, withoutRefs(p, vs))
	return push.Plan{
		Builds:   bs,
		Verified: s.verifiedBuilds(ctx, vs),
		Notes:    notes,
		Settle: func(ctx context.Context, rec record.Enqueued, err error) {
			if err != nil {
				// git has moved the refs, but without a record the
				// builds cannot count as the branches' builds.
				s.unclaim(vs)
				s.settle(vs, "cancelled: steps passed, but the push could not be recorded")
				return
			}
			s.landed(ctx, rec.PushID, vs, rec)
			s.afterEnqueue(rec)
		},
	}, nil
}

// Report tells the pusher what was queued and how to follow it, which refs
// were not built and why; it cancels running builds of the same refs when
// the repo asks for that. With the "wait" push option it then streams the
// builds' logs until they end, followed by each build's result. When ctx
// ends (the pusher went away) it returns; the builds go on.
func (ps pushes) Report(ctx context.Context, p record.Push, plan push.Plan, rec record.Enqueued, out io.Writer) {
	ps.s.afterPush(ctx, p, rec, plan.Notes, out)
}

// planPush turns a push's ref updates into the builds to record, and notes
// for the pusher about refs that do not build.
func (s *Service) planPush(ctx context.Context, p record.Push) ([]record.Build, []string) {
	if configs.Snapshot(ctx, s.o.Config).IsConfigRepo(p.Repo) {
		// It holds the daemon's configuration, checked as one when
		// pushed (package configrepo); nothing in it is a project.
		return nil, nil
	}
	repo := configs.Snapshot(ctx, s.o.Config).RepoOrDefault(p.Repo)
	gitDir := s.gitDir(p.Repo)
	limit := configs.Snapshot(ctx, s.o.Config).Build.MaxPerPush
	var (
		bs       []record.Build
		notes    []string
		overCap  int
		notBuilt = func(format string, args ...any) {
			if len(notes) < maxNotBuiltLines {
				notes = append(notes, fmt.Sprintf(format, args...))
			}
		}
	)
	for _, u := range p.Refs {
		isBranch := strings.HasPrefix(u.Name, "refs/heads/")
		isTag := strings.HasPrefix(u.Name, "refs/tags/")
		switch {
		case !isBranch && !isTag:
			// Release refs and others are not build requests; deploys
			// handle release pushes.
			continue
		case record.ZeroID(u.New):
			continue // a deleted ref has nothing to build
		case !repo.Builds(u.Name):
			notBuilt("%s: not built: %s", gitrev.ShortRef(u.Name), whyNotBuilt(repo, isTag))
			continue
		case limit > 0 && len(bs) >= limit:
			overCap++
			continue
		}
		b := record.Build{Repo: p.Repo, Ref: u.Name, Commit: u.New, Trigger: record.TriggerPush, Pipeline: record.DefaultPipeline}
		if _, err := pipeline.Load(ctx, s.objects, gitDir, u.New); errors.Is(err, pipeline.ErrNoFile) {
			b.State = record.StateSkipped
			b.Reason = fmt.Sprintf("no %s in this commit", pipeline.FileName)
		}
		// A broken file is queued all the same: the worker records the
		// error with its line and column, in a log the pusher can read.
		bs = append(bs, b)
	}
	if overCap > 0 {
		notes = append(notes, fmt.Sprintf("%d more refs not built: this push reached the limit of %d builds per push (build.max_per_push)", overCap, limit))
	}
	return bs, notes
}

func whyNotBuilt(repo *configs.Repo, isTag bool) string {
	if isTag {
		return "tags do not build in this repository (build_tags is off)"
	}
	return "branch does not match build_branches (" + strings.Join(repo.BuildBranches, ", ") + ")"
}

// afterPush acts on what a push recorded and reports it to the pusher.
func (s *Service) afterPush(ctx context.Context, p record.Push, enq record.Enqueued, notes []string, out io.Writer) {
	if repo := configs.Snapshot(ctx, s.o.Config).RepoOrDefault(p.Repo); repo.CancelRunning && len(enq.Running) > 0 {
		for _, old := range enq.Running {
			newer := newestOf(enq.Builds, old.Ref)
			reason := fmt.Sprintf("cancelled: build #%d of a newer push replaces it", newer)
			// Not waited for: the push should not hang on another build's
			// processes dying.
			if _, err := s.cancel(context.WithoutCancel(ctx), old.ID, reason); err != nil && !errors.Is(err, record.ErrConflict) {
				s.log.Error("cancel a running build for a newer push", "build", old.ID, "err", err)
			}
			fmt.Fprintf(out, "build #%d cancelled: build #%d replaces it\n", old.ID, newer)
		}
	}
	for _, old := range enq.Superseded {
		if !slices.ContainsFunc(enq.Builds, func(b record.Build) bool { return b.ID == old.ID }) {
			fmt.Fprintf(out, "build #%d (%s @ %s) superseded: it had not started\n", old.ID, gitrev.ShortRef(old.Ref), gitrev.Short(old.Commit))
		}
	}
	for _, b := range enq.Verified {
		fmt.Fprintf(out, "build #%d passed: %s @ %s — verified before the push landed, it is the branch's build\n", b.ID, gitrev.ShortRef(b.Ref), gitrev.Short(b.Commit))
	}
	for _, d := range enq.AutoDeployments {
		fmt.Fprintf(out, "deployment #%d to %s queued (build #%d)\n", d.ID, d.Env, d.BuildID)
	}
	var queued []record.Build
	for _, b := range enq.Builds {
		switch b.State {
		case record.StateQueued:
			queued = append(queued, b)
			fmt.Fprintf(out, "build #%d queued: %s @ %s — follow: %s\n", b.ID, gitrev.ShortRef(b.Ref), gitrev.Short(b.Commit), s.followCommand(b.ID))
			if link := configs.Snapshot(ctx, s.o.Config).BuildURL(b.ID); link != "" {
				fmt.Fprintf(out, "  %s\n", link)
			}
		default:
			fmt.Fprintf(out, "build #%d %s: %s @ %s — %s\n", b.ID, b.State, gitrev.ShortRef(b.Ref), gitrev.Short(b.Commit), termsafe.Line(b.Reason))
		}
	}
	for _, n := range notes {
		fmt.Fprintln(out, n)
	}
	if slices.Contains(p.Options, WaitOption) {
		// The push is recorded: a daemon that stops ends the wait, not
		// the builds, and the pusher is told so (git's exit status 0).
		wctx, done := s.whileRunning(ctx)
		defer done()
		for i, b := range queued {
			if err := s.waitFor(wctx, b.ID, out); err != nil {
				switch {
				case ctx.Err() != nil:
				case errors.Is(context.Cause(wctx), errShutdown):
					s.stoppingNotice(ctx, queued[i:], out)
				default:
					s.log.Warn("stream build log to pusher", "build", b.ID, "err", err)
				}
				return
			}
		}
	}
}

// stoppingNotice tells a pusher who waits for builds that the daemon is
// stopping, and what becomes of each build.
func (s *Service) stoppingNotice(ctx context.Context, bs []record.Build, out io.Writer) {
	for _, b := range bs {
		what := "will continue after it restarts"
		if cur, err := s.o.Store.GetBuild(ctx, b.ID); err == nil {
			switch {
			case cur.State == record.StateQueued:
				what = "will run after it restarts"
			case cur.State.Final():
				fmt.Fprintln(out, resultLine(cur))
				continue
			}
		}
		fmt.Fprintf(out, "slipway: the daemon is stopping; build #%d %s — follow: %s\n", b.ID, what, s.followCommand(b.ID))
	}
}

// waitFor streams a build's log to out until the build ends, then writes its
// result line.
func (s *Service) waitFor(ctx context.Context, id int64, out io.Writer) error {
	if err := s.Follow(ctx, id, out, true); err != nil {
		return err
	}
	b, err := s.o.Store.GetBuild(ctx, id)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(out, resultLine(b))
	return err
}

// resultLine is a build's outcome in one line: "build #12 passed in 3.4s".
// One line whatever its reason quotes (a step's command, an error naming a
// file of the commit), so that nothing the pusher controls can add a line
// beside it.
func resultLine(b record.Build) string {
	b.Reason = termsafe.Line(b.Reason)
	var took string
	if !b.StartedAt.IsZero() && !b.FinishedAt.IsZero() {
		took = " in " + fmtDuration(b.FinishedAt.Sub(b.StartedAt))
	}
	switch b.State {
	case record.StatePassed:
		return fmt.Sprintf("build #%d passed%s", b.ID, took)
	case record.StateFailed:
		return fmt.Sprintf("build #%d failed%s: %s", b.ID, took, b.Reason)
	case record.StateQueued, record.StateRunning:
		return fmt.Sprintf("build #%d is still %s", b.ID, b.State)
	}
	return fmt.Sprintf("build #%d %s: %s", b.ID, b.State, b.Reason)
}

// followCommand is the command a pusher runs to follow a build.
func (s *Service) followCommand(id int64) string {
	if s.o.SSHPort == 22 {
		return fmt.Sprintf("ssh %s log %d -f", s.o.SSHHost, id)
	}
	return fmt.Sprintf("ssh -p %d %s log %d -f", s.o.SSHPort, s.o.SSHHost, id)
}

func (s *Service) gitDir(repo string) string {
	return s.o.ReposDir + "/" + repo + ".git"
}

// newestOf returns the id of the newest build of ref among bs.
func newestOf(bs []record.Build, ref string) int64 {
	var id int64
	for _, b := range bs {
		if b.Ref == ref && b.ID > id {
			id = b.ID
		}
	}
	return id
}
