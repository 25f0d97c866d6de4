package schedule

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/robfig/cron/v3"

	"slipway/configs"
	"slipway/record"
)

// Store is what the Scheduler needs of the database; *store.Store has it.
// Every method must be safe for concurrent use.
type Store interface {
	GetLastFire(ctx context.Context, repo, name string) (record.ScheduleState, bool, error)
	ListScheduleStates(ctx context.Context) ([]record.ScheduleState, error)
	RemoveSchedule(ctx context.Context, repo, name string) ([]record.Build, error)
	LastScheduleRun(ctx context.Context, repo, name string) (record.Build, bool, error)
	FireSchedule(ctx context.Context, f record.ScheduleFire) ([]record.Build, error)
}

// Waker is told that builds were queued, so that idle build workers claim
// them now instead of at their next poll. Wake must not block.
type Waker interface{ Wake() }

// Clock is the Scheduler's source of time. Tests pass a fake one to cross
// nights without waiting for them.
type Clock interface {
	Now() time.Time
	// After sends the time on the returned channel once d has elapsed.
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Options configure a Scheduler.
type Options struct {
	// Config supplies the schedules (Repos[].Schedules) and the default
	// zone (Location). Required.
	Config *configs.Config
	// Store records firings and remembers last fires. Required.
	Store Store
	// ReposDir holds the bare repositories (<name>.git). Default:
	// Config.ReposDir().
	ReposDir string
	// Waker is woken after a firing queued builds; nil for none.
	Waker Waker
	// Logger receives what the scheduler decided and why. Default: discard.
	Logger *slog.Logger
	// Clock is the source of time; nil means the real clock.
	Clock Clock
}

// Status is what `schedules` shows of one schedule.
type Status struct {
	Repo, Name string
	// Spec is the cron spec as configured.
	Spec string
	// Zone is the time zone the spec is read in.
	Zone     string
	Branches []string
	Pipeline string
	// Next is the next fire time in Zone; zero when the spec never fires
	// again.
	Next time.Time
	// LastRun is the newest build of the schedule (scheduled or run by
	// hand); nil when it never ran.
	LastRun *record.Build
}

// Sentinel errors callers branch on; returned errors wrap them.
var (
	// ErrUnknownSchedule means the repository has no schedule of that name.
	ErrUnknownSchedule = errors.New("no such schedule")
	// ErrStopped means the Scheduler was shut down (or already started).
	ErrStopped = errors.New("scheduler stopped")
)

// maxWait is the longest the timer loop sleeps before it looks at the clock
// again. Timers run on the monotonic clock, which stands still while the
// machine is suspended and ignores wall-clock corrections; re-reading the
// wall clock each minute keeps a nightly from firing hours late after either.
const maxWait = time.Minute

// grace is how late an instant may be fired and still count as on time; an
// instant older than that counts as missed, and catch_up decides.
const grace = time.Minute

// entry is one configured schedule and where the timer loop is with it.
type entry struct {
	repo, name    string
	spec          string // as configured
	effective     string // with its zone, as the store remembers it
	sched         cron.Schedule
	loc           *time.Location
	branches      []string
	pipeline      string
	catchUp       bool
	onlyIfChanged bool

	// ref is the instant the next fire is computed from: the last fire, or
	// the moment the schedule started fresh. next is the first instant of
	// the schedule after ref. Both are guarded by Scheduler.mu.
	ref, next time.Time
}

func (e *entry) key() string { return e.repo + "/" + e.name }

// Scheduler fires the configured schedules. Its methods are safe for
// concurrent use.
type Scheduler struct {
	st       Store
	waker    Waker
	log      *slog.Logger
	clock    Clock
	reposDir string
	entries  []*entry // by repo, then name
	byKey    map[string]*entry
	// made is when New ran, as near to the daemon's start as this package
	// sees. At Start, an instant before it passed while the daemon was
	// down, however recently, and catch_up decides; an instant from made
	// on passed while the daemon was starting and is on time.
	made time.Time

	// abortCtx is cancelled when Shutdown runs out of time: firings in
	// flight stop then. It is not the loop's context, because an enqueue
	// that has started should finish rather than be cut off by a
	// shutdown that can wait for it.
	abortCtx context.Context
	abort    context.CancelFunc
	inflight sync.WaitGroup // Start, the timer loop and RunNow calls

	mu      sync.Mutex
	started bool
	stopped bool
	stop    context.CancelFunc // ends the timer loop
}

// New prepares a Scheduler for the schedules of o.Config. It does not touch
// the store; Start does.
func New(o Options) (*Scheduler, error) {
	if o.Config == nil || o.Store == nil {
		return nil, errors.New("new scheduler: a config and a store are required")
	}
	s := &Scheduler{
		st:       o.Store,
		waker:    o.Waker,
		log:      o.Logger,
		clock:    o.Clock,
		reposDir: o.ReposDir,
		byKey:    map[string]*entry{},
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.clock == nil {
		s.clock = realClock{}
	}
	if s.reposDir == "" {
		s.reposDir = o.Config.ReposDir()
	}
	def := o.Config.Location()
	now := s.clock.Now()
	s.made = now
	for _, r := range o.Config.Repos {
		for _, c := range r.Schedules {
			sched, err := parseSpec(c.Cron, def)
			if err != nil {
				return nil, fmt.Errorf("new scheduler: schedule %q of %q: %w", c.Name, r.Name, err)
			}
			loc, err := zoneOf(c.Cron, def)
			if err != nil {
				return nil, fmt.Errorf("new scheduler: schedule %q of %q: %w", c.Name, r.Name, err)
			}
			e := &entry{
				repo: r.Name, name: c.Name,
				spec: c.Cron, effective: effectiveSpec(c.Cron, def),
				sched: sched, loc: loc,
				branches:      slices.Clone([]string(c.Branch)),
				pipeline:      cmp.Or(c.Pipeline, configs.DefaultSchedulePipeline),
				catchUp:       c.CatchesUp(),
				onlyIfChanged: c.OnlyIfChanged,
				ref:           now,
				next:          nextAfter(sched, now),
			}
			if s.byKey[e.key()] != nil {
				return nil, fmt.Errorf("new scheduler: duplicate schedule %q of %q", c.Name, r.Name)
			}
			s.byKey[e.key()] = e
			s.entries = append(s.entries, e)
		}
	}
	slices.SortFunc(s.entries, func(a, b *entry) int {
		return cmp.Or(cmp.Compare(a.repo, b.repo), cmp.Compare(a.name, b.name))
	})
	s.abortCtx, s.abort = context.WithCancel(context.Background())
	return s, nil
}

// Start reconciles the store with the config and starts the timer loop,
// which runs until ctx is done or Shutdown is called. Before it returns,
// schedules that left the config are forgotten (their queued runs
// cancelled) and schedules that missed their time while the daemon was down
// have caught up once where catch_up asks for it.
func (s *Scheduler) Start(ctx context.Context) error {
	s.mu.Lock()
	if s.started || s.stopped {
		s.mu.Unlock()
		return fmt.Errorf("start scheduler: already started or stopped: %w", ErrStopped)
	}
	s.started = true
	loopCtx, stop := context.WithCancel(ctx)
	s.stop = stop
	s.inflight.Add(1) // handed on to the loop
	s.mu.Unlock()

	if err := s.reconcile(ctx); err != nil {
		stop()
		s.inflight.Done()
		return fmt.Errorf("start scheduler: %w", err)
	}
	s.fireDue(loopCtx, s.clock.Now(), true)
	go s.loop(loopCtx)
	return nil
}

// reconcile forgets the schedules that left the config and sets each
// configured schedule's starting point from what the store remembers.
func (s *Scheduler) reconcile(ctx context.Context) error {
	states, err := s.st.ListScheduleStates(ctx)
	if err != nil {
		return err
	}
	for _, st := range states {
		if s.byKey[st.Repo+"/"+st.Name] != nil {
			continue
		}
		cancelled, err := s.st.RemoveSchedule(ctx, st.Repo, st.Name)
		if err != nil {
			return err
		}
		s.log.Info("schedule removed from the config; forgot it and cancelled its queued runs",
			"schedule", st.Repo+"/"+st.Name, "cancelled", len(cancelled))
	}
	now := s.clock.Now()
	for _, e := range s.entries {
		st, ok, err := s.st.GetLastFire(ctx, e.repo, e.name)
		if err != nil {
			return err
		}
		s.mu.Lock()
		switch {
		case !ok:
			e.ref, e.next = now, nextAfter(e.sched, now)
			s.log.Info("schedule is new or never fired; starting fresh", "schedule", e.key(), "spec", e.spec, "next", fmtTime(e.next, e.loc))
		case st.Spec != e.effective:
			e.ref, e.next = now, nextAfter(e.sched, now)
			s.log.Info("schedule spec changed; starting fresh", "schedule", e.key(),
				"was", st.Spec, "spec", e.effective, "next", fmtTime(e.next, e.loc))
		default:
			e.ref, e.next = st.LastFire, nextAfter(e.sched, st.LastFire)
		}
		s.mu.Unlock()
	}
	return nil
}

// loop fires schedules as their instants come, until ctx is done.
func (s *Scheduler) loop(ctx context.Context) {
	defer s.inflight.Done()
	for {
		now := s.clock.Now()
		wait := maxWait
		s.mu.Lock()
		for _, e := range s.entries {
			if !e.next.IsZero() {
				wait = min(wait, e.next.Sub(now))
			}
		}
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-s.clock.After(max(wait, 0)):
		}
		if ctx.Err() != nil {
			return
		}
		s.fireDue(ctx, s.clock.Now(), false)
	}
}

// fireDue fires each schedule whose next instant is at or before now. An
// instant that is more than grace old was missed (the machine was suspended
// or the clock jumped), and so, at start, is one from before New (the daemon
// was down): such a schedule fires once, at its
// latest missed instant, when it catches up, and otherwise waits for its next
// instant. Either way the log says which.
func (s *Scheduler) fireDue(ctx context.Context, now time.Time, starting bool) {
	where := "while the daemon was not running on time (suspended, stalled, or the clock jumped)"
	if starting {
		where = "while down"
	}
	for _, e := range s.entries {
		if ctx.Err() != nil {
			return // the rest catch up at the next start
		}
		s.mu.Lock()
		ref, next := e.ref, e.next
		s.mu.Unlock()
		if next.IsZero() || next.After(now) {
			continue
		}
		latest, n, more, err := missed(e.sched, ref, now)
		if err != nil {
			latest, n = next, 1 // unreachable: next itself is due
		}
		onTime := now.Sub(latest) <= grace
		if starting {
			// Not grace: an "@every 10s" schedule always has an instant
			// less than a minute old, and with catch_up off a restart
			// must not fire what passed while the daemon was down.
			onTime = !latest.Before(s.made)
		}
		count := n
		if onTime {
			count--
		}
		log := s.log.With("schedule", e.key(), "missed", countText(count, more), "at", fmtTime(latest, e.loc))
		fire := true
		switch {
		case count == 0:
		case onTime:
			log.Warn("schedule missed runs " + where + "; firing the current one")
		case e.catchUp:
			log.Info("schedule missed runs " + where + "; catching up once")
		default:
			log.Info("schedule missed runs " + where + "; catch_up is off, waiting for the next time")
			fire = false
		}
		if fire {
			fctx, cancel := s.guard(context.WithoutCancel(ctx))
			_, err := s.fire(fctx, e, latest, record.TriggerSchedule, "")
			cancel()
			switch {
			case errors.Is(err, record.ErrConflict):
				// Another firing already recorded this instant (a second
				// daemon on the database, or the clock stepped back).
				log.Info("schedule instant already fired; not firing it again", "err", err)
			case err != nil:
				// Not retried: a store that fails now is reported, and
				// the next instant (or the next start's catch-up) tries
				// again rather than this loop spinning on it.
				log.Error("schedule firing failed", "err", err)
			}
		}
		s.mu.Lock()
		e.ref, e.next = latest, nextAfter(e.sched, latest)
		s.mu.Unlock()
	}
}

func countText(n int, more bool) string {
	if more {
		return fmt.Sprintf("more than %d", n)
	}
	return fmt.Sprint(n)
}

func fmtTime(t time.Time, loc *time.Location) string {
	if t.IsZero() {
		return "never"
	}
	return t.In(loc).Format(time.RFC3339)
}

// guard returns a context that is done when ctx is or when Shutdown ran out
// of time.
func (s *Scheduler) guard(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(s.abortCtx, func() { cancel(ErrStopped) })
	return ctx, func() { stop(); cancel(nil) }
}

// Shutdown stops the timer loop and waits until a firing in flight (the
// loop's, Start's catch-up, or a RunNow) has been recorded, or until ctx is
// done, in which case the firing is cancelled and Shutdown returns ctx's
// error. The Scheduler cannot be started again.
func (s *Scheduler) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.stopped = true
	stop := s.stop
	s.mu.Unlock()
	if stop != nil {
		stop()
	}
	done := make(chan struct{})
	go func() {
		s.inflight.Wait()
		close(done)
	}()
	select {
	case <-done:
		s.abort()
		return nil
	case <-ctx.Done():
		s.abort()
		return fmt.Errorf("stop scheduler: %w", context.Cause(ctx))
	}
}

