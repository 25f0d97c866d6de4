package hooks

import (
	"crypto/rand"
	"encoding/hex"
	"sync"

	"slipway/configs"
)

// Pusher is who a push token stands for: the repository the receive-pack
// session was opened on, and the user whose key signed the SSH handshake.
type Pusher struct {
	Repo           string // canonical name, "team/app"
	User           string
	KeyFingerprint string // SHA256:… of the key that signed
	// Config is the configuration the SSH session started with: the
	// push's hooks decide by it, whatever a reload did meanwhile. nil:
	// the one in force.
	Config *configs.Config
}

// Registry hands out push tokens to receive-pack sessions and answers the
// hooks' question of who a token stands for. gitserver puts the token in
// git's environment (SLIPWAY_PUSH_TOKEN), git passes it on to its hooks, and
// nobody but git and the daemon ever sees it: a hook run without a known
// token cannot borrow an SSH user's rights. It is safe for concurrent use.
type Registry struct {
	mu     sync.Mutex
	tokens map[string]*session
}

// session is one open receive-pack session.
type session struct {
	Pusher
	onEnd []func()
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{tokens: make(map[string]*session)}
}

// tokenBytes is the entropy of a token; it is sent as hex.
const tokenBytes = 32

// Begin registers a receive-pack session, opened with the configuration
// cfg (nil: the one in force when its hooks run), and returns its token.
// The caller must call end once git has exited; until then Lookup finds
// the session. end runs the functions given to OnEnd before it returns.
// Calling end more than once is harmless.
func (r *Registry) Begin(repo, user, keyFingerprint string, cfg *configs.Config) (token string, end func()) {
	var b [tokenBytes]byte
	// crypto/rand.Read never fails on the platforms Go supports (it panics
	// rather than return predictable bytes).
	_, _ = rand.Read(b[:])
	token = hex.EncodeToString(b[:])
	r.mu.Lock()
	r.tokens[token] = &session{Pusher: Pusher{Repo: repo, User: user, KeyFingerprint: keyFingerprint, Config: cfg}}
	r.mu.Unlock()
	return token, func() {
		r.mu.Lock()
		s := r.tokens[token]
		delete(r.tokens, token)
		r.mu.Unlock()
		if s != nil {
			for _, fn := range s.onEnd {
				fn()
			}
		}
	}
}

// Lookup returns the session a token was issued for, while it is open.
func (r *Registry) Lookup(token string) (Pusher, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.tokens[token]
	if !ok {
		return Pusher{}, false
	}
	return s.Pusher, true
}

// OnEnd arranges for fn to run when the session of token ends: git has
// exited, so whatever the push did to the refs is done. It returns false,
// and does not keep fn, when no such session is open.
func (r *Registry) OnEnd(token string, fn func()) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.tokens[token]
	if ok {
		s.onEnd = append(s.onEnd, fn)
	}
	return ok
}

// isToken reports whether s has the form of a token Begin hands out.
func isToken(s string) bool {
	if len(s) != 2*tokenBytes {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
