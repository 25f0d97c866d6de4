package schedule_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"slipway/build/schedule"
	"slipway/configs"
	"slipway/record"
)

// hourly is a config with two schedules that fire every hour from when they
// start; "tweaked" gets other branches and another pipeline in the reloads
// of the tests.
var hourly = appConfig(onMain("same", "@every 1h")) + `
  [[repo.schedule]]
  name = "tweaked"
  cron = "@every 1h"
  branch = %s
  pipeline = %q
`

// An @every schedule shows whether a reload kept a schedule's place: started
// fresh at the reload, it would fire an hour after the reload instead of on
// the hour.
func TestReloadKeepsTheTimingOfAnUnchangedSchedule(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.repo("app")
	mainTip := r.commit("main")
	devTip := r.commit("dev")
	s, clock := e.startAt(utc("2025-01-01T00:00:00Z"), fmt.Sprintf(hourly, `"main"`, "nightly"))

	clock.advanceTo(t, utc("2025-01-01T00:40:00Z"))
	if err := s.Reload(t.Context(), e.config(fmt.Sprintf(hourly, `["main", "dev"]`, "integration"))); err != nil {
		t.Fatal(err)
	}
	st, err := s.List(t.Context(), "app")
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range st {
		if want := utc("2025-01-01T01:00:00Z"); !x.Next.Equal(want) {
			t.Errorf("after the reload %s next = %s, want %s as before it", x.Name, x.Next, want)
		}
	}
	if len(st) != 2 || st[1].Pipeline != "integration" || strings.Join(st[1].Branches, ",") != "main,dev" {
		t.Errorf("List after the reload = %+v; want tweaked with pipeline integration on main and dev", st)
	}

	clock.advanceTo(t, utc("2025-01-01T00:59:59Z"))
	if n := len(e.runs("app", "same")) + len(e.runs("app", "tweaked")); n != 0 {
		t.Fatalf("%d runs before 01:00; the reload made a schedule fire", n)
	}
	clock.advanceTo(t, utc("2025-01-01T01:00:00Z"))
	for _, name := range []string{"same", "tweaked"} {
		if got, want := e.lastFire("app", name), utc("2025-01-01T01:00:00Z"); !got.Equal(want) {
			t.Errorf("%s last fire = %s, want %s: the reload lost its place", name, got, want)
		}
	}
	same := e.runs("app", "same")
	if len(same) != 1 || same[0].Pipeline != "nightly" || same[0].Commit != mainTip {
		t.Errorf("runs of the unchanged schedule = %+v; want one nightly build of main", same)
	}
	// The changed settings apply to the first firing after the reload.
	tweaked := e.runs("app", "tweaked")
	if len(tweaked) != 2 || tweaked[0].Ref != "refs/heads/main" || tweaked[0].Commit != mainTip ||
		tweaked[1].Ref != "refs/heads/dev" || tweaked[1].Commit != devTip ||
		tweaked[0].Pipeline != "integration" || tweaked[1].Pipeline != "integration" {
		t.Errorf("runs of the changed schedule = %+v; want integration builds of main and dev", tweaked)
	}
	logs := e.log.String()
	if !strings.Contains(logs, "schedule changed by reload; keeping its timing") ||
		!strings.Contains(logs, "schedule=app/tweaked changed=\"[branch pipeline]\"") {
		t.Errorf("log does not say which settings of app/tweaked changed:\n%s", logs)
	}
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, "by reload") && strings.Contains(line, "schedule=app/same ") {
			t.Errorf("log reports the unchanged schedule as changed: %s", line)
		}
	}
}

