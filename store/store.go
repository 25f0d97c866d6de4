package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// busyTimeout bounds how long a connection waits for a lock held by another
// process (a second slipway on the same file, or a backup tool) before the
// operation fails with SQLITE_BUSY. Within one process the single writer
// connection already serialises writes, so this is only ever hit across
// processes.
const busyTimeout = 10 * time.Second

// Store is a handle on the database. It is safe for concurrent use; all
// methods take a context that cancels the operation (a cancelled write is
// rolled back).
type Store struct {
	w *sql.DB // exactly one connection: the only path by which rows change
	r *sql.DB // read-only pool for queries

	changed changes // signalled after each write commits (events.go)
}

// Open opens the database at path, creating the file (mode 0600: it records
// who pushed what) when it does not exist, and applies any pending schema
// migrations. The parent directory must exist.
func Open(ctx context.Context, path string) (*Store, error) {
	return openWith(ctx, path, migrations)
}

func openWith(ctx context.Context, path string, migs []string) (*Store, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open database %q: %w", path, err)
	}
	// SQLite would create the file with the umask's mode; create it first so
	// the database and its -wal/-shm files (which copy the main file's mode)
	// are readable by the daemon's user only.
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open database %q: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("open database %q: %w", path, err)
	}

	w, err := sql.Open("sqlite", dsn(abs, false))
	if err != nil {
		return nil, fmt.Errorf("open database %q for writing: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	// Keep the writer's connection open for the life of the Store: closing
	// the last connection checkpoints and removes the WAL, and reopening it
	// per write would cost a schema parse each time.
	w.SetMaxIdleConns(1)
	w.SetConnMaxIdleTime(0)
	w.SetConnMaxLifetime(0)

	s := &Store{w: w}
	if err := migrate(ctx, w, migs); err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("migrate database %q: %w", path, err)
	}

	r, err := sql.Open("sqlite", dsn(abs, true))
	if err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("open database %q for reading: %w", path, err)
	}
	n := max(4, runtime.NumCPU())
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	if err := r.PingContext(ctx); err != nil {
		_ = w.Close()
		_ = r.Close()
		return nil, fmt.Errorf("open database %q for reading: %w", path, err)
	}
	s.r = r
	return s, nil
}

// dsn builds the driver's connection string. The path is passed as a file:
// URI so that characters such as '?' or '#' in a directory name cannot be
// taken for parameters.
func dsn(abs string, readOnly bool) string {
	u := url.URL{Path: abs}
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	q.Add("_pragma", "foreign_keys(1)")
	if readOnly {
		// query_only rather than mode=ro: a mode=ro connection cannot
		// recreate the -shm file of a WAL database after the writer
		// checkpointed it away, while query_only refuses writes all the same.
		q.Add("_pragma", "query_only(1)")
	} else {
		q.Add("_pragma", "journal_mode(WAL)")
		// FULL makes each commit durable before it returns: the store
		// acknowledges pushes and builds that git has already accepted, and
		// "recorded" must survive a power cut, not only a crash.
		q.Add("_pragma", "synchronous(FULL)")
		q.Set("_txlock", "immediate")
	}
	return "file://" + u.EscapedPath() + "?" + q.Encode()
}

// Close closes the database. Operations still running fail.
func (s *Store) Close() error {
	return errors.Join(s.r.Close(), s.w.Close())
}

// write runs fn in one write transaction (BEGIN IMMEDIATE on the single
// writer connection) and commits it when fn returns nil.
func (s *Store) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin write: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		if errors.Is(err, errUnchanged) {
			return nil
		}
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	s.changed.signal()
	return nil
}

// errUnchanged, returned by the function given to write, says that it
// found nothing to do and wrote nothing: write ends the transaction and
// returns nil without waking the readers of EventsChanged. An idle worker
// asks for work every second; waking the event readers (webhooks, notes)
// for each of those empty claims was most of an idle daemon's CPU.
var errUnchanged = errors.New("nothing written")

// now is the store's clock for times the caller did not provide.
func now() time.Time { return time.Now().UTC() }

func toNanos(t time.Time) int64 { return t.UTC().UnixNano() }

// nullNanos stores the zero time as NULL so "not started" stays distinct from
// any real instant.
func nullNanos(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UTC().UnixNano(), Valid: true}
}

func fromNanos(n int64) time.Time { return time.Unix(0, n).UTC() }

func fromNullNanos(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return fromNanos(n.Int64)
}

func nullID(id int64) sql.NullInt64 {
	if id == 0 {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: id, Valid: true}
}

// rowScanner is what *sql.Row and *sql.Rows have in common.
type rowScanner interface {
	Scan(dest ...any) error
}
