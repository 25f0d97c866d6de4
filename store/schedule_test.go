package store

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestLastFireRoundTrip(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	ctx := t.Context()
	if _, ok, err := s.GetLastFire(ctx, "app", "nightly"); ok || err != nil {
		t.Fatalf("a schedule that never fired: %v %v", ok, err)
	}
	zone, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2025, 10, 26, 2, 30, 0, 0, zone) // inside the fall-back hour
	if err := s.SetLastFire(ctx, "app", "nightly", "CRON_TZ=Europe/Berlin 30 2 * * *", at); err != nil {
		t.Fatal(err)
	}
	st, ok, err := s.GetLastFire(ctx, "app", "nightly")
	if err != nil || !ok || !st.LastFire.Equal(at) || st.Spec != "CRON_TZ=Europe/Berlin 30 2 * * *" {
		t.Fatalf("GetLastFire = %+v %v %v", st, ok, err)
	}
	later := at.Add(24 * time.Hour)
	if err := s.SetLastFire(ctx, "app", "nightly", "@daily", later); err != nil {
		t.Fatal(err)
	}
	if err := s.SetLastFire(ctx, "app", "weekly", "@weekly", later); err != nil {
		t.Fatal(err)
	}
	all, err := s.ListScheduleStates(ctx)
	if err != nil || len(all) != 2 || all[0].Name != "nightly" || all[0].Spec != "@daily" || !all[0].LastFire.Equal(later) {
		t.Errorf("ListScheduleStates = %+v, %v", all, err)
	}
	if err := s.SetLastFire(ctx, "app", "x", "@daily", time.Time{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("zero fire time: %v", err)
	}
}

func nightly(at time.Time, onlyIfChanged bool, commit int) ScheduleFire {
	return ScheduleFire{Repo: "app", Name: "nightly", Spec: "@nightly", At: at, OnlyIfChanged: onlyIfChanged,
		Builds: []Build{{Ref: "refs/heads/main", Commit: oid(commit), Pipeline: "nightly"}}}
}

// mustFire records the firing f and returns its builds.
func mustFire(t *testing.T, s *Store, f ScheduleFire) []Build {
	t.Helper()
	bs, err := s.FireSchedule(t.Context(), f)
	if err != nil {
		t.Fatal(err)
	}
	return bs
}

func TestFireScheduleNoOverlap(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	ctx := t.Context()
	day := time.Date(2025, 1, 1, 2, 0, 0, 0, time.UTC)
	first := mustFire(t, s, nightly(day, false, 1))
	if len(first) != 1 || first[0].State != StateQueued || first[0].Trigger != TriggerSchedule || first[0].Schedule != "nightly" || first[0].Repo != "app" {
		t.Fatalf("first run = %+v", first)
	}
	st, _, _ := s.GetLastFire(ctx, "app", "nightly")
	if !st.LastFire.Equal(day) {
		t.Errorf("last fire = %v, want %v", st.LastFire, day)
	}
	active, ok, err := s.ActiveScheduleRun(ctx, "app", "nightly", "refs/heads/main")
	if err != nil || !ok || active.ID != first[0].ID {
		t.Errorf("ActiveScheduleRun = %+v %v %v", active, ok, err)
	}

	// Next night, the first run is still queued: skipped, with the reason.
	second := mustFire(t, s, nightly(day.Add(24*time.Hour), false, 2))
	if second[0].State != StateSkipped || !strings.Contains(second[0].Reason, "still queued") {
		t.Errorf("overlapping run = %+v", second[0])
	}
	if got := mustGet(t, s, first[0].ID); got.State != StateQueued {
		t.Errorf("the running-on run was touched: %s", got.State)
	}
	// Still running on the third night.
	mustClaim(t, s)
	third, err := s.FireSchedule(ctx, nightly(day.Add(48*time.Hour), false, 3))
	if err != nil || third[0].State != StateSkipped || !strings.Contains(third[0].Reason, "still running") {
		t.Errorf("run while the previous one runs = %+v, %v", third, err)
	}
	// A push build of the same branch does not count as the schedule's run.
	if err := s.FinishBuild(ctx, first[0].ID, StatePassed, "", nil); err != nil {
		t.Fatal(err)
	}
	mustEnqueue(t, s, manual("app", "refs/heads/main", 9))
	fourth, err := s.FireSchedule(ctx, nightly(day.Add(72*time.Hour), false, 3))
	if err != nil || fourth[0].State != StateQueued {
		t.Errorf("run after the previous ended = %+v, %v", fourth, err)
	}
	runs, err := s.ListScheduleRuns(ctx, "app", "nightly", 0)
	if err != nil || len(runs) != 4 || runs[0].ID != fourth[0].ID {
		t.Errorf("ListScheduleRuns = %d runs, %v", len(runs), err)
	}
	last, ok, err := s.LastScheduleRun(ctx, "app", "nightly")
	if err != nil || !ok || last.ID != fourth[0].ID {
		t.Errorf("LastScheduleRun = %+v %v %v", last, ok, err)
	}
}

