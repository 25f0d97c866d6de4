package gitrev

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
)

// Refs returns every ref under refs/ of the bare repository gitDir with the
// object it points at (an annotated tag's own id, not its commit), as git
// has them on disk.
func Refs(ctx context.Context, gitDir string) (map[string]string, error) {
	cmd := exec.CommandContext(ctx, "git", "--git-dir", gitDir, "for-each-ref", "--format=%(objectname) %(refname)", "refs/")
	cmd.Env = gitEnv(nil)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("list the refs of %s: git for-each-ref: %w: %s", gitDir, err, strings.TrimSpace(stderr.String()))
	}
	refs := make(map[string]string)
	for line := range strings.Lines(string(out)) {
		id, name, ok := strings.Cut(strings.TrimSuffix(line, "\n"), " ")
		if !ok || !isHex(id) {
			return nil, fmt.Errorf("list the refs of %s: git for-each-ref printed %q", gitDir, line)
		}
		refs[name] = id
	}
	return refs, nil
}
