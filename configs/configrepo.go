package configs

// The configuration as a repository (config_repo = true): admins push the
// configuration file, as ConfigFile on branch ConfigBranch, to the
// repository ConfigRepoName; package configrepo checks and applies it.
const (
	ConfigRepoName = "slipway-config"
	ConfigFile     = "slipway.toml"
	ConfigBranch   = "main"
)

// IsConfigRepo reports whether repo is c's configuration repository: it is
// when config_repo is on. Only admins may read or push it (it is not a
// [[repo]], so Access gives everyone else nothing), and it never builds.
func (c *Config) IsConfigRepo(repo string) bool {
	return c.ConfigRepo && repo == ConfigRepoName
}

// Configured reports whether c names the repository: a [[repo]], or the
// configuration repository. A configured repository exists from the start
// and is listed as configured.
func (c *Config) Configured(repo string) bool {
	_, ok := c.repos[repo]
	return ok || c.IsConfigRepo(repo)
}
