package web

import (
	"context"

	"slipway/configs"
)

// viewer is who a request comes from: a user (through a session or an API
// token), or nobody.
type viewer struct {
	// User is the configured user, or "" for an anonymous viewer.
	User string
	// Scope bounds what the request may do whatever the user may: a
	// token's scope; configs.Admin for a session.
	Scope configs.Access
}

// anonymous reports whether nobody signed in.
func (v viewer) anonymous() bool { return v.User == "" }

// access is what v may do with repo under cfg: the user's rights within
// the viewer's scope, or read for anyone when the repository is public.
func access(cfg *configs.Config, v viewer, repo string) configs.Access {
	var a configs.Access
	if !v.anonymous() {
		a = cfg.Access(v.User, repo) & v.Scope
	}
	if r, ok := cfg.Repo(repo); ok && r.Public {
		a |= configs.Read
	}
	return a
}

// config is the configuration a request is answered with: one snapshot
// for the whole request.
func (s *Server) config(ctx context.Context) *configs.Config {
	return configs.Snapshot(ctx, s.o.Config)
}
