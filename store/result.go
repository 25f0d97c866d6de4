package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// LastResult returns the newest build of repo's ref (a full ref name) that
// ran the default pipeline for a push, a retry or by hand and passed,
// failed or errored: the branch's answer to "does it pass?", which its
// badge shows. Builds that say nothing about that are passed over:
// cancelled, superseded, skipped and interrupted ones, scheduled ones
// (they run their own section, on their own time), and verify builds that
// did not pass (their push was refused, so the branch never held their
// commit). ok is false when there is none. The builds_by_ref index serves
// it.
func (s *Store) LastResult(ctx context.Context, repo, ref string) (b Build, ok bool, err error) {
	b, err = scanBuild(s.r.QueryRowContext(ctx, `SELECT `+buildCols+` FROM builds
		WHERE repo = ? AND ref = ? AND pipeline = ? AND schedule = ''
		AND state IN ('passed', 'failed', 'error')
		AND (trigger <> 'verify' OR state = 'passed')
		ORDER BY id DESC LIMIT 1`, repo, ref, DefaultPipeline))
	if errors.Is(err, sql.ErrNoRows) {
		return Build{}, false, nil
	}
	if err != nil {
		return Build{}, false, fmt.Errorf("find the last result of %s in %q: %w", ref, repo, err)
	}
	return b, true, nil
}
