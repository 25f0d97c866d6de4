package gitrev

import "strings"

// ReleasePrefix is the namespace of release refs: a push to
// refs/release/<env> asks for a deployment to environment env.
const ReleasePrefix = "refs/release/"

// ReleaseEnv returns the environment a release ref names
// ("refs/release/prod" -> "prod"); ok is false for other refs and for an
// empty name.
func ReleaseEnv(ref string) (env string, ok bool) {
	env, ok = strings.CutPrefix(ref, ReleasePrefix)
	return env, ok && env != ""
}

// Short is an object id as people read it: its first seven characters.
func Short(id string) string {
	if len(id) > 7 {
		return id[:7]
	}
	return id
}

// ShortRef is a ref as people name it: "main" for refs/heads/main, "v1.0"
// for refs/tags/v1.0, other refs in full.
func ShortRef(ref string) string {
	for _, prefix := range []string{"refs/heads/", "refs/tags/"} {
		if s, ok := strings.CutPrefix(ref, prefix); ok {
			return s
		}
	}
	return ref
}

// NotesRef holds Slipway's git notes: one line per finished build or
// deployment, on the commit it ran (package notes). The daemon alone
// writes it, with hooks off; pushes to it are refused and it is never
// built nor recorded as a push.
const NotesRef = "refs/notes/slipway"

// DaemonOwned reports whether ref is written by the daemon itself, never
// by a push (NotesRef): it is no push's business and no build's.
func DaemonOwned(ref string) bool { return ref == NotesRef }
