package web

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"sync"
	"time"
)

// A login link is printed by `ssh HOST login` and opens one session. It
// lives two minutes and works once. Links are kept in memory only, as the
// SHA-256 of their secret: one that outlives a restart would be of no use
// to anyone within its two minutes, and none ever reaches the disk.
const (
	linkLifetime = 2 * time.Minute
	// maxLinksPerUser bounds what one user's `login` runs hold: an older
	// pending link gives way to a new one.
	maxLinksPerUser = 8
	// linkSecretBytes of randomness make a link; its text is their
	// base64url, 43 characters.
	linkSecretBytes = 32
)

// Why a link opens no session.
var (
	errLinkUnknown = errors.New("unknown sign-in link")
	errLinkUsed    = errors.New("sign-in link used already")
	errLinkExpired = errors.New("sign-in link expired")
)

type link struct {
	user, key string // who ran `login`, with which key
	expires   time.Time
	used      bool
}

// links holds the pending login links. A used link stays until it
// expires, so that opening it again says it was used rather than unknown.
type links struct {
	mu sync.Mutex
	m  map[[32]byte]*link
}

func newLinks() *links { return &links{m: map[[32]byte]*link{}} }

// issue makes a link for user, who authenticated with key, and returns
// its secret.
func (l *links) issue(user, key string, now time.Time) (string, error) {
	b := make([]byte, linkSecretBytes)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	secret := base64.RawURLEncoding.EncodeToString(b)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweep(now)
	var oldest [32]byte
	var oldestExpires time.Time
	n := 0
	for h, k := range l.m {
		if k.user == user && !k.used {
			n++
			if n == 1 || k.expires.Before(oldestExpires) {
				oldest, oldestExpires = h, k.expires
			}
		}
	}
	if n >= maxLinksPerUser {
		delete(l.m, oldest)
	}
	l.m[sha256.Sum256([]byte(secret))] = &link{user: user, key: key, expires: now.Add(linkLifetime)}
	return secret, nil
}

// consume uses the link whose secret is given: it returns who made it, or
// why it opens nothing.
func (l *links) consume(secret string, now time.Time) (user, key string, err error) {
	h := sha256.Sum256([]byte(secret))
	l.mu.Lock()
	defer l.mu.Unlock()
	k := l.m[h]
	switch {
	case k == nil:
		return "", "", errLinkUnknown
	case !now.Before(k.expires):
		delete(l.m, h)
		return "", "", errLinkExpired
	case k.used:
		return "", "", errLinkUsed
	}
	k.used = true
	return k.user, k.key, nil
}

// restore makes a consumed link usable again, when the session it was to
// open could not be recorded: the person may try it again.
func (l *links) restore(secret string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if k := l.m[sha256.Sum256([]byte(secret))]; k != nil {
		k.used = false
	}
}

// sweep forgets expired links. The caller holds mu.
func (l *links) sweep(now time.Time) {
	for h, k := range l.m {
		if !now.Before(k.expires) {
			delete(l.m, h)
		}
	}
}
