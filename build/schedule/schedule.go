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
	// The Scheduler waits on one such channel at a time: when it calls
	// After again, it has abandoned the channel of the previous call (a
	// Reload woke it before that time came), so a fake clock may drop it.
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Options configure a Scheduler.
type Options struct {
	// Config supplies the schedules (Repos[].Schedules) and the default
	// zone (Location) that New starts with; a *configs.Config will do.
	// Later configurations reach the Scheduler through Reload. Required.
	Config configs.Source
	// Store records firings and remembers last fires. Required.
	Store Store
	// ReposDir holds the bare repositories (<name>.git). Default:
	// Config.ReposDir(). A reload does not move it (data_dir needs a
	// restart).
	ReposDir string
	// Waker is woken after a firing queued builds; nil for none.
	Waker Waker
	// Logger receives what the scheduler decided and why. Default: discard.
	Logger *slog.Logger
	// Clock is the source of time; nil means the real clock.
	Clock Clock
	// Metrics counts firings, skips and the builds that end without
	// running; nil counts nothing.
	Metrics Metrics
	// Events, if set, is told of every firing that made no build or
	// missed runs (schedule.skipped events for webhooks).
	Events Events
}

// Events adds an event to the outbox that no record's change carries.
type Events interface {
	AddEvent(ctx context.Context, e record.Event) (int64, error)
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
// Everything but ref and next is fixed when the entry is made: a reload
// that changes a setting makes a new entry, so a firing in flight reads the
// settings it started with.
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

// set is the schedules of one configuration, by repo, then name. It is not
// changed once made; Reload swaps in another.
type set struct {
	list  []*entry
	byKey map[string]*entry
}

// Scheduler fires the configured schedules. Its methods are safe for
// concurrent use.
type Scheduler struct {
	st       Store
	waker    Waker
	log      *slog.Logger
	clock    Clock
	metrics  Metrics // never nil
	events   Events  // nil: no events
	reposDir string
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
	inflight sync.WaitGroup // Start, the timer loop, RunNow and Reload calls

	// fireMu is held for reading by each firing (a pass of the timer
	// loop, Start's catch-up, a RunNow) and for writing by Reload and by
	// Start's reconcile, so that a firing runs from start to end on one
	// set of schedules and a schedule a reload removes is forgotten only
	// once its firing in flight has been recorded.
	fireMu sync.RWMutex

	mu      sync.Mutex
	set     *set // the schedules in force; swapped only with fireMu held too
	started bool
	stopped bool
	stop    context.CancelFunc // ends the timer loop
	// gen counts the sets swapped in, and swapped is closed (and
	// replaced) with each swap: the timer loop waits on the swapped of the
	// set it computed its wait from, so a reload wakes it exactly when its
	// wait is stale. armed is the gen the loop's current wait comes from,
	// and armedCh is closed (and replaced) each time the loop starts a
	// wait, so Reload can tell when its schedules are the ones waited on.
	gen, armed uint64
	swapped    chan struct{}
	armedCh    chan struct{}
	// loopDone is closed when the timer loop has ended (or, when Start
	// failed, will never run); nil before Start.
	loopDone chan struct{}
}

// New prepares a Scheduler for the schedules of o.Config's current
// configuration. It does not touch the store; Start does.
func New(o Options) (*Scheduler, error) {
	if o.Config == nil || o.Store == nil {
		return nil, errors.New("new scheduler: a config and a store are required")
	}
	cfg := o.Config.Current()
	if cfg == nil {
		return nil, errors.New("new scheduler: the config source has no configuration")
	}
	s := &Scheduler{
		st:       o.Store,
		waker:    o.Waker,
		log:      o.Logger,
		clock:    o.Clock,
		metrics:  o.Metrics,
		events:   o.Events,
		reposDir: o.ReposDir,
		swapped:  make(chan struct{}),
		armedCh:  make(chan struct{}),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.clock == nil {
		s.clock = realClock{}
	}
	if s.metrics == nil {
		s.metrics = noMetrics{}
	}
	if s.reposDir == "" {
		s.reposDir = cfg.ReposDir()
	}
	now := s.clock.Now()
	s.made = now
	var err error
	if s.set, err = newSet(cfg, now); err != nil {
		return nil, fmt.Errorf("new scheduler: %w", err)
	}
	s.abortCtx, s.abort = context.WithCancel(context.Background())
	return s, nil
}

// newSet makes the entries of cfg's schedules, each starting fresh at now.
func newSet(cfg *configs.Config, now time.Time) (*set, error) {
	def := cfg.Location()
	out := &set{byKey: map[string]*entry{}}
	for _, r := range cfg.Repos {
		for _, c := range r.Schedules {
			sched, err := parseSpec(c.Cron, def)
			if err != nil {
				return nil, fmt.Errorf("schedule %q of %q: %w", c.Name, r.Name, err)
			}
			loc, err := zoneOf(c.Cron, def)
			if err != nil {
				return nil, fmt.Errorf("schedule %q of %q: %w", c.Name, r.Name, err)
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
			if out.byKey[e.key()] != nil {
				return nil, fmt.Errorf("duplicate schedule %q of %q", c.Name, r.Name)
			}
			out.byKey[e.key()] = e
			out.list = append(out.list, e)
		}
	}
	slices.SortFunc(out.list, func(a, b *entry) int {
		return cmp.Or(cmp.Compare(a.repo, b.repo), cmp.Compare(a.name, b.name))
	})
	return out, nil
}

// current returns the schedules in force.
func (s *Scheduler) current() *set {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.set
}

// Start reconciles the store with the config and starts the timer loop,
// which runs until ctx is done or Shutdown is called. Before it returns,
// schedules that left the config are forgotten (their queued runs
// cancelled) and schedules that missed their time while the daemon was down
// have caught up once where catch_up asks for it.
func (s *Scheduler) Start(ctx context.Context) error {
	// Held across reconcile so that a Reload comes either wholly before
	// Start (and only replaces the schedules) or after the reconcile
	// (and finds each schedule's place already read from the store).
	s.fireMu.Lock()
	s.mu.Lock()
	if s.started || s.stopped {
		s.mu.Unlock()
		s.fireMu.Unlock()
		return fmt.Errorf("start scheduler: already started or stopped: %w", ErrStopped)
	}
	s.started = true
	loopCtx, stop := context.WithCancel(ctx)
	s.stop = stop
	s.loopDone = make(chan struct{})
	s.inflight.Add(1) // handed on to the loop
	s.mu.Unlock()

	err := s.reconcile(ctx)
	s.fireMu.Unlock()
	if err != nil {
		stop()
		close(s.loopDone)
		s.inflight.Done()
		return fmt.Errorf("start scheduler: %w", err)
	}
	s.fireDue(loopCtx, s.clock.Now(), true)
	go s.loop(loopCtx)
	return nil
}

// reconcile forgets the schedules that left the config and sets each
// configured schedule's starting point from what the store remembers. The
// caller holds fireMu.
func (s *Scheduler) reconcile(ctx context.Context) error {
	set := s.current()
	if err := s.forgetRemoved(ctx, set, nil); err != nil {
		return err
	}
	now := s.clock.Now()
	for _, e := range set.list {
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

// forgetRemoved forgets in the store each schedule that is not in keep:
// those the store remembers, and those of gone (the schedules a reload
// replaced), which may have queued runs by hand without ever having fired.
// Their queued runs are cancelled. The caller holds fireMu, so no firing of
// theirs is in flight to record them again.
func (s *Scheduler) forgetRemoved(ctx context.Context, keep *set, gone []*entry) error {
	states, err := s.st.ListScheduleStates(ctx)
	if err != nil {
		return err
	}
	var remove [][2]string
	for _, st := range states {
		if keep.byKey[st.Repo+"/"+st.Name] == nil {
			remove = append(remove, [2]string{st.Repo, st.Name})
		}
	}
	for _, e := range gone {
		if keep.byKey[e.key()] == nil && !slices.Contains(remove, [2]string{e.repo, e.name}) {
			remove = append(remove, [2]string{e.repo, e.name})
		}
	}
	for _, r := range remove {
		cancelled, err := s.st.RemoveSchedule(ctx, r[0], r[1])
		if err != nil {
			return err
		}
		s.log.Info("schedule removed from the config; forgot it and cancelled its queued runs",
			"schedule", r[0]+"/"+r[1], "cancelled", len(cancelled))
		for _, b := range cancelled {
			s.metrics.BuildEnded(b.Repo, record.StateCancelled)
		}
	}
	return nil
}

// loop fires schedules as their instants come, until ctx is done.
func (s *Scheduler) loop(ctx context.Context) {
	defer s.inflight.Done()
	defer close(s.loopDone)
	for {
		now := s.clock.Now()
		wait := maxWait
		s.mu.Lock()
		gen, swapped := s.gen, s.swapped
		for _, e := range s.set.list {
			if !e.next.IsZero() {
				wait = min(wait, e.next.Sub(now))
			}
		}
		s.mu.Unlock()
		timer := s.clock.After(max(wait, 0))
		s.mu.Lock()
		s.armed = gen
		close(s.armedCh)
		s.armedCh = make(chan struct{})
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-swapped:
			continue // a reload: wait on the new schedules' times
		case <-timer:
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
	s.fireMu.RLock()
	defer s.fireMu.RUnlock()
	for _, e := range s.current().list {
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
		// The missed instants that will not run: all of them but the
		// one a catch-up fires.
		notRun := count
		log := s.log.With("schedule", e.key(), "missed", countText(count, more), "at", fmtTime(latest, e.loc))
		fire := true
		switch {
		case count == 0:
		case onTime:
			log.Warn("schedule missed runs " + where + "; firing the current one")
		case e.catchUp:
			log.Info("schedule missed runs " + where + "; catching up once")
			notRun--
		default:
			log.Info("schedule missed runs " + where + "; catch_up is off, waiting for the next time")
			fire = false
		}
		s.metrics.ScheduleSkipped(e.repo, e.name, "missed", notRun)
		if notRun > 0 {
			s.skipped(ctx, e, "", "", 0, fmt.Sprintf("%d missed run(s) not made up (the daemon was down; the last was due %s)", notRun, fmtTime(latest, e.loc)))
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
	for _, e := range s.current().list {
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
	s.fireMu.RLock()
	defer s.fireMu.RUnlock()
	e := s.current().byKey[repo+"/"+name]
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
