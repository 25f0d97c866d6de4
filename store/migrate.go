package store

import (
	"context"
	"database/sql"
	"errors"
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
	// 2: the build queue (issue 3). Steps are a JSON array written once when
	// the build ends and always read with it.
	`
CREATE TABLE builds (
	id          INTEGER PRIMARY KEY,
	repo        TEXT    NOT NULL CHECK (repo <> ''),
	ref         TEXT    NOT NULL,
	commit_id   TEXT    NOT NULL,
	push_id     INTEGER REFERENCES pushes (id),
	trigger     TEXT    NOT NULL CHECK (trigger IN ('push', 'schedule', 'retry', 'manual')),
	schedule    TEXT    NOT NULL DEFAULT '',
	pipeline    TEXT    NOT NULL,
	state       TEXT    NOT NULL CHECK (state IN ('queued', 'running', 'passed', 'failed', 'error',
	                                              'cancelled', 'superseded', 'interrupted', 'skipped')),
	reason      TEXT    NOT NULL DEFAULT '',
	created_at  INTEGER NOT NULL,
	started_at  INTEGER,
	finished_at INTEGER,
	attempt     INTEGER NOT NULL DEFAULT 0,
	steps       TEXT    NOT NULL DEFAULT '[]',
	worker      TEXT    NOT NULL DEFAULT '',
	retry_of    INTEGER REFERENCES builds (id) ON DELETE SET NULL
);
CREATE INDEX builds_by_state    ON builds (state, repo, id);
CREATE INDEX builds_by_repo     ON builds (repo, id);
CREATE INDEX builds_by_ref      ON builds (repo, ref, pipeline, schedule, state);
CREATE INDEX builds_by_commit   ON builds (repo, commit_id, state);
CREATE INDEX builds_by_schedule ON builds (repo, schedule, id) WHERE schedule <> '';
CREATE INDEX builds_by_retry_of ON builds (retry_of);
`,
	// 3: deployments (issue 4).
	`
CREATE TABLE deployments (
	id          INTEGER PRIMARY KEY,
	repo        TEXT    NOT NULL CHECK (repo <> ''),
	env         TEXT    NOT NULL CHECK (env <> ''),
	build_id    INTEGER NOT NULL REFERENCES builds (id),
	commit_id   TEXT    NOT NULL,
	trigger     TEXT    NOT NULL CHECK (trigger IN ('auto', 'release', 'rollback', 'retry')),
	user        TEXT    NOT NULL DEFAULT '',
	push_id     INTEGER REFERENCES pushes (id),
	state       TEXT    NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'rolled_back')),
	reason      TEXT    NOT NULL DEFAULT '',
	release_id  TEXT    NOT NULL DEFAULT '',
	created_at  INTEGER NOT NULL,
	started_at  INTEGER,
	finished_at INTEGER
);
CREATE INDEX deployments_by_env    ON deployments (repo, env, state, id);
CREATE INDEX deployments_by_commit ON deployments (repo, env, commit_id, state);
CREATE INDEX deployments_by_build  ON deployments (build_id);
`,
	// 4: schedules (issue 5). The spec is kept beside the last fire time so
	// that a changed spec can be told from an unchanged one after a restart.
	`
CREATE TABLE schedule_state (
	repo      TEXT    NOT NULL,
	name      TEXT    NOT NULL,
	spec      TEXT    NOT NULL,
	last_fire INTEGER NOT NULL,
	PRIMARY KEY (repo, name)
) WITHOUT ROWID;
`,
	// 5: verified pushes (issue 8): the trigger 'verify'. SQLite cannot
	// change a CHECK constraint in place, so the table is rebuilt the way
	// its documentation says (new table, copy, drop, rename, indexes);
	// migrate runs every step with foreign keys off and checks them after.
	`
CREATE TABLE builds_v5 (
	id          INTEGER PRIMARY KEY,
	repo        TEXT    NOT NULL CHECK (repo <> ''),
	ref         TEXT    NOT NULL,
	commit_id   TEXT    NOT NULL,
	push_id     INTEGER REFERENCES pushes (id),
	trigger     TEXT    NOT NULL CHECK (trigger IN ('push', 'schedule', 'retry', 'manual', 'verify')),
	schedule    TEXT    NOT NULL DEFAULT '',
	pipeline    TEXT    NOT NULL,
	state       TEXT    NOT NULL CHECK (state IN ('queued', 'running', 'passed', 'failed', 'error',
	                                              'cancelled', 'superseded', 'interrupted', 'skipped')),
	reason      TEXT    NOT NULL DEFAULT '',
	created_at  INTEGER NOT NULL,
	started_at  INTEGER,
	finished_at INTEGER,
	attempt     INTEGER NOT NULL DEFAULT 0,
	steps       TEXT    NOT NULL DEFAULT '[]',
	worker      TEXT    NOT NULL DEFAULT '',
	retry_of    INTEGER REFERENCES builds (id) ON DELETE SET NULL
);
INSERT INTO builds_v5 (id, repo, ref, commit_id, push_id, trigger, schedule, pipeline, state, reason,
	created_at, started_at, finished_at, attempt, steps, worker, retry_of)
	SELECT id, repo, ref, commit_id, push_id, trigger, schedule, pipeline, state, reason,
	created_at, started_at, finished_at, attempt, steps, worker, retry_of FROM builds;
DROP TABLE builds;
ALTER TABLE builds_v5 RENAME TO builds;
CREATE INDEX builds_by_state    ON builds (state, repo, id);
CREATE INDEX builds_by_repo     ON builds (repo, id);
CREATE INDEX builds_by_ref      ON builds (repo, ref, pipeline, schedule, state);
CREATE INDEX builds_by_commit   ON builds (repo, commit_id, state);
CREATE INDEX builds_by_schedule ON builds (repo, schedule, id) WHERE schedule <> '';
CREATE INDEX builds_by_retry_of ON builds (retry_of);
`,
	// 6: artifact identity (issue 9). A passed build's artifact set is known
	// by the digest of its manifest; a deployment records the digest it
	// ships, so that a promotion can ship the very bytes that were live on
	// the environment it requires. Empty for rows from before.
	`
ALTER TABLE builds ADD COLUMN artifacts_digest TEXT NOT NULL DEFAULT '';
ALTER TABLE deployments ADD COLUMN digest TEXT NOT NULL DEFAULT '';
`,
	// 7: no ref moves without a record (issue 11). A push is written
	// 'open' by git's reference-transaction hook before git moves its refs,
	// each update 'prepared'; the update is 'committed' once git made it,
	// and the push 'recorded' once post-receive (or reconciliation at start)
	// planned its work. refs is the last recorded value of every ref, what
	// reconciliation compares the repositories with; it is seeded from the
	// pushes recorded so far.
	`
ALTER TABLE pushes ADD COLUMN state TEXT NOT NULL DEFAULT 'recorded' CHECK (state IN ('open', 'recorded'));
ALTER TABLE pushes ADD COLUMN session TEXT NOT NULL DEFAULT '';
ALTER TABLE push_refs ADD COLUMN state TEXT NOT NULL DEFAULT 'committed' CHECK (state IN ('prepared', 'committed'));
CREATE INDEX pushes_open ON pushes (repo, session) WHERE state = 'open';
CREATE TABLE refs (
	repo TEXT NOT NULL,
	name TEXT NOT NULL,
	id   TEXT NOT NULL,
	PRIMARY KEY (repo, name)
) WITHOUT ROWID;
INSERT INTO refs (repo, name, id)
	SELECT repo, name, new FROM (
		SELECT p.repo, r.name, r.new,
			row_number() OVER (PARTITION BY p.repo, r.name ORDER BY r.push_id DESC, r.seq DESC) AS n
		FROM push_refs r JOIN pushes p ON p.id = r.push_id)
	WHERE n = 1 AND trim(new, '0') <> '';
`,
	// 8: the web side's sessions and API tokens (issue 14). Both are kept
	// only as the SHA-256 of their secret. A revoked token keeps its row,
	// so that it answers "token revoked" rather than "unknown token"; its
	// name is free again for a new one.
	`
CREATE TABLE web_sessions (
	hash            BLOB    PRIMARY KEY CHECK (length(hash) = 32),
	user            TEXT    NOT NULL CHECK (user <> ''),
	key_fingerprint TEXT    NOT NULL,
	created_at      INTEGER NOT NULL,
	expires_at      INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX web_sessions_by_expiry ON web_sessions (expires_at);
CREATE TABLE api_tokens (
	id              INTEGER PRIMARY KEY,
	user            TEXT    NOT NULL CHECK (user <> ''),
	name            TEXT    NOT NULL CHECK (name <> ''),
	hash            BLOB    NOT NULL UNIQUE CHECK (length(hash) = 32),
	scope           TEXT    NOT NULL CHECK (scope IN ('read', 'write', 'release', 'admin')),
	key_fingerprint TEXT    NOT NULL DEFAULT '',
	created_at      INTEGER NOT NULL,
	expires_at      INTEGER,
	last_used       INTEGER,
	revoked_at      INTEGER
);
CREATE UNIQUE INDEX api_tokens_by_name ON api_tokens (user, name) WHERE revoked_at IS NULL;
`,
	// 9: the listings people page through (issue 14: the JSON API and the
	// dashboard): each filter of a build, deployment or push listing is
	// served by an index that ends with id, so that `id < cursor ORDER BY
	// id DESC LIMIT n` reads n rows, not the repository's history; and
	// the work a push caused is found by its push.
	`
CREATE INDEX builds_by_branch      ON builds (repo, ref, id);
CREATE INDEX builds_by_trigger     ON builds (repo, trigger, id);
CREATE INDEX builds_by_push        ON builds (push_id) WHERE push_id IS NOT NULL;
CREATE INDEX deployments_by_env_id ON deployments (repo, env, id);
CREATE INDEX deployments_by_push  ON deployments (push_id) WHERE push_id IS NOT NULL;
`,
	// 10: the event outbox (issue 15): what webhooks and git notes tell
	// the world. Pushes, builds and deployments add their events in the
	// transaction that changes their state, by the triggers below, so an
	// event can neither be lost to a crash between the change and its
	// telling nor told of a change that rolled back. Each consumer keeps
	// its place in event_cursors.
	`
CREATE TABLE events (
	id            INTEGER PRIMARY KEY,
	kind          TEXT    NOT NULL CHECK (kind IN ('push', 'build.started', 'build.finished', 'deploy.started',
	                                               'deploy.finished', 'release.refused', 'schedule.skipped')),
	time          INTEGER NOT NULL,
	repo          TEXT    NOT NULL,
	ref           TEXT    NOT NULL DEFAULT '',
	env           TEXT    NOT NULL DEFAULT '',
	commit_id     TEXT    NOT NULL DEFAULT '',
	user          TEXT    NOT NULL DEFAULT '',
	push_id       INTEGER,
	build_id      INTEGER,
	deployment_id INTEGER,
	schedule      TEXT    NOT NULL DEFAULT '',
	state         TEXT    NOT NULL DEFAULT '',
	reason        TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX events_by_time ON events (time);
CREATE TABLE event_cursors (
	name    TEXT    PRIMARY KEY,
	last_id INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TRIGGER events_push_inserted AFTER INSERT ON pushes WHEN NEW.state = 'recorded'
BEGIN
	INSERT INTO events (kind, time, repo, user, push_id)
	VALUES ('push', CAST(unixepoch('subsec') * 1e9 AS INTEGER), NEW.repo, NEW.user, NEW.id);
END;
CREATE TRIGGER events_push_recorded AFTER UPDATE OF state ON pushes
WHEN OLD.state = 'open' AND NEW.state = 'recorded'
BEGIN
	INSERT INTO events (kind, time, repo, user, push_id)
	VALUES ('push', CAST(unixepoch('subsec') * 1e9 AS INTEGER), NEW.repo, NEW.user, NEW.id);
END;

CREATE TRIGGER events_build_started AFTER UPDATE OF state ON builds
WHEN NEW.state = 'running' AND OLD.state <> 'running'
BEGIN
	INSERT INTO events (kind, time, repo, ref, commit_id, user, push_id, build_id, schedule, state, reason)
	VALUES ('build.started', coalesce(NEW.started_at, CAST(unixepoch('subsec') * 1e9 AS INTEGER)),
	        NEW.repo, NEW.ref, NEW.commit_id,
	        coalesce((SELECT user FROM pushes WHERE id = NEW.push_id), ''),
	        NEW.push_id, NEW.id, NEW.schedule, NEW.state, NEW.reason);
END;
CREATE TRIGGER events_build_finished AFTER UPDATE OF state ON builds
WHEN NEW.state IN ('passed', 'failed', 'error', 'cancelled', 'superseded', 'interrupted', 'skipped')
 AND OLD.state IN ('queued', 'running')
BEGIN
	INSERT INTO events (kind, time, repo, ref, commit_id, user, push_id, build_id, schedule, state, reason)
	VALUES ('build.finished', coalesce(NEW.finished_at, CAST(unixepoch('subsec') * 1e9 AS INTEGER)),
	        NEW.repo, NEW.ref, NEW.commit_id,
	        coalesce((SELECT user FROM pushes WHERE id = NEW.push_id), ''),
	        NEW.push_id, NEW.id, NEW.schedule, NEW.state, NEW.reason);
END;
CREATE TRIGGER events_build_inserted_final AFTER INSERT ON builds
WHEN NEW.state IN ('passed', 'failed', 'error', 'cancelled', 'superseded', 'interrupted', 'skipped')
BEGIN
	INSERT INTO events (kind, time, repo, ref, commit_id, user, push_id, build_id, schedule, state, reason)
	VALUES ('build.finished', coalesce(NEW.finished_at, NEW.created_at),
	        NEW.repo, NEW.ref, NEW.commit_id,
	        coalesce((SELECT user FROM pushes WHERE id = NEW.push_id), ''),
	        NEW.push_id, NEW.id, NEW.schedule, NEW.state, NEW.reason);
END;

CREATE TRIGGER events_deploy_started AFTER UPDATE OF state ON deployments
WHEN NEW.state = 'running' AND OLD.state <> 'running'
BEGIN
	INSERT INTO events (kind, time, repo, ref, env, commit_id, user, push_id, build_id, deployment_id, state, reason)
	VALUES ('deploy.started', coalesce(NEW.started_at, CAST(unixepoch('subsec') * 1e9 AS INTEGER)),
	        NEW.repo, 'refs/release/' || NEW.env, NEW.env, NEW.commit_id, NEW.user,
	        NEW.push_id, NEW.build_id, NEW.id, NEW.state, NEW.reason);
END;
CREATE TRIGGER events_deploy_finished AFTER UPDATE OF state ON deployments
WHEN NEW.state IN ('succeeded', 'failed', 'rolled_back') AND OLD.state IN ('queued', 'running')
BEGIN
	INSERT INTO events (kind, time, repo, ref, env, commit_id, user, push_id, build_id, deployment_id, state, reason)
	VALUES ('deploy.finished', coalesce(NEW.finished_at, CAST(unixepoch('subsec') * 1e9 AS INTEGER)),
	        NEW.repo, 'refs/release/' || NEW.env, NEW.env, NEW.commit_id, NEW.user,
	        NEW.push_id, NEW.build_id, NEW.id, NEW.state, NEW.reason);
END;
`,
	// 11: webhook deliveries (issue 15). A delivery is written, body and
	// all, in the transaction that moves the "webhooks" cursor past its
	// event, before anything is sent; each attempt's outcome is written
	// after it. The pending ones of a (hook, repo) go oldest first.
	`
CREATE TABLE webhook_deliveries (
	id               INTEGER PRIMARY KEY,
	uid              TEXT    NOT NULL UNIQUE,
	hook             TEXT    NOT NULL,
	repo             TEXT    NOT NULL,
	url              TEXT    NOT NULL,
	event_id         INTEGER NOT NULL,
	event_kind       TEXT    NOT NULL,
	format           TEXT    NOT NULL,
	state            TEXT    NOT NULL CHECK (state IN ('pending', 'delivered', 'failed', 'refused', 'cancelled')),
	attempts         INTEGER NOT NULL DEFAULT 0,
	next_attempt     INTEGER NOT NULL,
	status_code      INTEGER NOT NULL DEFAULT 0,
	error            TEXT    NOT NULL DEFAULT '',
	request_headers  TEXT    NOT NULL DEFAULT '',
	request_body     BLOB    NOT NULL,
	response_headers TEXT    NOT NULL DEFAULT '',
	response_body    BLOB    NOT NULL DEFAULT x'',
	created_at       INTEGER NOT NULL,
	delivered_at     INTEGER,
	redelivery_of    INTEGER
);
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (hook, repo, id) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_by_repo ON webhook_deliveries (repo, hook, id);
`,
	// 12: each host's part in a deployment (issue 16: environments of many
	// hosts), one row per host, replaced as the host moves on. The primary
	// key is the index both reads use: one deployment's hosts in pos order,
	// and the latest result per host of an environment, which walks the
	// environment's deployments by deployments_by_env_id and reads each
	// one's hosts by this key. The reference has no ON DELETE action: the
	// store deletes a deployment's hosts itself, in the transaction that
	// deletes the deployment (prune), and foreign keys on the writer refuse
	// any deletion that would leave them behind.
	`
CREATE TABLE deployment_hosts (
	deployment_id INTEGER NOT NULL REFERENCES deployments (id),
	pos           INTEGER NOT NULL CHECK (pos >= 0),
	host          TEXT    NOT NULL CHECK (host <> ''),
	release       TEXT    NOT NULL DEFAULT '',
	previous      TEXT    NOT NULL DEFAULT '',
	state         TEXT    NOT NULL CHECK (state IN ('pending', 'prepared', 'failed', 'switched', 'live',
	                                                'rolled_back', 'skipped')),
	detail        TEXT    NOT NULL DEFAULT '',
	updated_at    INTEGER NOT NULL,
	PRIMARY KEY (deployment_id, pos)
) WITHOUT ROWID;
`,
}

