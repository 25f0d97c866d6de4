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
// its id. The refs' recorded state moves with it. When p.ID is set, p is
// that open push (see RecordVerifiedPush).
func (s *Store) RecordPush(ctx context.Context, p Push) (int64, error) {
	rec, err := s.RecordVerifiedPush(ctx, p, nil, nil, nil)
	return rec.PushID, err
}

// Push and ref states (see migration 7).
const (
	pushOpen     = "open"
	pushRecorded = "recorded"
	refPrepared  = "prepared"
	refCommitted = "committed"
)

// insertPush inserts p as a recorded push, its refs committed.
func insertPush(ctx context.Context, tx *sql.Tx, p Push) (int64, error) {
	if err := validatePush(p); err != nil {
		return 0, err
	}
	id, err := insertPushRow(ctx, tx, p, pushRecorded, "")
	if err != nil {
		return 0, err
	}
	if err := insertRefs(ctx, tx, id, 0, p.Refs, refCommitted); err != nil {
		return 0, err
	}
	return id, moveRefs(ctx, tx, p.Repo, p.Refs)
}

func insertPushRow(ctx context.Context, tx *sql.Tx, p Push, state, session string) (int64, error) {
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
		`INSERT INTO pushes (repo, user, key_fingerprint, options, time, state, session) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		p.Repo, p.User, p.KeyFingerprint, string(optJSON), toNanos(p.Time), state, session)
	if err != nil {
		return 0, fmt.Errorf("insert push: %w", err)
	}
	id, err := res.LastInsertId()
	if err != nil {
		return 0, fmt.Errorf("insert push: %w", err)
	}
	return id, nil
}

// insertRefs adds us to push id from sequence number seq on.
func insertRefs(ctx context.Context, tx *sql.Tx, id int64, seq int, us []RefUpdate, state string) error {
	if len(us) == 0 {
		return nil
	}
	// One prepared statement for all refs: a mirror push of 1,500 refs is
	// then 1,500 cheap steps of one compiled statement inside one commit.
	st, err := tx.PrepareContext(ctx, `INSERT INTO push_refs (push_id, seq, name, old, new, state) VALUES (?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return fmt.Errorf("prepare ref insert: %w", err)
	}
	defer st.Close()
	for i, u := range us {
		if _, err := st.ExecContext(ctx, id, seq+i, u.Name, u.Old, u.New, state); err != nil {
			return fmt.Errorf("insert ref %q: %w", u.Name, err)
		}
	}
	return nil
}

// moveRefs sets the recorded state of repo's refs to what us made them.
func moveRefs(ctx context.Context, tx *sql.Tx, repo string, us []RefUpdate) error {
	if len(us) == 0 {
		return nil
	}
	del, err := tx.PrepareContext(ctx, `DELETE FROM refs WHERE repo = ? AND name = ?`)
	if err != nil {
		return fmt.Errorf("prepare ref state delete: %w", err)
	}
	defer del.Close()
	set, err := tx.PrepareContext(ctx, `INSERT INTO refs (repo, name, id) VALUES (?, ?, ?)
		ON CONFLICT (repo, name) DO UPDATE SET id = excluded.id`)
	if err != nil {
		return fmt.Errorf("prepare ref state update: %w", err)
	}
	defer set.Close()
	for _, u := range us {
		if ZeroID(u.New) {
			_, err = del.ExecContext(ctx, repo, u.Name)
		} else {
			_, err = set.ExecContext(ctx, repo, u.Name, u.New)
		}
		if err != nil {
			return fmt.Errorf("record the state of ref %q: %w", u.Name, err)
		}
	}
	return nil
}

// PreparePush records the ref updates git is about to make (the
// reference-transaction hook's "prepared" state) in the open push of
// session in p.Repo, which it opens if there is none, and returns that
// push's id. It returns only once the record is durable; git moves the refs
// after that, or not at all when this fails. An update already prepared in
// that push is not recorded twice.
func (s *Store) PreparePush(ctx context.Context, p Push, session string) (int64, error) {
	if err := validatePush(p); err != nil {
		return 0, err
	}
	var id int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		var (
			err    error
			opened bool
		)
		if id, opened, err = openPush(ctx, tx, p, session); err != nil {
			return err
		}
		if opened {
			return insertRefs(ctx, tx, id, 0, p.Refs, refPrepared)
		}
		have, seq, err := refRows(ctx, tx, id)
		if err != nil {
			return err
		}
		var fresh []RefUpdate
		for _, u := range p.Refs {
			if _, ok := have[u]; !ok {
				fresh = append(fresh, u)
			}
		}
		return insertRefs(ctx, tx, id, seq, fresh, refPrepared)
	})
	if err != nil {
		return 0, fmt.Errorf("prepare push to %q: %w", p.Repo, err)
	}
	return id, nil
}

