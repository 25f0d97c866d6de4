package configs

import (
	"slices"
	"strings"
	"testing"
)

func TestSecretScope(t *testing.T) {
	cfg, err := Parse([]byte(`data_dir = "/srv/slipway"
[[user]]
name = "alice"
keys = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHPAcbKxBYU5H5qYSdF1Jr3F3gYNB7YBL6zQ5Rp+oM9Y alice"]
[[repo]]
name = "app"
write = ["alice"]
  [[repo.secret]]
  name = "DEFAULT_SCOPE"
  env = "A"
  [[repo.secret]]
  name = "RELEASES"
  env = "B"
  branches = ["main", "release/*"]
  [[repo.secret]]
  name = "DEPLOY_ONLY"
  env = "C"
  environments = ["prod"]
  [[repo.environment]]
  name = "staging"
  target = "envs/staging"
  auto = "trunk"
  [[repo.environment]]
  name = "prod"
  target = "envs/prod"
  requires = "staging"
[[repo]]
name = "plain"
write = ["alice"]
  [[repo.secret]]
  name = "NOWHERE"
  env = "D"
`), "scope.toml")
	if err != nil {
		t.Fatal(err)
	}
	names := func(ss []Secret) []string {
		var out []string
		for _, s := range ss {
			out = append(out, s.Name)
		}
		return out
	}
	for _, tc := range []struct {
		repo, ref string
		given     []string
		withheld  int
	}{
		{"app", "refs/heads/trunk", []string{"DEFAULT_SCOPE"}, 2},
		{"app", "refs/heads/main", []string{"RELEASES"}, 2},
		{"app", "refs/heads/release/2.0", []string{"RELEASES"}, 2},
		{"app", "refs/heads/feature", nil, 3},
		{"app", "refs/tags/main", nil, 3},
		// The top-level default environments are not plain's: it has
		// none with auto, so an unscoped secret reaches no branch.
		{"plain", "refs/heads/main", nil, 1},
	} {
		given, withheld := cfg.SecretsForBranch(tc.repo, tc.ref)
		if !slices.Equal(names(given), tc.given) || len(withheld) != tc.withheld {
			t.Errorf("%s %s: given %v, withheld %v; want %v and %d withheld", tc.repo, tc.ref, names(given), withheld, tc.given, tc.withheld)
		}
	}
	_, withheld := cfg.SecretsForBranch("app", "refs/heads/feature")
	if got := strings.Join(withheld, "; "); !strings.Contains(got, "RELEASES (branches = [main, release/*])") ||
		!strings.Contains(got, "DEPLOY_ONLY (deployments to prod only)") || !strings.Contains(got, "DEFAULT_SCOPE (the auto-deploy branches by default (trunk))") {
		t.Errorf("withheld reasons: %s", got)
	}
	if got := names(cfg.SecretsForEnvironment("app", "prod")); !slices.Equal(got, []string{"DEPLOY_ONLY"}) {
		t.Errorf("prod deployments get %v", got)
	}
	if got := names(cfg.SecretsForEnvironment("app", "staging")); got != nil {
		t.Errorf("staging deployments get %v", got)
	}
	if got := cfg.DefaultBranch("app"); got != "trunk" {
		t.Errorf("default branch of app = %q, want its auto branch trunk", got)
	}
	if got := cfg.DefaultBranch("plain"); got != "main" {
		t.Errorf("default branch of plain = %q, want main", got)
	}
}

func TestSecretScopeValidated(t *testing.T) {
	_, err := Parse([]byte(`data_dir = "/srv/slipway"
[[repo]]
name = "app"
  [[repo.secret]]
  name = "T"
  env = "T"
  branches = ["[bad"]
  environments = ["nowhere"]
`), "bad.toml")
	if err == nil || !strings.Contains(err.Error(), `bad branch pattern "[bad"`) || !strings.Contains(err.Error(), `names environment "nowhere"`) {
		t.Fatalf("Parse = %v; want both scope problems", err)
	}
}
