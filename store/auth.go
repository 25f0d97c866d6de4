package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"slipway/record"
)

// The web side's sessions and API tokens. Both are found by the SHA-256 of
// their secret, which is all the database holds of them.

// CreateSession records a new session, and forgets the sessions that
// expired before it was made: logins are rare, so this is where the table
// is kept short, in the write a login does anyway.
func (s *Store) CreateSession(ctx context.Context, sess record.Session) error {
	if len(sess.Hash) != 32 || sess.User == "" || sess.Created.IsZero() || !sess.Expires.After(sess.Created) {
		return fmt.Errorf("create session: %w: a session needs a 32-byte hash, a user and a lifetime", ErrInvalid)
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM web_sessions WHERE expires_at <= ?`, toNanos(sess.Created)); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO web_sessions (hash, user, key_fingerprint, created_at, expires_at) VALUES (?, ?, ?, ?, ?)`,
			sess.Hash, sess.User, sess.KeyFingerprint, toNanos(sess.Created), toNanos(sess.Expires))
		return err
	})
	if err != nil {
		return fmt.Errorf("create session for %q: %w", sess.User, err)
	}
	return nil
}

// Session returns the session whose id hashes to hash, expired or not; the
// caller decides. ErrNotFound when there is none.
func (s *Store) Session(ctx context.Context, hash []byte) (record.Session, error) {
	sess := record.Session{}
	var created, expires int64
	err := s.r.QueryRowContext(ctx, `SELECT hash, user, key_fingerprint, created_at, expires_at FROM web_sessions WHERE hash = ?`, hash).
		Scan(&sess.Hash, &sess.User, &sess.KeyFingerprint, &created, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return record.Session{}, fmt.Errorf("session: %w", ErrNotFound)
	}
	if err != nil {
		return record.Session{}, fmt.Errorf("read session: %w", err)
	}
	sess.Created, sess.Expires = fromNanos(created), fromNanos(expires)
	return sess, nil
}

// DeleteSession forgets a session (a logout, or one found expired or no
// longer admitted). Deleting one that is not there is not an error.
func (s *Store) DeleteSession(ctx context.Context, hash []byte) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM web_sessions WHERE hash = ?`, hash)
		return err
	})
	if err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}

func validScope(scope string) bool {
	switch scope {
	case record.ScopeRead, record.ScopeWrite, record.ScopeRelease, record.ScopeAdmin:
		return true
	}
	return false
}

// CreateToken records a new API token and returns it with its ID.
// ErrConflict when the user has a token of that name that is not revoked.
func (s *Store) CreateToken(ctx context.Context, t record.APIToken) (record.APIToken, error) {
	if len(t.Hash) != 32 || t.User == "" || t.Name == "" || !validScope(t.Scope) || t.Created.IsZero() {
		return record.APIToken{}, fmt.Errorf("create token: %w: a token needs a 32-byte hash, a user, a name, a scope and a time", ErrInvalid)
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM api_tokens WHERE user = ? AND name = ? AND revoked_at IS NULL`,
			t.User, t.Name).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("%w: %s has a token named %q already", ErrConflict, t.User, t.Name)
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO api_tokens (user, name, hash, scope, key_fingerprint, created_at, expires_at)
			VALUES (?, ?, ?, ?, ?, ?, ?)`,
			t.User, t.Name, t.Hash, t.Scope, t.KeyFingerprint, toNanos(t.Created), nullNanos(t.Expires))
		if err != nil {
			return err
		}
		t.ID, err = res.LastInsertId()
		return err
	})
	if err != nil {
		return record.APIToken{}, fmt.Errorf("create token %q for %q: %w", t.Name, t.User, err)
	}
	return t, nil
}

const tokenColumns = `id, user, name, hash, scope, key_fingerprint, created_at, expires_at, last_used, revoked_at`

func scanToken(row rowScanner) (record.APIToken, error) {
	var t record.APIToken
	var created int64
	var expires, used, revoked sql.NullInt64
	if err := row.Scan(&t.ID, &t.User, &t.Name, &t.Hash, &t.Scope, &t.KeyFingerprint, &created, &expires, &used, &revoked); err != nil {
		return record.APIToken{}, err
	}
	t.Created = fromNanos(created)
	t.Expires, t.LastUsed, t.Revoked = fromNullNanos(expires), fromNullNanos(used), fromNullNanos(revoked)
	return t, nil
}

// TokenByHash returns the token, revoked or not, whose SHA-256 is hash.
// ErrNotFound when there is none.
func (s *Store) TokenByHash(ctx context.Context, hash []byte) (record.APIToken, error) {
	t, err := scanToken(s.r.QueryRowContext(ctx, `SELECT `+tokenColumns+` FROM api_tokens WHERE hash = ?`, hash))
	if errors.Is(err, sql.ErrNoRows) {
		return record.APIToken{}, fmt.Errorf("token: %w", ErrNotFound)
	}
	if err != nil {
		return record.APIToken{}, fmt.Errorf("read token: %w", err)
	}
	return t, nil
}

// Tokens returns the user's tokens that are not revoked (expired ones
// included), by name.
func (s *Store) Tokens(ctx context.Context, user string) ([]record.APIToken, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+tokenColumns+` FROM api_tokens WHERE user = ? AND revoked_at IS NULL ORDER BY name`, user)
	if err != nil {
		return nil, fmt.Errorf("list tokens of %q: %w", user, err)
	}
	defer rows.Close()
	var out []record.APIToken
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, fmt.Errorf("list tokens of %q: %w", user, err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list tokens of %q: %w", user, err)
	}
	return out, nil
}

// RevokeToken revokes the user's token of that name at the given time.
// ErrNotFound when the user has no such token in force.
func (s *Store) RevokeToken(ctx context.Context, user, name string, at time.Time) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE api_tokens SET revoked_at = ? WHERE user = ? AND name = ? AND revoked_at IS NULL`,
			toNanos(at), user, name)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return fmt.Errorf("%w: %s has no token named %q", ErrNotFound, user, name)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("revoke token %q of %q: %w", name, user, err)
	}
	return nil
}

// TouchToken records that the token was used at the given time; an older
// time than the one recorded changes nothing.
func (s *Store) TouchToken(ctx context.Context, id int64, at time.Time) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE api_tokens SET last_used = max(coalesce(last_used, 0), ?) WHERE id = ?`, toNanos(at), id)
		return err
	})
	if err != nil {
		return fmt.Errorf("record the use of token %d: %w", id, err)
	}
	return nil
}
