package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// RefUpdate is one line of what git hands the receive hooks: a ref and its old
// and new object ids. An all-zero Old means the ref was created, an all-zero
// New that it was deleted.
type RefUpdate struct {
	Name, Old, New string
}

// Push is one accepted `git push`: who pushed, with which key, which refs
// changed and with which push options (`git push -o`).
type Push struct {
	ID             int64
	Repo           string
	User           string
	KeyFingerprint string
	Refs           []RefUpdate
	Options        []string
	Time           time.Time // when git accepted it; the store's clock if zero
}

// ZeroID reports whether id is git's all-zero object id (SHA-1 or SHA-256).
func ZeroID(id string) bool {
	return id != "" && strings.Trim(id, "0") == ""
}

// validObjectID accepts lowercase SHA-1 (40) or SHA-256 (64) hex ids, the
// only forms git prints in hook input.
func validObjectID(id string) bool {
	if len(id) != 40 && len(id) != 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// Validate reports whether the update is one git could have sent. Ref names
// are git's to check in full; this only refuses what would make the record
// unreadable or meaningless.
func (u RefUpdate) Validate() error {
	if !strings.HasPrefix(u.Name, "refs/") || len(u.Name) == len("refs/") {
		return fmt.Errorf("%w: ref name %q does not start with refs/", ErrInvalid, u.Name)
	}
	if strings.ContainsFunc(u.Name, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return fmt.Errorf("%w: ref name %q contains a control character", ErrInvalid, u.Name)
	}
	if !validObjectID(u.Old) || !validObjectID(u.New) || len(u.Old) != len(u.New) {
		return fmt.Errorf("%w: ref %q: object ids %q -> %q are not both lowercase hex of one hash", ErrInvalid, u.Name, u.Old, u.New)
	}
	if ZeroID(u.Old) && ZeroID(u.New) {
		return fmt.Errorf("%w: ref %q: old and new object ids are both zero", ErrInvalid, u.Name)
	}
	return nil
}

func (p Push) validate() error {
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
	if err := p.validate(); err != nil {
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
