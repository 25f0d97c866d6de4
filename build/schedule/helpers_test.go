package schedule_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"slipway/build/schedule"
	"slipway/configs"
	"slipway/internal/testutil"
	"slipway/record"
	"slipway/store"
)

// fakeClock is a Clock whose time moves only when the test says so.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []waiter
	added   chan struct{}
}

type waiter struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock(now time.Time) *fakeClock {
	return &fakeClock{now: now, added: make(chan struct{}, 1)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// After drops the waiter of the previous call, which the Scheduler has
// abandoned (see schedule.Clock), so that only the wait it is in counts.
func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	c.mu.Lock()
	c.waiters = c.waiters[:0]
	if d <= 0 {
		ch <- c.now
	} else {
		c.waiters = append(c.waiters, waiter{c.now.Add(d), ch})
	}
	c.mu.Unlock()
	select {
	case c.added <- struct{}{}:
	default:
	}
	return ch
}

// waitIdle waits until the scheduler's loop is blocked on the clock, which
// is when it has finished with everything that was due.
func (c *fakeClock) waitIdle(t *testing.T) {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		n := len(c.waiters)
		c.mu.Unlock()
		if n > 0 {
			return
		}
		select {
		case <-c.added:
		case <-deadline.C:
			t.Fatal("the scheduler never went back to waiting on the clock")
		}
	}
}

// advanceTo moves the clock to target, firing the scheduler's timers on the
// way in order and letting it finish each before moving on.
func (c *fakeClock) advanceTo(t *testing.T, target time.Time) {
	t.Helper()
	for {
		c.waitIdle(t)
		c.mu.Lock()
		i := 0
		for j, w := range c.waiters {
			if w.at.Before(c.waiters[i].at) {
				i = j
			}
		}
		w := c.waiters[i]
		if w.at.After(target) {
			c.now = target
			c.mu.Unlock()
			return
		}
		c.now = w.at
		c.waiters = append(c.waiters[:i], c.waiters[i+1:]...)
		w.ch <- w.at
		c.mu.Unlock()
	}
}

// step fires the scheduler's pending timer, moving the clock to it, and
// returns without waiting for the scheduler to finish what is due.
func (c *fakeClock) step(t *testing.T) time.Time {
	t.Helper()
	c.waitIdle(t)
	c.mu.Lock()
	defer c.mu.Unlock()
	w := c.waiters[0]
	c.waiters = c.waiters[1:]
	c.now = w.at
	w.ch <- w.at
	return w.at
}

// countWaker counts wake-ups.
type countWaker struct{ n atomic.Int64 }

func (w *countWaker) Wake() { w.n.Add(1) }

// env is a data dir with a real SQLite store and real bare repositories.
type env struct {
	t     *testing.T
	dir   string
	st    *store.Store
	waker *countWaker
	log   *testutil.Buffer
	// metrics, when set, counts what the schedulers of the env do.
	metrics schedule.Metrics
}

func newEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(t.Context(), filepath.Join(dir, "slipway.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if err := os.MkdirAll(filepath.Join(dir, "repos"), 0o755); err != nil {
		t.Fatal(err)
	}
	return &env{t: t, dir: dir, st: st, waker: &countWaker{}, log: &testutil.Buffer{}}
}

// config parses a server config whose data dir is the env's; repos is the
// [[repo]] part.
func (e *env) config(repos string) *configs.Config {
	e.t.Helper()
	text := fmt.Sprintf("data_dir = %q\ntimezone = \"UTC\"\n\n%s", e.dir, repos)
	cfg, err := configs.Parse([]byte(text), "test.toml")
	if err != nil {
		e.t.Fatalf("config:\n%s\n%v", text, err)
	}
	return cfg
}

// newAppEnv is newEnv with repository app, one commit on its main.
func newAppEnv(t *testing.T) *env {
	t.Helper()
	e := newEnv(t)
	e.repo("app").commit("main")
	return e
}

// appConfig is the [[repo]] table of repository app with schedules, each a
// [[repo.schedule]] table (see onMain), for config.
func appConfig(schedules ...string) string {
	return "\n[[repo]]\nname = \"app\"\n" + strings.Join(schedules, "")
}

// onMain is a [[repo.schedule]] table: name fires at cron on branch main,
// with settings, TOML lines, added.
func onMain(name, cron string, settings ...string) string {
	s := fmt.Sprintf("\n  [[repo.schedule]]\n  name = %q\n  cron = %q\n  branch = \"main\"\n", name, cron)
	for _, line := range settings {
		s += "  " + line + "\n"
	}
	return s
}

// dailyUTC is app's schedule "nightly" at 02:00 in the server's zone (UTC)
// with catch_up (true or false).
func dailyUTC(catchUp string) string {
	return appConfig(onMain("nightly", "0 2 * * *", "catch_up = "+catchUp))
}

