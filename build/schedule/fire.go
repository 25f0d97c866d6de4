package schedule

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"

	"slipway/record"
)

// fire records one firing of e: a build per branch on the branch's tip as it
// is now. at is the scheduled instant, zero for a run by hand. The builds are
// returned as the store recorded them (queued, skipped or error).
func (s *Scheduler) fire(ctx context.Context, e *entry, at time.Time, trigger record.Trigger, user string) ([]record.Build, error) {
	f := record.ScheduleFire{
		Repo: e.repo, Name: e.name, Spec: e.effective, At: at,
		// A run by hand is asked for by a person who wants it to run.
		OnlyIfChanged: e.onlyIfChanged && trigger != record.TriggerManual,
	}
	tips := s.resolveTips(e)
	for _, b := range e.branches {
		tip := tips[b]
		bd := record.Build{Ref: plumbing.NewBranchReferenceName(b).String(), Pipeline: e.pipeline, Trigger: trigger}
		if tip.reason != "" {
			bd.State, bd.Reason = record.StateError, tip.reason
		} else {
			bd.Commit = tip.commit
		}
		f.Builds = append(f.Builds, bd)
	}
	builds, err := s.st.FireSchedule(ctx, f)
	if err != nil {
		return nil, err
	}
	s.metrics.ScheduleFired(e.repo, e.name, trigger)
	skipped := 0
	for _, b := range builds {
		if b.State == record.StateSkipped {
			skipped++
		}
		if b.State.Final() {
			s.metrics.BuildEnded(e.repo, b.State)
		}
	}
	s.metrics.ScheduleSkipped(e.repo, e.name, "build_skipped", skipped)
	for _, b := range builds {
		if b.State == record.StateSkipped {
			s.skipped(ctx, e, b.Ref, b.Commit, b.ID, b.Reason)
		}
	}
	log := s.log.With("schedule", e.key(), "trigger", string(trigger))
	if !at.IsZero() {
		log = log.With("at", fmtTime(at, e.loc))
	}
	if user != "" {
		log = log.With("user", user)
	}
	queued := false
	for _, b := range builds {
		attrs := []any{"build", b.ID, "ref", b.Ref, "commit", b.Commit, "pipeline", b.Pipeline}
		switch b.State {
		case record.StateQueued:
			queued = true
			log.Info("scheduled build queued", attrs...)
		case record.StateSkipped:
			log.Info("scheduled build skipped", append(attrs, "reason", b.Reason)...)
		default:
			log.Warn("scheduled build not run", append(attrs, "state", string(b.State), "reason", b.Reason)...)
		}
	}
	if queued && s.waker != nil {
		s.waker.Wake()
	}
	return builds, nil
}

// tip is a branch's commit, or why there is none.
type tip struct {
	commit string
	reason string // one sentence for the user; the log has the detail
}

// resolveTips reads the current tip of each of e's branches in its bare
// repository. A missing repository or branch is not an error of the
// scheduler: it becomes a build recorded as error, so the team sees it in
// `builds` and the other schedules keep firing.
func (s *Scheduler) resolveTips(e *entry) map[string]tip {
	out := make(map[string]tip, len(e.branches))
	dir := filepath.Join(s.reposDir, filepath.FromSlash(e.repo)+".git")
	repo, err := git.PlainOpen(dir)
	if err != nil {
		reason := fmt.Sprintf("repository %s cannot be read", e.repo)
		if errors.Is(err, git.ErrRepositoryNotExists) {
			reason = fmt.Sprintf("repository %s does not exist (nothing was pushed yet)", e.repo)
		} else {
			s.log.Error("open repository for schedule", "schedule", e.key(), "dir", dir, "err", err)
		}
		for _, b := range e.branches {
			out[b] = tip{reason: reason}
		}
		return out
	}
	for _, b := range e.branches {
		ref, err := repo.Reference(plumbing.NewBranchReferenceName(b), true)
		switch {
		case errors.Is(err, plumbing.ErrReferenceNotFound):
			out[b] = tip{reason: fmt.Sprintf("branch %s does not exist", b)}
		case err != nil:
			s.log.Error("resolve branch for schedule", "schedule", e.key(), "branch", b, "err", err)
			out[b] = tip{reason: fmt.Sprintf("branch %s cannot be read", b)}
		default:
			out[b] = tip{commit: ref.Hash().String()}
		}
	}
	return out
}

// skipped adds the schedule.skipped event of a firing of e that made no
// build (build 0: runs missed while the daemon was down). A failure is
// logged: the skip is recorded either way.
func (s *Scheduler) skipped(ctx context.Context, e *entry, ref, commit string, build int64, reason string) {
	if s.events == nil {
		return
	}
	_, err := s.events.AddEvent(context.WithoutCancel(ctx), record.Event{Kind: record.EventScheduleSkipped,
		Repo: e.repo, Ref: ref, Commit: commit, BuildID: build, Schedule: e.name, State: "skipped", Reason: reason})
	if err != nil {
		s.log.Warn("add the schedule.skipped event", "schedule", e.key(), "err", err)
	}
}
