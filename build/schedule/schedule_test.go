package schedule_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"slipway/build/schedule"
	"slipway/record"
	"slipway/store"
)

var nightlyNY = appConfig(onMain("nightly", "CRON_TZ=America/New_York 0 2 * * *"))

func TestFiresAtTheInstantInItsZone(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		start      time.Time
		fire, next time.Time
	}{
		// 02:00 EST is 07:00 UTC; in summer 02:00 EDT is 06:00 UTC.
		{"winter", utc("2025-01-15T06:00:00Z"), utc("2025-01-15T07:00:00Z"), utc("2025-01-16T07:00:00Z")},
		{"summer", utc("2025-07-15T05:00:00Z"), utc("2025-07-15T06:00:00Z"), utc("2025-07-16T06:00:00Z")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			r := e.repo("app")
			r.commit("main")
			s, clock := e.startAt(tc.start, nightlyNY)

			// The pipeline is read from the tip when the schedule fires, not
			// when the daemon started.
			tipAtFire := r.commit("main")

			clock.advanceTo(t, tc.fire.Add(-time.Second))
			if runs := e.runs("app", "nightly"); len(runs) != 0 {
				t.Fatalf("fired before its time: %+v", runs)
			}
			clock.advanceTo(t, tc.fire)
			runs := e.runs("app", "nightly")
			if len(runs) != 1 {
				t.Fatalf("want one run at %s, got %+v", tc.fire, runs)
			}
			b := runs[0]
			if b.State != record.StateQueued || b.Trigger != record.TriggerSchedule || b.Schedule != "nightly" ||
				b.Pipeline != "nightly" || b.Ref != "refs/heads/main" || b.Commit != tipAtFire {
				t.Errorf("scheduled build = %+v; want queued nightly schedule build of main at %s", b, tipAtFire)
			}
			if got := e.lastFire("app", "nightly"); !got.Equal(tc.fire) {
				t.Errorf("last fire = %s, want %s", got, tc.fire)
			}
			if n := e.waker.n.Load(); n != 1 {
				t.Errorf("workers woken %d times, want 1", n)
			}

			st, err := s.List(t.Context(), "app")
			if err != nil {
				t.Fatal(err)
			}
			if len(st) != 1 || st[0].Zone != "America/New_York" || !st[0].Next.Equal(tc.next) ||
				st[0].Next.Location().String() != "America/New_York" || st[0].LastRun == nil || st[0].LastRun.ID != b.ID {
				t.Errorf("List = %+v; want next %s in America/New_York and last run %d", st, tc.next, b.ID)
			}
			if st[0].Next.Hour() != 2 {
				t.Errorf("next fire shows %s; want 02:00 in the schedule's zone", st[0].Next)
			}
		})
	}
}

func TestCatchUpAfterDowntime(t *testing.T) {
	t.Parallel()
	for _, catchUp := range []bool{true, false} {
		t.Run(map[bool]string{true: "on", false: "off"}[catchUp], func(t *testing.T) {
			e := newEnv(t)
			r := e.repo("app")
			r.commit("main")
			cfg := e.config(dailyUTC(map[bool]string{true: "true", false: "false"}[catchUp]))

			// The daemon runs over the first night; a worker builds the run.
			clock := newFakeClock(utc("2025-01-01T01:00:00Z"))
			first := e.start(cfg, clock)
			clock.advanceTo(t, utc("2025-01-01T03:00:00Z"))
			runs := e.runs("app", "nightly")
			if len(runs) != 1 {
				t.Fatalf("first night: %d runs, want 1", len(runs))
			}
			e.finish(runs[0].ID, record.StatePassed)
			if err := first.Shutdown(t.Context()); err != nil {
				t.Fatal(err)
			}

			// It is down over three nights and comes back mid-morning.
			clock = newFakeClock(utc("2025-01-04T10:00:00Z"))
			e.start(cfg, clock)
			runs = e.runs("app", "nightly")
			logs := e.log.String()
			if catchUp {
				if len(runs) != 2 || runs[1].State != record.StateQueued {
					t.Fatalf("after downtime with catch_up: runs = %+v; want exactly one new queued run", runs)
				}
				if got, want := e.lastFire("app", "nightly"), utc("2025-01-04T02:00:00Z"); !got.Equal(want) {
					t.Errorf("last fire = %s, want the latest missed instant %s", got, want)
				}
				if !strings.Contains(logs, "missed runs while down; catching up once") || !strings.Contains(logs, "missed=3") {
					t.Errorf("log does not say it missed 3 runs and caught up once:\n%s", logs)
				}
				e.finish(runs[1].ID, record.StatePassed)
			} else {
				if len(runs) != 1 {
					t.Fatalf("after downtime without catch_up: runs = %+v; want none new", runs)
				}
				if got, want := e.lastFire("app", "nightly"), utc("2025-01-01T02:00:00Z"); !got.Equal(want) {
					t.Errorf("last fire = %s, want it unchanged at %s", got, want)
				}
				if !strings.Contains(logs, "catch_up is off, waiting for the next time") || !strings.Contains(logs, "missed=3") {
					t.Errorf("log does not say it missed 3 runs and waits:\n%s", logs)
				}
			}

			// Either way the next night fires as usual, once.
			want := len(runs) + 1
			clock.advanceTo(t, utc("2025-01-05T03:00:00Z"))
			if runs := e.runs("app", "nightly"); len(runs) != want || runs[len(runs)-1].State != record.StateQueued {
				t.Fatalf("next night: runs = %+v; want %d, the last queued", runs, want)
			}
			if got, want := e.lastFire("app", "nightly"), utc("2025-01-05T02:00:00Z"); !got.Equal(want) {
				t.Errorf("last fire = %s, want %s", got, want)
			}
		})
	}
}

