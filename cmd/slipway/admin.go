package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"time"

	"github.com/BurntSushi/toml"

	"slipway/configs"
	"slipway/gitserver"
)

// commands adds the daemon's own SSH commands, for admins, to the
// console's.
func (d *daemon) commands(console map[string]gitserver.Command) map[string]gitserver.Command {
	all := maps.Clone(console)
	all["reload"] = gitserver.Command{
		Usage:   "reload",
		Summary: "re-read the configuration file and put it in force (admins)",
		Run:     d.adminOnly("reload", d.reloadCommand),
	}
	all["config"] = gitserver.Command{
		Usage:   "config",
		Summary: "print the configuration in force, and which load produced it (admins)",
		Run:     d.adminOnly("config", d.configCommand),
	}
	return all
}

type commandFunc = func(ctx context.Context, c gitserver.Caller, args []string, stdout, stderr io.Writer) int

// adminOnly refuses run to everyone who is not an admin in the session's
// configuration.
func (d *daemon) adminOnly(name string, run commandFunc) commandFunc {
	return func(ctx context.Context, c gitserver.Caller, args []string, stdout, stderr io.Writer) int {
		if u, ok := configs.Snapshot(ctx, d.live).User(c.User); !ok || !u.Admin {
			fmt.Fprintf(stderr, "slipway: %s is for admins; %s is not one\n", name, c.User)
			return 1
		}
		if len(args) > 0 {
			fmt.Fprintf(stderr, "slipway: usage: %s\n", name)
			return 1
		}
		return run(ctx, c, args, stdout, stderr)
	}
}

func (d *daemon) reloadCommand(ctx context.Context, c gitserver.Caller, _ []string, stdout, stderr io.Writer) int {
	// The reload goes on if the admin goes away: it is all or nothing.
	res := d.reload.Reload(context.WithoutCancel(ctx), "ssh reload by "+c.User)
	if res.Err != nil {
		res.Print(stderr)
		return 1
	}
	res.Print(stdout)
	return 0
}

// configCommand prints the configuration in force as TOML, every default
// filled in. Secrets' values are never in it: the file only names where
// they are read from.
func (d *daemon) configCommand(ctx context.Context, _ gitserver.Caller, _ []string, stdout, stderr io.Writer) int {
	cfg := d.live.Current()
	o := cfg.Origin()
	fmt.Fprintf(stdout, "# configuration %d, in force since %s (%s)\n", o.Generation, o.Loaded.Format(time.RFC3339), o.Reason)
	fmt.Fprintf(stdout, "# read from %s, sha256 %s\n", o.File, o.Digest)
	fmt.Fprintln(stdout, "# every setting, defaults filled in; secrets appear as where they are read from, never as values")
	if err := toml.NewEncoder(stdout).Encode(cfg); err != nil {
		fmt.Fprintf(stderr, "slipway: %v\n", err)
		return 1
	}
	return 0
}

// applied does what a new configuration asks of the running daemon, once
// it is in force: connections of keys it no longer admits are closed, the
// repositories it names exist, the schedules are its own, and
// slipway-config (config_repo) holds it.
func (d *daemon) applied(ctx context.Context, old, cfg *configs.Config) []string {
	var lines []string
	if n := d.gitSrv.CloseRevoked(cfg); n > 0 {
		lines = append(lines, fmt.Sprintf("closed %s of keys no longer admitted", plural(n, "connection")))
	}
	made, err := d.gitSrv.EnsureRepos(ctx, cfg)
	if len(made) > 0 {
		lines = append(lines, fmt.Sprintf("created %d configured %s", len(made), map[bool]string{true: "repository", false: "repositories"}[len(made) == 1]))
	}
	if err != nil {
		d.logger.Error("create the configured repositories", "err", err)
		lines = append(lines, fmt.Sprintf("could not create every repository: %v", err))
	}
	if err := d.scheduler.Reload(ctx, cfg); err != nil {
		d.logger.Error("reload the schedules", "err", err)
		lines = append(lines, fmt.Sprintf("schedules: %v", err))
	}
	// The pending deliveries of hooks that are gone are cancelled.
	d.webhooks.Reloaded()
	// slipway-config shows the configuration in force, whoever changed
	// the file.
	if line := d.syncConfigRepo(ctx, cfg.Origin(), "configuration reloaded by "+cfg.Origin().Reason); line != "" {
		lines = append(lines, line)
	}
	return lines
}
