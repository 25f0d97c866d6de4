package build

import (
	"slices"
	"strings"
	"testing"

	"slipway/record"
)

func TestCacheEnvLeavesThePipelinesOwn(t *testing.T) {
	t.Parallel()
	env, set := cacheEnv("/cache", map[string]string{"GOCACHE": "/workspace/.gocache"})
	if slices.Contains(set, "GOCACHE") || slices.ContainsFunc(env, func(kv string) bool { return strings.HasPrefix(kv, "GOCACHE=") }) {
		t.Fatalf("cacheEnv set GOCACHE although the pipeline sets it: %v", env)
	}
	for _, want := range []string{"GOMODCACHE=/cache/go-mod", "npm_config_cache=/cache/npm", "PIP_CACHE_DIR=/cache/pip",
		"CARGO_HOME=/cache/cargo", "GRADLE_USER_HOME=/cache/gradle", "MAVEN_OPTS=-Dmaven.repo.local=/cache/maven"} {
		if !slices.Contains(env, want) {
			t.Errorf("cacheEnv lacks %s: %v", want, env)
		}
	}
	if len(env) != len(set) {
		t.Fatalf("cacheEnv set %d variables but names %d: %v / %v", len(env), len(set), env, set)
	}
}

func TestBuildEnv(t *testing.T) {
	t.Parallel()
	b := record.Build{ID: 7, Repo: "app", Ref: "refs/heads/feature/x", Commit: "abc"}
	paths := stepPaths{home: "/home/build", tmp: "/tmp", cache: "/cache"}
	env := buildEnv(b, paths, []string{"GOCACHE=/cache/go-build"},
		map[string]string{"TMPDIR": "/workspace/tmp", "TOKEN": "from-pipeline", "A": "1"},
		[]string{"TOKEN=from-server"})
	for _, want := range []string{"HOME=/home/build", "TMPDIR=/workspace/tmp", "SLIPWAY_BRANCH=feature/x",
		"SLIPWAY_BUILD_ID=7", "GOCACHE=/cache/go-build", "A=1", "TOKEN=from-server", "CI=true"} {
		if !slices.Contains(env, want) {
			t.Errorf("env lacks %s: %v", want, env)
		}
	}
	names := map[string]int{}
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		names[name]++
	}
	for name, n := range names {
		if n > 1 {
			t.Errorf("%s is set %d times: %v", name, n, env)
		}
	}
}