func TestReloadChangedSpecFiresOnTheNewSpec(t *testing.T) {
	t.Parallel()
	e := newAppEnv(t)
	cfg := func(spec string) string { return appConfig(onMain("nightly", spec)) }
	s, clock := e.startAt(utc("2025-01-01T00:00:00Z"), cfg("@every 1h"))
	clock.advanceTo(t, utc("2025-01-01T00:20:00Z"))
	if err := s.Reload(t.Context(), e.config(cfg("@every 10s"))); err != nil {
		t.Fatal(err)
	}

	// Fresh from the reload: counted from 00:00 the new spec would have
	// missed 120 instants and fire at once.
	clock.advanceTo(t, utc("2025-01-01T00:20:09Z"))
	if runs := e.runs("app", "nightly"); len(runs) != 0 {
		t.Fatalf("runs before 00:20:10 = %+v; want none", runs)
	}
	clock.advanceTo(t, utc("2025-01-01T00:20:10Z"))
	runs := e.runs("app", "nightly")
	if len(runs) != 1 || runs[0].State != record.StateQueued {
		t.Fatalf("runs at 00:20:10 = %+v; want one queued, ten seconds after the reload", runs)
	}
	if got, want := e.lastFire("app", "nightly"), utc("2025-01-01T00:20:10Z"); !got.Equal(want) {
		t.Errorf("last fire = %s, want %s", got, want)
	}
	st, err := s.List(t.Context(), "app")
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 1 || st[0].Spec != "@every 10s" || !st[0].Next.Equal(utc("2025-01-01T00:20:20Z")) {
		t.Errorf("List = %+v; want @every 10s next at 00:20:20", st)
	}
	// And not on the old one: nothing more at 01:00 than every ten seconds
	// gives (one queued, the rest skipped as overlaps).
	clock.advanceTo(t, utc("2025-01-01T00:21:00Z"))
	if runs := e.runs("app", "nightly"); len(runs) != 6 {
		t.Errorf("runs by 00:21:00 = %d, want 6 (every ten seconds from 00:20:10)", len(runs))
	}
	if logs := e.log.String(); !strings.Contains(logs, "schedule spec changed by reload; starting fresh") ||
		!strings.Contains(logs, `was="CRON_TZ=UTC @every 1h" spec="CRON_TZ=UTC @every 10s"`) {
		t.Errorf("log does not say the spec changed:\n%s", logs)
	}
}

// A change of the server's default zone changes when "0 2 * * *" fires: it
// counts as a changed spec.
func TestReloadZoneChangeIsASpecChange(t *testing.T) {
	t.Parallel()
	e := newAppEnv(t)
	s, clock := e.startAt(utc("2025-01-01T00:00:00Z"), dailyUTC("true"))
	st, err := s.List(t.Context(), "app")
	if err != nil || len(st) != 1 || !st[0].Next.Equal(utc("2025-01-01T02:00:00Z")) {
		t.Fatalf("List = %+v, %v; want next at 02:00 UTC", st, err)
	}
	cfg := e.config(dailyUTC("true"))
	cfg.Timezone = "America/New_York" // what a reloaded file with that zone parses to
	if err := s.Reload(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	clock.advanceTo(t, utc("2025-01-01T06:59:00Z"))
	if runs := e.runs("app", "nightly"); len(runs) != 0 {
		t.Fatalf("fired at 02:00 UTC after the zone moved to New York: %+v", runs)
	}
	clock.advanceTo(t, utc("2025-01-01T07:00:00Z"))
	if runs := e.runs("app", "nightly"); len(runs) != 1 {
		t.Fatalf("runs at 02:00 New York time = %+v; want 1", runs)
	}
}

var threeSchedules = appConfig(onMain("nightly", "0 2 * * *"), onMain("old", "0 3 * * *"), onMain("weekly", "0 4 * * 0"))

func TestReloadRemovedScheduleIsForgottenAndItsQueuedRunsCancelled(t *testing.T) {
	t.Parallel()
	e := newAppEnv(t)
	s, clock := e.startAt(utc("2025-01-01T00:00:00Z"), threeSchedules) // a Wednesday
	clock.advanceTo(t, utc("2025-01-01T03:30:00Z"))
	// weekly never fired, but was run by hand: the store remembers no
	// fire of it, and still its queued run must go with it.
	if _, err := s.RunNow(t.Context(), "app", "weekly", "alice"); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"nightly", "old", "weekly"} {
		if runs := e.runs("app", name); len(runs) != 1 || runs[0].State != record.StateQueued {
			t.Fatalf("%s before the reload: %+v; want one queued run", name, runs)
		}
	}

	if err := s.Reload(t.Context(), e.config(appConfig(onMain("nightly", "0 2 * * *")))); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"old", "weekly"} {
		runs := e.runs("app", name)
		if len(runs) != 1 || runs[0].State != record.StateCancelled || !strings.Contains(runs[0].Reason, "removed from the config") {
			t.Errorf("queued run of the removed schedule %s = %+v; want cancelled as removed", name, runs)
		}
		if !e.lastFire("app", name).IsZero() {
			t.Errorf("the removed schedule %s is still remembered", name)
		}
		if _, err := s.RunNow(t.Context(), "app", name, "alice"); !errors.Is(err, schedule.ErrUnknownSchedule) {
			t.Errorf("RunNow of the removed schedule %s: err = %v, want ErrUnknownSchedule", name, err)
		}
	}
	if runs := e.runs("app", "nightly"); len(runs) != 1 || runs[0].State != record.StateQueued {
		t.Errorf("the kept schedule's run = %+v; want still queued", runs)
	}
	st, err := s.List(t.Context(), "")
	if err != nil || len(st) != 1 || st[0].Name != "nightly" {
		t.Errorf("List = %+v, %v; want nightly alone", st, err)
	}
	logs := e.log.String()
	for _, want := range []string{"schedule=app/old cancelled=1", "schedule=app/weekly cancelled=1"} {
		if !strings.Contains(logs, `msg="schedule removed from the config; forgot it and cancelled its queued runs" `+want) {
			t.Errorf("log lacks the removal of %s:\n%s", want, logs)
		}
	}

	// The next night only nightly fires (it is skipped: its run is still
	// queued, which is a firing all the same).
	clock.advanceTo(t, utc("2025-01-02T05:00:00Z"))
	if n := len(e.runs("app", "old")); n != 1 {
		t.Errorf("the removed schedule has %d runs after the next night; want its one cancelled run", n)
	}
	if !e.lastFire("app", "old").IsZero() {
		t.Error("the removed schedule fired again")
	}
	if got, want := e.lastFire("app", "nightly"), utc("2025-01-02T02:00:00Z"); !got.Equal(want) {
		t.Errorf("nightly last fire = %s, want %s", got, want)
	}
}