func TestOverlappingRunIsSkipped(t *testing.T) {
	t.Parallel()
	e := newAppEnv(t)
	_, clock := e.startAt(utc("2025-01-01T00:00:00Z"), dailyUTC("true"))

	clock.advanceTo(t, utc("2025-01-02T03:00:00Z")) // two nights; nobody builds the first run
	runs := e.runs("app", "nightly")
	if len(runs) != 2 {
		t.Fatalf("runs = %+v; want 2", runs)
	}
	if runs[0].State != record.StateQueued {
		t.Errorf("first run is %s, want queued", runs[0].State)
	}
	if runs[1].State != record.StateSkipped || !strings.Contains(runs[1].Reason, "still queued") {
		t.Errorf("second run = %s %q; want skipped because the first is still queued", runs[1].State, runs[1].Reason)
	}
	if n := e.waker.n.Load(); n != 1 {
		t.Errorf("workers woken %d times; want 1 (a skipped run wakes nobody)", n)
	}
	if !strings.Contains(e.log.String(), "scheduled build skipped") {
		t.Errorf("the skip is not logged:\n%s", e.log.String())
	}
}

func TestOnlyIfChanged(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.repo("app")
	first := r.commit("main")
	_, clock := e.startAt(utc("2024-12-31T12:00:00Z"), appConfig(onMain("nightly", "@daily", "only_if_changed = true")))

	clock.advanceTo(t, utc("2025-01-01T12:00:00Z"))
	runs := e.runs("app", "nightly")
	if len(runs) != 1 || runs[0].Commit != first {
		t.Fatalf("night 1: %+v", runs)
	}
	e.finish(runs[0].ID, record.StatePassed)

	clock.advanceTo(t, utc("2025-01-02T12:00:00Z"))
	runs = e.runs("app", "nightly")
	if len(runs) != 2 || runs[1].State != record.StateSkipped || !strings.Contains(runs[1].Reason, "unchanged") {
		t.Fatalf("night 2 on the same tip: %+v; want skipped as unchanged", runs)
	}

	second := r.commit("main")
	clock.advanceTo(t, utc("2025-01-03T12:00:00Z"))
	runs = e.runs("app", "nightly")
	if len(runs) != 3 || runs[2].State != record.StateQueued || runs[2].Commit != second {
		t.Fatalf("night 3 on a new tip: %+v; want queued on %s", runs, second)
	}
}

