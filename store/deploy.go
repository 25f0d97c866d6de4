package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

const deployCols = `id, repo, env, build_id, commit_id, trigger, user, push_id, state, reason, release_id,
	created_at, started_at, finished_at, digest`

func scanDeployment(row rowScanner) (Deployment, error) {
	var (
		d                 Deployment
		pushID            sql.NullInt64
		created           int64
		started, finished sql.NullInt64
		trigger, state    string
	)
	if err := row.Scan(&d.ID, &d.Repo, &d.Env, &d.BuildID, &d.Commit, &trigger, &d.User, &pushID,
		&state, &d.Reason, &d.ReleaseID, &created, &started, &finished, &d.Digest); err != nil {
		return Deployment{}, err
	}
	d.PushID = pushID.Int64
	d.Trigger, d.State = DeployTrigger(trigger), DeployState(state)
	d.CreatedAt, d.StartedAt, d.FinishedAt = fromNanos(created), fromNullNanos(started), fromNullNanos(finished)
	return d, nil
}

func queryDeployments(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, query string, args ...any) ([]Deployment, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Deployment
	for rows.Next() {
		d, err := scanDeployment(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// insertDeployment queues d in tx. The build must exist, belong to the same
// repo and have passed: the store refuses to record the shipping of anything
// else, whatever a caller's gate decided.
func insertDeployment(ctx context.Context, tx *sql.Tx, d Deployment) (Deployment, error) {
	switch d.Trigger {
	case DeployAuto, DeployRelease, DeployRollback, DeployRetry:
	default:
		return Deployment{}, fmt.Errorf("%w: unknown deployment trigger %q", ErrInvalid, d.Trigger)
	}
	if d.Env == "" {
		return Deployment{}, fmt.Errorf("%w: deployment without an environment", ErrInvalid)
	}
	var repo, commit, state, digest string
	err := tx.QueryRowContext(ctx, `SELECT repo, commit_id, state, artifacts_digest FROM builds WHERE id = ?`,
		d.BuildID).Scan(&repo, &commit, &state, &digest)
	if errors.Is(err, sql.ErrNoRows) {
		return Deployment{}, fmt.Errorf("deploy build %d: %w", d.BuildID, ErrNotFound)
	}
	if err != nil {
		return Deployment{}, fmt.Errorf("deploy build %d: %w", d.BuildID, err)
	}
	if d.Repo == "" {
		d.Repo = repo
	}
	if d.Commit == "" {
		d.Commit = commit
	}
	switch {
	case d.Repo != repo:
		return Deployment{}, fmt.Errorf("%w: build %d is of repo %q, not %q", ErrInvalid, d.BuildID, repo, d.Repo)
	case d.Commit != commit:
		return Deployment{}, fmt.Errorf("%w: build %d built %s, not %s", ErrInvalid, d.BuildID, commit, d.Commit)
	case State(state) != StatePassed:
		return Deployment{}, fmt.Errorf("%w: build %d is %s; only a passed build is deployed", ErrConflict, d.BuildID, state)
	case d.Digest != "" && d.Digest != digest:
		return Deployment{}, fmt.Errorf("%w: build %d kept artifacts %s, not %s", ErrConflict, d.BuildID, digest, d.Digest)
	}
	nd, err := scanDeployment(tx.QueryRowContext(ctx, `
		INSERT INTO deployments (repo, env, build_id, commit_id, trigger, user, push_id, state, created_at, digest)
		VALUES (?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?) RETURNING `+deployCols,
		d.Repo, d.Env, d.BuildID, d.Commit, string(d.Trigger), d.User, nullID(d.PushID), toNanos(now()), digest))
	if err != nil {
		return Deployment{}, fmt.Errorf("insert deployment of build %d to %s: %w", d.BuildID, d.Env, err)
	}
	return nd, nil
}

// EnqueueDeployment queues a deployment of a passed build. Repo and Commit
// are taken from the build when empty.
func (s *Store) EnqueueDeployment(ctx context.Context, d Deployment) (Deployment, error) {
	var nd Deployment
	err := s.write(ctx, func(tx *sql.Tx) error {
		var err error
		nd, err = insertDeployment(ctx, tx, d)
		return err
	})
	if err != nil {
		return Deployment{}, fmt.Errorf("enqueue deployment to %s: %w", d.Env, err)
	}
	return nd, nil
}

// FinishBuildAndDeploy is FinishBuild and, in the same transaction, the
// queueing of deployments of that build (an environment's auto branch), so a
// passing build whose deployment was due never loses it to a crash between
// the two. Deployments are only valid with StatePassed; BuildID is set by the
// store.
//
// An automatic deployment (DeployAuto) is left out when its environment
// already has an automatic deployment of a newer build that is queued,
// running or succeeded: a slow build of an older commit finishing last must
// not put that commit back. The check is made inside the transaction that
// queues, so of two builds finishing at once the older can never be queued
// after the newer. The deployments returned are the ones queued.
func (s *Store) FinishBuildAndDeploy(ctx context.Context, id int64, state State, reason string, steps []StepResult, ds []Deployment) ([]Deployment, error) {
	var out []Deployment
	err := s.write(ctx, func(tx *sql.Tx) error {
		out = nil
		b, err := finishBuild(ctx, tx, id, state, reason, steps)
		if err != nil {
			return err
		}
		for _, d := range ds {
			d.BuildID = id
			if d.Trigger == DeployAuto {
				newer, err := newerAuto(ctx, tx, b.Repo, d.Env, id)
				if err != nil {
					return err
				}
				if newer {
					continue
				}
			}
			nd, err := insertDeployment(ctx, tx, d)
			if err != nil {
				return err
			}
			out = append(out, nd)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("finish build %d: %w", id, err)
	}
	return out, nil
}

// newerAuto reports, inside tx, whether env of repo has an automatic
// deployment of a build newer than buildID that is queued, running or
// succeeded.
func newerAuto(ctx context.Context, tx *sql.Tx, repo, env string, buildID int64) (bool, error) {
	var n int
	err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM deployments
		WHERE repo = ? AND env = ? AND trigger = 'auto' AND build_id > ?
		AND state IN ('queued', 'running', 'succeeded'))`, repo, env, buildID).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("look for newer automatic deployments to %s: %w", env, err)
	}
	return n == 1, nil
}

// RetryDeployment queues deployment id again, as a new deployment of the
// same build with DeployRetry by user. Only a failed or rolled-back
// deployment that is still the newest to its environment can be retried;
// both are checked in the transaction that queues, so of two retries of
// one deployment at once exactly one is queued and the other gets a
// *RetryRefusal naming it.
func (s *Store) RetryDeployment(ctx context.Context, id int64, user string) (Deployment, error) {
	return s.retryDeployment(ctx, id, user, false)
}

// RepeatDeployment is RetryDeployment for a deployment that may also have
// succeeded: it ships the same build again to the environment, for hosts
// added to it since (the caller has checked that there are some). It too
// must be the newest deployment to its environment.
func (s *Store) RepeatDeployment(ctx context.Context, id int64, user string) (Deployment, error) {
	return s.retryDeployment(ctx, id, user, true)
}

func (s *Store) retryDeployment(ctx context.Context, id int64, user string, succeeded bool) (Deployment, error) {
	var nd Deployment
	err := s.write(ctx, func(tx *sql.Tx) error {
		d, err := scanDeployment(tx.QueryRowContext(ctx, `SELECT `+deployCols+` FROM deployments WHERE id = ?`, id))
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if d.State != DeployFailed && d.State != DeployRolledBack && (!succeeded || d.State != DeploySucceeded) {
			return &RetryRefusal{ID: id, State: d.State, Env: d.Env}
		}
		var latest int64
		if err := tx.QueryRowContext(ctx, `SELECT max(id) FROM deployments WHERE repo = ? AND env = ?`,
			d.Repo, d.Env).Scan(&latest); err != nil {
			return err
		}
		if latest != id {
			return &RetryRefusal{ID: id, State: d.State, Env: d.Env, Latest: latest}
		}
		nd, err = insertDeployment(ctx, tx, Deployment{
			Repo: d.Repo, Env: d.Env, BuildID: d.BuildID, Commit: d.Commit, Trigger: DeployRetry, User: user,
		})
		return err
	})
	if err != nil {
		return Deployment{}, fmt.Errorf("retry deployment %d: %w", id, err)
	}
	return nd, nil
}

// SetArtifactsDigest records the digest of the artifact set build id kept.
// The build service calls it while the build runs, before recording the
// result. For a build recorded before digests existed it may be called
// once more, by a deployment that computed the digest from the kept
// artifacts; the deployments of that build that have none get it too. A
// digest already recorded for a finished build is never replaced
// (ErrConflict).
func (s *Store) SetArtifactsDigest(ctx context.Context, id int64, digest string) error {
	if digest == "" {
		return fmt.Errorf("set artifacts digest of build %d: %w: empty digest", id, ErrInvalid)
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		var state, cur string
		err := tx.QueryRowContext(ctx, `SELECT state, artifacts_digest FROM builds WHERE id = ?`, id).Scan(&state, &cur)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if State(state) != StateRunning && cur != "" && cur != digest {
			return fmt.Errorf("%w: build %d is %s with artifacts %s", ErrConflict, id, state, cur)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE builds SET artifacts_digest = ? WHERE id = ?`, digest, id); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE deployments SET digest = ? WHERE build_id = ? AND digest = ''`, digest, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("set artifacts digest of build %d: %w", id, err)
	}
	return nil
}

// ClaimDeployment marks the next deployment running and returns it. Per repo
// and environment, deployments run one at a time and in the order they were
// queued: the head of a queue is claimable only while nothing of that queue
// runs. Across environments the oldest claimable head goes first. ok is false
// when nothing can start now.
func (s *Store) ClaimDeployment(ctx context.Context) (d Deployment, ok bool, err error) {
	err = s.write(ctx, func(tx *sql.Tx) error {
		var id int64
		err := tx.QueryRowContext(ctx, `
			SELECT min(q.id) AS head FROM deployments q
			WHERE q.state = 'queued'
			GROUP BY q.repo, q.env
			HAVING NOT EXISTS (SELECT 1 FROM deployments r
				WHERE r.repo = q.repo AND r.env = q.env AND r.state = 'running')
			ORDER BY head LIMIT 1`).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			return errUnchanged
		}
		if err != nil {
			return fmt.Errorf("pick next deployment: %w", err)
		}
		d, err = scanDeployment(tx.QueryRowContext(ctx, `
			UPDATE deployments SET state = 'running', started_at = ? WHERE id = ? RETURNING `+deployCols,
			toNanos(now()), id))
		if err != nil {
			return fmt.Errorf("mark deployment %d running: %w", id, err)
		}
		ok = true
		return nil
	})
	if err != nil {
		return Deployment{}, false, fmt.Errorf("claim deployment: %w", err)
	}
	return d, ok, nil
}

// runningDeployment checks, inside tx, that deployment id exists and runs.
func runningDeployment(ctx context.Context, tx *sql.Tx, id int64) error {
	var state string
	err := tx.QueryRowContext(ctx, `SELECT state FROM deployments WHERE id = ?`, id).Scan(&state)
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	if err != nil {
		return err
	}
	if DeployState(state) != DeployRunning {
		return fmt.Errorf("%w: deployment %d is %s, not running", ErrConflict, id, state)
	}
	return nil
}

// SetDeploymentRelease records the release directory a running deployment
// ships into, before the transfer starts, so that after a crash the partial
// release on the target can be told from complete ones.
func (s *Store) SetDeploymentRelease(ctx context.Context, id int64, releaseID string) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		if err := runningDeployment(ctx, tx, id); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE deployments SET release_id = ? WHERE id = ?`, releaseID, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("set release of deployment %d: %w", id, err)
	}
	return nil
}

// FinishDeployment records the end of a running deployment: succeeded,
// failed or rolled back, with a one-line reason. A deployment that is not
// running gives ErrConflict.
func (s *Store) FinishDeployment(ctx context.Context, id int64, state DeployState, reason string) error {
	switch state {
	case DeploySucceeded, DeployFailed, DeployRolledBack:
	default:
		return fmt.Errorf("finish deployment %d: %w: a running deployment cannot end as %q", id, ErrInvalid, state)
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		if err := runningDeployment(ctx, tx, id); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE deployments SET state = ?, reason = ?, finished_at = ? WHERE id = ?`,
			string(state), reason, toNanos(now()), id)
		return err
	})
	if err != nil {
		return fmt.Errorf("finish deployment %d: %w", id, err)
	}
	return nil
}

// RunningDeployments returns the deployments recorded as running, oldest
// first. At start, before any worker claims, these are the deployments a
// previous daemon was cut off in; the deploy service finds out from each
// target how far it got and records the outcome with FinishDeployment.
func (s *Store) RunningDeployments(ctx context.Context) ([]Deployment, error) {
	ds, err := queryDeployments(ctx, s.r, `SELECT `+deployCols+` FROM deployments WHERE state = 'running' ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list running deployments: %w", err)
	}
	return ds, nil
}

// NoteDeployment replaces the reason of a deployment that has ended, for
// what was learnt after its outcome was recorded (activate run again after
// a daemon stop). The state never changes.
func (s *Store) NoteDeployment(ctx context.Context, id int64, reason string) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE deployments SET reason = ?
			WHERE id = ? AND state NOT IN ('queued', 'running')`, reason, id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return fmt.Errorf("%w: deployment %d does not exist or has not ended", ErrConflict, id)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("note on deployment %d: %w", id, err)
	}
	return nil
}

// GetDeployment returns one deployment, or an error wrapping ErrNotFound.
func (s *Store) GetDeployment(ctx context.Context, id int64) (Deployment, error) {
	d, err := scanDeployment(s.r.QueryRowContext(ctx, `SELECT `+deployCols+` FROM deployments WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Deployment{}, fmt.Errorf("get deployment %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Deployment{}, fmt.Errorf("get deployment %d: %w", id, err)
	}
	return d, nil
}

// ListDeployments returns the deployment history of repo, of one environment
// or of all when env is empty, newest first; at most limit, or all when
// limit <= 0.
func (s *Store) ListDeployments(ctx context.Context, repo, env string, limit int) ([]Deployment, error) {
	if limit <= 0 {
		limit = -1
	}
	ds, err := queryDeployments(ctx, s.r, `SELECT `+deployCols+` FROM deployments
		WHERE repo = ?1 AND (?2 = '' OR env = ?2) ORDER BY id DESC LIMIT ?3`, repo, env, limit)
	if err != nil {
		return nil, fmt.Errorf("list deployments of %q %q: %w", repo, env, err)
	}
	return ds, nil
}

// EverLive reports whether commit was ever successfully deployed to env of
// repo: the `requires` gate of a release push.
func (s *Store) EverLive(ctx context.Context, repo, env, commit string) (bool, error) {
	var n int
	err := s.r.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM deployments
		WHERE repo = ? AND env = ? AND commit_id = ? AND state = 'succeeded')`, repo, env, commit).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("check whether %s of %q was live on %s: %w", commit, repo, env, err)
	}
	return n == 1, nil
}

// LiveWith returns the newest succeeded deployment of commit to env of
// repo: the artifact set that is or was live there for that revision, which
// a promotion to an environment that requires env ships. ok is false when
// commit was never live on env.
func (s *Store) LiveWith(ctx context.Context, repo, env, commit string) (d Deployment, ok bool, err error) {
	d, err = scanDeployment(s.r.QueryRowContext(ctx, `SELECT `+deployCols+` FROM deployments
		WHERE repo = ? AND env = ? AND commit_id = ? AND state = 'succeeded' ORDER BY id DESC LIMIT 1`, repo, env, commit))
	if errors.Is(err, sql.ErrNoRows) {
		return Deployment{}, false, nil
	}
	if err != nil {
		return Deployment{}, false, fmt.Errorf("find deployment of %s of %q live on %s: %w", commit, repo, env, err)
	}
	return d, true, nil
}

// LiveDeployment returns the newest succeeded deployment of repo to env: what
// the store believes `current` points at. ok is false if nothing succeeded yet.
func (s *Store) LiveDeployment(ctx context.Context, repo, env string) (d Deployment, ok bool, err error) {
	d, err = scanDeployment(s.r.QueryRowContext(ctx, `SELECT `+deployCols+` FROM deployments
		WHERE repo = ? AND env = ? AND state = 'succeeded' ORDER BY id DESC LIMIT 1`, repo, env))
	if errors.Is(err, sql.ErrNoRows) {
		return Deployment{}, false, nil
	}
	if err != nil {
		return Deployment{}, false, fmt.Errorf("find live deployment of %q on %s: %w", repo, env, err)
	}
	return d, true, nil
}

// PassedBuildForCommit returns the newest passed build of commit in repo that
// ran the default pipeline (the one whose artifacts deployments ship): the
// release gate's question. ok is false when there is none.
func (s *Store) PassedBuildForCommit(ctx context.Context, repo, commit string) (b Build, ok bool, err error) {
	b, err = scanBuild(s.r.QueryRowContext(ctx, `SELECT `+buildCols+` FROM builds
		WHERE repo = ? AND commit_id = ? AND state = 'passed' AND pipeline = ?
		ORDER BY id DESC LIMIT 1`, repo, commit, DefaultPipeline))
	if errors.Is(err, sql.ErrNoRows) {
		return Build{}, false, nil
	}
	if err != nil {
		return Build{}, false, fmt.Errorf("find passed build of %s in %q: %w", commit, repo, err)
	}
	return b, true, nil
}
