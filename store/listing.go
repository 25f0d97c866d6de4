package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"slipway/record"
)

// The listings people page through (the JSON API, `builds --json`): each
// filter is a condition served by an index, and a page ends where the next
// one starts by id (`id < cursor ORDER BY id DESC LIMIT n`), so that the
// thousandth page costs what the first does and a build recorded meanwhile
// neither shifts nor repeats what a reader already saw.

// where collects the conditions of a listing and their arguments.
type where struct {
	conds []string
	args  []any
}

func (w *where) add(cond string, args ...any) {
	w.conds = append(w.conds, cond)
	w.args = append(w.args, args...)
}

// repos keeps the rows of the given repositories: one name is an equality
// (the index's first column), more are a JSON array, one argument however
// many a configuration names.
func (w *where) repos(names []string) error {
	switch len(names) {
	case 0:
	case 1:
		w.add("repo = ?", names[0])
	default:
		js, err := json.Marshal(names)
		if err != nil {
			return fmt.Errorf("encode repository names: %w", err)
		}
		// The unary + keeps SQLite from searching the repo index once
		// per name and sorting what it found: walking the ids down and
		// keeping the rows of these repositories stops after one page.
		w.add("+repo IN (SELECT value FROM json_each(?))", string(js))
	}
	return nil
}

func (w *where) page(before int64, limit int) (clause string) {
	if before > 0 {
		w.add("id < ?", before)
	}
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	s := ""
	if len(w.conds) > 0 {
		s = " WHERE " + strings.Join(w.conds, " AND ")
	}
	w.args = append(w.args, limit)
	return s + " ORDER BY id DESC LIMIT ?"
}

// buildsQuery is the SQL of q and its arguments.
func buildsQuery(q record.BuildQuery) (string, []any, error) {
	var w where
	if err := w.repos(q.Repos); err != nil {
		return "", nil, err
	}
	if q.Ref != "" {
		w.add("ref = ?", q.Ref)
	}
	if q.Commit != "" {
		w.add("commit_id = ?", q.Commit)
	}
	if q.State != "" {
		w.add("state = ?", string(q.State))
	}
	if q.Trigger != "" {
		w.add("trigger = ?", string(q.Trigger))
	}
	tail := w.page(q.Before, q.Limit)
	return `SELECT ` + buildCols + ` FROM builds` + tail, w.args, nil
}

// QueryBuilds returns the builds q selects, newest first.
func (s *Store) QueryBuilds(ctx context.Context, q record.BuildQuery) ([]Build, error) {
	query, args, err := buildsQuery(q)
	if err != nil {
		return nil, err
	}
	bs, err := queryBuilds(ctx, s.r, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list builds: %w", err)
	}
	return bs, nil
}

// QueryDeployments returns the deployments q selects, newest first.
func (s *Store) QueryDeployments(ctx context.Context, q record.DeploymentQuery) ([]Deployment, error) {
	var w where
	if err := w.repos(q.Repos); err != nil {
		return nil, err
	}
	if q.Env != "" {
		w.add("env = ?", q.Env)
	}
	if q.Commit != "" {
		w.add("commit_id = ?", q.Commit)
	}
	tail := w.page(q.Before, q.Limit)
	ds, err := queryDeployments(ctx, s.r, `SELECT `+deployCols+` FROM deployments`+tail, w.args...)
	if err != nil {
		return nil, fmt.Errorf("list deployments: %w", err)
	}
	return ds, nil
}

// QueryPushes returns the recorded pushes q selects, newest first, with
// their refs. Open pushes (git has not finished with them) are left out.
func (s *Store) QueryPushes(ctx context.Context, q record.PushQuery) ([]Push, error) {
	var w where
	if err := w.repos(q.Repos); err != nil {
		return nil, err
	}
	w.add("state = 'recorded'")
	tail := w.page(q.Before, q.Limit)
	rows, err := s.r.QueryContext(ctx, `SELECT id, repo, user, key_fingerprint, options, time FROM pushes`+tail, w.args...)
	if err != nil {
		return nil, fmt.Errorf("list pushes: %w", err)
	}
	defer rows.Close()
	var out []Push
	for rows.Next() {
		p, err := scanPush(rows)
		if err != nil {
			return nil, fmt.Errorf("list pushes: %w", err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list pushes: %w", err)
	}
	if len(out) == 0 {
		return out, nil
	}
	// The refs of the whole page in one query.
	at := make(map[int64]int, len(out))
	ids := make([]int64, len(out))
	for i, p := range out {
		at[p.ID] = i
		ids[i] = p.ID
	}
	js, err := json.Marshal(ids)
	if err != nil {
		return nil, fmt.Errorf("list refs of pushes: %w", err)
	}
	refs, err := s.r.QueryContext(ctx, `SELECT push_id, name, old, new FROM push_refs
		WHERE push_id IN (SELECT value FROM json_each(?)) AND state = 'committed' ORDER BY push_id, seq`, string(js))
	if err != nil {
		return nil, fmt.Errorf("list refs of pushes: %w", err)
	}
	defer refs.Close()
	for refs.Next() {
		var (
			id int64
			u  RefUpdate
		)
		if err := refs.Scan(&id, &u.Name, &u.Old, &u.New); err != nil {
			return nil, fmt.Errorf("list refs of pushes: %w", err)
		}
		if i, ok := at[id]; ok {
			out[i].Refs = append(out[i].Refs, u)
		}
	}
	if err := refs.Err(); err != nil {
		return nil, fmt.Errorf("list refs of pushes: %w", err)
	}
	return out, nil
}

// PushWork returns the builds and the deployments that push id caused,
// oldest first.
func (s *Store) PushWork(ctx context.Context, id int64) ([]Build, []Deployment, error) {
	bs, err := queryBuilds(ctx, s.r, `SELECT `+buildCols+` FROM builds WHERE push_id = ? ORDER BY id`, id)
	if err != nil {
		return nil, nil, fmt.Errorf("builds of push %d: %w", id, err)
	}
	ds, err := queryDeployments(ctx, s.r, `SELECT `+deployCols+` FROM deployments WHERE push_id = ? ORDER BY id`, id)
	if err != nil {
		return nil, nil, fmt.Errorf("deployments of push %d: %w", id, err)
	}
	return bs, ds, nil
}