// openPush returns the id of session's open push in p.Repo, opening one
// with p's user, key and options if there is none (opened).
func openPush(ctx context.Context, tx *sql.Tx, p Push, session string) (id int64, opened bool, err error) {
	err = tx.QueryRowContext(ctx, `SELECT id FROM pushes WHERE repo = ? AND session = ? AND state = 'open' ORDER BY id DESC LIMIT 1`,
		p.Repo, session).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		id, err = insertPushRow(ctx, tx, p, pushOpen, session)
		return id, true, err
	}
	if err != nil {
		return 0, false, fmt.Errorf("find the open push: %w", err)
	}
	return id, false, nil
}

// refRow is one recorded update of a push.
type refRow struct {
	seq   int
	state string
}

// refRows returns the updates recorded in push id and the next sequence
// number, in one read: a mirror push's thousands of refs are then matched
// in memory and changed by primary key.
func refRows(ctx context.Context, tx *sql.Tx, id int64) (map[RefUpdate]refRow, int, error) {
	rows, err := tx.QueryContext(ctx, `SELECT seq, name, old, new, state FROM push_refs WHERE push_id = ?`, id)
	if err != nil {
		return nil, 0, fmt.Errorf("read the refs of push %d: %w", id, err)
	}
	defer rows.Close()
	have := map[RefUpdate]refRow{}
	next := 0
	for rows.Next() {
		var (
			u RefUpdate
			r refRow
		)
		if err := rows.Scan(&r.seq, &u.Name, &u.Old, &u.New, &r.state); err != nil {
			return nil, 0, fmt.Errorf("read the refs of push %d: %w", id, err)
		}
		have[u] = r
		next = max(next, r.seq+1)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("read the refs of push %d: %w", id, err)
	}
	return have, next, nil
}

// CommitRefs records that git made the updates us of session's open push
// in repo (the "committed" state), and moves the refs' recorded state. An
// update that was never prepared is added, so that the record holds
// whatever git says it did.
func (s *Store) CommitRefs(ctx context.Context, p Push, session string) error {
	if err := validatePush(p); err != nil {
		return err
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		id, _, err := openPush(ctx, tx, p, session)
		if err != nil {
			return err
		}
		return commitRefs(ctx, tx, id, p.Repo, p.Refs)
	})
	if err != nil {
		return fmt.Errorf("commit refs of a push to %q: %w", p.Repo, err)
	}
	return nil
}

func commitRefs(ctx context.Context, tx *sql.Tx, id int64, repo string, us []RefUpdate) error {
	have, seq, err := refRows(ctx, tx, id)
	if err != nil {
		return err
	}
	st, err := tx.PrepareContext(ctx, `UPDATE push_refs SET state = 'committed' WHERE push_id = ? AND seq = ?`)
	if err != nil {
		return fmt.Errorf("prepare ref commit: %w", err)
	}
	defer st.Close()
	var missing []RefUpdate
	for _, u := range us {
		r, ok := have[u]
		switch {
		case !ok:
			missing = append(missing, u)
		case r.state == refPrepared:
			if _, err := st.ExecContext(ctx, id, r.seq); err != nil {
				return fmt.Errorf("commit ref %q: %w", u.Name, err)
			}
		}
	}
	if err := insertRefs(ctx, tx, id, seq, missing, refCommitted); err != nil {
		return err
	}
	return moveRefs(ctx, tx, repo, us)
}

// AbortRefs withdraws the prepared updates us of session's open push in
// repo, which git did not make (the "aborted" state); an open push left
// without refs is deleted.
func (s *Store) AbortRefs(ctx context.Context, repo, session string, us []RefUpdate) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		var id int64
		err := tx.QueryRowContext(ctx, `SELECT id FROM pushes WHERE repo = ? AND session = ? AND state = 'open' ORDER BY id DESC LIMIT 1`,
			repo, session).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("find the open push: %w", err)
		}
		have, _, err := refRows(ctx, tx, id)
		if err != nil {
			return err
		}
		for _, u := range us {
			if r, ok := have[u]; ok && r.state == refPrepared {
				if _, err := tx.ExecContext(ctx, `DELETE FROM push_refs WHERE push_id = ? AND seq = ?`, id, r.seq); err != nil {
					return fmt.Errorf("withdraw ref %q: %w", u.Name, err)
				}
			}
		}
		return deleteIfEmpty(ctx, tx, id)
	})
	if err != nil {
		return fmt.Errorf("abort refs of a push to %q: %w", repo, err)
	}
	return nil
}

