package configs

import (
	"fmt"
	"os"
	"path"
	"slices"
	"strings"
)

// SecretScope returns the branch patterns whose builds get secret s of
// repo: the secret's own branches; none when it names only environments
// (a deploy-time secret); the repository's auto-deploy branches when it
// names neither, since a secret must never reach every branch by default.
// reason says where the scope comes from, for the build log.
func (c *Config) SecretScope(repo string, s Secret) (branches []string, reason string) {
	switch {
	case len(s.Branches) > 0:
		return s.Branches, "branches = [" + strings.Join(s.Branches, ", ") + "]"
	case len(s.Environments) > 0:
		return nil, "deployments to " + strings.Join(s.Environments, ", ") + " only"
	}
	autos := c.AutoBranches(repo)
	if len(autos) == 0 {
		return nil, "no branches: it names none and the repository has no auto-deploy branch"
	}
	return autos, "the auto-deploy branches by default (" + strings.Join(autos, ", ") + ")"
}

// SecretsForBranch splits repo's secrets into those a build of ref gets
// and those it does not, with why for each withheld one. Only branches
// (refs/heads/...) get secrets; tags and other refs get none.
func (c *Config) SecretsForBranch(repo, ref string) (given []Secret, withheld []string) {
	branch, isBranch := strings.CutPrefix(ref, "refs/heads/")
	for _, s := range c.RepoOrDefault(repo).Secrets {
		patterns, reason := c.SecretScope(repo, s)
		if isBranch && matchAny(patterns, branch) {
			given = append(given, s)
			continue
		}
		withheld = append(withheld, s.Name+" ("+reason+")")
	}
	return given, withheld
}

// SecretsForEnvironment returns the secrets of repo that deployments to env
// get.
func (c *Config) SecretsForEnvironment(repo, env string) []Secret {
	var out []Secret
	for _, s := range c.RepoOrDefault(repo).Secrets {
		if slices.Contains(s.Environments, env) {
			out = append(out, s)
		}
	}
	return out
}

// AutoBranches returns the branches whose passing builds repo deploys by
// itself, in the order of its environments, without repeats.
func (c *Config) AutoBranches(repo string) []string {
	var out []string
	for _, e := range c.EnvironmentsOf(repo) {
		if e.Auto != "" && !slices.Contains(out, e.Auto) {
			out = append(out, e.Auto)
		}
	}
	return out
}

// DefaultBranch returns the branch whose cache new branches start from:
// default_branch, else the first auto-deploy branch, else "main".
func (c *Config) DefaultBranch(repo string) string {
	if r := c.RepoOrDefault(repo); r.DefaultBranch != "" {
		return r.DefaultBranch
	}
	if autos := c.AutoBranches(repo); len(autos) > 0 {
		return autos[0]
	}
	return "main"
}

func matchAny(patterns []string, name string) bool {
	for _, p := range patterns {
		if ok, _ := path.Match(p, name); ok {
			return true
		}
	}
	return false
}

func (c *Config) validateSecretScope(v *validator, r *Repo, s Secret) {
	for _, p := range s.Branches {
		if _, err := path.Match(p, "x"); err != nil || p == "" {
			v.add(v.loc.keyIn("repo.secret", -1, "branches"), "repo %q: secret %q: bad branch pattern %q", r.Name, s.Name, p)
		}
	}
	for _, e := range s.Environments {
		if _, ok := c.Environment(r.Name, e); !ok {
			v.add(v.loc.keyIn("repo.secret", -1, "environments"), "repo %q: secret %q names environment %q, which the repository does not have", r.Name, s.Name, e)
		}
	}
}

// Read returns the secret's value, from its file or from the daemon's
// environment (through lookupEnv, os.LookupEnv in the daemon), at the moment
// it is needed, so that a rotated secret takes effect without a restart.
// A value read from a file loses one trailing newline: editors add one, and
// a token with a newline at its end is never what was meant. The error names
// the secret, never its value.
func (s Secret) Read(lookupEnv func(string) (string, bool)) (string, error) {
	if s.File != "" {
		b, err := os.ReadFile(s.File)
		if err != nil {
			return "", fmt.Errorf("secret %s: cannot read its file: %w", s.Name, err)
		}
		v := string(b)
		if t, ok := strings.CutSuffix(v, "\n"); ok {
			v = strings.TrimSuffix(t, "\r")
		}
		return v, nil
	}
	v, ok := lookupEnv(s.Env)
	if !ok {
		return "", fmt.Errorf("secret %s: the daemon's environment variable %s is not set", s.Name, s.Env)
	}
	return v, nil
}
