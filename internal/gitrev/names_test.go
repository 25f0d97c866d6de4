package gitrev

import (
	"strings"
	"testing"
)

func FuzzReleaseEnv(f *testing.F) {
	for _, s := range []string{"refs/release/prod", "refs/release/", "refs/heads/main", "refs/release/a/b", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ref string) {
		env, ok := ReleaseEnv(ref)
		if ok != (strings.HasPrefix(ref, ReleasePrefix) && len(ref) > len(ReleasePrefix)) {
			t.Fatalf("ReleaseEnv(%q) ok = %v", ref, ok)
		}
		if ok && ReleasePrefix+env != ref {
			t.Fatalf("ReleaseEnv(%q) = %q", ref, env)
		}
	})
}
