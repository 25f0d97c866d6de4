package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"

	"slipway/build/sandbox"
	"slipway/configs"
)

// buildRoot returns the folder that holds build workspaces, caches and the
// sandbox's /etc. When the daemon runs as root, steps run as an
// unprivileged uid, which must be able to reach that folder: every folder
// above it must let others search it. The data dir is used when it can be
// reached (or when steps run as the daemon's own user). Otherwise, as when
// the daemon runs as root from a 0700 home folder, a private folder under
// the system's temporary folder is used, and the log says so.
func buildRoot(cfg *configs.Config, log *slog.Logger) (string, error) {
	if cfg.Build.WorkDir != "" {
		return cfg.Build.WorkDir, nil
	}
	def := filepath.Join(cfg.DataDir, "build")
	if os.Geteuid() != 0 || cfg.Build.Sandbox == "none" {
		return def, nil
	}
	blocked, _ := sandbox.UnreachableBy(cfg.DataDir, -1, -1)
	if blocked == "" {
		return def, nil
	}
	sum := sha256.Sum256([]byte(cfg.DataDir))
	alt := filepath.Join(os.TempDir(), "slipway-build-"+hex.EncodeToString(sum[:6]))
	who := any(cfg.Build.UID)
	if cfg.Build.UIDRange.Count > 0 {
		who = cfg.Build.UIDRange.String()
	}
	log.Warn("build folders are outside the data dir: build steps run as unprivileged uids that cannot search "+
		blocked+"; set build.work_dir to choose where they go", "build_dir", alt, "uids", who)
	return alt, nil
}

// makeBuildRoot creates the build folder (mode 0711: searchable, not
// listable) and refuses one that is not the daemon's own: a folder under the
// shared temporary folder could have been made by someone else beforehand.
func makeBuildRoot(dir string) error {
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return fmt.Errorf("create build folder: %w", err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("create build folder: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || !ok || int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("build folder %s is not a folder owned by the daemon's user; remove it or set build.work_dir", dir)
	}
	for _, sub := range []string{"", "work", "cache"} {
		p := filepath.Join(dir, sub)
		if err := os.MkdirAll(p, 0o711); err != nil {
			return fmt.Errorf("create build folder: %w", err)
		}
		if err := os.Chmod(p, 0o711); err != nil {
			return fmt.Errorf("set the mode of %s: %w", p, err)
		}
	}
	return nil
}
