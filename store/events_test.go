package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"slipway/record"
)

// eventsOf reads every event after the cursor as "kind repo state" lines.
func eventsOf(t *testing.T, s *Store, after int64) []string {
	t.Helper()
	es, err := s.EventsAfter(t.Context(), after, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, strings.TrimSpace(fmt.Sprintf("%s %s %s %s", e.Kind, e.Repo, e.Env, e.State)))
	}
	return out
}

// TestStateChangesAddTheirEvents: a push recorded, a build claimed and
// finished, a deployment claimed and finished, and a build recorded
// skipped each add their event, with the record's fields, in order.
// mustAddEvent adds e and returns its id.
func mustAddEvent(t *testing.T, s *Store, e record.Event) int64 {
	t.Helper()
	id, err := s.AddEvent(t.Context(), e)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestStateChangesAddTheirEvents(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	ctx := t.Context()
	out, err := s.RecordPushAndEnqueue(ctx, Push{Repo: "app", User: "alice", Refs: []RefUpdate{
		{Name: "refs/heads/main", Old: zero, New: oid(2)},
	}}, []Build{{Repo: "app", Ref: "refs/heads/main", Commit: oid(2)}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b := mustClaim(t, s)
	if err := s.FinishBuild(ctx, b.ID, StatePassed, "passed in 1s", nil); err != nil {
		t.Fatal(err)
	}
	d := endedDeploy(t, s, Deployment{BuildID: b.ID, Env: "staging", Trigger: DeployRelease, User: "bob"}, DeploySucceeded)
	if _, err := s.RecordSkipped(ctx, Build{Repo: "app", Ref: "refs/heads/dev", Commit: oid(3), Trigger: TriggerManual}, "no pipeline"); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"push app",
		"build.started app  running",
		"build.finished app  passed",
		"deploy.started app staging running",
		"deploy.finished app staging succeeded",
		"build.finished app  skipped",
	}
	if got := eventsOf(t, s, 0); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	es, err := s.EventsAfter(ctx, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if e := es[0]; e.PushID != out.PushID || e.User != "alice" || e.Time.IsZero() {
		t.Errorf("push event = %+v", e)
	}
	if e := es[2]; e.BuildID != b.ID || e.PushID != out.PushID || e.User != "alice" || e.Ref != "refs/heads/main" ||
		e.Commit != oid(2) || e.Reason != "passed in 1s" || e.Time.Before(es[1].Time) {
		t.Errorf("build.finished event = %+v", e)
	}
	if e := es[4]; e.DeploymentID != d.ID || e.BuildID != b.ID || e.User != "bob" || e.Ref != "refs/release/staging" || e.Commit != oid(2) {
		t.Errorf("deploy.finished event = %+v", e)
	}
	if last, err := s.LastEventID(ctx); err != nil || last != es[len(es)-1].ID {
		t.Errorf("LastEventID = %d, %v; want %d", last, err, es[len(es)-1].ID)
	}
}

// TestEventsRollBackWithTheirChange: a write that fails after changing a
// build's state leaves no event of that change.
func TestEventsRollBackWithTheirChange(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	ctx := t.Context()
	b := mustEnqueue(t, s, manual("app", "refs/heads/main", 1)).Builds[0]
	before, _ := s.LastEventID(ctx)
	boom := errors.New("boom")
	err := s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE builds SET state = 'running' WHERE id = ?`, b.ID); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("write = %v", err)
	}
	if after, _ := s.LastEventID(ctx); after != before {
		t.Errorf("a rolled back change left events %d..%d", before, after)
	}
}

// TestAddEventAndCursors: explicit events, a cursor that only moves
// forward, and EventsChanged closed by the next write.
func TestAddEventAndCursors(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	ctx := t.Context()
	if c, err := s.Cursor(ctx, "hooks"); err != nil || c != 0 {
		t.Fatalf("new cursor = %d, %v", c, err)
	}
	changed := s.EventsChanged()
	id, err := s.AddEvent(ctx, record.Event{Kind: record.EventReleaseRefused, Repo: "app", Env: "prod",
		Ref: "refs/release/prod", Commit: oid(1), User: "eve", Reason: "not live on staging"})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-changed:
	case <-time.After(10 * time.Second):
		t.Fatal("EventsChanged was not closed by AddEvent")
	}
	if _, err := s.AddEvent(ctx, record.Event{Kind: "bogus", Repo: "app"}); err == nil {
		t.Error("an unknown kind was added")
	}
	es, err := s.EventsAfter(ctx, 0, 10)
	if err != nil || len(es) != 1 || es[0].ID != id || es[0].User != "eve" || es[0].Reason != "not live on staging" {
		t.Fatalf("events = %+v, %v", es, err)
	}
	if err := s.SetCursor(ctx, "hooks", 5); err != nil {
		t.Fatal(err)
	}
	if err := s.SetCursor(ctx, "hooks", 3); err != nil {
		t.Fatal(err)
	}
	if c, _ := s.Cursor(ctx, "hooks"); c != 5 {
		t.Errorf("cursor = %d after 5 then 3, want 5", c)
	}
}

// TestPruneDropsEventsEveryConsumerPassed: events stay until the slowest
// cursor has passed them.
func TestPruneDropsEventsEveryConsumerPassed(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	ctx := t.Context()
	var ids []int64
	for i := range 4 {
		id := mustAddEvent(t, s, record.Event{Kind: record.EventScheduleSkipped, Repo: "app", Schedule: fmt.Sprint(i)})
		ids = append(ids, id)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.SetCursor(ctx, "hooks", ids[3]))
	must(s.SetCursor(ctx, "notes", ids[1]))
	p, err := s.Prune(context.Background(), "", 10)
	must(err)
	if p.Events != 2 {
		t.Errorf("pruned %d events, want 2 (those both consumers passed)", p.Events)
	}
	if es, _ := s.EventsAfter(ctx, 0, 10); len(es) != 2 || es[0].ID != ids[2] {
		t.Errorf("events left = %+v", es)
	}
}

// Once every consumer has passed every event, pruning keeps the newest:
// the next event's id must stay above every cursor (ids are rowids, which
// an empty table would give again from 1).
func TestPruneKeepsEventIDsGoingUp(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	ctx := t.Context()
	var last int64
	for i := range 3 {
		id := mustAddEvent(t, s, record.Event{Kind: record.EventScheduleSkipped, Repo: "app", Schedule: fmt.Sprint(i)})
		last = id
	}
	if err := s.SetCursor(ctx, "notes", last); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Prune(context.Background(), "", 10); err != nil {
		t.Fatal(err)
	}
	next := mustAddEvent(t, s, record.Event{Kind: record.EventScheduleSkipped, Repo: "app", Schedule: "next"})
	if es, _ := s.EventsAfter(ctx, last, 10); next <= last || len(es) != 1 || es[0].ID != next {
		t.Errorf("after pruning, the next event got id %d (cursor at %d) and the consumer reads %+v", next, last, es)
	}
}

// TestEmptyClaimsDoNotWakeEventReaders: a claim that finds no work writes
// nothing and leaves EventsChanged open (idle workers ask every second;
// each wake costs every event reader a query), and the claims still work.
func TestEmptyClaimsDoNotWakeEventReaders(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	ctx := t.Context()
	changed := s.EventsChanged()
	if _, ok, err := s.ClaimBuild(ctx, "w"); ok || err != nil {
		t.Fatalf("ClaimBuild on an empty queue = %v, %v", ok, err)
	}
	if _, ok, err := s.ClaimDeployment(ctx); ok || err != nil {
		t.Fatalf("ClaimDeployment on an empty queue = %v, %v", ok, err)
	}
	select {
	case <-changed:
		t.Fatal("an empty claim closed EventsChanged")
	default:
	}
	if _, err := s.AddEvent(ctx, record.Event{Kind: record.EventReleaseRefused, Repo: "app", Env: "prod",
		Ref: "refs/release/prod", Commit: oid(1), User: "eve", Reason: "not live on staging"}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changed:
	case <-time.After(10 * time.Second):
		t.Fatal("EventsChanged was not closed by AddEvent")
	}
}