// migrate brings the database to len(migs) in one write transaction: each
// pending step with its schema_migrations row under a savepoint, so that a
// step that fails is undone and the steps before it are kept, as if each had
// committed alone. The current version is read inside that transaction, so
// two processes opening the same old file cannot both apply a step, and a
// crash half-way leaves the version it found. (One transaction, not one per
// step: a new database is made in one commit, which halves what opening one
// costs.)
//
// Migrations run on one connection with foreign keys off, as SQLite's
// procedure for rebuilding a table asks (dropping a table that others
// reference would otherwise fail or cascade); foreign_key_check inside each
// transaction then refuses a migration that left a dangling reference, and
// the connection gets foreign keys back before it returns to the pool.
func migrate(ctx context.Context, db *sql.DB, migs []string) (err error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("migrate: get a connection: %w", err)
	}
	defer func() {
		if _, ferr := conn.ExecContext(context.WithoutCancel(ctx), `PRAGMA foreign_keys = ON`); ferr != nil && err == nil {
			err = fmt.Errorf("migrate: turn foreign keys back on: %w", ferr)
		}
		_ = conn.Close()
	}()
	if _, err := conn.ExecContext(ctx, `PRAGMA foreign_keys = OFF`); err != nil {
		return fmt.Errorf("migrate: turn foreign keys off: %w", err)
	}
	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		applied_at INTEGER NOT NULL
	)`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin migration: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	var v int
	if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&v); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if v > len(migs) {
		return fmt.Errorf("database schema version %d is newer than this slipway knows (%d): refusing to use it", v, len(migs))
	}
	var failed error
	for ; v < len(migs) && failed == nil; v++ {
		failed = migrateStep(ctx, tx, migs[v], v+1)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit migrations: %w", err)
	}
	return failed
}

// migrateStep applies migration version (mig) inside tx under a savepoint:
// when it fails, what it did is undone and the steps before it stay, to be
// committed.
func migrateStep(ctx context.Context, tx *sql.Tx, mig string, version int) error {
	if _, err := tx.ExecContext(ctx, `SAVEPOINT migration`); err != nil {
		return fmt.Errorf("apply migration %d: %w", version, err)
	}
	err := func() error {
		if _, err := tx.ExecContext(ctx, mig); err != nil {
			return fmt.Errorf("apply migration %d: %w", version, err)
		}
		if err := checkForeignKeys(ctx, tx); err != nil {
			return fmt.Errorf("apply migration %d: %w", version, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`, version, toNanos(now())); err != nil {
			return fmt.Errorf("record migration %d: %w", version, err)
		}
		return nil
	}()
	if err != nil {
		if _, rerr := tx.ExecContext(ctx, `ROLLBACK TO migration`); rerr != nil {
			return errors.Join(err, fmt.Errorf("undo migration %d: %w", version, rerr))
		}
	}
	if _, rerr := tx.ExecContext(ctx, `RELEASE migration`); rerr != nil {
		return errors.Join(err, fmt.Errorf("migration %d: %w", version, rerr))
	}
	return err
}

// checkForeignKeys fails when a row refers to one that does not exist.
func checkForeignKeys(ctx context.Context, tx *sql.Tx) error {
	rows, err := tx.QueryContext(ctx, `PRAGMA foreign_key_check`)
	if err != nil {
		return fmt.Errorf("check foreign keys: %w", err)
	}
	defer rows.Close()
	if rows.Next() {
		var (
			table, parent string
			rowid         sql.NullInt64
			fk            int
		)
		if err := rows.Scan(&table, &rowid, &parent, &fk); err != nil {
			return fmt.Errorf("check foreign keys: %w", err)
		}
		return fmt.Errorf("row %d of %s refers to a missing row of %s", rowid.Int64, table, parent)
	}
	return rows.Err()
}
