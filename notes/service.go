package notes

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"slipway/configs"
	"slipway/internal/queue"
	"slipway/record"
)

// CursorName is the notes' cursor in the outbox.
const CursorName = "notes"

// Events is the outbox as the notes read it (the store).
type Events interface {
	EventsAfter(ctx context.Context, after int64, limit int) ([]record.Event, error)
	StartCursor(ctx context.Context, name string) (int64, error)
	SetCursor(ctx context.Context, name string, id int64) error
	EventsChanged() <-chan struct{}
}

// Records gives the artifact digest of a build or deployment (the store).
type Records interface {
	GetBuild(ctx context.Context, id int64) (record.Build, error)
	GetDeployment(ctx context.Context, id int64) (record.Deployment, error)
}

// Options configures a Service; all but Logger and Retry are required.
type Options struct {
	Events  Events
	Records Records
	Config  configs.Source // public_url, for the links
	// GitDir is the bare repository of a repository name
	// (gitserver.RepoPath under the repositories folder).
	GitDir func(repo string) (string, error)
	Logger *slog.Logger
	// Retry is the first wait before a note that failed is tried again;
	// it doubles each time, maxTries times at most. Default one second.
	Retry time.Duration
}

const (
	// batch is how many events one read of the outbox takes.
	batch = 100
	// maxTries bounds the attempts at one note (a repository git cannot
	// write, a full disk): then it is logged and left out, so that one
	// broken repository does not stop every other one's notes.
	maxTries = 6
	// writeTimeout bounds one note's git runs; a shutdown lets the note
	// being written finish within it.
	writeTimeout = time.Minute
)

// Service writes the notes of the outbox's finished builds and
// deployments, in the outbox's order, and moves its cursor on after each
// batch: a note written before a crash and read again after is found in
// the note and not written twice.
type Service struct {
	o   Options
	log *slog.Logger
	w   *Writer
	bg  queue.Background
}

// New checks o and returns a Service.
func New(o Options) (*Service, error) {
	if o.Events == nil || o.Records == nil || o.Config == nil || o.GitDir == nil {
		return nil, errors.New("notes: Events, Records, Config and GitDir are required")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Retry <= 0 {
		o.Retry = time.Second
	}
	return &Service{o: o, log: o.Logger, w: NewWriter()}, nil
}

// Start finds the cursor and writes notes until Shutdown. On a database
// that has events but never had the notes' cursor, the notes begin with
// the next event: the past is not written.
func (s *Service) Start(ctx context.Context) error {
	cursor, err := s.o.Events.StartCursor(ctx, CursorName)
	if err != nil {
		return fmt.Errorf("start the notes: %w", err)
	}
	s.bg.Go(context.WithoutCancel(ctx), func(ctx context.Context) { s.run(ctx, cursor) })
	return nil
}

// Shutdown stops the notes once the note being written is (within ctx).
func (s *Service) Shutdown(ctx context.Context) error {
	if err := s.bg.Stop(ctx); err != nil {
		return fmt.Errorf("stop the notes: %w", err)
	}
	return nil
}

func (s *Service) run(ctx context.Context, cursor int64) {
	for ctx.Err() == nil {
		changed := s.o.Events.EventsChanged()
		es, err := s.o.Events.EventsAfter(ctx, cursor, batch)
		if err != nil {
			s.log.Error("read the outbox", "after", cursor, "err", err)
			s.wait(ctx, nil, s.o.Retry)
			continue
		}
		if len(es) == 0 {
			s.wait(ctx, changed, 0)
			continue
		}
		done := cursor
		for _, e := range es {
			if !s.note(ctx, e) {
				break // stopping: the rest is for the next start
			}
			done = e.ID
		}
		if done == cursor {
			continue
		}
		// The cursor moves after the notes: a crash in between writes
		// them again, and the Writer finds them there.
		if err := s.o.Events.SetCursor(context.WithoutCancel(ctx), CursorName, done); err != nil {
			s.log.Error("move the notes' cursor", "to", done, "err", err)
		}
		cursor = done
	}
}

// wait waits for changed (when not nil), d (when not 0) or the end of ctx.
func (s *Service) wait(ctx context.Context, changed <-chan struct{}, d time.Duration) {
	var timer <-chan time.Time
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timer = t.C
	}
	select {
	case <-ctx.Done():
	case <-changed:
	case <-timer:
	}
}

// note writes the note event e asks for, if any, trying again after a
// failure; it returns false when ctx ended first.
func (s *Service) note(ctx context.Context, e record.Event) bool {
	wait := s.o.Retry
	for try := 1; ; try++ {
		err := s.write(ctx, e)
		switch {
		case err == nil:
			return true
		case errors.Is(err, ErrNoRepo), errors.Is(err, ErrNoCommit):
			s.log.Info("no note written", "event", e.ID, "kind", e.Kind, "repo", e.Repo, "commit", e.Commit, "why", err)
			return true
		case try == maxTries:
			s.log.Error("note left out after failing", "event", e.ID, "kind", e.Kind, "repo", e.Repo, "commit", e.Commit, "tries", try, "err", err)
			return true
		}
		s.log.Warn("write a note; trying again", "event", e.ID, "repo", e.Repo, "in", wait, "err", err)
		s.wait(ctx, nil, wait)
		if ctx.Err() != nil {
			return false
		}
		wait *= 2
	}
}

// write writes e's line, if e is a finished build or deployment.
func (s *Service) write(ctx context.Context, e record.Event) error {
	if e.Commit == "" {
		return nil
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
	defer cancel()
	cfg := configs.Snapshot(wctx, s.o.Config)
	l := Line{Time: e.Time, State: e.State}
	switch e.Kind {
	case record.EventBuildFinished:
		l.Kind, l.ID, l.Link = KindBuild, e.BuildID, cfg.BuildURL(e.BuildID)
		b, err := s.o.Records.GetBuild(wctx, e.BuildID)
		switch {
		case err == nil:
			l.Digest = b.ArtifactsDigest
		case !errors.Is(err, record.ErrNotFound): // pruned: no digest then
			return err
		}
	case record.EventDeployFinished:
		l.Kind, l.ID, l.Env, l.Build, l.Link = KindDeploy, e.DeploymentID, e.Env, e.BuildID, cfg.DeploymentURL(e.DeploymentID)
		d, err := s.o.Records.GetDeployment(wctx, e.DeploymentID)
		switch {
		case err == nil:
			l.Digest = d.Digest
		case !errors.Is(err, record.ErrNotFound):
			return err
		}
	default:
		return nil
	}
	gitDir, err := s.o.GitDir(e.Repo)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNoRepo, err)
	}
	added, err := s.w.Add(wctx, gitDir, e.Commit, l)
	if err != nil {
		return err
	}
	if added {
		s.log.Debug("note written", "repo", e.Repo, "commit", e.Commit, "line", l.String())
	}
	return nil
}
