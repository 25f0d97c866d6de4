package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// GetLastFire returns the remembered state of a schedule; ok is false when it
// never fired (a new or renamed schedule starts fresh).
func (s *Store) GetLastFire(ctx context.Context, repo, name string) (st ScheduleState, ok bool, err error) {
	var last int64
	err = s.r.QueryRowContext(ctx, `SELECT repo, name, spec, last_fire FROM schedule_state WHERE repo = ? AND name = ?`,
		repo, name).Scan(&st.Repo, &st.Name, &st.Spec, &last)
	if errors.Is(err, sql.ErrNoRows) {
		return ScheduleState{}, false, nil
	}
	if err != nil {
		return ScheduleState{}, false, fmt.Errorf("get last fire of schedule %q of %q: %w", name, repo, err)
	}
	st.LastFire = fromNanos(last)
	return st, true, nil
}

// SetLastFire records that a schedule fired at the given instant with the
// given spec, replacing what was remembered.
func (s *Store) SetLastFire(ctx context.Context, repo, name, spec string, at time.Time) error {
	err := s.write(ctx, func(tx *sql.Tx) error { return setLastFire(ctx, tx, repo, name, spec, at) })
	if err != nil {
		return fmt.Errorf("set last fire of schedule %q of %q: %w", name, repo, err)
	}
	return nil
}

func setLastFire(ctx context.Context, tx *sql.Tx, repo, name, spec string, at time.Time) error {
	if repo == "" || name == "" || at.IsZero() {
		return fmt.Errorf("%w: schedule state needs a repo, a name and a time", ErrInvalid)
	}
	_, err := tx.ExecContext(ctx, `
		INSERT INTO schedule_state (repo, name, spec, last_fire) VALUES (?, ?, ?, ?)
		ON CONFLICT (repo, name) DO UPDATE SET spec = excluded.spec, last_fire = excluded.last_fire`,
		repo, name, spec, toNanos(at))
	return err
}

// ListScheduleStates returns every remembered schedule, by repo and name.
func (s *Store) ListScheduleStates(ctx context.Context) ([]ScheduleState, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT repo, name, spec, last_fire FROM schedule_state ORDER BY repo, name`)
	if err != nil {
		return nil, fmt.Errorf("list schedule states: %w", err)
	}
	defer rows.Close()
	var out []ScheduleState
	for rows.Next() {
		var st ScheduleState
		var last int64
		if err := rows.Scan(&st.Repo, &st.Name, &st.Spec, &last); err != nil {
			return nil, fmt.Errorf("list schedule states: %w", err)
		}
		st.LastFire = fromNanos(last)
		out = append(out, st)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list schedule states: %w", err)
	}
	return out, nil
}

// RemoveSchedule forgets a schedule that left the config and cancels its
// builds that are still queued, so a removed or renamed schedule leaves no
// orphan runs behind. Running builds finish. It returns the cancelled builds.
func (s *Store) RemoveSchedule(ctx context.Context, repo, name string) ([]Build, error) {
	var out []Build
	err := s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM schedule_state WHERE repo = ? AND name = ?`, repo, name); err != nil {
			return err
		}
		var err error
		out, err = queryBuilds(ctx, tx, `
			UPDATE builds SET state = 'cancelled', reason = ?, finished_at = ?
			WHERE repo = ? AND schedule = ? AND state = 'queued' RETURNING `+buildCols,
			fmt.Sprintf("schedule %q was removed from the config", name), toNanos(now()), repo, name)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("remove schedule %q of %q: %w", name, repo, err)
	}
	return out, nil
}

// ListScheduleRuns returns the builds of a schedule, newest first; at most
// limit, or all when limit <= 0.
func (s *Store) ListScheduleRuns(ctx context.Context, repo, name string, limit int) ([]Build, error) {
	if limit <= 0 {
		limit = -1
	}
	bs, err := queryBuilds(ctx, s.r, `SELECT `+buildCols+` FROM builds
		WHERE repo = ? AND schedule = ? AND schedule <> '' ORDER BY id DESC LIMIT ?`, repo, name, limit)
	if err != nil {
		return nil, fmt.Errorf("list runs of schedule %q of %q: %w", name, repo, err)
	}
	return bs, nil
}

// LastScheduleRun returns the newest build of a schedule; ok is false when it
// never ran.
func (s *Store) LastScheduleRun(ctx context.Context, repo, name string) (Build, bool, error) {
	bs, err := s.ListScheduleRuns(ctx, repo, name, 1)
	if err != nil || len(bs) == 0 {
		return Build{}, false, err
	}
	return bs[0], true, nil
}