// startAt starts a scheduler of the config text cfg on a fake clock at
// start; it is shut down when the test ends.
func (e *env) startAt(start time.Time, cfg string) (*schedule.Scheduler, *fakeClock) {
	e.t.Helper()
	clock := newFakeClock(start)
	return e.start(e.config(cfg), clock), clock
}

// start creates and starts a scheduler; it is shut down when the test ends.
func (e *env) start(cfg *configs.Config, clock schedule.Clock) *schedule.Scheduler {
	e.t.Helper()
	return e.startOn(cfg, clock, e.st)
}

// startOn is start on the store st.
func (e *env) startOn(cfg *configs.Config, clock schedule.Clock, st schedule.Store) *schedule.Scheduler {
	e.t.Helper()
	s := e.newScheduler(cfg, clock, st)
	if err := s.Start(e.t.Context()); err != nil {
		e.t.Fatal(err)
	}
	return s
}

func (e *env) newScheduler(cfg *configs.Config, clock schedule.Clock, st schedule.Store) *schedule.Scheduler {
	e.t.Helper()
	s, err := schedule.New(schedule.Options{
		Config: cfg, Store: st, Waker: e.waker, Clock: clock,
		Logger:  slog.New(slog.NewTextHandler(e.log, nil)),
		Metrics: e.metrics,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			e.t.Errorf("shutdown: %v", err)
		}
	})
	return s
}

// repo creates the bare repository name in the env's repos dir, with a
// work tree to commit from.
func (e *env) repo(name string) *repo {
	e.t.Helper()
	bare := filepath.Join(e.dir, "repos", name+".git")
	testutil.Git(e.t, e.dir, "init", "-q", "--bare", bare)
	work := e.t.TempDir()
	testutil.Git(e.t, work, "init", "-q", "-b", "main")
	return &repo{t: e.t, bare: bare, work: work}
}

type repo struct {
	t          *testing.T
	bare, work string
	n          int
}

// commit makes a new commit on branch and pushes it; it returns its id.
func (r *repo) commit(branch string) string {
	r.t.Helper()
	r.n++
	if err := os.WriteFile(filepath.Join(r.work, ".slipway.toml"), fmt.Appendf(nil, "[nightly]\nsteps = [\"true %d\"]\n", r.n), 0o644); err != nil {
		r.t.Fatal(err)
	}
	testutil.Git(r.t, r.work, "checkout", "-q", "-B", branch)
	testutil.Git(r.t, r.work, "add", ".")
	testutil.Git(r.t, r.work, "commit", "-q", "-m", fmt.Sprint("commit ", r.n))
	testutil.Git(r.t, r.work, "push", "-q", r.bare, "HEAD:refs/heads/"+branch)
	return testutil.Git(r.t, r.work, "rev-parse", "HEAD")
}

// runs returns the builds of a schedule, oldest first.
func (e *env) runs(repo, name string) []record.Build {
	e.t.Helper()
	bs, err := e.st.ListScheduleRuns(e.t.Context(), repo, name, 0)
	if err != nil {
		e.t.Fatal(err)
	}
	for i, j := 0, len(bs)-1; i < j; i, j = i+1, j-1 {
		bs[i], bs[j] = bs[j], bs[i]
	}
	return bs
}

// waitRuns polls the store, in real time, until schedule name of app has n
// runs or more, and returns them; it fails the test after timeout.
func (e *env) waitRuns(name string, n int, timeout time.Duration) []record.Build {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	poll := time.NewTicker(20 * time.Millisecond)
	defer poll.Stop()
	var runs []record.Build
	for len(runs) < n {
		if time.Now().After(deadline) {
			e.t.Fatalf("runs of app/%s after %s: %+v; want %d", name, timeout, runs, n)
		}
		<-poll.C
		// Poll the database: it is the only record of what fired.
		runs = e.runs("app", name)
	}
	return runs
}

// lastFire returns the remembered last fire of a schedule (zero if none).
func (e *env) lastFire(repo, name string) time.Time {
	e.t.Helper()
	st, ok, err := e.st.GetLastFire(e.t.Context(), repo, name)
	if err != nil {
		e.t.Fatal(err)
	}
	if !ok {
		return time.Time{}
	}
	return st.LastFire
}

// finish plays a build worker: it claims the queued build and ends it.
func (e *env) finish(id int64, state record.State) {
	e.t.Helper()
	b, ok, err := e.st.ClaimBuild(e.t.Context(), "test-worker")
	if err != nil || !ok {
		e.t.Fatalf("claim build: ok=%v err=%v", ok, err)
	}
	if b.ID != id {
		e.t.Fatalf("claimed build %d, want %d", b.ID, id)
	}
	reason := ""
	if state != record.StatePassed {
		reason = "test"
	}
	if err := e.st.FinishBuild(e.t.Context(), id, state, reason, nil); err != nil {
		e.t.Fatal(err)
	}
}

func mustZone(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}
