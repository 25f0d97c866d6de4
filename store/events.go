package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"

	"slipway/record"
)

// The outbox: pushes, builds and deployments add their events by the
// triggers of migration 10, in the transaction that changes them; the
// release gate and the scheduler add theirs with AddEvent. Consumers
// (webhooks, git notes) read EventsAfter their cursor, wait on
// EventsChanged when there is nothing new, and move their cursor on.

// changes is the broadcast behind EventsChanged: a channel closed, and
// replaced, after each write transaction commits.
type changes struct {
	mu sync.Mutex
	ch chan struct{}
}

func (c *changes) wait() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ch == nil {
		c.ch = make(chan struct{})
	}
	return c.ch
}

func (c *changes) signal() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ch != nil {
		close(c.ch)
		c.ch = nil
	}
}

// EventsChanged returns a channel closed after the next write transaction
// commits (any write: it may have added events). Take it before reading
// EventsAfter, and wait on it when that read found nothing new, so that
// an event committed in between is not missed.
func (s *Store) EventsChanged() <-chan struct{} {
	return s.changed.wait()
}

// AddEvent adds an event that no state change of a record carries (a
// refused release, a skipped firing) and returns its id. A zero Time is
// now.
func (s *Store) AddEvent(ctx context.Context, e record.Event) (int64, error) {
	if e.Time.IsZero() {
		e.Time = now()
	}
	var id int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, `INSERT INTO events
			(kind, time, repo, ref, env, commit_id, user, push_id, build_id, deployment_id, schedule, state, reason)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
			string(e.Kind), toNanos(e.Time), e.Repo, e.Ref, e.Env, e.Commit, e.User,
			nullID(e.PushID), nullID(e.BuildID), nullID(e.DeploymentID), e.Schedule, e.State, e.Reason,
		).Scan(&id)
	})
	if err != nil {
		return 0, fmt.Errorf("add %s event of %q: %w", e.Kind, e.Repo, err)
	}
	return id, nil
}

// EventsAfter returns up to limit events with ids over after, oldest
// first.
func (s *Store) EventsAfter(ctx context.Context, after int64, limit int) ([]record.Event, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, kind, time, repo, ref, env, commit_id, user,
		push_id, build_id, deployment_id, schedule, state, reason
		FROM events WHERE id > ? ORDER BY id LIMIT ?`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("read events after %d: %w", after, err)
	}
	defer rows.Close()
	var es []record.Event
	for rows.Next() {
		var e record.Event
		var kind string
		var t int64
		var push, build, dep sql.NullInt64
		if err := rows.Scan(&e.ID, &kind, &t, &e.Repo, &e.Ref, &e.Env, &e.Commit, &e.User,
			&push, &build, &dep, &e.Schedule, &e.State, &e.Reason); err != nil {
			return nil, fmt.Errorf("read events after %d: %w", after, err)
		}
		e.Kind, e.Time = record.EventKind(kind), fromNanos(t)
		e.PushID, e.BuildID, e.DeploymentID = push.Int64, build.Int64, dep.Int64
		es = append(es, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read events after %d: %w", after, err)
	}
	return es, nil
}

// LastEventID is the newest event's id, 0 when there is none.
func (s *Store) LastEventID(ctx context.Context) (int64, error) {
	var id int64
	if err := s.r.QueryRowContext(ctx, `SELECT coalesce(max(id), 0) FROM events`).Scan(&id); err != nil {
		return 0, fmt.Errorf("read the last event: %w", err)
	}
	return id, nil
}

// Cursor is where the consumer name is in the outbox: the last event it
// is done with, 0 when it never said.
func (s *Store) Cursor(ctx context.Context, name string) (int64, error) {
	var id int64
	err := s.r.QueryRowContext(ctx, `SELECT last_id FROM event_cursors WHERE name = ?`, name).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read the %s cursor: %w", name, err)
	}
	return id, nil
}

// StartCursor returns the cursor of the outbox consumer name, setting it
// first, when it was never set, to the newest event: a consumer that
// starts on a database with history does not replay it. Unlike Cursor, a
// cursor set at 0 (a first start on an empty outbox) stays at 0.
func (s *Store) StartCursor(ctx context.Context, name string) (int64, error) {
	var id int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO event_cursors (name, last_id)
			VALUES (?, (SELECT coalesce(max(id), 0) FROM events)) ON CONFLICT (name) DO NOTHING`, name); err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, `SELECT last_id FROM event_cursors WHERE name = ?`, name).Scan(&id)
	})
	if err != nil {
		return 0, fmt.Errorf("start the %s cursor: %w", name, err)
	}
	return id, nil
}

// SetCursor moves the consumer name's cursor on to id; never back.
func (s *Store) SetCursor(ctx context.Context, name string, id int64) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		return setCursor(ctx, tx, name, id)
	})
	if err != nil {
		return fmt.Errorf("set the %s cursor to %d: %w", name, id, err)
	}
	return nil
}

// setCursor is SetCursor inside a transaction, for consumers whose work
// and cursor commit together.
func setCursor(ctx context.Context, tx *sql.Tx, name string, id int64) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO event_cursors (name, last_id) VALUES (?, ?)
		ON CONFLICT (name) DO UPDATE SET last_id = max(last_id, excluded.last_id)`, name, id)
	return err
}