// ActiveScheduleRun returns a queued or running build of schedule name of
// repo on ref, the oldest if several; ok is false when there is none. A
// schedule whose previous run is still active must not start another.
func (s *Store) ActiveScheduleRun(ctx context.Context, repo, name, ref string) (Build, bool, error) {
	b, ok, err := activeScheduleRun(ctx, s.r, repo, name, ref)
	if err != nil {
		return Build{}, false, fmt.Errorf("find active run of schedule %q of %q: %w", name, repo, err)
	}
	return b, ok, nil
}

type queryRower interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}

func activeScheduleRun(ctx context.Context, q queryRower, repo, name, ref string) (Build, bool, error) {
	b, err := scanBuild(q.QueryRowContext(ctx, `SELECT `+buildCols+` FROM builds
		WHERE repo = ? AND schedule = ? AND ref = ? AND state IN ('queued', 'running') AND schedule <> ''
		ORDER BY id LIMIT 1`, repo, name, ref))
	if errors.Is(err, sql.ErrNoRows) {
		return Build{}, false, nil
	}
	if err != nil {
		return Build{}, false, err
	}
	return b, true, nil
}

// SchedulePassedCommit returns a passed build of schedule name of repo on
// commit (for only_if_changed); ok is false when there is none.
func (s *Store) SchedulePassedCommit(ctx context.Context, repo, name, commit string) (Build, bool, error) {
	b, ok, err := schedulePassedCommit(ctx, s.r, repo, name, commit)
	if err != nil {
		return Build{}, false, fmt.Errorf("find passed run of schedule %q of %q on %s: %w", name, repo, commit, err)
	}
	return b, ok, nil
}

func schedulePassedCommit(ctx context.Context, q queryRower, repo, name, commit string) (Build, bool, error) {
	b, err := scanBuild(q.QueryRowContext(ctx, `SELECT `+buildCols+` FROM builds
		WHERE repo = ? AND schedule = ? AND commit_id = ? AND state = 'passed' AND schedule <> ''
		ORDER BY id DESC LIMIT 1`, repo, name, commit))
	if errors.Is(err, sql.ErrNoRows) {
		return Build{}, false, nil
	}
	if err != nil {
		return Build{}, false, err
	}
	return b, true, nil
}

// FireSchedule records a firing in one transaction: the new last fire time
// and, per branch, a queued build or one recorded as skipped with the reason
// - because the previous run of the schedule on that branch is still queued
// or running (no overlap), or, with OnlyIfChanged, because the commit already
// passed. Deciding and recording in one transaction means a firing by cron and
// one by hand at the same moment cannot both start a run. A firing at or
// before the remembered last fire is refused with ErrConflict, so an instant
// fires once even when catch-up and the cron tick meet.
func (s *Store) FireSchedule(ctx context.Context, f ScheduleFire) ([]Build, error) {
	var out Enqueued
	err := s.write(ctx, func(tx *sql.Tx) error {
		out = Enqueued{}
		if f.Repo == "" || f.Name == "" {
			return fmt.Errorf("%w: a schedule needs a repo and a name", ErrInvalid)
		}
		if !f.At.IsZero() {
			var last int64
			err := tx.QueryRowContext(ctx, `SELECT last_fire FROM schedule_state WHERE repo = ? AND name = ?`, f.Repo, f.Name).Scan(&last)
			switch {
			case errors.Is(err, sql.ErrNoRows):
			case err != nil:
				return err
			case last >= toNanos(f.At):
				return fmt.Errorf("%w: already fired at %s", ErrConflict, fromNanos(last).Format(time.RFC3339))
			}
			if err := setLastFire(ctx, tx, f.Repo, f.Name, f.Spec, f.At); err != nil {
				return err
			}
		}
		for _, b := range f.Builds {
			b.Repo, b.Schedule = f.Repo, f.Name
			if b.Trigger == "" {
				b.Trigger = TriggerSchedule
			}
			if b.State == "" || b.State == StateQueued {
				active, ok, err := activeScheduleRun(ctx, tx, f.Repo, f.Name, b.Ref)
				if err != nil {
					return err
				}
				if ok {
					b.State, b.Reason = StateSkipped, fmt.Sprintf("previous run (build %d) is still %s", active.ID, active.State)
				}
			}
			if f.OnlyIfChanged && (b.State == "" || b.State == StateQueued) {
				passed, ok, err := schedulePassedCommit(ctx, tx, f.Repo, f.Name, b.Commit)
				if err != nil {
					return err
				}
				if ok {
					b.State, b.Reason = StateSkipped, fmt.Sprintf("unchanged: %s already passed in build %d", shortID(b.Commit), passed.ID)
				}
			}
			if err := insertBuilds(ctx, tx, []Build{b}, 0, &out); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("fire schedule %q of %q: %w", f.Name, f.Repo, err)
	}
	return out.Builds, nil
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
