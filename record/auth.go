package record

import "time"

// Session is a signed-in browser on the web side. The cookie holds a
// random id; only its SHA-256 is recorded, so that a copy of the database
// opens no session.
type Session struct {
	Hash []byte // SHA-256 of the cookie's id
	User string
	// KeyFingerprint is the SSH key that ran `login`: the session lasts
	// only while the configuration in force admits that key for User.
	KeyFingerprint string
	Created        time.Time
	Expires        time.Time
}

// The scopes of an API token, from the least to the most it may do.
const (
	ScopeRead    = "read"
	ScopeWrite   = "write"
	ScopeRelease = "release"
	ScopeAdmin   = "admin"
)

// APIToken is a bearer token of the web side's API, made with `ssh HOST
// token create`. The token itself is shown once; only its SHA-256 is
// recorded.
type APIToken struct {
	ID    int64
	User  string
	Name  string // unique among the user's tokens that are not revoked
	Hash  []byte // SHA-256 of the token
	Scope string // one of the Scope constants
	// KeyFingerprint is the SSH key that made the token, for the record.
	KeyFingerprint string
	Created        time.Time
	Expires        time.Time // zero: never
	LastUsed       time.Time // zero: never used (kept to the minute)
	Revoked        time.Time // zero: in force
}
