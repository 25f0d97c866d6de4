package store

import (
	"testing"

	"slipway/record"
)

// Pruning every event a consumer passed must not let ids start again
// below its cursor: the next event's id is above it.
func TestPruneKeepsEventIDsRising(t *testing.T) {
	s := openTest(t)
	ctx := t.Context()
	var last int64
	for range 3 {
		id := mustAddEvent(t, s, record.Event{Kind: record.EventReleaseRefused, Repo: "app"})
		last = id
	}
	if err := s.SetCursor(ctx, "webhooks", last); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Prune(ctx, "", 100); err != nil {
		t.Fatal(err)
	}
	id := mustAddEvent(t, s, record.Event{Kind: record.EventReleaseRefused, Repo: "app"})
	if id <= last {
		t.Fatalf("after a prune the next event got id %d, not above the cursor %d", id, last)
	}
	es, err := s.EventsAfter(ctx, last, 10)
	if err != nil || len(es) != 1 {
		t.Fatalf("EventsAfter the cursor: %v, %v; want the new event", es, err)
	}
}

// A fan-out moves the cursor with its deliveries; the heads are the
// oldest pending delivery of each (hook, repo).
func TestFanOutAndHeads(t *testing.T) {
	s := openTest(t)
	ctx := t.Context()
	if c, err := s.StartCursor(ctx, "webhooks"); err != nil || c != 0 {
		t.Fatalf("StartCursor = %d, %v", c, err)
	}
	var ds []record.Delivery
	for i, g := range [][2]string{{"a", "app"}, {"a", "app"}, {"a", "lib"}, {"b", "app"}} {
		ds = append(ds, record.Delivery{UID: string(rune('p' + i)), Hook: g[0], Repo: g[1], URL: "http://x/",
			EventID: int64(i + 1), EventKind: record.EventPush, Format: "json"})
	}
	out, err := s.FanOutDeliveries(ctx, ds, "webhooks", 4)
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := s.Cursor(ctx, "webhooks"); c != 4 {
		t.Fatalf("cursor %d after the fan-out, want 4", c)
	}
	heads, err := s.PendingHeads(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	got := map[int64]bool{}
	for _, h := range heads {
		got[h.ID] = true
	}
	if len(heads) != 3 || !got[out[0].ID] || got[out[1].ID] {
		t.Fatalf("heads %+v, want the oldest of each of 3 groups", heads)
	}
	if err := s.RecordAttempt(ctx, out[0].ID, record.DeliveryAttempt{State: record.DeliveryDelivered, StatusCode: 200}); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordAttempt(ctx, out[0].ID, record.DeliveryAttempt{State: record.DeliveryDelivered}); err == nil {
		t.Fatal("an attempt at a delivered delivery was written")
	}
	heads, _ = s.PendingHeads(ctx, 10)
	for _, h := range heads {
		if h.Hook == "a" && h.Repo == "app" && h.ID != out[1].ID {
			t.Fatalf("the next head of (a, app) is %d, want %d", h.ID, out[1].ID)
		}
	}
}
