package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// openTest opens a fresh store in the test's temp dir and closes it at the end.
// upgrade closes old, a store at path written by an older version, and
// opens path with this version's migrations; the store is closed when the
// test ends.
func upgrade(t *testing.T, old *Store, path string) *Store {
	t.Helper()
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func openTest(t testing.TB) *Store {
	t.Helper()
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "slipway.db"))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// oid makes a deterministic 40-hex object id from n.
func oid(n int) string { return fmt.Sprintf("%040x", n+1) }

const zero = "0000000000000000000000000000000000000000"

func TestOpenCreatesPrivateWALDatabase(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "slip way?#.db") // characters that must not be read as URI syntax
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("database file not created at %q: %v", path, err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("database mode = %v, want 0600", fi.Mode().Perm())
	}
	var mode string
	if err := s.r.QueryRowContext(t.Context(), `PRAGMA journal_mode`).Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if mode != "wal" {
		t.Errorf("journal_mode = %q, want wal", mode)
	}
	var fk int
	if err := s.w.QueryRowContext(t.Context(), `PRAGMA foreign_keys`).Scan(&fk); err != nil {
		t.Fatal(err)
	}
	if fk != 1 {
		t.Errorf("foreign_keys = %d on the writer, want 1", fk)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "slip way?#.db") {
			t.Errorf("unexpected file %q beside the database", e.Name())
		}
	}
}

func TestReadPoolRefusesWrites(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	_, err := s.r.ExecContext(t.Context(), `INSERT INTO pushes (repo, user, key_fingerprint, time) VALUES ('a', 'u', 'k', 1)`)
	if err == nil {
		t.Fatal("insert through the read pool succeeded; only the writer may change rows")
	}
}

func TestReopenKeepsDataAndUpgradesOldSchema(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "old.db")
	// A database as the first release left it: only the first migration.
	old, err := openWith(ctx, path, migrations[:1])
	if err != nil {
		t.Fatalf("open with first migration only: %v", err)
	}
	// Written as that release wrote it.
	res, err := old.w.ExecContext(ctx, `INSERT INTO pushes (repo, user, key_fingerprint, time) VALUES ('app', 'alice', 'SHA256:x', 1)`)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := res.LastInsertId()
	if _, err := old.w.ExecContext(ctx, `INSERT INTO push_refs (push_id, seq, name, old, new) VALUES (?, 0, 'refs/heads/main', ?, ?)`, id, zero, oid(1)); err != nil {
		t.Fatal(err)
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}

	s, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("Open of an old database: %v", err)
	}
	defer s.Close()
	var v int
	if err := s.r.QueryRowContext(ctx, `SELECT max(version) FROM schema_migrations`).Scan(&v); err != nil {
		t.Fatal(err)
	}
	if v != len(migrations) {
		t.Errorf("schema version after upgrade = %d, want %d", v, len(migrations))
	}
	p, err := s.GetPush(ctx, id)
	if err != nil {
		t.Fatalf("push recorded before the upgrade is gone: %v", err)
	}
	if p.User != "alice" || len(p.Refs) != 1 {
		t.Errorf("push after upgrade = %+v", p)
	}
	// Migration 7 seeded the recorded state of the refs from the history.
	if refs, err := s.RecordedRefs(ctx, "app"); err != nil || len(refs) != 1 || refs["refs/heads/main"] != oid(1) {
		t.Errorf("recorded refs after upgrade = %v, %v; want main at %s", refs, err, oid(1))
	}
	// The later tables exist and work on the upgraded file.
	if _, err := s.EnqueueBuilds(ctx, []Build{{Repo: "app", Ref: "refs/heads/main", Commit: oid(1), PushID: id}}); err != nil {
		t.Errorf("enqueue a build of the old push after upgrade: %v", err)
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "new.db")
	future := append(append([]string{}, migrations...), `CREATE TABLE from_the_future (x INTEGER)`)
	s, err := openWith(ctx, path, future)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := Open(ctx, path); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("Open of a database from a newer slipway: err = %v, want a refusal naming the version", err)
	}
}

func TestFailedMigrationLeavesNoTrace(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "bad.db")
	bad := append(append([]string{}, migrations...), `CREATE TABLE half (x INTEGER); THIS IS NOT SQL;`)
	if _, err := openWith(ctx, path, bad); err == nil {
		t.Fatal("a broken migration was applied without error")
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_schema WHERE name = 'half'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Error("the failed migration's first statement stayed applied")
	}
	var v int
	if err := db.QueryRowContext(ctx, `SELECT max(version) FROM schema_migrations`).Scan(&v); err != nil {
		t.Fatal(err)
	}
	if v != len(migrations) {
		t.Errorf("schema version = %d, want %d (the good migrations only)", v, len(migrations))
	}
	// And the good part still opens.
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("reopen after failed migration: %v", err)
	}
	s.Close()
}

func TestOpenInMissingDirectoryFails(t *testing.T) {
	t.Parallel()
	_, err := Open(context.Background(), filepath.Join(t.TempDir(), "no", "such", "dir", "x.db"))
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Open in a missing directory: err = %v, want not-exist", err)
	}
}
