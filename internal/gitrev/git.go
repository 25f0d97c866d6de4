package gitrev

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
)

// errNoCommit is git's answer when a revision names no commit; Peel and
// Resolve say what that means to their callers (ErrNotCommit,
// ErrUnknownRev).
var errNoCommit = errors.New("names no commit")

// gitEnv is the whole environment of the git this package runs: only what
// git needs, never the daemon's own GIT_* variables, and extra (the
// quarantine variables of a push in progress, or nil).
func gitEnv(extra []string) []string {
	return append([]string{"PATH=/usr/local/bin:/usr/bin:/bin", "GIT_CONFIG_NOSYSTEM=1", "HOME=/nonexistent"}, extra...)
}

// commitOf asks git which commit rev names in the bare repository gitDir,
// annotated tags peeled. rev must already be known to be no option. A rev
// that names no commit returns errNoCommit.
func commitOf(ctx context.Context, gitDir, rev string, env []string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", "--git-dir", gitDir, "rev-parse", "--verify", "--quiet",
		"--end-of-options", rev+"^{commit}")
	cmd.Env = gitEnv(env)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) && exit.ExitCode() == 1 {
			return "", errNoCommit
		}
		return "", fmt.Errorf("git rev-parse: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	commit := strings.TrimSpace(string(out))
	if !isHex(commit) {
		return "", fmt.Errorf("git rev-parse printed %q", commit)
	}
	return commit, nil
}