func TestReloadAddedScheduleFires(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tip := e.repo("app").commit("main")
	nightly := dailyUTC("true")
	s, clock := e.startAt(utc("2025-01-01T00:00:00Z"), nightly)
	clock.advanceTo(t, utc("2025-01-01T00:10:00Z"))
	if err := s.Reload(t.Context(), e.config(nightly+onMain("often", "@every 30s", `pipeline = "build"`))); err != nil {
		t.Fatal(err)
	}
	clock.advanceTo(t, utc("2025-01-01T00:10:29Z"))
	if runs := e.runs("app", "often"); len(runs) != 0 {
		t.Fatalf("the added schedule fired early: %+v", runs)
	}
	clock.advanceTo(t, utc("2025-01-01T00:10:30Z"))
	runs := e.runs("app", "often")
	if len(runs) != 1 || runs[0].State != record.StateQueued || runs[0].Commit != tip || runs[0].Pipeline != "build" {
		t.Fatalf("runs of the added schedule = %+v; want one queued build of %s at 00:10:30", runs, tip)
	}
	if runs := e.runs("app", "nightly"); len(runs) != 0 {
		t.Errorf("the schedule that was there already fired: %+v", runs)
	}
	if logs := e.log.String(); !strings.Contains(logs, `msg="schedule added by reload; starting fresh" schedule=app/often`) {
		t.Errorf("log does not say the schedule was added:\n%s", logs)
	}
}

// Before Start, Reload only replaces the schedules; Start's reconcile then
// forgets in the store what the replaced config had and the new one lacks.
func TestReloadBeforeStart(t *testing.T) {
	t.Parallel()
	e := newAppEnv(t)
	first, clock := e.startAt(utc("2025-01-01T00:00:00Z"), threeSchedules)
	clock.advanceTo(t, utc("2025-01-01T03:30:00Z"))
	if err := first.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}

	clock = newFakeClock(utc("2025-01-01T12:00:00Z"))
	s := e.newScheduler(e.config(threeSchedules), clock, e.st)
	if err := s.Reload(t.Context(), e.config(appConfig(onMain("nightly", "0 2 * * *")))); err != nil {
		t.Fatal(err)
	}
	if !e.lastFire("app", "old").Equal(utc("2025-01-01T03:00:00Z")) {
		t.Fatal("Reload before Start touched the store")
	}
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if runs := e.runs("app", "old"); len(runs) != 1 || runs[0].State != record.StateCancelled || !e.lastFire("app", "old").IsZero() {
		t.Errorf("old after Start = %+v, last fire %s; want its run cancelled and it forgotten", runs, e.lastFire("app", "old"))
	}
	st, err := s.List(t.Context(), "")
	if err != nil || len(st) != 1 || st[0].Name != "nightly" || !st[0].Next.Equal(utc("2025-01-02T02:00:00Z")) {
		t.Errorf("List = %+v, %v; want nightly alone, next at 02:00 from its last fire", st, err)
	}
}

