package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"
)

// Prune applies retention to the records of repo (of every repo when repo
// is empty): of each repository's finished builds, the newest keep stay,
// and so do the builds that a deployment still needs (see pinnedBuilds);
// every other finished build is deleted with its deployments and their
// hosts' results. Queued and running builds are never pruned. Pushes
// follow: a push is deleted when no remaining build or deployment refers
// to it, it is not among the newest keep pushes of its repository, and it
// is not the newest record of a ref it created or moved (the last recorded
// state of each ref that exists).
//
// Everything happens in one write transaction, so a deployment queued at
// the same moment either exists before it (and its build stays) or is
// refused after it (its build is gone). The caller removes the files of
// what was pruned (logs, artifacts) after Prune returns: nothing reads the
// files of a record that no longer exists.
func (s *Store) Prune(ctx context.Context, repo string, keep int) (Pruned, error) {
	if keep < 0 {
		return Pruned{}, fmt.Errorf("prune %q: %w: keep %d is negative", repo, ErrInvalid, keep)
	}
	var out Pruned
	err := s.write(ctx, func(tx *sql.Tx) error {
		out = Pruned{}
		builds, err := queryIDs(ctx, tx, `
			SELECT id FROM (
				SELECT id, row_number() OVER (PARTITION BY repo ORDER BY id DESC) AS n
				FROM builds
				WHERE state NOT IN ('queued', 'running') AND (?1 = '' OR repo = ?1)
			) WHERE n > ?2 AND id NOT IN (`+pinnedBuilds+`)
			ORDER BY id`, repo, keep)
		if err != nil {
			return fmt.Errorf("find builds beyond %d: %w", keep, err)
		}
		if len(builds) > 0 {
			list, err := json.Marshal(builds)
			if err != nil {
				return err
			}
			// A deployment's hosts refer to it and deployments to their
			// build (NOT NULL, no ON DELETE action), so hosts go first,
			// then deployments, then builds.
			if _, err := tx.ExecContext(ctx, `
				DELETE FROM deployment_hosts WHERE deployment_id IN (
					SELECT id FROM deployments WHERE build_id IN (SELECT value FROM json_each(?1)))`,
				string(list)); err != nil {
				return fmt.Errorf("delete hosts of deployments of pruned builds: %w", err)
			}
			if out.Deployments, err = queryIDs(ctx, tx, `
				DELETE FROM deployments WHERE build_id IN (SELECT value FROM json_each(?1))
				RETURNING id`, string(list)); err != nil {
				return fmt.Errorf("delete deployments of pruned builds: %w", err)
			}
			if out.Builds, err = queryIDs(ctx, tx, `
				DELETE FROM builds WHERE id IN (SELECT value FROM json_each(?1))
				RETURNING id`, string(list)); err != nil {
				return fmt.Errorf("delete builds: %w", err)
			}
		}
		res, err := tx.ExecContext(ctx, `
			DELETE FROM pushes WHERE (?1 = '' OR repo = ?1) AND state = 'recorded'
			AND id NOT IN (SELECT push_id FROM builds WHERE push_id IS NOT NULL)
			AND id NOT IN (SELECT push_id FROM deployments WHERE push_id IS NOT NULL)
			AND id NOT IN (
				SELECT id FROM (
					SELECT id, row_number() OVER (PARTITION BY repo ORDER BY id DESC) AS n
					FROM pushes WHERE ?1 = '' OR repo = ?1
				) WHERE n <= ?2)
			AND id NOT IN (`+lastRefRecords+`)`, repo, keep)
		if err != nil {
			return fmt.Errorf("delete pushes: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		out.Pushes = int(n)
		// The outbox's events go once every consumer is done with them, or
		// after eventMaxAge whatever their consumers (a consumer that far
		// behind is not coming back for them). The newest stays: event
		// ids are rowids, which SQLite takes from the largest one left, so
		// an emptied table would hand out ids from 1 again, below every
		// consumer's cursor, and those events would never be read.
		res, err = tx.ExecContext(ctx, `
			DELETE FROM events WHERE (?1 = '' OR repo = ?1)
			AND (id <= (SELECT coalesce(min(last_id), 0) FROM event_cursors) OR time < ?2)
			AND id < (SELECT max(id) FROM events)`,
			repo, toNanos(now().Add(-eventMaxAge)))
		if err != nil {
			return fmt.Errorf("delete events: %w", err)
		}
		n, err = res.RowsAffected()
		if err != nil {
			return err
		}
		out.Events = int(n)
		out.Deliveries, err = pruneDeliveries(ctx, tx, repo)
		return err
	})
	if err != nil {
		return Pruned{}, fmt.Errorf("prune %q: %w", repo, err)
	}
	return out, nil
}

// eventMaxAge is how long an event stays in the outbox at most.
const eventMaxAge = 30 * 24 * time.Hour

// pinnedBuilds selects the builds whose artifacts deployments still need,
// whatever their age:
//   - of every environment, the build of the live release (its newest
//     succeeded deployment), of the release live before it (the newest
//     succeeded deployment with another release: what a rollback goes back
//     to) and of its newest deployment of any state (what `retry deploy`
//     may queue again);
//   - the build of every queued or running deployment, which reads the
//     artifacts while it ships them.
const pinnedBuilds = `
	SELECT d.build_id FROM deployments d WHERE d.state IN ('queued', 'running')
	UNION
	SELECT d.build_id FROM deployments d WHERE d.id IN (
		SELECT max(id) FROM deployments GROUP BY repo, env
		UNION
		SELECT max(id) FROM deployments WHERE state = 'succeeded' GROUP BY repo, env
		UNION
		SELECT (SELECT max(p.id) FROM deployments p
			WHERE p.repo = l.repo AND p.env = l.env AND p.state = 'succeeded'
			AND p.id < l.id AND p.release_id <> l.release_id)
		FROM deployments l
		WHERE l.id IN (SELECT max(id) FROM deployments WHERE state = 'succeeded' GROUP BY repo, env))`

// lastRefRecords selects, of every ref of every repository, the push that
// recorded its current tip, unless that push deleted it: the last recorded
// state of each ref, which a comparison with the repository's refs needs.
const lastRefRecords = `
	SELECT r.push_id FROM push_refs r
	JOIN (SELECT p.repo AS repo, r2.name AS name, max(r2.push_id) AS last
		FROM push_refs r2 JOIN pushes p ON p.id = r2.push_id GROUP BY p.repo, r2.name) m
		ON m.last = r.push_id AND m.name = r.name
	WHERE trim(r.new, '0') <> ''`

// queryIDs runs a query (or a DELETE ... RETURNING) whose rows are one id
// each.
func queryIDs(ctx context.Context, tx *sql.Tx, query string, args ...any) ([]int64, error) {
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}
