package store

import (
	"context"
	"database/sql"
	"fmt"

	"slipway/record"
)

const hostCols = `deployment_id, pos, host, release, previous, state, detail, updated_at`

func scanDeploymentHost(row rowScanner) (record.DeploymentHost, error) {
	var (
		h       record.DeploymentHost
		state   string
		updated int64
	)
	if err := row.Scan(&h.DeploymentID, &h.Pos, &h.Host, &h.Release, &h.Previous, &state, &h.Detail, &updated); err != nil {
		return record.DeploymentHost{}, err
	}
	h.State, h.UpdatedAt = record.HostState(state), fromNanos(updated)
	return h, nil
}

func queryDeploymentHosts(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, query string, args ...any) ([]record.DeploymentHost, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []record.DeploymentHost
	for rows.Next() {
		h, err := scanDeploymentHost(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, h)
	}
	return out, rows.Err()
}

// SetDeploymentHost records where host h.Pos of deployment h.DeploymentID
// stands, replacing what was recorded for that position before; UpdatedAt
// is set by the store. The deployment must exist (ErrNotFound); its state
// is not checked, so hosts can be written pending before it starts and
// noted after it ended. Detail is kept as given.
//
// It is safe to call from many goroutines at once, as the transfer phase
// does: each call is one write transaction on the store's single writer.
func (s *Store) SetDeploymentHost(ctx context.Context, h record.DeploymentHost) error {
	switch h.State {
	case record.HostPending, record.HostPrepared, record.HostFailed, record.HostSwitched,
		record.HostLive, record.HostRolledBack, record.HostSkipped:
	default:
		return fmt.Errorf("set host %d of deployment %d: %w: unknown host state %q", h.Pos, h.DeploymentID, ErrInvalid, h.State)
	}
	switch {
	case h.Pos < 0:
		return fmt.Errorf("set host %d of deployment %d: %w: negative position", h.Pos, h.DeploymentID, ErrInvalid)
	case h.Host == "":
		return fmt.Errorf("set host %d of deployment %d: %w: empty host", h.Pos, h.DeploymentID, ErrInvalid)
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM deployments WHERE id = ?)`,
			h.DeploymentID).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return ErrNotFound
		}
		_, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO deployment_hosts (`+hostCols+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			h.DeploymentID, h.Pos, h.Host, h.Release, h.Previous, string(h.State), h.Detail, toNanos(now()))
		return err
	})
	if err != nil {
		return fmt.Errorf("set host %d (%s) of deployment %d to %s: %w", h.Pos, h.Host, h.DeploymentID, h.State, err)
	}
	return nil
}

// DeploymentHosts returns the hosts recorded for deployment id, by
// position; none (and no error) for a deployment that recorded no hosts
// (one from before hosts were recorded) or that does not exist.
func (s *Store) DeploymentHosts(ctx context.Context, id int64) ([]record.DeploymentHost, error) {
	hs, err := queryDeploymentHosts(ctx, s.r, `SELECT `+hostCols+` FROM deployment_hosts
		WHERE deployment_id = ? ORDER BY pos`, id)
	if err != nil {
		return nil, fmt.Errorf("list hosts of deployment %d: %w", id, err)
	}
	return hs, nil
}

// LatestHostResults returns, for every host that any deployment of repo to
// env recorded, the row of the newest such deployment (highest id) that
// has one for it, ordered by the host's position in that row, then by
// host. A host that newer deployments no longer list keeps its last row:
// the caller knows which hosts the environment has now and leaves out the
// others.
func (s *Store) LatestHostResults(ctx context.Context, repo, env string) ([]record.DeploymentHost, error) {
	hs, err := queryDeploymentHosts(ctx, s.r, latestHostsQuery, repo, env)
	if err != nil {
		return nil, fmt.Errorf("latest host results of %q on %s: %w", repo, env, err)
	}
	return hs, nil
}

// latestHostsQuery is LatestHostResults' query. Should a deployment list
// one host twice, the lower position counts.
const latestHostsQuery = `SELECT ` + hostCols + ` FROM (
		SELECT h.*, row_number() OVER (PARTITION BY h.host ORDER BY h.deployment_id DESC, h.pos) AS n
		FROM deployments d JOIN deployment_hosts h ON h.deployment_id = d.id
		WHERE d.repo = ? AND d.env = ?)
	WHERE n = 1 ORDER BY pos, host`