func TestReloadAfterShutdown(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s, _ := e.startAt(utc("2025-01-01T00:00:00Z"), dailyUTC("true"))
	if err := s.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(t.Context(), e.config(threeSchedules)); !errors.Is(err, schedule.ErrStopped) {
		t.Errorf("Reload after Shutdown: err = %v, want ErrStopped", err)
	}
	if st, err := s.List(t.Context(), ""); err != nil || len(st) != 1 {
		t.Errorf("List after a refused Reload = %+v, %v; want the one schedule as before", st, err)
	}
}

// configs refuses bad specs, so only a caller that builds a Config by hand
// can pass one; Reload still refuses it whole.
func TestReloadRefusesABadSpecAndChangesNothing(t *testing.T) {
	t.Parallel()
	e := newAppEnv(t)
	s, clock := e.startAt(utc("2025-01-01T00:00:00Z"), dailyUTC("true"))
	bad := e.config(threeSchedules)
	bad.Repos[0].Schedules[1].Cron = "at two"
	err := s.Reload(t.Context(), bad)
	if err == nil || !strings.Contains(err.Error(), `schedule "old" of "app"`) || !strings.Contains(err.Error(), "at two") {
		t.Fatalf("Reload with a bad spec: err = %v; want one naming schedule old of app and its spec", err)
	}
	st, err := s.List(t.Context(), "")
	if err != nil || len(st) != 1 || st[0].Spec != "0 2 * * *" {
		t.Errorf("List = %+v, %v; want the schedules as before", st, err)
	}
	clock.advanceTo(t, utc("2025-01-01T03:30:00Z"))
	if runs := e.runs("app", "nightly"); len(runs) != 1 {
		t.Errorf("nightly runs = %+v; want the one at 02:00 as before", runs)
	}
	if runs := e.runs("app", "old"); len(runs) != 0 {
		t.Errorf("a schedule of the refused config fired: %+v", runs)
	}
}

// A reload that removes a schedule while its firing is in flight waits for
// it: had it forgotten the schedule first, the firing would then record it
// again, with a queued run nobody would cancel.
func TestReloadWaitsForTheFiringInFlight(t *testing.T) {
	t.Parallel()
	for _, by := range []string{"timer", "hand"} {
		t.Run(by, func(t *testing.T) {
			t.Parallel()
			e := newAppEnv(t)
			bs := newBlockingStore(e.st)
			clock := newFakeClock(utc("2025-01-01T01:59:00Z"))
			s := e.startOn(e.config(threeSchedules), clock, bs)
			if by == "timer" {
				clock.step(t) // 02:00: nightly fires
			} else {
				go func() {
					if _, err := s.RunNow(context.Background(), "app", "nightly", "alice"); err != nil {
						t.Errorf("RunNow: %v", err)
					}
				}()
			}
			<-bs.entered

			reloaded := make(chan error, 1)
			go func() {
				reloaded <- s.Reload(context.Background(), e.config(strings.Replace(threeSchedules, `name = "nightly"`, `name = "renamed"`, 1)))
			}()
			select {
			case err := <-reloaded:
				t.Fatalf("Reload returned (%v) while a firing was in flight", err)
			default:
			}
			close(bs.release)
			if err := <-reloaded; err != nil {
				t.Fatal(err)
			}
			runs := e.runs("app", "nightly")
			if len(runs) != 1 || runs[0].State != record.StateCancelled {
				t.Fatalf("the run of the firing in flight = %+v; want it recorded, then cancelled by the reload", runs)
			}
			if !e.lastFire("app", "nightly").IsZero() {
				t.Error("the firing in flight recorded the removed schedule after the reload forgot it")
			}
		})
	}
}

