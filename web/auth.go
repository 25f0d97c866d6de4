package web

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"slipway/configs"
	"slipway/record"
)

// Sessions keeps the web side's sessions (store.Store). Sessions are in
// the database, not in memory, so that a restart of the daemon (an
// upgrade, a setting that needs one) does not sign everyone out; a login
// and a logout cost one write each, and looking a session up is a read,
// which never waits for the store's writer.
type Sessions interface {
	CreateSession(ctx context.Context, s record.Session) error
	Session(ctx context.Context, hash []byte) (record.Session, error)
	DeleteSession(ctx context.Context, hash []byte) error
}

// Tokens keeps the API tokens (store.Store).
type Tokens interface {
	CreateToken(ctx context.Context, t record.APIToken) (record.APIToken, error)
	TokenByHash(ctx context.Context, hash []byte) (record.APIToken, error)
	Tokens(ctx context.Context, user string) ([]record.APIToken, error)
	RevokeToken(ctx context.Context, user, name string, at time.Time) error
	TouchToken(ctx context.Context, id int64, at time.Time) error
}

// sessionLifetime is how long a session lasts from its login; it is not
// extended by use, which would cost a write per request.
const sessionLifetime = 14 * 24 * time.Hour

// The session cookie's name. Over HTTPS it has the __Host- prefix, which
// browsers accept only with Secure, Path=/ and no Domain: no other host
// of the domain can set or shadow it.
const (
	cookieName       = "slipway_session"
	secureCookieName = "__Host-slipway_session"
	sessionIDBytes   = 32
)

// maxFormBytes bounds the body of a form a state-changing request is
// read for its CSRF token.
const maxFormBytes = 64 << 10

// auth is what the request's credentials say, decided once per request by
// authenticate.
type auth struct {
	v viewer
	// bearer: the request came with an API token, which no other site
	// can make a browser send, so it needs no CSRF token.
	bearer bool
	// csrf is the CSRF token of the request's session ("" without one).
	csrf string
	// session is the SHA-256 of the session's id, for logout.
	session []byte
}

type authKey struct{}

// authenticate decides who each request comes from before the routes
// see it: a bearer token (Authorization: Bearer slw_...), else a session
// cookie, else nobody. A token that is refused ends the request with 401
// and the reason, whatever the route; a session that is over is simply
// forgotten (the request is anonymous, and the browser is told to drop
// the cookie).
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, reason, err := s.authOf(w, r)
		if err != nil || reason != "" {
			r = r.WithContext(context.WithValue(r.Context(), authKey{}, &auth{}))
			if err != nil {
				s.log.Error("check credentials", "err", err)
				s.authError(w, r, http.StatusServiceUnavailable, "could not check your credentials; try again")
				return
			}
			s.unauthorized(w, r, reason)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), authKey{}, a)))
	})
}

// authOf reads the request's credentials.
func (s *Server) authOf(w http.ResponseWriter, r *http.Request) (*auth, string, error) {
	// /metrics has a bearer token of its own ([http] metrics_token_file),
	// which is none of ours.
	if r.URL.Path == "/metrics" {
		return &auth{}, "", nil
	}
	ctx := r.Context()
	cfg := s.config(ctx)
	now := s.now()
	if h, ok := r.Header["Authorization"]; ok {
		scheme, secret, _ := strings.Cut(strings.TrimSpace(strings.Join(h, ",")), " ")
		if !strings.EqualFold(scheme, "Bearer") {
			return nil, reasonAuthScheme, nil
		}
		v, reason, err := s.tokenViewer(ctx, cfg, strings.TrimSpace(secret), now)
		if err != nil || reason != "" {
			return nil, reason, err
		}
		return &auth{v: v, bearer: true}, "", nil
	}
	id, ok := s.sessionID(r, cfg)
	if !ok || s.o.Sessions == nil {
		return &auth{}, "", nil
	}
	hash := hashOf(id)
	sess, err := s.o.Sessions.Session(ctx, hash)
	switch {
	case isNotFound(err):
		s.clearCookie(w, r, cfg)
		return &auth{}, "", nil
	case err != nil:
		// The store failing must not sign the person out: keep the
		// cookie, answer as nobody this once.
		s.log.Error("look up a session", "err", err)
		return &auth{}, "", nil
	}
	if !now.Before(sess.Expires) || !admitted(cfg, sess.User, sess.KeyFingerprint, now) {
		s.clearCookie(w, r, cfg)
		s.background(func(ctx context.Context) {
			if err := s.o.Sessions.DeleteSession(ctx, hash); err != nil {
				s.log.Warn("forget a session that is over", "user", sess.User, "err", err)
			}
		})
		return &auth{}, "", nil
	}
	return &auth{v: viewer{User: sess.User, Scope: configs.Admin}, csrf: csrfToken(id), session: hash}, "", nil
}

