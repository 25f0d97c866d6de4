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

const buildCols = `id, repo, ref, commit_id, push_id, trigger, schedule, pipeline, state, reason,
	created_at, started_at, finished_at, attempt, steps, worker, retry_of, artifacts_digest`

type stepJSON struct {
	Name       string `json:"name"`
	ExitCode   int    `json:"exit_code"`
	DurationNS int64  `json:"duration_ns"`
}

func encodeSteps(steps []StepResult) (string, error) {
	out := make([]stepJSON, len(steps))
	for i, s := range steps {
		out[i] = stepJSON{Name: s.Name, ExitCode: s.ExitCode, DurationNS: int64(s.Duration)}
	}
	b, err := json.Marshal(out)
	if err != nil {
		return "", fmt.Errorf("encode steps: %w", err)
	}
	return string(b), nil
}

func scanBuild(row rowScanner) (Build, error) {
	var (
		b                 Build
		pushID, retryOf   sql.NullInt64
		started, finished sql.NullInt64
		created           int64
		steps             string
		trigger, state    string
	)
	if err := row.Scan(&b.ID, &b.Repo, &b.Ref, &b.Commit, &pushID, &trigger, &b.Schedule, &b.Pipeline,
		&state, &b.Reason, &created, &started, &finished, &b.Attempt, &steps, &b.Worker, &retryOf, &b.ArtifactsDigest); err != nil {
		return Build{}, err
	}
	b.PushID, b.RetryOf = pushID.Int64, retryOf.Int64
	b.Trigger, b.State = Trigger(trigger), State(state)
	b.CreatedAt, b.StartedAt, b.FinishedAt = fromNanos(created), fromNullNanos(started), fromNullNanos(finished)
	var js []stepJSON
	if err := json.Unmarshal([]byte(steps), &js); err != nil {
		return Build{}, fmt.Errorf("decode steps of build %d: %w", b.ID, err)
	}
	for _, s := range js {
		b.Steps = append(b.Steps, StepResult{Name: s.Name, ExitCode: s.ExitCode, Duration: time.Duration(s.DurationNS)})
	}
	return b, nil
}

