package gitrev

import (
	"context"
	"errors"
	"fmt"
)

// ErrNotCommit means the object is neither a commit nor an annotated tag
// (or a chain of them) that ends at one: a tree, a blob, a tag of a blob,
// or an id the repository does not have.
var ErrNotCommit = errors.New("not a commit or a tag of one")

// Peel returns the commit that id names in the bare repository gitDir: id
// itself when it is a commit, the commit an annotated tag (or a tag of a
// tag) points at otherwise. env is added to git's environment, for the
// quarantine variables of a push in progress (GIT_OBJECT_DIRECTORY,
// GIT_ALTERNATE_OBJECT_DIRECTORIES); nil reads the repository as it is.
func Peel(ctx context.Context, gitDir, id string, env []string) (string, error) {
	if !isHex(id) {
		return "", fmt.Errorf("peel %q: %w", id, ErrNotCommit)
	}
	commit, err := commitOf(ctx, gitDir, id, env)
	if errors.Is(err, errNoCommit) {
		return "", fmt.Errorf("peel %s: %w", id, ErrNotCommit)
	}
	if err != nil {
		return "", fmt.Errorf("peel %s: %w", id, err)
	}
	return commit, nil
}

// isHex reports whether s looks like a full object id (SHA-1 or SHA-256).
func isHex(s string) bool {
	if len(s) != 40 && len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
