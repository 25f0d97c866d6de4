package gitserver

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"slipway/configs"
)

// RepoPath returns the absolute path of the bare repository called name under
// reposDir. name is first canonicalised with configs.CleanRepoName, so the
// client forms ("/team/app.git") give the same path as the canonical name
// ("team/app"). The result always lies inside reposDir; anything that could
// leave it is an error wrapping configs.ErrRepoName.
func RepoPath(reposDir, name string) (string, error) {
	if reposDir == "" {
		return "", errors.New("repo path: no repositories directory")
	}
	canon, err := configs.CleanRepoName(name)
	if err != nil {
		return "", err
	}
	root, err := filepath.Abs(reposDir)
	if err != nil {
		return "", fmt.Errorf("repo path: %w", err)
	}
	p := filepath.Join(root, filepath.FromSlash(canon)+".git")
	// CleanRepoName already forbids every way out; this second check keeps
	// the guarantee even if its rules are loosened one day.
	rel, err := filepath.Rel(root, p)
	if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) || filepath.IsAbs(rel) {
		return "", fmt.Errorf("%w %q: outside the repositories directory", configs.ErrRepoName, name)
	}
	return p, nil
}
