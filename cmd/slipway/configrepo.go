package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"slipway/configrepo"
	"slipway/configs"
	"slipway/gitserver"
	"slipway/internal/gitrev"
)

// checkConfigRepo refuses to start with config_repo on when the daemon
// could not write what admins push to slipway-config: there must be a file
// (the embedded default has none), and the daemon must be able to replace
// it.
func checkConfigRepo(cfg *configs.Config, path string) error {
	if !cfg.ConfigRepo {
		return nil
	}
	if path == "" {
		return fmt.Errorf("config_repo = true needs a configuration file, where the daemon writes what admins push to %s: start with --config FILE (slipway config default > slipway.toml makes one)", configs.ConfigRepoName)
	}
	if err := configrepo.CheckWritable(path); err != nil {
		return fmt.Errorf("config_repo = true: the daemon must be able to write %s, where it puts each accepted push of %s, and it cannot: %w", path, configs.ConfigRepoName, err)
	}
	return nil
}

// newConfigRepo makes the configuration repository of a daemon whose
// configuration says config_repo = true: pushes to it are validated with
// the loader the daemon started with and reloaded by rl.
func newConfigRepo(cfg *configs.Config, rl *reloader, d *daemon) (*configrepo.Repo, error) {
	file, err := filepath.Abs(rl.path)
	if err != nil {
		return nil, fmt.Errorf("find the configuration file: %w", err)
	}
	gitDir, err := gitserver.RepoPath(cfg.ReposDir(), configs.ConfigRepoName)
	if err != nil {
		return nil, err
	}
	return configrepo.New(configrepo.Options{
		File:   file,
		GitDir: gitDir,
		Parse:  rl.loader.Parse,
		Reload: func(ctx context.Context, reason string, out io.Writer) {
			rl.Reload(ctx, reason).Print(out)
		},
		GitEnv: raceEnv(),
		Logger: d.logger.With("component", "config-repo"),
	})
}

// syncConfigRepo commits the configuration the daemon runs on (the file,
// when it still holds what origin read) to slipway-config's main when main
// does not hold it, the subject of the commit saying why. It returns a
// line for whoever asked for the reload, or "".
func (d *daemon) syncConfigRepo(ctx context.Context, origin configs.Origin, why string) string {
	if d.cfgRepo == nil {
		return ""
	}
	data, err := d.reload.read()
	if err == nil && digest(data) != origin.Digest {
		err = errors.New("the file has changed since it was read; reload to put it in force")
	}
	if err != nil {
		d.logger.Warn("the configuration in force was not committed to "+configs.ConfigRepoName, "err", err)
		return fmt.Sprintf("not committed to %s: %v", configs.ConfigRepoName, err)
	}
	commit, err := d.cfgRepo.Sync(ctx, data, why)
	if err != nil {
		d.logger.Error("commit the configuration in force to "+configs.ConfigRepoName, "err", err)
		return fmt.Sprintf("could not commit the configuration to %s: %v", configs.ConfigRepoName, err)
	}
	if commit == "" {
		return ""
	}
	return fmt.Sprintf("committed to %s %s as %s (%s)", configs.ConfigRepoName, configs.ConfigBranch, gitrev.Short(commit), why)
}