func deleteIfEmpty(ctx context.Context, tx *sql.Tx, id int64) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM pushes WHERE id = ? AND state = 'open'
		AND NOT EXISTS (SELECT 1 FROM push_refs WHERE push_id = ?)`, id, id); err != nil {
		return fmt.Errorf("delete empty push %d: %w", id, err)
	}
	return nil
}

// finishPush makes open push p.ID a recorded one: the updates p.Refs (what
// git made) are committed, the prepared updates git did not make
// withdrawn, and p's options kept. It fails with ErrConflict when the push
// is not open any more (recorded meanwhile).
func finishPush(ctx context.Context, tx *sql.Tx, p Push) error {
	var state string
	err := tx.QueryRowContext(ctx, `SELECT state FROM pushes WHERE id = ? AND repo = ?`, p.ID, p.Repo).Scan(&state)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%w: no push %d to %q", ErrNotFound, p.ID, p.Repo)
	}
	if err != nil {
		return fmt.Errorf("find push %d: %w", p.ID, err)
	}
	if state != pushOpen {
		return fmt.Errorf("%w: push %d is already recorded", ErrConflict, p.ID)
	}
	if err := commitRefs(ctx, tx, p.ID, p.Repo, p.Refs); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM push_refs WHERE push_id = ? AND state = 'prepared'`, p.ID); err != nil {
		return fmt.Errorf("withdraw the refs git did not update: %w", err)
	}
	opts := p.Options
	if opts == nil {
		opts = []string{}
	}
	optJSON, err := json.Marshal(opts)
	if err != nil {
		return fmt.Errorf("encode push options: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE pushes SET state = 'recorded', options = ? WHERE id = ?`, string(optJSON), p.ID); err != nil {
		return fmt.Errorf("record push %d: %w", p.ID, err)
	}
	return nil
}

// DeletePush removes open push id, which git made nothing of. A recorded
// push is never deleted this way.
func (s *Store) DeletePush(ctx context.Context, id int64) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM pushes WHERE id = ? AND state = 'open'`, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("delete open push %d: %w", id, err)
	}
	return nil
}

// OpenPushes returns every open push, oldest first, with its refs.
func (s *Store) OpenPushes(ctx context.Context) ([]OpenPush, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, repo, user, key_fingerprint, options, time FROM pushes WHERE state = 'open' ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list open pushes: %w", err)
	}
	defer rows.Close()
	var out []OpenPush
	for rows.Next() {
		var (
			o    OpenPush
			opts string
			t    int64
		)
		if err := rows.Scan(&o.ID, &o.Repo, &o.User, &o.KeyFingerprint, &opts, &t); err != nil {
			return nil, fmt.Errorf("list open pushes: %w", err)
		}
		if err := json.Unmarshal([]byte(opts), &o.Options); err != nil {
			return nil, fmt.Errorf("decode options of push %d: %w", o.ID, err)
		}
		if len(o.Options) == 0 {
			o.Options = nil
		}
		o.Time = fromNanos(t)
		out = append(out, o)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list open pushes: %w", err)
	}
	rows.Close()
	for i := range out {
		if err := s.openRefs(ctx, &out[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// OpenPushID returns the id of session's open push in repo; ErrNotFound if
// there is none.
func (s *Store) OpenPushID(ctx context.Context, repo, session string) (int64, error) {
	var id int64
	err := s.r.QueryRowContext(ctx, `SELECT id FROM pushes WHERE repo = ? AND session = ? AND state = 'open' ORDER BY id DESC LIMIT 1`,
		repo, session).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("open push of %q: %w", repo, ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("find the open push of %q: %w", repo, err)
	}
	return id, nil
}

func (s *Store) openRefs(ctx context.Context, o *OpenPush) error {
	rows, err := s.r.QueryContext(ctx, `SELECT name, old, new, state FROM push_refs WHERE push_id = ? ORDER BY seq`, o.ID)
	if err != nil {
		return fmt.Errorf("get refs of push %d: %w", o.ID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			u     RefUpdate
			state string
		)
		if err := rows.Scan(&u.Name, &u.Old, &u.New, &state); err != nil {
			return fmt.Errorf("get refs of push %d: %w", o.ID, err)
		}
		if state == refCommitted {
			o.Refs = append(o.Refs, u)
		} else {
			o.Prepared = append(o.Prepared, u)
		}
	}
	return rows.Err()
}

// RecordedRefs returns the last recorded value of every ref of repo.
func (s *Store) RecordedRefs(ctx context.Context, repo string) (map[string]string, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT name, id FROM refs WHERE repo = ?`, repo)
	if err != nil {
		return nil, fmt.Errorf("recorded refs of %q: %w", repo, err)
	}
	defer rows.Close()
	out := make(map[string]string)
	for rows.Next() {
		var name, id string
		if err := rows.Scan(&name, &id); err != nil {
			return nil, fmt.Errorf("recorded refs of %q: %w", repo, err)
		}
		out[name] = id
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("recorded refs of %q: %w", repo, err)
	}
	return out, nil
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
		WHERE id IN (SELECT max(id) FROM pushes WHERE state = 'recorded' GROUP BY repo)`)
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
		WHERE r.push_id IN (SELECT max(id) FROM pushes WHERE state = 'recorded' GROUP BY repo) ORDER BY r.push_id, r.seq`)
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
