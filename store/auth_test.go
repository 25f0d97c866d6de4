package store

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"testing"
	"time"

	"slipway/record"
)

func hash(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

// TestSessions: a session is found by its hash until deleted; a login
// forgets the sessions that expired before it; bad input records nothing.
func TestSessions(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	ctx := t.Context()
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	old := record.Session{Hash: hash("old"), User: "alice", KeyFingerprint: "SHA256:a", Created: t0, Expires: t0.Add(time.Hour)}
	if err := s.CreateSession(ctx, old); err != nil {
		t.Fatal(err)
	}
	got, err := s.Session(ctx, hash("old"))
	if err != nil || got.User != "alice" || got.KeyFingerprint != "SHA256:a" || !got.Created.Equal(t0) || !got.Expires.Equal(t0.Add(time.Hour)) {
		t.Fatalf("Session: %+v %v", got, err)
	}
	// A login after the old one expired forgets it.
	later := record.Session{Hash: hash("new"), User: "bob", Created: t0.Add(time.Hour), Expires: t0.Add(48 * time.Hour)}
	if err := s.CreateSession(ctx, later); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Session(ctx, hash("old")); !errors.Is(err, ErrNotFound) {
		t.Errorf("an expired session after a later login: %v", err)
	}
	if err := s.DeleteSession(ctx, hash("new")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Session(ctx, hash("new")); !errors.Is(err, ErrNotFound) {
		t.Errorf("a deleted session: %v", err)
	}
	if err := s.DeleteSession(ctx, hash("never")); err != nil {
		t.Errorf("deleting a session that is not there: %v", err)
	}
	for _, bad := range []record.Session{
		{Hash: []byte("short"), User: "a", Created: t0, Expires: t0.Add(time.Hour)},
		{Hash: hash("x"), Created: t0, Expires: t0.Add(time.Hour)},
		{Hash: hash("x"), User: "a", Created: t0, Expires: t0},
	} {
		if err := s.CreateSession(ctx, bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("CreateSession(%+v): %v", bad, err)
		}
	}
}

// TestTokens: a token is found by its hash; names are unique among a
// user's tokens in force and free again once revoked; a revoked token is
// still found (to say it was revoked) but no longer listed; the last use
// only moves forward.
func TestTokens(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	ctx := t.Context()
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	ci, err := s.CreateToken(ctx, record.APIToken{User: "alice", Name: "ci", Hash: hash("t1"), Scope: record.ScopeWrite,
		KeyFingerprint: "SHA256:a", Created: t0, Expires: t0.Add(24 * time.Hour)})
	if err != nil || ci.ID == 0 {
		t.Fatalf("CreateToken: %+v %v", ci, err)
	}
	if _, err := s.CreateToken(ctx, record.APIToken{User: "alice", Name: "ci", Hash: hash("t2"), Scope: record.ScopeRead, Created: t0}); !errors.Is(err, ErrConflict) {
		t.Errorf("a second ci of alice: %v", err)
	}
	if _, err := s.CreateToken(ctx, record.APIToken{User: "bob", Name: "ci", Hash: hash("t3"), Scope: record.ScopeRead, Created: t0}); err != nil {
		t.Errorf("bob's ci: %v", err)
	}
	got, err := s.TokenByHash(ctx, hash("t1"))
	if err != nil || got.ID != ci.ID || got.Scope != record.ScopeWrite || !got.Expires.Equal(t0.Add(24*time.Hour)) ||
		!got.LastUsed.IsZero() || !got.Revoked.IsZero() || !bytes.Equal(got.Hash, hash("t1")) {
		t.Errorf("TokenByHash: %+v %v", got, err)
	}
	if _, err := s.TokenByHash(ctx, hash("nope")); !errors.Is(err, ErrNotFound) {
		t.Errorf("an unknown token: %v", err)
	}
	if err := s.TouchToken(ctx, ci.ID, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.TouchToken(ctx, ci.ID, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.TokenByHash(ctx, hash("t1")); !got.LastUsed.Equal(t0.Add(time.Hour)) {
		t.Errorf("last used after an older touch: %v", got.LastUsed)
	}
	if err := s.RevokeToken(ctx, "alice", "ci", t0.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeToken(ctx, "alice", "ci", t0.Add(3*time.Hour)); !errors.Is(err, ErrNotFound) {
		t.Errorf("revoking twice: %v", err)
	}
	if got, _ := s.TokenByHash(ctx, hash("t1")); !got.Revoked.Equal(t0.Add(2 * time.Hour)) {
		t.Errorf("a revoked token: %+v", got)
	}
	if ts, _ := s.Tokens(ctx, "alice"); len(ts) != 0 {
		t.Errorf("alice's tokens after the revoke: %+v", ts)
	}
	if _, err := s.CreateToken(ctx, record.APIToken{User: "alice", Name: "ci", Hash: hash("t4"), Scope: record.ScopeAdmin, Created: t0}); err != nil {
		t.Errorf("a new ci after the revoke: %v", err)
	}
	ts, err := s.Tokens(ctx, "alice")
	if err != nil || len(ts) != 1 || ts[0].Scope != record.ScopeAdmin || !ts[0].Expires.IsZero() {
		t.Errorf("alice's tokens: %+v %v", ts, err)
	}
	for _, bad := range []record.APIToken{
		{User: "a", Name: "n", Hash: hash("b1"), Scope: "root", Created: t0},
		{User: "a", Name: "", Hash: hash("b2"), Scope: "read", Created: t0},
		{User: "", Name: "n", Hash: hash("b3"), Scope: "read", Created: t0},
		{User: "a", Name: "n", Hash: []byte("x"), Scope: "read", Created: t0},
	} {
		if _, err := s.CreateToken(ctx, bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("CreateToken(%+v): %v", bad, err)
		}
	}
}