func TestFireScheduleOnlyIfChanged(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	ctx := t.Context()
	day := time.Date(2025, 1, 1, 2, 0, 0, 0, time.UTC)
	b, err := s.FireSchedule(ctx, nightly(day, true, 1))
	if err != nil || b[0].State != StateQueued {
		t.Fatalf("first run = %+v, %v", b, err)
	}
	mustClaim(t, s)
	if err := s.FinishBuild(ctx, b[0].ID, StatePassed, "", nil); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.SchedulePassedCommit(ctx, "app", "nightly", oid(1)); !ok {
		t.Error("SchedulePassedCommit does not see the passed run")
	}
	same, err := s.FireSchedule(ctx, nightly(day.Add(24*time.Hour), true, 1))
	if err != nil || same[0].State != StateSkipped || !strings.Contains(same[0].Reason, "unchanged") {
		t.Errorf("run on an unchanged tip = %+v, %v", same, err)
	}
	// Without only_if_changed the same commit runs again.
	again, err := s.FireSchedule(ctx, nightly(day.Add(48*time.Hour), false, 1))
	if err != nil || again[0].State != StateQueued {
		t.Errorf("run without only_if_changed = %+v, %v", again, err)
	}
	mustClaim(t, s)
	if err := s.FinishBuild(ctx, again[0].ID, StatePassed, "", nil); err != nil {
		t.Fatal(err)
	}
	changed, err := s.FireSchedule(ctx, nightly(day.Add(72*time.Hour), true, 2))
	if err != nil || changed[0].State != StateQueued {
		t.Errorf("run on a changed tip = %+v, %v", changed, err)
	}
}

func TestFireScheduleOncePerInstant(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	ctx := t.Context()
	at := time.Date(2025, 3, 30, 1, 0, 0, 0, time.UTC)
	if _, err := s.FireSchedule(ctx, nightly(at, false, 1)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.FireSchedule(ctx, nightly(at, false, 1)); !errors.Is(err, ErrConflict) {
		t.Errorf("second firing of the same instant: %v, want ErrConflict", err)
	}
	if _, err := s.FireSchedule(ctx, nightly(at.Add(-time.Hour), false, 1)); !errors.Is(err, ErrConflict) {
		t.Errorf("firing of an earlier instant: %v, want ErrConflict", err)
	}
	runs, _ := s.ListScheduleRuns(ctx, "app", "nightly", 0)
	if len(runs) != 1 {
		t.Errorf("%d runs recorded, want 1", len(runs))
	}
	// A run by hand leaves the last fire alone and is marked manual.
	byHand := nightly(time.Time{}, false, 1)
	byHand.Builds[0].Trigger = TriggerManual
	b, err := s.FireSchedule(ctx, byHand)
	if err != nil || b[0].Trigger != TriggerManual || b[0].State != StateSkipped {
		t.Errorf("run by hand while the nightly is queued = %+v, %v", b, err)
	}
	st, _, _ := s.GetLastFire(ctx, "app", "nightly")
	if !st.LastFire.Equal(at) {
		t.Errorf("a run by hand moved the last fire to %v", st.LastFire)
	}
}

func TestFireScheduleMissingBranchIsRecordedAsError(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	at := time.Date(2025, 1, 1, 2, 0, 0, 0, time.UTC)
	f := ScheduleFire{Repo: "app", Name: "nightly", Spec: "@nightly", At: at, Builds: []Build{
		{Ref: "refs/heads/gone", Pipeline: "nightly", State: StateError, Reason: `branch "gone" does not exist`},
		{Ref: "refs/heads/main", Commit: oid(1), Pipeline: "nightly"},
	}}
	bs := mustFire(t, s, f)
	if bs[0].State != StateError || bs[0].Commit != "" || bs[0].FinishedAt.IsZero() || bs[1].State != StateQueued {
		t.Errorf("firing with a missing branch = %+v", bs)
	}
}

func TestRemoveScheduleLeavesNoOrphans(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	ctx := t.Context()
	at := time.Date(2025, 1, 1, 2, 0, 0, 0, time.UTC)
	b := mustFire(t, s, nightly(at, false, 1))
	push := mustEnqueue(t, s, manual("app", "refs/heads/dev", 2)).Builds[0]
	cancelled, err := s.RemoveSchedule(ctx, "app", "nightly")
	if err != nil {
		t.Fatal(err)
	}
	if len(cancelled) != 1 || cancelled[0].ID != b[0].ID || cancelled[0].State != StateCancelled {
		t.Errorf("cancelled = %+v", cancelled)
	}
	if _, ok, _ := s.GetLastFire(ctx, "app", "nightly"); ok {
		t.Error("a removed schedule is still remembered")
	}
	if got := mustGet(t, s, push.ID); got.State != StateQueued {
		t.Errorf("a push build was cancelled with the schedule: %s", got.State)
	}
}
