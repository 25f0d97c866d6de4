package gitserver

import (
	"context"
	"strings"

	"slipway/internal/gitrev"
)

// Disk is the repositories as git has them under a repositories folder,
// for reconciliation at start (package push) to compare with the record.
type Disk struct {
	ReposDir string
}

// Repos returns the canonical names of the repositories, sorted.
func (d Disk) Repos(context.Context) ([]string, error) { return listRepos(d.ReposDir) }

// Refs returns the refs of repository name and the objects they point at.
func (d Disk) Refs(ctx context.Context, name string) (map[string]string, error) {
	path, err := RepoPath(d.ReposDir, name)
	if err != nil {
		return nil, err
	}
	return gitrev.Refs(ctx, path)
}

// Resolve returns the commit that rev names in repository name (see
// gitrev.Resolve).
func (d Disk) Resolve(ctx context.Context, name, rev string) (string, error) {
	path, err := RepoPath(d.ReposDir, name)
	if err != nil {
		return "", err
	}
	return gitrev.Resolve(ctx, path, rev)
}

// Branches returns the branches of repository name (full ref names) and
// the commits at their tips.
func (d Disk) Branches(ctx context.Context, name string) (map[string]string, error) {
	refs, err := d.Refs(ctx, name)
	if err != nil {
		return nil, err
	}
	for ref := range refs {
		if !strings.HasPrefix(ref, "refs/heads/") {
			delete(refs, ref)
		}
	}
	return refs, nil
}
