package web

import (
	"context"

	"slipway/configs"
	"slipway/views"
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

// caller is v as the read model's caller: the user's rights within the
// viewer's scope, and read on public repositories for anyone (the rule is
// views.Caller.Access's).
func (v viewer) caller() views.Caller {
	return views.Caller{User: v.User, Scope: v.Scope, Public: true}
}

// config is the configuration a request is answered with: one snapshot
// for the whole request.
func (s *Server) config(ctx context.Context) *configs.Config {
	return configs.Snapshot(ctx, s.o.Config)
}
