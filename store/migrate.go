package store

import (
	"context"
	"database/sql"
	"fmt"
)

// migrations is the schema's history. Append only: an entry that has shipped
// is never edited, because databases in the field recorded it as applied.
// Entry i brings the schema to version i+1.
var migrations = []string{
	// 1: pushes (issue 2). Options are kept as a JSON array: they are only
	// ever read back whole with their push.
	`
CREATE TABLE pushes (
	id              INTEGER PRIMARY KEY,
	repo            TEXT    NOT NULL CHECK (repo <> ''),
	user            TEXT    NOT NULL,
	key_fingerprint TEXT    NOT NULL,
	options         TEXT    NOT NULL DEFAULT '[]',
	time            INTEGER NOT NULL
);
CREATE INDEX pushes_by_repo ON pushes (repo, id);
CREATE TABLE push_refs (
	push_id INTEGER NOT NULL REFERENCES pushes (id) ON DELETE CASCADE,
	seq     INTEGER NOT NULL,
	name    TEXT    NOT NULL,
	old     TEXT    NOT NULL,
	new     TEXT    NOT NULL,
	PRIMARY KEY (push_id, seq)
) WITHOUT ROWID;
`,
}

// migrate brings the database to len(migs). Each migration runs in its own
// write transaction together with its schema_migrations row, and the current
// version is read inside that transaction, so two processes opening the same
// old file cannot both apply a step.
func migrate(ctx context.Context, db *sql.DB, migs []string) error {
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		applied_at INTEGER NOT NULL
	)`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	for {
		done, err := migrateOne(ctx, db, migs)
		if err != nil {
			return err
		}
		if done {
			return nil
		}
	}
}

func migrateOne(ctx context.Context, db *sql.DB, migs []string) (done bool, err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("begin migration: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	var v int
	if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&v); err != nil {
		return false, fmt.Errorf("read schema version: %w", err)
	}
	if v > len(migs) {
		return false, fmt.Errorf("database schema version %d is newer than this slipway knows (%d): refusing to use it", v, len(migs))
	}
	if v == len(migs) {
		return true, tx.Commit()
	}
	if _, err := tx.ExecContext(ctx, migs[v]); err != nil {
		return false, fmt.Errorf("apply migration %d: %w", v+1, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`, v+1, toNanos(now())); err != nil {
		return false, fmt.Errorf("record migration %d: %w", v+1, err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("commit migration %d: %w", v+1, err)
	}
	return false, nil
}
