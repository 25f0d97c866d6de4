package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
)

func validatePush(p Push) error {
	if p.Repo == "" {
		return fmt.Errorf("%w: push without a repo", ErrInvalid)
	}
	for _, u := range p.Refs {
		if err := u.Validate(); err != nil {
			return err
		}
	}
	return nil
}

// RecordPush records a push and all its ref updates in one transaction (a
// mirror push of thousands of refs is one commit, not one per ref) and returns
// its id.
func (s *Store) RecordPush(ctx context.Context, p Push) (int64, error) {
	var id int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		var err error
		id, err = insertPush(ctx, tx, p)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("record push to %q: %w", p.Repo, err)
	}
	return id, nil
}

func insertPush(ctx context.Context, tx *sql.Tx, p Push) (int64, error) {
	if err := validatePush(p); err != nil {
		return 0, err
	}
	if p.Time.IsZero() {
		p.Time = now()
	}
	opts := p.Options
	if opts == nil {
		opts = []string{}
	}
	optJSON, err := json.Marshal(opts)
	if err != nil {
		return 0, fmt.Errorf("encode push options: %w", err)
	}
	res, err := tx.ExecContext(ctx,
		`INSERT INTO pushes (repo, user, key_fingerprint, options, time) VALUES (?, ?, ?, ?, ?)`,
		p.Repo, p.User, p.KeyFingerprint, string(optJSON), toNanos(p.Time))
	if err != nil {
		return 0, fmt.Errorf("insert push: %w", err)
	}
	id, err := res.LastInsertId()
	if err != nil {
		return 0, fmt.Errorf("insert push: %w", err)
	}
	if len(p.Refs) == 0 {
		return id, nil
	}
	// One prepared statement for all refs: a mirror push of 1,500 refs is
	// then 1,500 cheap steps of one compiled statement inside one commit.
	st, err := tx.PrepareContext(ctx, `INSERT INTO push_refs (push_id, seq, name, old, new) VALUES (?, ?, ?, ?, ?)`)
	if err != nil {
		return 0, fmt.Errorf("prepare ref insert: %w", err)
	}
	defer st.Close()
	for i, u := range p.Refs {
		if _, err := st.ExecContext(ctx, id, i, u.Name, u.Old, u.New); err != nil {
			return 0, fmt.Errorf("insert ref %q: %w", u.Name, err)
		}
	}
	return id, nil
}

// GetPush returns the push with the given id, its refs in the order they were
// recorded. It returns an error wrapping ErrNotFound if there is none.
func (s *Store) GetPush(ctx context.Context, id int64) (Push, error) {
	p, err := scanPush(s.r.QueryRowContext(ctx,
		`SELECT id, repo, user, key_fingerprint, options, time FROM pushes WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Push{}, fmt.Errorf("get push %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Push{}, fmt.Errorf("get push %d: %w", id, err)
	}
	rows, err := s.r.QueryContext(ctx, `SELECT name, old, new FROM push_refs WHERE push_id = ? ORDER BY seq`, id)
	if err != nil {
		return Push{}, fmt.Errorf("get refs of push %d: %w", id, err)
	}
	defer rows.Close()
	for rows.Next() {
		var u RefUpdate
		if err := rows.Scan(&u.Name, &u.Old, &u.New); err != nil {
			return Push{}, fmt.Errorf("get refs of push %d: %w", id, err)
		}
		p.Refs = append(p.Refs, u)
	}
	if err := rows.Err(); err != nil {
		return Push{}, fmt.Errorf("get refs of push %d: %w", id, err)
	}
	return p, nil
}

func scanPush(row rowScanner) (Push, error) {
	var (
		p    Push
		opts string
		t    int64
	)
	if err := row.Scan(&p.ID, &p.Repo, &p.User, &p.KeyFingerprint, &opts, &t); err != nil {
		return Push{}, err
	}
	if err := json.Unmarshal([]byte(opts), &p.Options); err != nil {
		return Push{}, fmt.Errorf("decode options of push %d: %w", p.ID, err)
	}
	if len(p.Options) == 0 {
		p.Options = nil
	}
	p.Time = fromNanos(t)
	return p, nil
}

// LastPushes returns the newest push of every repo that has one, keyed by
// repo name, with its refs, for listings such as `ssh host repos` (which
// summarise them: "main 1a2b3c4, +3 more").
func (s *Store) LastPushes(ctx context.Context) (map[string]Push, error) {
	rows, err := s.r.QueryContext(ctx, `
		SELECT id, repo, user, key_fingerprint, options, time FROM pushes
		WHERE id IN (SELECT max(id) FROM pushes GROUP BY repo)`)
	if err != nil {
		return nil, fmt.Errorf("list last pushes: %w", err)
	}
	defer rows.Close()
	out := make(map[string]Push)
	for rows.Next() {
		p, err := scanPush(rows)
		if err != nil {
			return nil, fmt.Errorf("list last pushes: %w", err)
		}
		out[p.Repo] = p
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list last pushes: %w", err)
	}
	refs, err := s.r.QueryContext(ctx, `
		SELECT p.repo, r.name, r.old, r.new FROM push_refs r JOIN pushes p ON p.id = r.push_id
		WHERE r.push_id IN (SELECT max(id) FROM pushes GROUP BY repo) ORDER BY r.push_id, r.seq`)
	if err != nil {
		return nil, fmt.Errorf("list refs of last pushes: %w", err)
	}
	defer refs.Close()
	for refs.Next() {
		var (
			repo string
			u    RefUpdate
		)
		if err := refs.Scan(&repo, &u.Name, &u.Old, &u.New); err != nil {
			return nil, fmt.Errorf("list refs of last pushes: %w", err)
		}
		p := out[repo]
		p.Refs = append(p.Refs, u)
		out[repo] = p
	}
	if err := refs.Err(); err != nil {
		return nil, fmt.Errorf("list refs of last pushes: %w", err)
	}
	return out, nil
}