// queryBuilds runs a query selecting buildCols and returns every row.
func queryBuilds(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, query string, args ...any) ([]Build, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Build
	for rows.Next() {
		b, err := scanBuild(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, rows.Err()
}

// normalize fills defaults and checks a build about to be inserted.
func normalize(b *Build) error {
	if b.Pipeline == "" {
		b.Pipeline = DefaultPipeline
	}
	if b.Trigger == "" && b.PushID != 0 {
		b.Trigger = TriggerPush
	}
	if b.State == "" {
		b.State = StateQueued
	}
	switch {
	case b.Repo == "":
		return fmt.Errorf("%w: build without a repo", ErrInvalid)
	case !strings.HasPrefix(b.Ref, "refs/"):
		return fmt.Errorf("%w: build ref %q is not a full ref name", ErrInvalid, b.Ref)
	case b.State != StateQueued && b.State != StateSkipped && b.State != StateError:
		return fmt.Errorf("%w: a new build is queued, skipped or error, not %q", ErrInvalid, b.State)
	case b.State != StateQueued && b.Reason == "":
		return fmt.Errorf("%w: a %s build needs a reason", ErrInvalid, b.State)
	// A build recorded as error may have no commit: a scheduled branch
	// that does not exist has none.
	case (b.State == StateQueued || b.Commit != "") && (!validObjectID(b.Commit) || ZeroID(b.Commit)):
		return fmt.Errorf("%w: build commit %q is not an object id", ErrInvalid, b.Commit)
	case b.Trigger == TriggerPush && b.PushID == 0:
		return fmt.Errorf("%w: a push build needs its push", ErrInvalid)
	}
	switch b.Trigger {
	case TriggerPush, TriggerSchedule, TriggerRetry, TriggerManual, TriggerVerify:
	default:
		return fmt.Errorf("%w: unknown build trigger %q", ErrInvalid, b.Trigger)
	}
	return nil
}

// insertBuilds records bs in tx: queued builds supersede the still-queued
// builds of the same repo, ref, pipeline and schedule; skipped ones are
// recorded as already finished. pushID, when not 0, is set on every build.
func insertBuilds(ctx context.Context, tx *sql.Tx, bs []Build, pushID int64, out *Enqueued) error {
	for _, b := range bs {
		if pushID != 0 {
			b.PushID = pushID
		}
		if err := normalize(&b); err != nil {
			return err
		}
		b.CreatedAt = now()
		if b.State != StateQueued {
			b.FinishedAt = b.CreatedAt
		}
		row := tx.QueryRowContext(ctx, `
			INSERT INTO builds (repo, ref, commit_id, push_id, trigger, schedule, pipeline, state, reason,
				created_at, finished_at, retry_of)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			RETURNING `+buildCols,
			b.Repo, b.Ref, b.Commit, nullID(b.PushID), string(b.Trigger), b.Schedule, b.Pipeline,
			string(b.State), b.Reason, toNanos(b.CreatedAt), nullNanos(b.FinishedAt), nullID(b.RetryOf))
		nb, err := scanBuild(row)
		if err != nil {
			return fmt.Errorf("insert build of %s %s: %w", b.Repo, b.Ref, err)
		}
		out.Builds = append(out.Builds, nb)
		if nb.State != StateQueued || nb.Trigger == TriggerRetry || nb.Trigger == TriggerVerify {
			// A retry re-runs one old commit on request; it must not push
			// aside newer work that is waiting. A verification is a
			// question its pusher waits on, not the branch's next build
			// until git accepts the push.
			continue
		}
		sup, err := queryBuilds(ctx, tx, `
			UPDATE builds SET state = 'superseded', reason = ?, finished_at = ?
			WHERE repo = ? AND ref = ? AND pipeline = ? AND schedule = ? AND state = 'queued' AND id <> ?
				AND trigger <> 'verify'
			RETURNING `+buildCols,
			fmt.Sprintf("superseded by build %d", nb.ID), toNanos(nb.CreatedAt),
			nb.Repo, nb.Ref, nb.Pipeline, nb.Schedule, nb.ID)
		if err != nil {
			return fmt.Errorf("supersede queued builds of %s %s: %w", nb.Repo, nb.Ref, err)
		}
		out.Superseded = append(out.Superseded, sup...)
		run, err := queryBuilds(ctx, tx, `SELECT `+buildCols+` FROM builds
			WHERE repo = ? AND ref = ? AND pipeline = ? AND schedule = ? AND state = 'running'
				AND trigger <> 'verify' ORDER BY id`,
			nb.Repo, nb.Ref, nb.Pipeline, nb.Schedule)
		if err != nil {
			return fmt.Errorf("find running builds of %s %s: %w", nb.Repo, nb.Ref, err)
		}
		out.Running = append(out.Running, run...)
	}
	// A build superseded by a later one of the same batch was also
	// returned as recorded; show its final state there too.
	for i, b := range out.Builds {
		for _, s := range out.Superseded {
			if s.ID == b.ID {
				out.Builds[i] = s
			}
		}
	}
	return nil
}

// EnqueueBuilds records builds in one transaction. Each build is queued
// (State empty or StateQueued) or recorded as already ended: StateSkipped
// with a Reason (no .slipway.toml, over the per-push cap) or StateError with a
// Reason (a scheduled branch that does not exist; Commit may then be empty),
// so such a build is as visible as any other. A queued build marks every still-queued build of the same repo, ref,
// pipeline and schedule superseded, except when it is a retry.
func (s *Store) EnqueueBuilds(ctx context.Context, bs []Build) (Enqueued, error) {
	var out Enqueued
	err := s.write(ctx, func(tx *sql.Tx) error {
		out = Enqueued{}
		return insertBuilds(ctx, tx, bs, 0, &out)
	})
	if err != nil {
		return Enqueued{}, fmt.Errorf("enqueue builds: %w", err)
	}
	return out, nil
}

// RecordSkipped records a build that will not run, with the reason.
func (s *Store) RecordSkipped(ctx context.Context, b Build, reason string) (Build, error) {
	b.State, b.Reason = StateSkipped, reason
	out, err := s.EnqueueBuilds(ctx, []Build{b})
	if err != nil {
		return Build{}, err
	}
	return out.Builds[0], nil
}

// RecordPushAndEnqueue records a push, its builds and its deployments (a push
// to refs/release/<env>) in one transaction, so nothing git accepted is ever
// without its build record and no build exists for a push that was not
// recorded. Every build and deployment gets the push's ID.
func (s *Store) RecordPushAndEnqueue(ctx context.Context, p Push, bs []Build, ds []Deployment) (Enqueued, error) {
	return s.RecordVerifiedPush(ctx, p, bs, ds, nil)
}

// RecordVerifiedPush is RecordPushAndEnqueue that also, in the same
// transaction, records each of vs (running verify builds of this push) as
// passed, links it to the push and queues its automatic deployments. A
// build of vs that is no longer running (it was ended meanwhile) is left as
// it is and missing from Enqueued.Verified: the push is recorded whatever
// happened to its verification, since git has already moved the refs.
//
// When p.ID is set, p is the open push of that id (see PreparePush), which
// becomes a recorded one with p.Refs, the updates git made; it fails with
// ErrConflict if that push was recorded meanwhile.
func (s *Store) RecordVerifiedPush(ctx context.Context, p Push, bs []Build, ds []Deployment, vs []VerifiedBuild) (Enqueued, error) {
	var out Enqueued
	err := s.write(ctx, func(tx *sql.Tx) error {
		out = Enqueued{}
		id := p.ID
		if id != 0 {
			if err := finishPush(ctx, tx, p); err != nil {
				return err
			}
		} else {
			var err error
			if id, err = insertPush(ctx, tx, p); err != nil {
				return err
			}
		}
		out.PushID = id
		if err := insertBuilds(ctx, tx, bs, id, &out); err != nil {
			return err
		}
		for _, d := range ds {
			d.PushID = id
			nd, err := insertDeployment(ctx, tx, d)
			if err != nil {
				return err
			}
			out.Deployments = append(out.Deployments, nd)
		}
		for _, v := range vs {
			if err := passVerified(ctx, tx, id, v, &out); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return Enqueued{}, fmt.Errorf("record push to %q: %w", p.Repo, err)
	}
	return out, nil
}

// passVerified records verify build v as a passed build of push pushID,
// with its deployments, unless it is no longer a running verify build.
func passVerified(ctx context.Context, tx *sql.Tx, pushID int64, v VerifiedBuild, out *Enqueued) error {
	var trigger, state string
	err := tx.QueryRowContext(ctx, `SELECT trigger, state FROM builds WHERE id = ?`, v.ID).Scan(&trigger, &state)
	if errors.Is(err, sql.ErrNoRows) || err == nil && (Trigger(trigger) != TriggerVerify || State(state) != StateRunning) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("find verify build %d: %w", v.ID, err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE builds SET push_id = ? WHERE id = ?`, pushID, v.ID); err != nil {
		return fmt.Errorf("link verify build %d to its push: %w", v.ID, err)
	}
	b, err := finishBuild(ctx, tx, v.ID, StatePassed, v.Reason, v.Steps)
	if err != nil {
		return fmt.Errorf("record verify build %d as passed: %w", v.ID, err)
	}
	out.Verified = append(out.Verified, b)
	for _, d := range v.Deployments {
		d.BuildID = v.ID
		nd, err := insertDeployment(ctx, tx, d)
		if err != nil {
			return err
		}
		out.AutoDeployments = append(out.AutoDeployments, nd)
	}
	return nil
}

// ClaimBuild hands the next queued build to worker and marks it running
// (StartedAt now, Attempt+1). Verify builds come first, oldest first: a
// pusher waits on each with an open connection. Otherwise it is fair
// between repos: it takes the oldest queued build of the repo with the
// fewest running builds, so one repo's burst of pushes cannot starve the
// others. ok is false when nothing is queued.
func (s *Store) ClaimBuild(ctx context.Context, worker string) (b Build, ok bool, err error) {
	return s.ClaimBuildExcept(ctx, worker, nil)
}

// ClaimBuildExcept is ClaimBuild passing over the builds of every repo
// for which skip (if not nil) reports true: those stay queued, in their
// place. ok is false when nothing else is queued.
func (s *Store) ClaimBuildExcept(ctx context.Context, worker string, skip func(repo string) bool) (b Build, ok bool, err error) {
	err = s.write(ctx, func(tx *sql.Tx) error {
		id, err := firstClaimable(ctx, tx, `
			SELECT id, repo FROM builds WHERE state = 'queued' AND trigger = 'verify' ORDER BY id`, skip)
		if err == nil && id == 0 {
			id, err = firstClaimable(ctx, tx, `
			WITH q AS (SELECT repo, min(id) AS id FROM builds WHERE state = 'queued' GROUP BY repo),
			     r AS (SELECT repo, count(*) AS n FROM builds WHERE state = 'running' GROUP BY repo)
			SELECT q.id, q.repo FROM q LEFT JOIN r ON r.repo = q.repo
			ORDER BY coalesce(r.n, 0), q.id`, skip)
		}
		if err != nil {
			return fmt.Errorf("pick next build: %w", err)
		}
		if id == 0 {
			return errUnchanged
		}
		b, err = scanBuild(tx.QueryRowContext(ctx, `
			UPDATE builds SET state = 'running', started_at = ?, attempt = attempt + 1, worker = ?
			WHERE id = ? RETURNING `+buildCols, toNanos(now()), worker, id))
		if err != nil {
			return fmt.Errorf("mark build %d running: %w", id, err)
		}
		ok = true
		return nil
	})
	if err != nil {
		return Build{}, false, fmt.Errorf("claim build: %w", err)
	}
	return b, ok, nil
}

// firstClaimable returns the first build id of query's (id, repo) rows
// whose repo skip does not pass over, or 0.
func firstClaimable(ctx context.Context, tx *sql.Tx, query string, skip func(string) bool) (int64, error) {
	rows, err := tx.QueryContext(ctx, query)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var repo string
		if err := rows.Scan(&id, &repo); err != nil {
			return 0, err
		}
		if skip == nil || !skip(repo) {
			return id, nil
		}
	}
	return 0, rows.Err()
}

// finishBuild ends a running build inside tx.
func finishBuild(ctx context.Context, tx *sql.Tx, id int64, state State, reason string, steps []StepResult) (Build, error) {
	switch state {
	case StatePassed, StateFailed, StateError, StateCancelled, StateSkipped:
	default:
		return Build{}, fmt.Errorf("%w: a running build cannot end as %q", ErrInvalid, state)
	}
	js, err := encodeSteps(steps)
	if err != nil {
		return Build{}, err
	}
	b, err := scanBuild(tx.QueryRowContext(ctx, `
		UPDATE builds SET state = ?, reason = ?, steps = ?, finished_at = ?
		WHERE id = ? AND state = 'running' RETURNING `+buildCols,
		string(state), reason, js, toNanos(now()), id))
	if errors.Is(err, sql.ErrNoRows) {
		var cur string
		err := tx.QueryRowContext(ctx, `SELECT state FROM builds WHERE id = ?`, id).Scan(&cur)
		if errors.Is(err, sql.ErrNoRows) {
			return Build{}, ErrNotFound
		}
		if err != nil {
			return Build{}, err
		}
		return Build{}, fmt.Errorf("%w: build %d is %s, not running", ErrConflict, id, cur)
	}
	return b, err
}

// FinishBuild records the end of a running build. It fails with ErrConflict
// when the build is not running (already finished, or never claimed), so a
// late report from a worker cannot overwrite a result.
func (s *Store) FinishBuild(ctx context.Context, id int64, state State, reason string, steps []StepResult) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := finishBuild(ctx, tx, id, state, reason, steps)
		return err
	})
	if err != nil {
		return fmt.Errorf("finish build %d: %w", id, err)
	}
	return nil
}

// CancelBuild cancels a build. A queued build is cancelled at once and prev
// is StateQueued. A running build is left as it is and prev is StateRunning:
// the caller stops its processes and then calls FinishBuild with
// StateCancelled. A build that already ended returns its state and an error
// wrapping ErrConflict.
func (s *Store) CancelBuild(ctx context.Context, id int64, reason string) (prev State, err error) {
	if reason == "" {
		reason = "cancelled"
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		var cur string
		err := tx.QueryRowContext(ctx, `SELECT state FROM builds WHERE id = ?`, id).Scan(&cur)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		prev = State(cur)
		switch prev {
		case StateRunning:
			return nil
		case StateQueued:
			_, err := tx.ExecContext(ctx, `UPDATE builds SET state = 'cancelled', reason = ?, finished_at = ? WHERE id = ?`,
				reason, toNanos(now()), id)
			return err
		}
		return fmt.Errorf("%w: build %d already %s", ErrConflict, id, prev)
	})
	if err != nil {
		return prev, fmt.Errorf("cancel build %d: %w", id, err)
	}
	return prev, nil
}

// RetryBuild queues a new build of the same repo, ref, commit, pipeline and
// schedule as a finished build, with TriggerRetry and RetryOf set. A build
// that is still queued or running cannot be retried (ErrConflict).
func (s *Store) RetryBuild(ctx context.Context, id int64) (Build, error) {
	var nb Build
	err := s.write(ctx, func(tx *sql.Tx) error {
		old, err := scanBuild(tx.QueryRowContext(ctx, `SELECT `+buildCols+` FROM builds WHERE id = ?`, id))
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if !old.State.Final() {
			return fmt.Errorf("%w: build %d is still %s", ErrConflict, id, old.State)
		}
		var out Enqueued
		if err := insertBuilds(ctx, tx, []Build{{
			Repo: old.Repo, Ref: old.Ref, Commit: old.Commit, Trigger: TriggerRetry,
			Schedule: old.Schedule, Pipeline: old.Pipeline, RetryOf: old.ID,
		}}, 0, &out); err != nil {
			return err
		}
		nb = out.Builds[0]
		return nil
	})
	if err != nil {
		return Build{}, fmt.Errorf("retry build %d: %w", id, err)
	}
	return nb, nil
}

// RecoverInterrupted is called once at start, before any worker runs: every
// build still marked running was cut off by the daemon's death. Such a build
// goes back to the queue as the same build (same ID, so its log and the
// pusher's `log ID -f` stay valid) with its Attempt kept, so that its next
// claim is attempt 2 - unless it was already on a later attempt, or a newer
// build of the same ref is waiting; then it ends as interrupted or
// superseded. requeued are the builds back in the queue, stopped the ones that
// ended, each with a Reason that says what happened.
//
// Verify builds, queued or running, are never run again: the push each
// verified was refused when the daemon went away (or, in the instant between
// a pass and the push's record, was not recorded), so each ends as
// interrupted and never counts as a build of its branch.
func (s *Store) RecoverInterrupted(ctx context.Context) (requeued, stopped []Build, err error) {
	requeued, stopped, err = s.recoverRunning(ctx, `state IN ('queued', 'running')`, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("recover interrupted builds: %w", err)
	}
	return requeued, stopped, nil
}

// RecoverOrphaned applies RecoverInterrupted's rule, while the daemon runs,
// to the builds recorded running that are not in live (the builds this
// process runs, or holds for a push being verified): with one daemon per
// data dir, such a build has nobody behind it, because the write of its
// result failed for good or its worker is gone. Queued builds are left
// alone.
func (s *Store) RecoverOrphaned(ctx context.Context, live map[int64]bool) (requeued, stopped []Build, err error) {
	requeued, stopped, err = s.recoverRunning(ctx, `state = 'running'`, live)
	if err != nil {
		return nil, nil, fmt.Errorf("recover orphaned builds: %w", err)
	}
	return requeued, stopped, nil
}

// recoverRunning is RecoverInterrupted's rule for the verify builds whose
// state matches verifyStates and the running builds, except those in live.
func (s *Store) recoverRunning(ctx context.Context, verifyStates string, live map[int64]bool) (requeued, stopped []Build, err error) {
	err = s.write(ctx, func(tx *sql.Tx) error {
		requeued, stopped = nil, nil
		t := toNanos(now())
		verifies, err := queryBuilds(ctx, tx, `SELECT `+buildCols+` FROM builds WHERE trigger = 'verify' AND `+verifyStates+` ORDER BY id`)
		if err != nil {
			return fmt.Errorf("find verify builds: %w", err)
		}
		for _, b := range verifies {
			if live[b.ID] {
				continue
			}
			nb, err := scanBuild(tx.QueryRowContext(ctx, `UPDATE builds SET state = 'interrupted', reason = ?, finished_at = ?
				WHERE id = ? RETURNING `+buildCols,
				"interrupted: the daemon stopped before the push this build verified was recorded; it does not count for the branch", t, b.ID))
			if err != nil {
				return fmt.Errorf("end verify build %d: %w", b.ID, err)
			}
			stopped = append(stopped, nb)
		}
		running, err := queryBuilds(ctx, tx, `SELECT `+buildCols+` FROM builds WHERE state = 'running' ORDER BY id`)
		if err != nil {
			return fmt.Errorf("find running builds: %w", err)
		}
		for _, b := range running {
			if live[b.ID] {
				continue
			}
			var newer int64
			err := tx.QueryRowContext(ctx, `SELECT coalesce(max(id), 0) FROM builds
				WHERE repo = ? AND ref = ? AND pipeline = ? AND schedule = ? AND state = 'queued' AND id > ?`,
				b.Repo, b.Ref, b.Pipeline, b.Schedule, b.ID).Scan(&newer)
			if err != nil {
				return fmt.Errorf("look for newer builds of build %d: %w", b.ID, err)
			}
			var q string
			var args []any
			switch {
			case newer != 0:
				q = `UPDATE builds SET state = 'superseded', reason = ?, finished_at = ? WHERE id = ? RETURNING ` + buildCols
				args = []any{fmt.Sprintf("interrupted by a daemon stop during attempt %d; superseded by build %d", b.Attempt, newer), t, b.ID}
			case b.Attempt >= 2:
				q = `UPDATE builds SET state = 'interrupted', reason = ?, finished_at = ? WHERE id = ? RETURNING ` + buildCols
				args = []any{fmt.Sprintf("interrupted by a daemon stop during attempt %d; not queued again", b.Attempt), t, b.ID}
			default:
				q = `UPDATE builds SET state = 'queued', reason = ?, started_at = NULL, worker = '', steps = '[]'
					WHERE id = ? RETURNING ` + buildCols
				args = []any{fmt.Sprintf("interrupted by a daemon stop during attempt %d; queued again", b.Attempt), b.ID}
			}
			nb, err := scanBuild(tx.QueryRowContext(ctx, q, args...))
			if err != nil {
				return fmt.Errorf("recover build %d: %w", b.ID, err)
			}
			if nb.State == StateQueued {
				requeued = append(requeued, nb)
			} else {
				stopped = append(stopped, nb)
			}
		}
		return nil
	})
	return requeued, stopped, err
}

// GetBuild returns one build, or an error wrapping ErrNotFound.
func (s *Store) GetBuild(ctx context.Context, id int64) (Build, error) {
	b, err := scanBuild(s.r.QueryRowContext(ctx, `SELECT `+buildCols+` FROM builds WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Build{}, fmt.Errorf("get build %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Build{}, fmt.Errorf("get build %d: %w", id, err)
	}
	return b, nil
}

// QueuedBuilds counts the builds waiting for a worker. It reads through
// the read-only pool (an index range of builds_by_state), so it never
// waits for a write: the metrics' scrape calls it.
func (s *Store) QueuedBuilds(ctx context.Context) (int, error) {
	var n int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM builds WHERE state = 'queued'`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count queued builds: %w", err)
	}
	return n, nil
}

// ListBuilds returns builds newest first, of one repo or of all when repo is
// empty; at most limit of them, or all when limit <= 0.
func (s *Store) ListBuilds(ctx context.Context, repo string, limit int) ([]Build, error) {
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	bs, err := queryBuilds(ctx, s.r, `SELECT `+buildCols+` FROM builds
		WHERE ?1 = '' OR repo = ?1 ORDER BY id DESC LIMIT ?2`, repo, limit)
	if err != nil {
		return nil, fmt.Errorf("list builds of %q: %w", repo, err)
	}
	return bs, nil
}

// RequeueBuild puts a running build back in the queue without counting
// the attempt, with reason saying why it waits (its executor could not be
// reached, say). It fails with ErrConflict when the build is not running.
func (s *Store) RequeueBuild(ctx context.Context, id int64, reason string) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE builds SET state = 'queued', reason = ?, started_at = NULL, worker = '',
			steps = '[]', attempt = max(attempt - 1, 0) WHERE id = ? AND state = 'running'`, reason, id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("%w: build %d is not running", ErrConflict, id)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("requeue build %d: %w", id, err)
	}
	return nil
}

// PlaceBuild records where a running build runs ("kubernetes: pod P on node
// N"), in its worker field.
func (s *Store) PlaceBuild(ctx context.Context, id int64, where string) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE builds SET worker = ? WHERE id = ? AND state = 'running'`, where, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("place build %d: %w", id, err)
	}
	return nil
}
