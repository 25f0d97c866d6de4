package store

import (
	"testing"
)

// TestLastResult: a branch's last result is its newest build of the
// default pipeline that passed, failed or errored; cancelled, superseded
// and skipped builds, scheduled builds and verify builds whose push was
// refused leave it as it was; other branches and repositories are apart.
func TestLastResult(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	ctx := t.Context()
	const main = "refs/heads/main"
	run := func(b Build, state State) Build {
		t.Helper()
		q := mustEnqueue(t, s, b).Builds[0]
		if c := mustClaim(t, s); c.ID != q.ID {
			t.Fatalf("claimed %d, want %d", c.ID, q.ID)
		}
		if err := s.FinishBuild(ctx, q.ID, state, "", nil); err != nil {
			t.Fatal(err)
		}
		return q
	}
	want := func(what string, id int64, state State) {
		t.Helper()
		b, ok, err := s.LastResult(ctx, "app", main)
		if err != nil {
			t.Fatal(err)
		}
		if id == 0 {
			if ok {
				t.Errorf("%s: LastResult = #%d %s, want none", what, b.ID, b.State)
			}
			return
		}
		if !ok || b.ID != id || b.State != state {
			t.Errorf("%s: LastResult = #%d %s (ok %v), want #%d %s", what, b.ID, b.State, ok, id, state)
		}
	}
	want("no build", 0, "")
	cancelled := mustEnqueue(t, s, manual("app", main, 1)).Builds[0]
	if _, err := s.CancelBuild(ctx, cancelled.ID, "cancelled"); err != nil {
		t.Fatal(err)
	}
	want("only a cancelled build", 0, "")

	passed := run(manual("app", main, 2), StatePassed)
	want("a passed build", passed.ID, StatePassed)
	failed := run(manual("app", main, 3), StateFailed)
	want("then a failed one", failed.ID, StateFailed)

	run(Build{Repo: "app", Ref: main, Commit: oid(4), Trigger: TriggerVerify}, StateFailed)
	want("a refused verify build", failed.ID, StateFailed)
	run(Build{Repo: "app", Ref: main, Commit: oid(5), Trigger: TriggerSchedule, Schedule: "nightly"}, StatePassed)
	want("a scheduled build", failed.ID, StateFailed)
	run(Build{Repo: "app", Ref: main, Commit: oid(6), Trigger: TriggerManual, Pipeline: "lint"}, StatePassed)
	want("another pipeline", failed.ID, StateFailed)
	run(manual("app", "refs/heads/dev", 7), StatePassed)
	run(manual("other", main, 8), StatePassed)
	want("other branches and repositories", failed.ID, StateFailed)
	if _, err := s.RecordSkipped(ctx, manual("app", main, 9), "no .slipway.toml"); err != nil {
		t.Fatal(err)
	}
	want("a skipped build", failed.ID, StateFailed)

	errored := run(manual("app", main, 10), StateError)
	want("an errored build", errored.ID, StateError)
	verified := run(Build{Repo: "app", Ref: main, Commit: oid(11), Trigger: TriggerVerify}, StatePassed)
	want("a passed verify build", verified.ID, StatePassed)
}