func TestSpringForwardNightSkipsTheMissingHour(t *testing.T) {
	t.Parallel()
	// robfig/cron documents that "jobs scheduled during daylight-savings
	// leap-ahead transitions will not be run": on 2025-03-09 New York has
	// no 02:30, so that night has no run.
	e := newAppEnv(t)
	ny := mustZone(t, "America/New_York")
	_, clock := e.startAt(time.Date(2025, 3, 8, 12, 0, 0, 0, ny), appConfig(onMain("nightly", "CRON_TZ=America/New_York 30 2 * * *")))

	clock.advanceTo(t, time.Date(2025, 3, 9, 12, 0, 0, 0, ny))
	if runs := e.runs("app", "nightly"); len(runs) != 0 {
		t.Fatalf("ran on the spring-forward night: %+v", runs)
	}
	clock.advanceTo(t, time.Date(2025, 3, 10, 12, 0, 0, 0, ny))
	if runs := e.runs("app", "nightly"); len(runs) != 1 {
		t.Fatalf("night after: runs = %+v; want 1", runs)
	}
	if got, want := e.lastFire("app", "nightly"), utc("2025-03-10T06:30:00Z"); !got.Equal(want) {
		t.Errorf("last fire = %s, want 02:30 EDT = %s", got, want)
	}
}

func TestFallBackNightFiresOnce(t *testing.T) {
	t.Parallel()
	// On 2025-11-02 New York shows 01:00-01:59 twice. A 01:30 job runs at
	// the first 01:30 (EDT) only; a 02:00 job, outside the repeated hour,
	// runs at 02:00 EST.
	for _, tc := range []struct {
		spec string
		fire time.Time
	}{
		{"30 1 * * *", utc("2025-11-02T05:30:00Z")},
		{"0 2 * * *", utc("2025-11-02T07:00:00Z")},
	} {
		t.Run(tc.spec, func(t *testing.T) {
			e := newAppEnv(t)
			ny := mustZone(t, "America/New_York")
			_, clock := e.startAt(time.Date(2025, 11, 1, 12, 0, 0, 0, ny), appConfig(onMain("nightly", "CRON_TZ=America/New_York "+tc.spec)))

			clock.advanceTo(t, time.Date(2025, 11, 2, 12, 0, 0, 0, ny))
			runs := e.runs("app", "nightly")
			// A second firing would be recorded too (as skipped, since the
			// first run is still queued), so one build means one firing.
			if len(runs) != 1 {
				t.Fatalf("fall-back night: runs = %+v; want exactly 1", runs)
			}
			if got := e.lastFire("app", "nightly"); !got.Equal(tc.fire) {
				t.Errorf("last fire = %s, want %s", got, tc.fire)
			}
			e.finish(runs[0].ID, record.StatePassed)
			clock.advanceTo(t, time.Date(2025, 11, 3, 12, 0, 0, 0, ny))
			if runs := e.runs("app", "nightly"); len(runs) != 2 {
				t.Fatalf("night after: runs = %+v; want 2", runs)
			}
		})
	}
}

func TestRunNow(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tip := e.repo("app").commit("main")
	s, _ := e.startAt(utc("2025-01-01T12:00:00Z"), appConfig(onMain("nightly", "0 2 * * *", "only_if_changed = true")))

	bs, err := s.RunNow(t.Context(), "app", "nightly", "alice")
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 1 || bs[0].State != record.StateQueued || bs[0].Trigger != record.TriggerManual ||
		bs[0].Schedule != "nightly" || bs[0].Commit != tip || bs[0].Pipeline != "nightly" {
		t.Fatalf("RunNow = %+v; want one queued manual build of the schedule on %s", bs, tip)
	}
	if n := e.waker.n.Load(); n != 1 {
		t.Errorf("workers woken %d times, want 1", n)
	}
	if got := e.lastFire("app", "nightly"); !got.IsZero() {
		t.Errorf("a run by hand moved the schedule's last fire to %s", got)
	}

	// No overlap, by hand too.
	bs, err = s.RunNow(t.Context(), "app", "nightly", "alice")
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 1 || bs[0].State != record.StateSkipped || !strings.Contains(bs[0].Reason, "still queued") {
		t.Fatalf("second RunNow while the first is queued = %+v; want skipped", bs)
	}

	// only_if_changed does not stop a person who asks for a run.
	e.finish(e.runs("app", "nightly")[0].ID, record.StatePassed)
	bs, err = s.RunNow(t.Context(), "app", "nightly", "alice")
	if err != nil || len(bs) != 1 || bs[0].State != record.StateQueued {
		t.Fatalf("RunNow on an unchanged tip = %+v, %v; want queued", bs, err)
	}

	if _, err := s.RunNow(t.Context(), "app", "weekly", "alice"); !errors.Is(err, schedule.ErrUnknownSchedule) {
		t.Errorf("RunNow of an unknown schedule: err = %v, want ErrUnknownSchedule", err)
	}
	if _, err := s.RunNow(t.Context(), "other", "nightly", "alice"); !errors.Is(err, schedule.ErrUnknownSchedule) {
		t.Errorf("RunNow in an unknown repo: err = %v, want ErrUnknownSchedule", err)
	}
}

