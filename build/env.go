package build

import (
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"

	"slipway/build/sandbox"
	"slipway/configs"
	"slipway/store"
)

// StepPath is the PATH of every step: system folders and Go's, inside the
// sandbox as on the host. It is fixed rather than taken from the daemon, whose
// own PATH is none of the build's business.
const StepPath = "/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// readSecrets reads the values of a repository's secrets, at build start so
// that a rotated secret takes effect without a restart. values are what the
// log masks; env the "NAME=value" pairs for the steps. A secret that cannot
// be read makes err name it (never its value); values still holds every
// value that was read, so the log masks them.
//
// A value read from a file loses one trailing newline: editors add one, and
// a token with a newline at its end is never what was meant.
func readSecrets(secrets []configs.Secret, lookupEnv func(string) (string, bool)) (values, env []string, err error) {
	for _, sec := range secrets {
		var v string
		switch {
		case sec.File != "":
			b, rerr := os.ReadFile(sec.File)
			if rerr != nil {
				if err == nil {
					err = fmt.Errorf("secret %s: cannot read its file: %w", sec.Name, rerr)
				}
				continue
			}
			v = string(b)
			if s, ok := strings.CutSuffix(v, "\n"); ok {
				v = strings.TrimSuffix(s, "\r")
			}
		default:
			var ok bool
			v, ok = lookupEnv(sec.Env)
			if !ok {
				if err == nil {
					err = fmt.Errorf("secret %s: the daemon's environment variable %s is not set", sec.Name, sec.Env)
				}
				continue
			}
		}
		if v != "" {
			values = append(values, v)
		}
		env = append(env, sec.Name+"="+v)
	}
	return values, env, err
}

// buildEnv is the complete environment of a build's steps: an allow-list,
// never the daemon's environment. The pipeline's env cannot override the
// reserved names (the pipeline parser refuses them); a secret of the same
// name as a pipeline variable wins, since the server's word is final.
func buildEnv(b store.Build, pipelineEnv map[string]string, secretEnv []string) []string {
	branch := b.Ref
	for _, prefix := range []string{"refs/heads/", "refs/tags/"} {
		if s, ok := strings.CutPrefix(b.Ref, prefix); ok {
			branch = s
			break
		}
	}
	env := []string{
		"PATH=" + StepPath,
		"HOME=" + sandbox.HomeDir,
		"CI=true",
		"SLIPWAY_REPO=" + b.Repo,
		"SLIPWAY_REF=" + b.Ref,
		"SLIPWAY_BRANCH=" + branch,
		"SLIPWAY_COMMIT=" + b.Commit,
		"SLIPWAY_BUILD_ID=" + strconv.FormatInt(b.ID, 10),
	}
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
