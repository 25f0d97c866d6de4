package gitrev

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
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
	cmd := exec.CommandContext(ctx, "git", "--git-dir", gitDir, "rev-parse", "--verify", "--quiet",
		"--end-of-options", rev+"^{commit}")
	cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "GIT_CONFIG_NOSYSTEM=1", "HOME=/nonexistent"}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) && exit.ExitCode() == 1 {
			return "", fmt.Errorf("%q: %w", rev, ErrUnknownRev)
		}
		return "", fmt.Errorf("resolve %q: git rev-parse: %w: %s", rev, err, strings.TrimSpace(stderr.String()))
	}
	commit := strings.TrimSpace(string(out))
	if !isHex(commit) {
		return "", fmt.Errorf("resolve %q: git rev-parse printed %q", rev, commit)
	}
	return commit, nil
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
