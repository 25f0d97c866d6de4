package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"slipway/record"
)

// Webhook deliveries (migration 11). The webhook dispatcher fans events
// out into deliveries with FanOutDeliveries, which moves its outbox cursor
// in the same transaction; the senders take the heads of the pending
// groups (PendingHeads) and write each attempt's outcome (RecordAttempt).

const deliveryColumns = `id, uid, hook, repo, url, event_id, event_kind, format, state, attempts,
	next_attempt, status_code, error, request_headers, request_body, response_headers, response_body,
	created_at, delivered_at, coalesce(redelivery_of, 0)`

// listColumns are deliveryColumns without the bodies, for listings.
const listColumns = `id, uid, hook, repo, url, event_id, event_kind, format, state, attempts,
	next_attempt, status_code, error, '', x'', '', x'', created_at, delivered_at, coalesce(redelivery_of, 0)`

func scanDelivery(r rowScanner) (record.Delivery, error) {
	var d record.Delivery
	var kind, state string
	var next, created int64
	var delivered sql.NullInt64
	err := r.Scan(&d.ID, &d.UID, &d.Hook, &d.Repo, &d.URL, &d.EventID, &kind, &d.Format, &state, &d.Attempts,
		&next, &d.StatusCode, &d.Error, &d.RequestHeaders, &d.RequestBody, &d.ResponseHeaders, &d.ResponseBody,
		&created, &delivered, &d.RedeliveryOf)
	if err != nil {
		return d, err
	}
	d.EventKind, d.State = record.EventKind(kind), record.DeliveryState(state)
	d.NextAttempt, d.Created, d.DeliveredAt = fromNanos(next), fromNanos(created), fromNullNanos(delivered)
	return d, nil
}