func TestMissingBranchIsAnErrorBuildAndOthersKeepFiring(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tip := e.repo("app").commit("main")
	s, clock := e.startAt(utc("2025-01-01T00:00:00Z"), `
[[repo]]
name = "app"

  [[repo.schedule]]
  name = "dev"
  cron = "0 2 * * *"
  branch = ["dev", "main"]
`+onMain("nightly", "0 2 * * *")+`
[[repo]]
name = "ghost"
`+onMain("nightly", "0 2 * * *"))

	for night, at := range []time.Time{utc("2025-01-01T03:00:00Z"), utc("2025-01-02T03:00:00Z")} {
		clock.advanceTo(t, at)
		dev := e.runs("app", "dev")
		if len(dev) != 2*(night+1) {
			t.Fatalf("night %d: dev runs = %+v", night+1, dev)
		}
		bad := dev[len(dev)-2]
		if bad.Ref != "refs/heads/dev" || bad.State != record.StateError || bad.Reason != "branch dev does not exist" {
			t.Errorf("night %d: build of the missing branch = %+v; want error \"branch dev does not exist\"", night+1, bad)
		}
		if good := dev[len(dev)-1]; good.Ref != "refs/heads/main" || good.Commit != tip {
			t.Errorf("night %d: the existing branch of the same schedule = %+v", night+1, good)
		}
		if n := len(e.runs("app", "nightly")); n != night+1 {
			t.Errorf("night %d: the healthy schedule ran %d times", night+1, n)
		}
		ghost := e.runs("ghost", "nightly")
		if len(ghost) != night+1 || ghost[night].State != record.StateError || !strings.Contains(ghost[night].Reason, "repository ghost does not exist") {
			t.Errorf("night %d: ghost repo runs = %+v", night+1, ghost)
		}
		// Finish the good runs so the next night is not an overlap.
		e.finish(dev[len(dev)-1].ID, record.StatePassed)
		nightly := e.runs("app", "nightly")
		e.finish(nightly[len(nightly)-1].ID, record.StatePassed)
	}
	st, err := s.List(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 3 || st[0].Name != "dev" || st[1].Name != "nightly" || st[2].Repo != "ghost" {
		t.Errorf("List = %+v; want app/dev, app/nightly, ghost/nightly", st)
	}
}

func TestRemovedRenamedAndChangedSchedules(t *testing.T) {
	t.Parallel()
	e := newAppEnv(t)
	first, clock := e.startAt(utc("2025-01-01T00:00:00Z"), appConfig(onMain("nightly", "0 2 * * *"), onMain("old", "0 3 * * *")))
	clock.advanceTo(t, utc("2025-01-01T04:00:00Z"))
	if len(e.runs("app", "nightly")) != 1 || len(e.runs("app", "old")) != 1 {
		t.Fatalf("first day: nightly %+v, old %+v", e.runs("app", "nightly"), e.runs("app", "old"))
	}
	if err := first.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}

	// Two days later: "old" is renamed "early" and nightly moves to 03:00.
	s, _ := e.startAt(utc("2025-01-03T12:00:00Z"), appConfig(onMain("nightly", "0 3 * * *"), onMain("early", "0 3 * * *")))

	old := e.runs("app", "old")
	if len(old) != 1 || old[0].State != record.StateCancelled || !strings.Contains(old[0].Reason, "removed") {
		t.Errorf("queued run of the removed schedule = %+v; want cancelled", old)
	}
	if !e.lastFire("app", "old").IsZero() {
		t.Error("the removed schedule is still remembered")
	}
	if !e.lastFire("app", "early").IsZero() || len(e.runs("app", "early")) != 0 {
		t.Error("the renamed schedule did not start fresh")
	}
	// A changed spec starts fresh too: no catch-up for the missed nights.
	if runs := e.runs("app", "nightly"); len(runs) != 1 || runs[0].State != record.StateQueued {
		t.Errorf("nightly after its spec changed = %+v; want the one queued run, not a catch-up", runs)
	}
	logs := e.log.String()
	for _, want := range []string{"schedule removed from the config", "schedule=app/old", "schedule is new or never fired; starting fresh", "schedule spec changed; starting fresh"} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
	st, err := s.List(t.Context(), "app")
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range st {
		if want := utc("2025-01-04T03:00:00Z"); !x.Next.Equal(want) {
			t.Errorf("%s next = %s, want %s", x.Name, x.Next, want)
		}
	}
}

