package web

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"time"

	"slipway/configs"
	"slipway/record"
)

// An API token is "slw_" and 64 hex digits (32 random bytes). The prefix
// lets secret scanners recognise one in a commit or a log, and tells
// Slipway's tokens apart from other bearer tokens (/metrics has its own).
const (
	tokenPrefix      = "slw_"
	tokenSecretBytes = 32
	tokenLen         = len(tokenPrefix) + 2*tokenSecretBytes
)

// newToken returns a fresh token and the SHA-256 that is all Slipway
// keeps of it.
func newToken() (token string, hash []byte, err error) {
	b := make([]byte, tokenSecretBytes)
	if _, err := rand.Read(b); err != nil {
		return "", nil, fmt.Errorf("make a token: %w", err)
	}
	token = tokenPrefix + hex.EncodeToString(b)
	return token, hashOf(token), nil
}

func hashOf(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// wellFormed reports whether s has the shape of a Slipway token.
func wellFormed(s string) bool {
	if len(s) != tokenLen || !strings.HasPrefix(s, tokenPrefix) {
		return false
	}
	for _, c := range s[len(tokenPrefix):] {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// scopes are what each token scope allows, within its user's rights. Each
// includes the ones before it: a token that may release may also retry a
// build, which write allows.
var scopes = []struct {
	name   string
	access configs.Access
}{
	{record.ScopeRead, configs.Read},
	{record.ScopeWrite, configs.Read | configs.Write},
	{record.ScopeRelease, configs.Read | configs.Write | configs.Release},
	{record.ScopeAdmin, configs.Admin},
}

// scopeAccess returns the rights a scope allows; ok is false for a name
// that is not a scope.
func scopeAccess(name string) (configs.Access, bool) {
	for _, s := range scopes {
		if s.name == name {
			return s.access, true
		}
	}
	return 0, false
}

// Why a token is refused: the reasons a 401 gives.
const (
	reasonMalformed  = "malformed token: Slipway's API tokens begin with slw_ (make one with `ssh HOST token create NAME`)"
	reasonUnknown    = "unknown token"
	reasonRevoked    = "token revoked"
	reasonExpired    = "token expired"
	reasonNoUser     = "user no longer configured"
	reasonAuthScheme = "use Authorization: Bearer <token>"
)

// tokenViewer returns who a bearer token stands for, or why it is
// refused. The token's rights are its scope; views.Caller.Access
// intersects them with its user's rights in the configuration the request
// is answered with, so rights taken away there are gone from the token at once.
func (s *Server) tokenViewer(ctx context.Context, cfg *configs.Config, secret string, now time.Time) (viewer, string, error) {
	if !wellFormed(secret) {
		return viewer{}, reasonMalformed, nil
	}
	if s.o.Tokens == nil {
		return viewer{}, reasonUnknown, nil
	}
	want := hashOf(secret)
	t, err := s.o.Tokens.TokenByHash(ctx, want)
	if err != nil {
		if isNotFound(err) {
			return viewer{}, reasonUnknown, nil
		}
		return viewer{}, "", err
	}
	// Found by its hash, so the two are equal; compared once more in
	// constant time, so that no later change of the lookup (say, by a
	// prefix of the hash) can turn it into a timing oracle.
	if !equal(t.Hash, want) {
		return viewer{}, reasonUnknown, nil
	}
	switch {
	case !t.Revoked.IsZero():
		return viewer{}, reasonRevoked, nil
	case !t.Expires.IsZero() && !now.Before(t.Expires):
		return viewer{}, reasonExpired, nil
	}
	if _, ok := cfg.User(t.User); !ok {
		return viewer{}, reasonNoUser, nil
	}
	scope, ok := scopeAccess(t.Scope)
	if !ok {
		return viewer{}, reasonUnknown, nil
	}
	s.touch(t, now)
	return viewer{User: t.User, Scope: scope}, "", nil
}

// touchEvery is how often a token's last use is written at most: "last
// used" is kept to the minute, and a busy script costs one write a minute.
const touchEvery = time.Minute

// touched remembers when each token's use was last written.
type touched struct {
	mu   sync.Mutex
	last map[int64]time.Time
}

// touch records the token's use, at most once a minute, in the
// background: the write waits for the store's one writer, which pushes
// and builds use, and the request must not.
func (s *Server) touch(t record.APIToken, now time.Time) {
	if now.Sub(t.LastUsed) < touchEvery {
		return
	}
	s.touched.mu.Lock()
	if now.Sub(s.touched.last[t.ID]) < touchEvery {
		s.touched.mu.Unlock()
		return
	}
	if len(s.touched.last) > 10_000 {
		for id, at := range s.touched.last {
			if now.Sub(at) >= touchEvery {
				delete(s.touched.last, id)
			}
		}
	}
	s.touched.last[t.ID] = now
	s.touched.mu.Unlock()
	s.background(func(ctx context.Context) {
		if err := s.o.Tokens.TouchToken(ctx, t.ID, now); err != nil {
			s.log.Warn("record a token's use", "token", t.Name, "user", t.User, "err", err)
		}
	})
}
