package build

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"

	"slipway/configs"
	"slipway/record"
)

// refCache returns the cache folder of build b's ref, making it if needed.
// Every ref has its own, so that no branch can plant something another
// branch's build runs (a feature branch writing the tool main's next build
// uses). A ref's first cache starts from a copy of the default branch's,
// never the default branch's own folder: from names that branch then.
func (s *Service) refCache(ctx context.Context, b record.Build) (dir, from string, err error) {
	repoDir := filepath.Join(s.o.CacheDir, url.PathEscape(b.Repo))
	dir = filepath.Join(repoDir, url.PathEscape(b.Ref))
	if _, err := os.Stat(dir); err == nil {
		return dir, "", nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", "", err
	}
	// Searchable, not readable: the build uid must reach its ref's folder,
	// which it owns (the sandbox hands it over), and list no other.
	if err := os.MkdirAll(repoDir, 0o711); err != nil {
		return "", "", err
	}
	if err := os.Chmod(repoDir, 0o711); err != nil {
		return "", "", err
	}
	// Build the new folder beside its final name and rename it into place:
	// a build that starts meanwhile sees no cache or a whole one.
	tmp := dir + ".new-" + strconv.FormatInt(b.ID, 10)
	if err := removeAll(tmp); err != nil {
		return "", "", err
	}
	def := configs.Snapshot(ctx, s.o.Config).DefaultBranch(b.Repo)
	base := filepath.Join(repoDir, url.PathEscape("refs/heads/"+def))
	if b.Ref != "refs/heads/"+def {
		if _, err := os.Stat(base); err == nil {
			// cp keeps modes, links and (as root) owners: the build uid
			// owns the copy as it owns the original.
			out, err := exec.CommandContext(ctx, "cp", "-a", "--reflink=auto", "--", base, tmp).CombinedOutput()
			if err != nil {
				_ = removeAll(tmp)
				return "", "", fmt.Errorf("copy %s's cache: %w: %s", def, err, out)
			}
			from = def
		}
	}
	if from == "" {
		if err := os.Mkdir(tmp, 0o700); err != nil {
			return "", "", err
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		// Another build of the same ref made it first: use that one.
		_ = removeAll(tmp)
		if _, serr := os.Stat(dir); serr != nil {
			return "", "", err
		}
		from = ""
	}
	return dir, from, nil
}