// The one test in real time: an @every 1s schedule fires within seconds,
// and its second firing meets the first run still queued.
func TestEverySecondInRealTime(t *testing.T) {
	t.Parallel()
	e := newAppEnv(t)
	s := e.start(e.config(appConfig(onMain("often", "@every 1s"))), nil)

	runs := e.waitRuns("often", 2, 8*time.Second)
	if runs[0].State != record.StateQueued || runs[1].State != record.StateSkipped {
		t.Errorf("runs = %s, %s; want queued, then skipped as an overlap", runs[0].State, runs[1].State)
	}
	// Loose bounds: the machine running the tests may be busy.
	if gap := runs[1].CreatedAt.Sub(runs[0].CreatedAt); gap < 100*time.Millisecond || gap > 4*time.Second {
		t.Errorf("the two firings were %s apart; want about a second", gap)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RunNow(t.Context(), "app", "often", "alice"); !errors.Is(err, schedule.ErrStopped) {
		t.Errorf("RunNow after Shutdown: err = %v, want ErrStopped", err)
	}
}

// blockingStore holds FireSchedule until released, to catch the scheduler
// in the middle of an enqueue.
type blockingStore struct {
	*store.Store
	entered chan struct{}
	release chan struct{}
}

// newBlockingStore is a blockingStore on st, not yet released.
func newBlockingStore(st *store.Store) *blockingStore {
	return &blockingStore{Store: st, entered: make(chan struct{}, 1), release: make(chan struct{})}
}

func (b *blockingStore) FireSchedule(ctx context.Context, f record.ScheduleFire) ([]record.Build, error) {
	b.entered <- struct{}{}
	select {
	case <-b.release:
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
	return b.Store.FireSchedule(ctx, f)
}

func TestShutdownWaitsForTheEnqueueInFlight(t *testing.T) {
	t.Parallel()
	e := newAppEnv(t)
	bs := newBlockingStore(e.st)
	clock := newFakeClock(utc("2025-01-01T01:59:00Z"))
	s := e.startOn(e.config(dailyUTC("true")), clock, bs)
	if at := clock.step(t); !at.Equal(utc("2025-01-01T02:00:00Z")) {
		t.Fatalf("the scheduler woke at %s, want at the fire time", at)
	}
	<-bs.entered

	done := make(chan error, 1)
	go func() { done <- s.Shutdown(context.Background()) }()
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned (%v) while an enqueue was in flight", err)
	default:
	}
	close(bs.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if runs := e.runs("app", "nightly"); len(runs) != 1 || runs[0].State != record.StateQueued {
		t.Fatalf("after Shutdown: runs = %+v; want the in-flight run recorded", runs)
	}
}

func TestShutdownIsBoundedByItsContext(t *testing.T) {
	t.Parallel()
	e := newAppEnv(t)
	bs := newBlockingStore(e.st)
	s := e.startOn(e.config(dailyUTC("true")), newFakeClock(utc("2025-01-01T12:00:00Z")), bs)
	runErr := make(chan error, 1)
	go func() {
		_, err := s.RunNow(context.Background(), "app", "nightly", "alice")
		runErr <- err
	}()
	<-bs.entered // stays blocked: release is never closed

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Shutdown(ctx) }()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Shutdown with its context cancelled = %v, want context.Canceled", err)
	}
	if err := <-runErr; !errors.Is(err, schedule.ErrStopped) {
		t.Errorf("the firing in flight ended with %v; want it cancelled with ErrStopped", err)
	}
	if runs := e.runs("app", "nightly"); len(runs) != 0 {
		t.Errorf("runs = %+v; want none recorded", runs)
	}
}
