package build

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"slipway/configs"
	"slipway/record"
)

// StepPath is the PATH of every step: system folders and Go's, inside the
// sandbox as on the host. It is fixed rather than taken from the daemon, whose
// own PATH is none of the build's business.
const StepPath = "/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// readSecrets reads the values of the secrets a build gets, at build start
// so that a rotated secret takes effect without a restart. values are what
// the log masks; env the "NAME=value" pairs for the steps. A secret that
// cannot be read makes err name it (never its value); values still holds
// every value that was read, so the log masks them.
func readSecrets(secrets []configs.Secret, lookupEnv func(string) (string, bool)) (values, env []string, err error) {
	for _, sec := range secrets {
		v, rerr := sec.Read(lookupEnv)
		if rerr != nil {
			if err == nil {
				err = rerr
			}
			continue
		}
		if v != "" {
			values = append(values, v)
		}
		env = append(env, sec.Name+"="+v)
	}
	return values, env, err
}

// toolCache is one toolchain's cache location, pointed under the cache
// folder when a pipeline asks for a cache.
type toolCache struct {
	name  string // the variable
	value string // its value, with %s for the cache folder
}

// toolCaches are the cache locations of the common toolchains. Each keeps
// its own sub-folder so that tools never trip over each other's layout.
// XDG_CACHE_HOME catches the many tools that follow the XDG spec.
func toolCaches() []toolCache {
	return []toolCache{
		{"GOCACHE", "%s/go-build"},
		{"GOMODCACHE", "%s/go-mod"},
		{"npm_config_cache", "%s/npm"},
		{"YARN_CACHE_FOLDER", "%s/yarn"},
		{"PIP_CACHE_DIR", "%s/pip"},
		{"CARGO_HOME", "%s/cargo"},
		{"GRADLE_USER_HOME", "%s/gradle"},
		{"MAVEN_OPTS", "-Dmaven.repo.local=%s/maven"},
		{"XDG_CACHE_HOME", "%s/xdg"},
	}
}

// cacheEnv returns the "NAME=value" pairs that point the toolchains' caches
// under cacheDir (the cache folder as the step sees it), leaving out every
// name the pipeline sets itself: the pipeline's word wins. set lists the
// names it did set, for the build log.
func cacheEnv(cacheDir string, pipelineEnv map[string]string) (env, set []string) {
	for _, c := range toolCaches() {
		if _, ok := pipelineEnv[c.name]; ok {
			continue
		}
		env = append(env, c.name+"="+fmt.Sprintf(c.value, cacheDir))
		set = append(set, c.name)
	}
	return env, set
}

// offlineEnv returns the variables that stop package managers from retrying
// a network that is not there (npm alone spends over a minute on backoff
// when every lookup fails at once), leaving out what the pipeline sets.
func offlineEnv(pipelineEnv map[string]string) []string {
	var env []string
	for _, kv := range []string{"npm_config_fetch_retries=0", "PIP_RETRIES=0", "CARGO_NET_RETRY=0"} {
		name, _, _ := strings.Cut(kv, "=")
		if _, ok := pipelineEnv[name]; !ok {
			env = append(env, kv)
		}
	}
	return env
}

// stepPaths are the folders of a build as its steps see them.
type stepPaths struct {
	home  string // HOME: kept across the build's steps, not across builds
	tmp   string // TMPDIR
	cache string // the cache folder; empty when the pipeline asks for none
}

// buildEnv is the complete environment of a build's steps: an allow-list,
// never the daemon's environment. The pipeline's env cannot override the
// reserved names (the pipeline parser refuses them); a secret of the same
// name as a pipeline variable wins, since the server's word is final.
// cacheVars (from cacheEnv) come before the pipeline's variables.
func buildEnv(b record.Build, paths stepPaths, cacheVars []string, pipelineEnv map[string]string, secretEnv []string) []string {
	branch := b.Ref
	for _, prefix := range []string{"refs/heads/", "refs/tags/"} {
		if s, ok := strings.CutPrefix(b.Ref, prefix); ok {
			branch = s
			break
		}
	}
	env := []string{
		"PATH=" + StepPath,
		"HOME=" + paths.home,
		"CI=true",
		"SLIPWAY_REPO=" + b.Repo,
		"SLIPWAY_REF=" + b.Ref,
		"SLIPWAY_BRANCH=" + branch,
		"SLIPWAY_COMMIT=" + b.Commit,
		"SLIPWAY_BUILD_ID=" + strconv.FormatInt(b.ID, 10),
	}
	if _, ok := pipelineEnv["TMPDIR"]; !ok && paths.tmp != "" {
		env = append(env, "TMPDIR="+paths.tmp)
	}
	env = append(env, cacheVars...)
	secretNames := make(map[string]bool, len(secretEnv))
	for _, kv := range secretEnv {
		name, _, _ := strings.Cut(kv, "=")
		secretNames[name] = true
	}
	for _, k := range slices.Sorted(maps.Keys(pipelineEnv)) {
		if !secretNames[k] {
			env = append(env, k+"="+pipelineEnv[k])
		}
	}
	return append(env, secretEnv...)
}
