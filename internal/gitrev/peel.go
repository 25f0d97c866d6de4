package gitrev

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
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
	cmd := exec.CommandContext(ctx, "git", "--git-dir", gitDir, "rev-parse", "--verify", "--quiet",
		"--end-of-options", id+"^{commit}")
	// Only what git needs: never the daemon's own GIT_* variables.
	cmd.Env = append([]string{"PATH=/usr/local/bin:/usr/bin:/bin", "GIT_CONFIG_NOSYSTEM=1", "HOME=/nonexistent"}, env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) && exit.ExitCode() == 1 {
			return "", fmt.Errorf("peel %s: %w", id, ErrNotCommit)
		}
		return "", fmt.Errorf("peel %s: git rev-parse: %w: %s", id, err, strings.TrimSpace(stderr.String()))
	}
	commit := strings.TrimSpace(string(out))
	if !isHex(commit) {
		return "", fmt.Errorf("peel %s: git rev-parse printed %q", id, commit)
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