// List returns the status of the schedules of repo, or of every repository
// when repo is "", by repository and name.
func (s *Scheduler) List(ctx context.Context, repo string) ([]Status, error) {
	var out []Status
	for _, e := range s.entries {
		if repo != "" && e.repo != repo {
			continue
		}
		s.mu.Lock()
		next := e.next
		s.mu.Unlock()
		st := Status{
			Repo: e.repo, Name: e.name, Spec: e.spec, Zone: e.loc.String(),
			Branches: slices.Clone(e.branches), Pipeline: e.pipeline,
		}
		if !next.IsZero() {
			st.Next = next.In(e.loc)
		}
		b, ok, err := s.st.LastScheduleRun(ctx, e.repo, e.name)
		if err != nil {
			return nil, fmt.Errorf("list schedules: %w", err)
		}
		if ok {
			st.LastRun = &b
		}
		out = append(out, st)
	}
	return out, nil
}

// RunNow fires schedule name of repo now, by hand (`run REPO SCHEDULE`),
// for user, who the caller has checked may write to repo. Its builds are
// TriggerManual. The no-overlap rule still applies, so a branch whose
// previous run is still queued or running is recorded as skipped; only_if_changed
// does not, because a person asking for a run wants one. The remembered last
// fire is left as it was: the schedule's own timing does not change.
func (s *Scheduler) RunNow(ctx context.Context, repo, name, user string) ([]record.Build, error) {
	e := s.byKey[repo+"/"+name]
	if e == nil {
		return nil, fmt.Errorf("run schedule %q of %q: %w", name, repo, ErrUnknownSchedule)
	}
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return nil, fmt.Errorf("run schedule %q of %q: %w", name, repo, ErrStopped)
	}
	s.inflight.Add(1)
	s.mu.Unlock()
	defer s.inflight.Done()
	ctx, cancel := s.guard(ctx)
	defer cancel()
	return s.fire(ctx, e, time.Time{}, record.TriggerManual, user)
}
