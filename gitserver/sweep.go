package gitserver

import (
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
)

// quarantinePrefix starts the names of the folders in which git
// receive-pack keeps a push's objects until its pre-receive hook accepts
// them (objects/tmp_objdir-incoming-*, see git-receive-pack(1),
// "QUARANTINE ENVIRONMENT").
const quarantinePrefix = "tmp_objdir-incoming-"

// maxRepoDepth is how deep repositories lie under the repositories
// directory: names have one to three segments (configs.CleanRepoName).
const maxRepoDepth = 3

// SweepQuarantines removes the quarantine folders that pushes cut off by a
// daemon's death left in the bare repositories under reposDir (git removes
// its own on every other path). It must run before the SSH server serves:
// a push in flight owns its quarantine folder. It logs one line with the
// number of folders removed, and errors (the sweep goes on past them); it
// returns that number.
func SweepQuarantines(reposDir string, log *slog.Logger) int {
	var removed, failed int
	root := filepath.Clean(reposDir)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == root && errors.Is(err, fs.ErrNotExist) {
				return filepath.SkipAll
			}
			log.Warn("sweep quarantine folders", "path", p, "err", err)
			return nil
		}
		if !d.IsDir() || p == root {
			return nil
		}
		if !strings.HasSuffix(d.Name(), ".git") {
			if strings.Count(strings.TrimPrefix(p, root), string(filepath.Separator)) >= maxRepoDepth {
				return filepath.SkipDir
			}
			return nil
		}
		objects := filepath.Join(p, "objects")
		des, err := os.ReadDir(objects)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			log.Warn("sweep quarantine folders", "path", objects, "err", err)
		}
		for _, q := range des {
			if !q.IsDir() || !strings.HasPrefix(q.Name(), quarantinePrefix) {
				continue
			}
			if err := os.RemoveAll(filepath.Join(objects, q.Name())); err != nil {
				log.Error("remove a leftover quarantine folder", "path", filepath.Join(objects, q.Name()), "err", err)
				failed++
				continue
			}
			removed++
		}
		return filepath.SkipDir // nothing of ours inside a repository
	})
	if err != nil {
		log.Warn("sweep quarantine folders", "dir", root, "err", err)
	}
	log.Info("removed leftover quarantine folders", "count", removed, "failed", failed)
	return removed
}
