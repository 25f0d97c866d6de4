package store

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"slipway/record"
)

// fillListing records 60 builds over repos a, b and c, branches main and
// dev, manual and retried, queued, superseded, running, passed and
// failed, and returns them all, newest first.
func fillListing(t *testing.T, s *Store) []Build {
	t.Helper()
	ctx := t.Context()
	for i := range 60 {
		repo := []string{"a", "b", "c"}[i%3]
		ref := []string{"refs/heads/main", "refs/heads/dev"}[(i/3)%2]
		mustEnqueue(t, s, manual(repo, ref, i))
		if i%4 == 0 {
			b := mustClaim(t, s)
			state := []State{StatePassed, StateFailed}[(i/8)%2]
			if i%8 == 4 {
				continue // left running
			}
			if err := s.FinishBuild(ctx, b.ID, state, "", nil); err != nil {
				t.Fatal(err)
			}
			if i%3 == 0 {
				if _, err := s.RetryBuild(ctx, b.ID); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	all, err := s.ListBuilds(ctx, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	return all
}

// TestQueryBuildsFiltersAndPages: every filter keeps exactly the builds it
// names, and paging by cursor walks them newest first without a gap or a
// repeat, also when builds are recorded between two pages.
func TestQueryBuildsFiltersAndPages(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	all := fillListing(t, s)
	states := map[State]int{}
	for _, b := range all {
		states[b.State]++
	}
	if len(states) < 5 {
		t.Fatalf("the fixture lacks states: %v", states)
	}
	queries := []record.BuildQuery{
		{},
		{Repos: []string{"a"}},
		{Repos: []string{"a", "c"}},
		{Repos: []string{"b"}, Ref: "refs/heads/dev"},
		{Ref: "refs/heads/main"},
		{Repos: []string{"a"}, State: StateSuperseded},
		{State: StateFailed},
		{Repos: []string{"c"}, Trigger: TriggerRetry},
		{Repos: []string{"a", "b"}, Ref: "refs/heads/main", State: StatePassed, Trigger: TriggerManual},
		{Repos: []string{"nosuch"}},
	}
	for i, q := range queries {
		all, err := s.ListBuilds(t.Context(), "", 0)
		if err != nil {
			t.Fatal(err)
		}
		var want []int64
		for _, b := range all {
			if (len(q.Repos) == 0 || slices.Contains(q.Repos, b.Repo)) && (q.Ref == "" || b.Ref == q.Ref) &&
				(q.State == "" || b.State == q.State) && (q.Trigger == "" || b.Trigger == q.Trigger) {
				want = append(want, b.ID)
			}
		}
		if len(want) == 0 && len(q.Repos) == 0 {
			t.Fatalf("%+v selects nothing: a useless case", q)
		}
		got, err := s.QueryBuilds(t.Context(), q)
		if err != nil {
			t.Fatal(err)
		}
		if ids := idsOf(got); !slices.Equal(ids, want) {
			t.Errorf("%+v: got %v, want %v", q, ids, want)
		}
		// Pages of 7, newest first, each starting below the last id of
		// the one before; a build recorded meanwhile shows in none.
		var paged []int64
		q.Limit = 7
		for page := 0; ; page++ {
			got, err := s.QueryBuilds(t.Context(), q)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) > 7 {
				t.Fatalf("%+v: a page of %d", q, len(got))
			}
			paged = append(paged, idsOf(got)...)
			if len(got) < 7 {
				break
			}
			if page == 0 {
				mustEnqueue(t, s, manual("z", fmt.Sprintf("refs/heads/z%d", i), 1000+i))
			}
			q.Before = got[len(got)-1].ID
		}
		if !slices.Equal(paged, want) {
			t.Errorf("%+v paged: got %v, want %v", q, paged, want)
		}
	}
}

func idsOf(bs []Build) []int64 {
	ids := []int64{}
	for _, b := range bs {
		ids = append(ids, b.ID)
	}
	return ids
}

// TestListingsAreServedByIndexes: the listings people page through read
// one page by an index in id order; none sorts a repository's history.
func TestListingsAreServedByIndexes(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	fillListing(t, s)
	// No ANALYZE: the daemon never runs it, so these are the plans it gets.
	for _, c := range []struct {
		q     record.BuildQuery
		index string
	}{
		{record.BuildQuery{Repos: []string{"a"}, Limit: 50}, "builds_by_repo"},
		{record.BuildQuery{Repos: []string{"a"}, Ref: "refs/heads/main", Limit: 50, Before: 40}, "builds_by_branch"},
		{record.BuildQuery{Repos: []string{"a"}, State: StateFailed, Limit: 50}, "builds_by_state"},
		{record.BuildQuery{Repos: []string{"a"}, Trigger: TriggerRetry, Limit: 50}, "builds_by_trigger"},
		{record.BuildQuery{Limit: 50, Before: 40}, "INTEGER PRIMARY KEY"},
		{record.BuildQuery{Repos: []string{"a", "b"}, Limit: 50}, "SCAN builds"},
	} {
		query, args, err := buildsQuery(c.q)
		if err != nil {
			t.Fatal(err)
		}
		plan := explain(t, s, query, args...)
		if !strings.Contains(plan, c.index) || strings.Contains(plan, "TEMP B-TREE") {
			t.Errorf("%+v: plan %q, want %s and no sort", c.q, plan, c.index)
		}
	}
	for _, c := range []struct{ query, index string }{
		{`SELECT id FROM deployments WHERE repo = ? AND env = ? ORDER BY id DESC LIMIT 20`, "deployments_by_env_id"},
		{`SELECT id FROM pushes WHERE repo = ? AND state = 'recorded' ORDER BY id DESC LIMIT 20`, "pushes_by_repo"},
		{`SELECT id FROM builds WHERE push_id = ? ORDER BY id`, "builds_by_push"},
		{`SELECT id FROM deployments WHERE push_id = ? ORDER BY id`, "deployments_by_push"},
	} {
		args := []any{"a", "staging"}[:strings.Count(c.query, "?")]
		if plan := explain(t, s, c.query, args...); !strings.Contains(plan, c.index) || strings.Contains(plan, "TEMP B-TREE") {
			t.Errorf("%s: plan %q, want %s and no sort", c.query, plan, c.index)
		}
	}
}

func explain(t *testing.T, s *Store, query string, args ...any) string {
	t.Helper()
	rows, err := s.r.QueryContext(t.Context(), `EXPLAIN QUERY PLAN `+query, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	return fmt.Sprint(plan)
}