// Reloads, firings, runs by hand and listings at once: the race detector
// watches, and at the end the store agrees with the last reload.
func TestReloadConcurrentWithFiringsAndRunNow(t *testing.T) {
	t.Parallel()
	e := newAppEnv(t)
	clock := newFakeClock(utc("2025-01-01T00:00:00Z"))
	a := appConfig(onMain("a", "@every 10s"), onMain("b", "@every 20s"))
	b := appConfig(onMain("a", "@every 15s", `pipeline = "build"`), onMain("c", "@every 10s"))
	cfgs := [2]*configs.Config{e.config(a), e.config(b)}
	s := e.start(cfgs[0], clock)

	const reloads = 60
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	reloaded := make(chan struct{})
	go func() { // the admin reloading: a, b, a, b, ..., ending on b
		defer close(reloaded)
		for i := range reloads {
			if err := s.Reload(ctx, cfgs[i%2]); err != nil {
				t.Errorf("reload %d: %v", i, err)
				return
			}
		}
	}()
	var wg sync.WaitGroup
	wg.Go(func() { // users running schedules by hand
		for i := 0; ctx.Err() == nil; i++ {
			name := []string{"a", "b", "c"}[i%3]
			_, err := s.RunNow(ctx, "app", name, "alice")
			if err != nil && !errors.Is(err, schedule.ErrUnknownSchedule) && ctx.Err() == nil {
				t.Errorf("RunNow %s: %v", name, err)
				return
			}
		}
	})
	wg.Go(func() { // `schedules`
		for ctx.Err() == nil {
			if _, err := s.List(ctx, ""); err != nil && ctx.Err() == nil {
				t.Errorf("List: %v", err)
				return
			}
		}
	})
	// Time passes while the reloads go on: the timer loop fires.
	at, steps := utc("2025-01-01T00:00:00Z"), 0
	for done := false; !done; steps++ {
		select {
		case <-reloaded:
			done = true
		default:
		}
		at = at.Add(5 * time.Second)
		clock.advanceTo(t, at)
	}
	cancel()
	wg.Wait()
	if t.Failed() {
		return
	}
	t.Logf("%d reloads over %d clock steps; %d runs of a, %d of b, %d of c",
		reloads, steps, len(e.runs("app", "a")), len(e.runs("app", "b")), len(e.runs("app", "c")))

	// The last reload was to b: schedule "b" is forgotten for good,
	// whatever firing of it was in flight when the reload came.
	if !e.lastFire("app", "b").IsZero() {
		t.Error("b is remembered after the reload that removed it")
	}
	for _, r := range e.runs("app", "b") {
		if r.State == record.StateQueued {
			t.Errorf("b has a queued run after the reload that removed it: %+v", r)
		}
	}
	// And the schedules of b keep firing on b's specs.
	aRuns, cRuns := len(e.runs("app", "a")), len(e.runs("app", "c"))
	clock.advanceTo(t, at.Add(time.Minute))
	if n := len(e.runs("app", "a")) - aRuns; n != 4 {
		t.Errorf("a (@every 15s) fired %d times in the minute after the reloads, want 4", n)
	}
	if n := len(e.runs("app", "c")) - cRuns; n != 6 {
		t.Errorf("c (@every 10s) fired %d times in the minute after the reloads, want 6", n)
	}
	if n := len(e.runs("app", "b")); !e.lastFire("app", "b").IsZero() {
		t.Errorf("b fired after its removal (%d runs)", n)
	}
}

// In real time: the timer loop, asleep for up to a minute on the old
// schedules' times, takes up a schedule reloaded to "@every 2s" at once.
func TestReloadTakesEffectAtOnceInRealTime(t *testing.T) {
	t.Parallel()
	e := newAppEnv(t)
	cfg := func(spec string) *configs.Config { return e.config(appConfig(onMain("often", spec))) }
	s := e.start(cfg("@every 1h"), nil)
	reloadAt := time.Now()
	if err := s.Reload(t.Context(), cfg("@every 2s")); err != nil {
		t.Fatal(err)
	}
	// The deadline is far below the minute the loop would otherwise sleep,
	// and loose above the 2 s expected, for a busy machine.
	runs := e.waitRuns("often", 1, 15*time.Second)
	// robfig's @every counts from the whole second, so 1 to 2 s.
	after := runs[0].CreatedAt.Sub(reloadAt)
	t.Logf("first run %s after the reload", after.Round(time.Millisecond))
	if after < time.Second {
		t.Errorf("the first run came %s after the reload; want about 2 s (fresh from the reload)", after)
	}
}