// FanOutDeliveries writes the deliveries of a batch of events and moves
// the outbox cursor name to last, in one transaction: an event is either
// fanned out with its cursor moved past it, or neither. It returns the
// deliveries with their ids.
func (s *Store) FanOutDeliveries(ctx context.Context, ds []record.Delivery, cursor string, last int64) ([]record.Delivery, error) {
	out := make([]record.Delivery, len(ds))
	err := s.write(ctx, func(tx *sql.Tx) error {
		at := now()
		for i, d := range ds {
			if d.Created.IsZero() {
				d.Created = at
			}
			if d.NextAttempt.IsZero() {
				d.NextAttempt = d.Created
			}
			if d.State == "" {
				d.State = record.DeliveryPending
			}
			if d.RequestBody == nil {
				d.RequestBody = []byte{}
			}
			if err := tx.QueryRowContext(ctx, `INSERT INTO webhook_deliveries
				(uid, hook, repo, url, event_id, event_kind, format, state, next_attempt, error, request_body, created_at, redelivery_of)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
				d.UID, d.Hook, d.Repo, d.URL, d.EventID, string(d.EventKind), d.Format, string(d.State),
				toNanos(d.NextAttempt), d.Error, d.RequestBody, toNanos(d.Created), nullID(d.RedeliveryOf)).Scan(&d.ID); err != nil {
				return fmt.Errorf("add the delivery of event %d to %s: %w", d.EventID, d.Hook, err)
			}
			out[i] = d
		}
		if cursor == "" {
			return nil
		}
		return setCursor(ctx, tx, cursor, last)
	})
	if err != nil {
		return nil, fmt.Errorf("fan out %d deliveries: %w", len(ds), err)
	}
	return out, nil
}

// PendingHeads returns the oldest pending delivery of each (hook, repo)
// group, soonest due first, bodies included: only a group's head may be
// sent, so that one repository's events reach a hook in order. At most
// limit.
func (s *Store) PendingHeads(ctx context.Context, limit int) ([]record.Delivery, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+deliveryColumns+` FROM webhook_deliveries
		WHERE id IN (SELECT min(id) FROM webhook_deliveries WHERE state = 'pending' GROUP BY hook, repo)
		ORDER BY next_attempt, id LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("read pending deliveries: %w", err)
	}
	return collectDeliveries(rows)
}

func collectDeliveries(rows *sql.Rows) ([]record.Delivery, error) {
	defer rows.Close()
	var ds []record.Delivery
	for rows.Next() {
		d, err := scanDelivery(rows)
		if err != nil {
			return nil, fmt.Errorf("read deliveries: %w", err)
		}
		ds = append(ds, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read deliveries: %w", err)
	}
	return ds, nil
}

// RecordAttempt writes the outcome of an attempt at pending delivery id.
// A delivery that is no longer pending (cancelled meanwhile) is left as it
// is, and ErrConflict returned.
func (s *Store) RecordAttempt(ctx context.Context, id int64, a record.DeliveryAttempt) error {
	if a.At.IsZero() {
		a.At = now()
	}
	next := a.Next
	if next.IsZero() {
		next = a.At
	}
	var delivered sql.NullInt64
	if a.State == record.DeliveryDelivered {
		delivered = nullNanos(a.At)
	}
	body := a.ResponseBody
	if body == nil {
		body = []byte{}
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE webhook_deliveries SET state = ?, attempts = attempts + 1,
			next_attempt = ?, url = ?, status_code = ?, error = ?, request_headers = ?, response_headers = ?,
			response_body = ?, delivered_at = ? WHERE id = ? AND state = 'pending'`,
			string(a.State), toNanos(next), a.URL, a.StatusCode, a.Error, a.RequestHeaders, a.ResponseHeaders,
			body, delivered, id)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return fmt.Errorf("delivery %d is not pending: %w", id, ErrConflict)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("record attempt at delivery %d: %w", id, err)
	}
	return nil
}

// PendingGroups returns the (hook, repo) pairs that have pending
// deliveries.
func (s *Store) PendingGroups(ctx context.Context) ([][2]string, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT DISTINCT hook, repo FROM webhook_deliveries WHERE state = 'pending'`)
	if err != nil {
		return nil, fmt.Errorf("read pending deliveries: %w", err)
	}
	defer rows.Close()
	var out [][2]string
	for rows.Next() {
		var g [2]string
		if err := rows.Scan(&g[0], &g[1]); err != nil {
			return nil, fmt.Errorf("read pending deliveries: %w", err)
		}
		out = append(out, g)
	}
	return out, rows.Err()
}

// CancelDeliveries cancels the pending deliveries of hook in repo, with
// reason as their error, and returns how many.
func (s *Store) CancelDeliveries(ctx context.Context, hook, repo, reason string) (int, error) {
	var n int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE webhook_deliveries SET state = 'cancelled', error = ?
			WHERE hook = ? AND repo = ? AND state = 'pending'`, reason, hook, repo)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("cancel the deliveries of %s in %q: %w", hook, repo, err)
	}
	return int(n), nil
}

// GetDelivery returns delivery id, bodies included.
func (s *Store) GetDelivery(ctx context.Context, id int64) (record.Delivery, error) {
	d, err := scanDelivery(s.r.QueryRowContext(ctx, `SELECT `+deliveryColumns+` FROM webhook_deliveries WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return d, fmt.Errorf("delivery %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return d, fmt.Errorf("read delivery %d: %w", id, err)
	}
	return d, nil
}

// ListDeliveries returns a repository's deliveries, newest first, without
// their bodies.
func (s *Store) ListDeliveries(ctx context.Context, q record.DeliveryQuery) ([]record.Delivery, error) {
	where := []string{"repo = ?"}
	args := []any{q.Repo}
	if q.Hook != "" {
		where = append(where, "hook = ?")
		args = append(args, q.Hook)
	}
	if q.Failed {
		where = append(where, "state IN ('failed', 'refused')")
	}
	if q.Limit <= 0 {
		q.Limit = 50
	}
	args = append(args, q.Limit)
	rows, err := s.r.QueryContext(ctx, `SELECT `+listColumns+` FROM webhook_deliveries
		WHERE `+strings.Join(where, " AND ")+` ORDER BY id DESC LIMIT ?`, args...)
	if err != nil {
		return nil, fmt.Errorf("list deliveries of %q: %w", q.Repo, err)
	}
	return collectDeliveries(rows)
}

// LastDeliveries returns the newest delivery of each hook of repo, by
// hook name, without bodies.
func (s *Store) LastDeliveries(ctx context.Context, repo string) (map[string]record.Delivery, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+listColumns+` FROM webhook_deliveries
		WHERE id IN (SELECT max(id) FROM webhook_deliveries WHERE repo = ? GROUP BY hook)`, repo)
	if err != nil {
		return nil, fmt.Errorf("read the last deliveries of %q: %w", repo, err)
	}
	ds, err := collectDeliveries(rows)
	if err != nil {
		return nil, err
	}
	out := make(map[string]record.Delivery, len(ds))
	for _, d := range ds {
		out[d.Hook] = d
	}
	return out, nil
}

// Delivery retention: finished deliveries (any state but pending) are kept
// deliveryMaxAge, and at most deliveryKeep of them per hook of a
// repository.
const (
	deliveryMaxAge = 30 * 24 * time.Hour
	deliveryKeep   = 1000
)

// pruneDeliveries deletes the finished deliveries of repo (of every repo
// when repo is empty) beyond retention, inside Prune's transaction.
func pruneDeliveries(ctx context.Context, tx *sql.Tx, repo string) (int, error) {
	res, err := tx.ExecContext(ctx, `
		DELETE FROM webhook_deliveries WHERE (?1 = '' OR repo = ?1) AND state <> 'pending'
		AND (created_at < ?2 OR id IN (
			SELECT id FROM (
				SELECT id, row_number() OVER (PARTITION BY repo, hook ORDER BY id DESC) AS n
				FROM webhook_deliveries WHERE (?1 = '' OR repo = ?1) AND state <> 'pending'
			) WHERE n > ?3))`, repo, toNanos(now().Add(-deliveryMaxAge)), deliveryKeep)
	if err != nil {
		return 0, fmt.Errorf("delete deliveries: %w", err)
	}
	n, err := res.RowsAffected()
	return int(n), err
}
