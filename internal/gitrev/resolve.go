package gitrev

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// ErrUnknownRev means a revision names no commit of the repository.
var ErrUnknownRev = errors.New("no such revision")

// maxRev bounds a revision people type.
const maxRev = 255

// Resolve returns the commit that rev (a branch, a tag, a commit id or a
// prefix of one, with ~ and ^ suffixes) names in the bare repository
// gitDir. Only those characters pass: no option, no path (rev:path),
// no reflog (@{...}). A revision that names nothing wraps ErrUnknownRev.
func Resolve(ctx context.Context, gitDir, rev string) (string, error) {
	if rev == "" || len(rev) > maxRev || rev[0] == '-' || strings.ContainsFunc(rev, func(r rune) bool {
		return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || strings.ContainsRune("._/~^-+", r))
	}) {
		return "", fmt.Errorf("%q: %w", clip(rev), ErrUnknownRev)
	}
	commit, err := commitOf(ctx, gitDir, rev, nil)
	if errors.Is(err, errNoCommit) {
		return "", fmt.Errorf("%q: %w", rev, ErrUnknownRev)
	}
	if err != nil {
		return "", fmt.Errorf("resolve %q: %w", rev, err)
	}
	return commit, nil
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
