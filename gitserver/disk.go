package gitserver

import (
	"context"

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