// admitted reports whether the configuration in force admits user with
// the key of that fingerprint now. A session lasts only as long: a user
// removed from the configuration, or a key taken from them (a lost
// laptop), has no session any more, even if they come back with another
// key.
func admitted(cfg *configs.Config, user, fingerprint string, now time.Time) bool {
	u, ok := cfg.User(user)
	if !ok {
		return false
	}
	for _, k := range u.AuthorizedKeys() {
		if k.Fingerprint == fingerprint && (k.Expires.IsZero() || now.Before(k.Expires)) {
			return true
		}
	}
	return false
}

// authFrom is the request's auth, as authenticate decided it.
func authFrom(r *http.Request) *auth {
	if a, ok := r.Context().Value(authKey{}).(*auth); ok {
		return a
	}
	return &auth{}
}

// viewerOf returns who r comes from: the user of its session (with the
// user's full rights) or of its API token (within the token's scope), or
// nobody.
func (s *Server) viewerOf(r *http.Request) viewer { return authFrom(r).v }

// csrfOf is the CSRF token forms of r's session must carry, or "".
func (s *Server) csrfOf(r *http.Request) string { return authFrom(r).csrf }

// csrfToken is a session's CSRF token: derived from the session's id, so
// that it needs no storage, and unlike the id's SHA-256 in the database,
// which a copy of the database would give away.
func csrfToken(sessionID string) string {
	m := hmac.New(sha256.New, []byte(sessionID))
	m.Write([]byte("slipway csrf"))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// equal compares two secrets (or their hashes) in constant time.
func equal(a, b []byte) bool { return subtle.ConstantTimeCompare(a, b) == 1 }

func isNotFound(err error) bool { return errors.Is(err, record.ErrNotFound) }

// checkWrite lets a state-changing request through, or refuses it with
// 403 and says why. An API token passes: no other site can make a
// browser send one. A session needs its CSRF token too, as the form field
// csrf or the header X-CSRF-Token: the cookie alone would be sent by a
// form of any site.
func (s *Server) checkWrite(w http.ResponseWriter, r *http.Request) bool {
	a := authFrom(r)
	if a.bearer {
		return true
	}
	if a.csrf == "" {
		s.authError(w, r, http.StatusForbidden, "Sign in first (run `ssh HOST login` and open the link it prints), or send an API token (Authorization: Bearer slw_...).")
		return false
	}
	got := r.Header.Get("X-CSRF-Token")
	if got == "" {
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
		got = r.PostFormValue("csrf")
	}
	if !equal([]byte(got), []byte(a.csrf)) {
		s.authError(w, r, http.StatusForbidden, "This request does not carry your session's CSRF token: the page was stale or the request came from another site. Reload the page and try again.")
		return false
	}
	return true
}

// unauthorized answers 401 with the reason credentials were refused:
// JSON under /api, a page elsewhere.
func (s *Server) unauthorized(w http.ResponseWriter, r *http.Request, reason string) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="slipway", error="invalid_token", error_description=`+quote(reason))
	s.authError(w, r, http.StatusUnauthorized, reason)
}

// quote makes a quoted-string of an auth parameter.
func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// authError answers status with msg: {"error": msg} under /api, a page
// elsewhere. Never cached.
func (s *Server) authError(w http.ResponseWriter, r *http.Request, status int, msg string) {
	w.Header().Set("Cache-Control", "no-store")
	if r.URL.Path == "/api" || strings.HasPrefix(r.URL.Path, "/api/") {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(map[string]string{"error": msg})
		return
	}
	title := map[int]string{
		http.StatusUnauthorized: "Not signed in",
		http.StatusForbidden:    "Forbidden",
		http.StatusGone:         "Link expired",
	}[status]
	if title == "" {
		title = http.StatusText(status)
	}
	s.render(w, r, status, "error.html", title, errorPage{Status: status, Message: msg})
}

// authRoutes registers signing in and out.
func (s *Server) authRoutes() {
	s.mux.HandleFunc("GET /login/{secret}", s.login)
	s.mux.HandleFunc("POST /logout", s.logout)
}

// login opens a session with a link `ssh HOST login` printed, and sends
// the browser to the front page.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	// The link is in the URL: it must not reach another site as a
	// Referer, nor any cache.
	w.Header().Set("Referrer-Policy", "no-referrer")
	w.Header().Set("Cache-Control", "no-store")
	if s.o.Sessions == nil {
		s.notFound(w, r)
		return
	}
	// GET routes answer HEAD too; a HEAD (a link checker, a preview)
	// must not use the link up.
	if r.Method == http.MethodHead {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		return
	}
	secret := r.PathValue("secret")
	if len(secret) > 2*linkSecretBytes {
		s.badRequest(w, r, "This is not a sign-in link: it is far too long.")
		return
	}
	ctx, now := r.Context(), s.now()
	user, key, err := s.links.consume(secret, now)
	switch {
	case errors.Is(err, errLinkUnknown):
		s.unauthorized(w, r, "This is not a sign-in link of this server, or the server restarted since it was made. Run `ssh HOST login` for a new one.")
		return
	case errors.Is(err, errLinkUsed):
		s.authError(w, r, http.StatusGone, "This sign-in link was used already: each link works once. Run `ssh HOST login` for a new one.")
		return
	case errors.Is(err, errLinkExpired):
		s.authError(w, r, http.StatusGone, "This sign-in link has expired: a link works for 2 minutes. Run `ssh HOST login` for a new one.")
		return
	}
	cfg := s.config(ctx)
	if !admitted(cfg, user, key, now) {
		s.unauthorized(w, r, reasonNoUser)
		return
	}
	b := make([]byte, sessionIDBytes)
	if _, err := rand.Read(b); err != nil {
		s.links.restore(secret)
		s.log.Error("make a session id", "err", err)
		s.authError(w, r, http.StatusInternalServerError, "Could not sign you in; open the link again.")
		return
	}
	id := base64.RawURLEncoding.EncodeToString(b)
	sess := record.Session{Hash: hashOf(id), User: user, KeyFingerprint: key, Created: now, Expires: now.Add(sessionLifetime)}
	if err := s.o.Sessions.CreateSession(ctx, sess); err != nil {
		s.links.restore(secret)
		s.log.Error("record a session", "user", user, "err", err)
		s.authError(w, r, http.StatusInternalServerError, "Could not sign you in; open the link again.")
		return
	}
	// The session this browser had, if any, is over.
	if old := authFrom(r).session; old != nil {
		s.background(func(ctx context.Context) { _ = s.o.Sessions.DeleteSession(ctx, old) })
	}
	name, secure := cookieOf(r, cfg)
	http.SetCookie(w, &http.Cookie{
		Name:     name,
		Value:    id,
		Path:     "/",
		MaxAge:   int(sessionLifetime / time.Second),
		HttpOnly: true,
		Secure:   secure,
		SameSite: http.SameSiteLaxMode,
	})
	s.log.Info("signed in", "user", user, "key", key)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// logout ends the request's session.
func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	if !s.checkWrite(w, r) {
		return
	}
	if a := authFrom(r); a.session != nil {
		if err := s.o.Sessions.DeleteSession(r.Context(), a.session); err != nil {
			s.log.Error("end a session", "user", a.v.User, "err", err)
			s.authError(w, r, http.StatusInternalServerError, "Could not sign you out; try again.")
			return
		}
		s.clearCookie(w, r, s.config(r.Context()))
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// cookieOf returns the session cookie's name for r, and whether it is
// Secure: when the request came over TLS, or public_url says people reach
// the web side over HTTPS (through a proxy that ends TLS).
func cookieOf(r *http.Request, cfg *configs.Config) (name string, secure bool) {
	if r.TLS != nil || strings.HasPrefix(strings.ToLower(cfg.HTTP.PublicURL), "https://") {
		return secureCookieName, true
	}
	return cookieName, false
}

// sessionID is the session id r's cookie carries, if it has the shape of
// one.
func (s *Server) sessionID(r *http.Request, cfg *configs.Config) (string, bool) {
	name, _ := cookieOf(r, cfg)
	c, err := r.Cookie(name)
	if err != nil {
		return "", false
	}
	b, err := base64.RawURLEncoding.DecodeString(c.Value)
	if err != nil || len(b) != sessionIDBytes {
		return "", false
	}
	return c.Value, true
}

// clearCookie tells the browser to drop the session cookie.
func (s *Server) clearCookie(w http.ResponseWriter, r *http.Request, cfg *configs.Config) {
	name, secure := cookieOf(r, cfg)
	http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: secure, SameSite: http.SameSiteLaxMode})
}

// now is the server's clock.
func (s *Server) now() time.Time {
	if s.o.Now != nil {
		return s.o.Now()
	}
	return time.Now()
}

// tasks runs the writes a request starts but does not wait for, and lets
// Shutdown wait for them.
type tasks struct {
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

// backgroundTimeout bounds one background write.
const backgroundTimeout = 30 * time.Second

// background runs f on its own goroutine, unless the server is shutting
// down.
func (s *Server) background(f func(ctx context.Context)) {
	s.tasks.mu.Lock()
	defer s.tasks.mu.Unlock()
	if s.tasks.closed {
		return
	}
	s.tasks.wg.Go(func() {
		ctx, cancel := context.WithTimeout(context.Background(), backgroundTimeout)
		defer cancel()
		f(ctx)
	})
}

// waitBackground stops new background work and waits for what runs,
// until ctx ends.
func (s *Server) waitBackground(ctx context.Context) {
	s.tasks.mu.Lock()
	s.tasks.closed = true
	s.tasks.mu.Unlock()
	done := make(chan struct{})
	go func() { s.tasks.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}
