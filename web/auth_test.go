package web

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"html"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"slipway/configs"
	"slipway/gitserver"
	"slipway/internal/testutil"
	"slipway/store"
)

// clock is a settable clock for the server.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// key is an SSH key of a test user.
type key = testutil.Key

func newKey(t *testing.T) key { return testutil.NewKey(t) }

// authEnv is a web server on a real store, with a live configuration
// that a test swaps as a reload would.
type authEnv struct {
	t     *testing.T
	s     *Server
	db    *store.Store
	live  *configs.Live
	clock *clock
	keys  map[string]key // alice, bob, carol (admin), each a key
}

// authTOML is the configuration of the auth tests: alice writes app,
// bob reads it, carol is an admin; priv is only alice's and carol's.
// Its %s are replaced by the users' keys; extra is added at the end.
func (e *authEnv) toml(users map[string]bool, extra string) string {
	var b strings.Builder
	for _, name := range []string{"alice", "bob", "carol"} {
		if !users[name] {
			continue
		}
		fmt.Fprintf(&b, "[[user]]\nname = %q\nkeys = [%q]\nadmin = %v\n\n", name, e.keys[name].Line, name == "carol")
	}
	// A repository may list only configured users.
	list := func(name string) string {
		if users[name] {
			return fmt.Sprintf("%q", name)
		}
		return ""
	}
	fmt.Fprintf(&b, "[[repo]]\nname = \"app\"\nread = [%s]\nwrite = [%s]\n", list("bob"), list("alice"))
	fmt.Fprintf(&b, "[[repo]]\nname = \"priv\"\nread = [%s]\n", list("alice"))
	b.WriteString(extra)
	return b.String()
}

func (e *authEnv) parse(users map[string]bool, extra string) *configs.Config {
	e.t.Helper()
	cfg, err := configs.Loader{}.Parse([]byte(e.toml(users, extra)), "test.toml")
	if err != nil {
		e.t.Fatal(err)
	}
	return cfg
}

var everyone = map[string]bool{"alice": true, "bob": true, "carol": true}

func newAuthEnv(t *testing.T, extra string) *authEnv {
	t.Helper()
	db, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "slipway.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	e := &authEnv{t: t, db: db, clock: &clock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)},
		keys: map[string]key{"alice": newKey(t), "bob": newKey(t), "carol": newKey(t)}}
	e.live = configs.NewLive(e.parse(everyone, extra), configs.Origin{})
	e.s = e.newServer()
	return e
}

// newServer is a server on the env's store and configuration: a second
// one stands for the daemon after a restart.
func (e *authEnv) newServer() *Server {
	e.t.Helper()
	s, err := New(Options{Config: e.live, Repos: fixedRepos{"app", "priv"}, Sessions: e.db, Tokens: e.db,
		Addr: "127.0.0.1:8080", Now: e.clock.Now})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { s.Shutdown(context.Background()) })
	return s
}

// reload puts a configuration with only the given users in force.
func (e *authEnv) reload(users map[string]bool, extra string) {
	e.live.Swap(e.parse(users, extra), configs.Origin{})
}

// ssh runs one of the web side's SSH commands as user.
func (e *authEnv) ssh(user string, args ...string) (stdout, stderr string, code int) {
	e.t.Helper()
	var o, er bytes.Buffer
	cmd, ok := e.s.Commands()[args[0]]
	if !ok {
		e.t.Fatalf("no command %q", args[0])
	}
	code = cmd.Run(e.t.Context(), gitserver.Caller{User: user, KeyFingerprint: e.keys[user].Fingerprint}, args[1:], &o, &er)
	return o.String(), er.String(), code
}

// loginLink runs `login` as user and returns the link's path.
func (e *authEnv) loginLink(user string) string {
	e.t.Helper()
	out, errOut, code := e.ssh(user, "login")
	if code != 0 {
		e.t.Fatalf("login as %s: %d %s", user, code, errOut)
	}
	u, err := url.Parse(strings.TrimSpace(out))
	if err != nil || !strings.HasPrefix(u.Path, "/login/") {
		e.t.Fatalf("login printed %q, want a link to /login/...", out)
	}
	return u.Path
}

// do sends a request to the server. cookie, when not nil, is sent as the
// session cookie; hdr are added headers.
func (e *authEnv) do(method, target string, body io.Reader, cookie *http.Cookie, hdr ...string) response {
	e.t.Helper()
	req := request(method, "", target, body, hdr...)
	if cookie != nil {
		req.AddCookie(cookie)
	}
	return answer(e.t, e.s.Handler(), req)
}

// signIn opens a fresh login link of user and returns the cookie.
func (e *authEnv) signIn(user string) *http.Cookie {
	e.t.Helper()
	r := e.do("GET", e.loginLink(user), nil, nil)
	if r.code != http.StatusSeeOther || r.h.Get("Location") != "/" || r.cookie == nil {
		e.t.Fatalf("open the login link of %s: %d %v\n%s", user, r.code, r.h, r.body)
	}
	return r.cookie
}

func signedInAs(body string) string {
	m := regexp.MustCompile(`signed in as (\w+)`).FindStringSubmatch(body)
	if m == nil {
		return ""
	}
	return m[1]
}

// TestLoginLinkOpensOneSession: the link `login` prints signs the browser
// in once; opened again it says it was used (410), and a link the server
// never made is refused (401). The cookie is HttpOnly, SameSite=Lax,
// Path=/ and, over plain HTTP, not Secure.
func TestLoginLinkOpensOneSession(t *testing.T) {
	t.Parallel()
	e := newAuthEnv(t, "")
	link := e.loginLink("alice")
	if r := e.do("HEAD", link, nil, nil); r.code != http.StatusOK || r.cookie != nil {
		t.Errorf("HEAD of the link: %d %v", r.code, r.cookie)
	}
	r := e.do("GET", link, nil, nil)
	if r.code != http.StatusSeeOther || r.h.Get("Location") != "/" {
		t.Fatalf("open the link: %d %v", r.code, r.h)
	}
	c := r.cookie
	if c == nil || c.Name != "slipway_session" || !c.HttpOnly || c.Secure || c.SameSite != http.SameSiteLaxMode || c.Path != "/" ||
		c.MaxAge != int(sessionLifetime/time.Second) {
		t.Fatalf("session cookie: %+v", c)
	}
	if cc := r.h.Get("Cache-Control"); cc != "no-store" || r.h.Get("Referrer-Policy") != "no-referrer" {
		t.Errorf("login response headers: %v", r.h)
	}
	home := e.do("GET", "/", nil, c)
	if who := signedInAs(home.body); who != "alice" || !strings.Contains(home.body, "<a href=\"/priv\">priv</a>") {
		t.Errorf("GET / with the cookie: signed in as %q\n%s", who, home.body)
	}
	again := e.do("GET", link, nil, nil)
	if again.code != http.StatusGone || !strings.Contains(again.body, "used already") || again.cookie != nil {
		t.Errorf("the link opened twice: %d %v\n%s", again.code, again.cookie, again.body)
	}
	bogus := e.do("GET", "/login/"+strings.Repeat("A", 43), nil, nil)
	if bogus.code != http.StatusUnauthorized || !strings.Contains(bogus.body, "not a sign-in link") || bogus.cookie != nil {
		t.Errorf("a made-up link: %d\n%s", bogus.code, bogus.body)
	}
	long := e.do("GET", "/login/"+strings.Repeat("A", 200), nil, nil)
	if long.code != http.StatusBadRequest {
		t.Errorf("an oversized link: %d\n%s", long.code, long.body)
	}
	// The first session still works.
	if who := signedInAs(e.do("GET", "/", nil, c).body); who != "alice" {
		t.Errorf("after the refusals, the session is %q", who)
	}
}

// TestLoginLinkExpiresAfterTwoMinutes: a link opened at 1m59s works; one
// opened at 2m is refused as expired (410) and opens nothing.
func TestLoginLinkExpiresAfterTwoMinutes(t *testing.T) {
	t.Parallel()
	e := newAuthEnv(t, "")
	early, late := e.loginLink("alice"), e.loginLink("alice")
	e.clock.advance(2*time.Minute - time.Second)
	if r := e.do("GET", early, nil, nil); r.code != http.StatusSeeOther || r.cookie == nil {
		t.Errorf("a link at 1m59s: %d\n%s", r.code, r.body)
	}
	e.clock.advance(time.Second)
	r := e.do("GET", late, nil, nil)
	if r.code != http.StatusGone || !strings.Contains(r.body, "expired") || r.cookie != nil {
		t.Errorf("a link at 2m: %d %v\n%s", r.code, r.cookie, r.body)
	}
}

// TestLoginLinksPerUserAreBounded: a ninth pending link of one user
// retires the oldest, which is then unknown; another user's are not
// touched.
func TestLoginLinksPerUserAreBounded(t *testing.T) {
	t.Parallel()
	e := newAuthEnv(t, "")
	bobs := e.loginLink("bob")
	var alices []string
	for range maxLinksPerUser + 1 {
		alices = append(alices, e.loginLink("alice"))
		e.clock.advance(time.Second)
	}
	if r := e.do("GET", alices[0], nil, nil); r.code != http.StatusUnauthorized {
		t.Errorf("the oldest of 9 links: %d, want 401", r.code)
	}
	for _, l := range append(alices[1:], bobs) {
		if r := e.do("GET", l, nil, nil); r.code != http.StatusSeeOther {
			t.Errorf("link %s: %d, want 303", l, r.code)
		}
	}
}

// TestLoginLinkOfRemovedUser: a user removed from the configuration
// between `login` and opening the link is not signed in.
func TestLoginLinkOfRemovedUser(t *testing.T) {
	t.Parallel()
	e := newAuthEnv(t, "")
	link := e.loginLink("bob")
	e.reload(map[string]bool{"alice": true, "carol": true}, "")
	r := e.do("GET", link, nil, nil)
	if r.code != http.StatusUnauthorized || !strings.Contains(r.body, reasonNoUser) || r.cookie != nil {
		t.Errorf("link of a removed user: %d\n%s", r.code, r.body)
	}
}

// TestLoginNeedsTheWebSide: without a listening web side or public_url,
// `login` says so and prints no link; with public_url the link is built
// on it.
func TestLoginNeedsTheWebSide(t *testing.T) {
	t.Parallel()
	e := newAuthEnv(t, "")
	s, err := New(Options{Config: e.live, Sessions: e.db, Tokens: e.db})
	if err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	code := s.Commands()["login"].Run(t.Context(), gitserver.Caller{User: "alice"}, nil, &out, &errb)
	if code != 1 || out.Len() != 0 || !strings.Contains(errb.String(), "the web side is off") {
		t.Errorf("login with the web side off: %d %q %q", code, out.String(), errb.String())
	}
	linkRE := func(base string) *regexp.Regexp {
		return regexp.MustCompile(`^` + regexp.QuoteMeta(base) + `/login/[A-Za-z0-9_-]{43}\n$`)
	}
	// On the address the web side listens on: the configured host, the
	// bound port.
	if o, _, _ := e.ssh("alice", "login"); !linkRE("http://127.0.0.1:8080").MatchString(o) {
		t.Errorf("login without [http]: %q", o)
	}
	e.reload(everyone, "[http]\nlisten = \"localhost:0\"\n")
	if o, _, _ := e.ssh("alice", "login"); !linkRE("http://localhost:8080").MatchString(o) {
		t.Errorf("login with [http] listen = localhost:0: %q", o)
	}
	e.reload(everyone, "[http]\npublic_url = \"https://ci.example.com/\"\n")
	o, _, code := e.ssh("alice", "login")
	if code != 0 || !linkRE("https://ci.example.com").MatchString(o) {
		t.Errorf("login with public_url: %d %q", code, o)
	}
	if _, _, code := e.ssh("alice", "login", "now"); code != 1 {
		t.Errorf("login with an argument: %d", code)
	}
}

// TestSessionCookieSecureOnlyWithTLS: over TLS, or when public_url is
// https, the cookie is Secure and __Host- prefixed, and it is read back
// under that name.
func TestSessionCookieSecureOnlyWithTLS(t *testing.T) {
	t.Parallel()
	e := newAuthEnv(t, "")
	r := e.do("GET", "https://127.0.0.1:8080"+e.loginLink("alice"), nil, nil)
	c := r.cookie
	if c == nil || c.Name != "__Host-slipway_session" || !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Domain != "" {
		t.Fatalf("cookie over TLS: %+v", c)
	}
	if who := signedInAs(e.do("GET", "https://127.0.0.1:8080/", nil, c).body); who != "alice" {
		t.Errorf("over TLS with the cookie: %q", who)
	}
	e.reload(everyone, "[http]\npublic_url = \"https://ci.example.com\"\n")
	if c := e.do("GET", e.loginLink("bob"), nil, nil).cookie; c == nil || !c.Secure || c.Name != "__Host-slipway_session" {
		t.Errorf("cookie behind an https public_url: %+v", c)
	}
	e.reload(everyone, "[http]\npublic_url = \"http://ci.example.com\"\n")
	if c := e.do("GET", e.loginLink("bob"), nil, nil).cookie; c == nil || c.Secure || c.Name != "slipway_session" {
		t.Errorf("cookie behind an http public_url: %+v", c)
	}
}

// TestSessionLookupLifetimeAndRestart: a session is found from its
// cookie until 14 days after login, then the request is anonymous and
// the browser told to drop the cookie; sessions survive a restart (they
// are in the database), and only their hash is stored there.
func TestSessionLookupLifetimeAndRestart(t *testing.T) {
	t.Parallel()
	e := newAuthEnv(t, "")
	c := e.signIn("alice")
	if _, err := e.db.Session(t.Context(), []byte(c.Value)); err == nil {
		t.Error("the session is stored under its id, not its hash")
	}
	if _, err := e.db.Session(t.Context(), hashOf(c.Value)); err != nil {
		t.Errorf("the session's hash is not stored: %v", err)
	}
	e.s = e.newServer() // a restart
	e.clock.advance(sessionLifetime - time.Second)
	if who := signedInAs(e.do("GET", "/", nil, c).body); who != "alice" {
		t.Errorf("after a restart, a second before the end: %q", who)
	}
	e.clock.advance(time.Second)
	r := e.do("GET", "/", nil, c)
	if who := signedInAs(r.body); who != "" || r.cookie == nil || r.cookie.MaxAge >= 0 {
		t.Errorf("14 days after login: signed in as %q, cookie %+v", who, r.cookie)
	}
	e.s.tasks.wg.Wait()
	if _, err := e.db.Session(t.Context(), hashOf(c.Value)); !isNotFound(err) {
		t.Errorf("the expired session is still stored: %v", err)
	}
	// A cookie of no session, or of no shape, is nobody.
	for _, v := range []string{strings.Repeat("A", 43), "x", ""} {
		if who := signedInAs(e.do("GET", "/", nil, &http.Cookie{Name: "slipway_session", Value: v}).body); who != "" {
			t.Errorf("cookie %q: signed in as %q", v, who)
		}
	}
}

// TestSessionEndsWithItsUserOrKey: a reload that removes the user, or
// the key that ran `login`, ends the session at once; it does not come
// back when the user does.
func TestSessionEndsWithItsUserOrKey(t *testing.T) {
	t.Parallel()
	e := newAuthEnv(t, "")
	alice, bob := e.signIn("alice"), e.signIn("bob")
	e.reload(map[string]bool{"alice": true, "carol": true}, "")
	if who := signedInAs(e.do("GET", "/", nil, bob).body); who != "" {
		t.Errorf("bob removed: signed in as %q", who)
	}
	e.s.tasks.wg.Wait()
	e.reload(everyone, "")
	if who := signedInAs(e.do("GET", "/", nil, bob).body); who != "" {
		t.Errorf("bob back: his old session is %q", who)
	}
	if who := signedInAs(e.do("GET", "/", nil, alice).body); who != "alice" {
		t.Errorf("alice kept: %q", who)
	}
	// alice's key replaced (a lost laptop): her session is over.
	e.keys["alice"] = newKey(t)
	e.reload(everyone, "")
	if who := signedInAs(e.do("GET", "/", nil, alice).body); who != "" {
		t.Errorf("alice's key replaced: signed in as %q", who)
	}
}

// TestLogout: POST /logout with the session's CSRF token ends it; the
// cookie no longer signs in. Without the token it is refused and the
// session stays.
func TestLogout(t *testing.T) {
	t.Parallel()
	e := newAuthEnv(t, "")
	c := e.signIn("alice")
	form := "application/x-www-form-urlencoded"
	if r := e.do("POST", "/logout", strings.NewReader(""), c, "Content-Type", form); r.code != http.StatusForbidden {
		t.Errorf("logout without the CSRF token: %d", r.code)
	}
	home := e.do("GET", "/", nil, c)
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(home.body)
	if m == nil || !strings.Contains(home.body, `action="/logout"`) {
		t.Fatalf("the page has no sign-out form with the CSRF token:\n%s", home.body)
	}
	r := e.do("POST", "/logout", strings.NewReader("csrf="+url.QueryEscape(m[1])), c, "Content-Type", form)
	if r.code != http.StatusSeeOther || r.cookie == nil || r.cookie.MaxAge >= 0 {
		t.Fatalf("logout: %d %+v\n%s", r.code, r.cookie, r.body)
	}
	if who := signedInAs(e.do("GET", "/", nil, c).body); who != "" {
		t.Errorf("after logout the old cookie signs in %q", who)
	}
	if _, err := e.db.Session(t.Context(), hashOf(c.Value)); !isNotFound(err) {
		t.Errorf("after logout the session is stored: %v", err)
	}
}

// TestNewLoginEndsTheBrowsersOldSession: opening a login link in a
// browser that has a session replaces it.
func TestNewLoginEndsTheBrowsersOldSession(t *testing.T) {
	t.Parallel()
	e := newAuthEnv(t, "")
	old := e.signIn("alice")
	r := e.do("GET", e.loginLink("bob"), nil, old)
	if r.cookie == nil {
		t.Fatalf("second login: %d", r.code)
	}
	e.s.tasks.wg.Wait()
	if who := signedInAs(e.do("GET", "/", nil, old).body); who != "" {
		t.Errorf("the replaced session still signs in %q", who)
	}
	if who := signedInAs(e.do("GET", "/", nil, r.cookie).body); who != "bob" {
		t.Errorf("the new session: %q", who)
	}
}

// writeProbe registers a state-changing route for the tests, made the
// way the API's and the pages' are: checkWrite, then the right on the
// repository.
func writeProbe(s *Server) {
	s.mux.HandleFunc("POST /test/{repo}/write", func(w http.ResponseWriter, r *http.Request) {
		if !s.checkWrite(w, r) {
			return
		}
		if !s.viewerOf(r).caller().Access(s.config(r.Context()), r.PathValue("repo")).Has(configs.Write) {
			s.notFound(w, r)
			return
		}
		fmt.Fprintf(w, "written by %s", s.viewerOf(r).User)
	})
}

// TestCSRF: a state-changing request with a session needs its CSRF token
// (form field or header, of that very session); with an API token it
// needs none; anonymous ones are refused.
func TestCSRF(t *testing.T) {
	t.Parallel()
	e := newAuthEnv(t, "")
	writeProbe(e.s)
	alice, bob := e.signIn("alice"), e.signIn("bob")
	csrf := csrfToken(alice.Value)
	form := "application/x-www-form-urlencoded"
	post := func(body string, c *http.Cookie, hdr ...string) response {
		return e.do("POST", "/test/app/write", strings.NewReader(body), c, append([]string{"Content-Type", form}, hdr...)...)
	}
	for _, tc := range []struct {
		name string
		r    response
		code int
		want string
	}{
		{"session, no token", post("", alice), 403, "CSRF token"},
		{"session, wrong token", post("csrf=nope", alice), 403, "CSRF token"},
		{"session, another session's token", post("csrf="+csrfToken(bob.Value), alice), 403, "CSRF token"},
		{"session, wrong header", post("", alice, "X-CSRF-Token", csrf+"x"), 403, "CSRF token"},
		{"session, form token", post("csrf="+csrf, alice), 200, "written by alice"},
		{"session, header token", post("", alice, "X-CSRF-Token", csrf), 200, "written by alice"},
		{"anonymous", post("csrf="+csrf, nil), 403, "Sign in first"},
	} {
		if tc.r.code != tc.code || !strings.Contains(tc.r.body, tc.want) {
			t.Errorf("%s: %d, want %d with %q\n%s", tc.name, tc.r.code, tc.code, tc.want, tc.r.body)
		}
	}
	tok, _, _ := e.ssh("alice", "token", "create", "ci", "--scope", "write")
	if r := post("", nil, "Authorization", "Bearer "+strings.TrimSpace(tok)); r.code != 200 || r.body != "written by alice" {
		t.Errorf("bearer token, no CSRF token: %d %s", r.code, r.body)
	}
	// An oversized form is refused, not read whole.
	if r := post("csrf="+strings.Repeat("x", 2*maxFormBytes), alice); r.code != http.StatusForbidden {
		t.Errorf("oversized form: %d", r.code)
	}
}

// TestCSRFJSONUnderAPI: under /api the refusal is JSON.
func TestCSRFJSONUnderAPI(t *testing.T) {
	t.Parallel()
	e := newAuthEnv(t, "")
	e.s.mux.HandleFunc("POST /api/v1/probe", func(w http.ResponseWriter, r *http.Request) {
		if e.s.checkWrite(w, r) {
			io.WriteString(w, "ok")
		}
	})
	r := e.do("POST", "/api/v1/probe", nil, e.signIn("alice"))
	var doc map[string]string
	if r.code != http.StatusForbidden || r.h.Get("Content-Type") != "application/json" || json.Unmarshal([]byte(r.body), &doc) != nil ||
		!strings.Contains(doc["error"], "CSRF token") {
		t.Errorf("POST /api/v1/probe with a session and no CSRF token: %d %v %s", r.code, r.h, r.body)
	}
}

// bearer is the header of a token.
func bearer(tok string) []string {
	return []string{"Authorization", "Bearer " + strings.TrimSpace(tok)}
}

// TestTokenLifecycle: a token made over SSH is printed once (slw_ and 64
// hex digits), listed without its secret, and stands for its user within
// its scope and the user's current rights; expiry, revocation and the
// user's removal each refuse it with 401 and the reason, as a page or as
// JSON under /api.
func TestTokenLifecycle(t *testing.T) {
	t.Parallel()
	e := newAuthEnv(t, "")
	writeProbe(e.s)
	tok, errOut, code := e.ssh("alice", "token", "create", "ci", "--scope", "write", "--expires", "30d")
	tok = strings.TrimSpace(tok)
	if code != 0 || !regexp.MustCompile(`^slw_[0-9a-f]{64}$`).MatchString(tok) || !strings.Contains(errOut, "shown this once") {
		t.Fatalf("token create: %d %q %q", code, tok, errOut)
	}
	list, _, _ := e.ssh("alice", "token", "list")
	if !regexp.MustCompile(`(?m)^ci\s+write\s+2026-03-01 12:00 UTC\s+2026-03-31 12:00 UTC\s+never\s*$`).MatchString(list) || strings.Contains(list, tok[4:]) {
		t.Errorf("token list:\n%s", list)
	}
	if _, err := e.db.TokenByHash(t.Context(), hashOf(tok)); err != nil {
		t.Errorf("the token's hash is not stored: %v", err)
	}

	// It is alice, within its scope.
	if who := signedInAs(e.do("GET", "/", nil, nil, bearer(tok)...).body); who != "alice" {
		t.Errorf("GET / with the token: %q", who)
	}
	if r := e.do("POST", "/test/app/write", nil, nil, bearer(tok)...); r.code != 200 {
		t.Errorf("write with a write token on alice's repository: %d %s", r.code, r.body)
	}
	if r := e.do("POST", "/test/priv/write", nil, nil, bearer(tok)...); r.code != 404 {
		t.Errorf("write with a write token where alice only reads: %d", r.code)
	}
	read, _, _ := e.ssh("alice", "token", "create", "ro")
	if r := e.do("POST", "/test/app/write", nil, nil, bearer(read)...); r.code != 404 {
		t.Errorf("write with a read token (the default scope): %d", r.code)
	}
	bobAdmin, _, _ := e.ssh("bob", "token", "create", "all", "--scope", "admin")
	if r := e.do("POST", "/test/app/write", nil, nil, bearer(bobAdmin)...); r.code != 404 {
		t.Errorf("bob's admin-scoped token writes where bob only reads: %d", r.code)
	}
	if r := e.do("GET", "/", nil, nil, bearer(bobAdmin)...); strings.Contains(r.body, "<a href=\"/priv\">priv</a>") || !strings.Contains(r.body, "<a href=\"/app\">app</a>") {
		t.Errorf("bob's token lists:\n%s", r.body)
	}

	// Rights taken away in the configuration are gone at once.
	fewer, err := configs.Loader{}.Parse([]byte(strings.Replace(e.toml(everyone, ""), "read = [\"bob\"]\nwrite = [\"alice\"]", "read = [\"alice\", \"bob\"]\nwrite = []", 1)), "t.toml")
	if err != nil {
		t.Fatal(err)
	}
	e.live.Swap(fewer, configs.Origin{})
	if r := e.do("POST", "/test/app/write", nil, nil, bearer(tok)...); r.code != 404 {
		t.Errorf("write after alice lost write: %d", r.code)
	}
	e.reload(everyone, "")

	// The first use is recorded; another within the minute writes nothing.
	e.s.tasks.wg.Wait()
	first := e.clock.Now()
	if got := e.lastUsed("alice", "ci"); !got.Equal(first) {
		t.Errorf("last used after a use: %v, want %v", got, first)
	}
	e.clock.advance(30 * time.Second)
	e.do("GET", "/", nil, nil, bearer(tok)...)
	e.s.tasks.wg.Wait()
	if got := e.lastUsed("alice", "ci"); !got.Equal(first) {
		t.Errorf("last used after a use 30 s later: %v, want still %v", got, first)
	}
	e.clock.advance(31 * time.Second)
	e.do("GET", "/", nil, nil, bearer(tok)...)
	e.s.tasks.wg.Wait()
	if got := e.lastUsed("alice", "ci"); !got.Equal(e.clock.Now()) {
		t.Errorf("last used after a use 61 s later: %v, want %v", got, e.clock.Now())
	}
	if list, _, _ := e.ssh("alice", "token", "list"); !strings.Contains(list, "2026-03-01 12:01 UTC") {
		t.Errorf("token list shows no last use:\n%s", list)
	}

	// Refusals, each with its reason, as JSON under /api and a page elsewhere.
	refused := func(what, tok, reason string) {
		t.Helper()
		r := e.do("GET", "/api/v1/repos", nil, nil, bearer(tok)...)
		var doc map[string]string
		if r.code != 401 || r.h.Get("Content-Type") != "application/json" || json.Unmarshal([]byte(r.body), &doc) != nil || doc["error"] != reason ||
			!strings.Contains(r.h.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s, /api: %d %v %s", what, r.code, r.h, r.body)
		}
		r = e.do("GET", "/", nil, nil, bearer(tok)...)
		if r.code != 401 || !strings.HasPrefix(r.h.Get("Content-Type"), "text/html") || !strings.Contains(r.body, html.EscapeString(reason)) || signedInAs(r.body) != "" {
			t.Errorf("%s, page: %d %v\n%s", what, r.code, r.h, r.body)
		}
	}
	refused("unknown", "slw_"+strings.Repeat("0", 64), reasonUnknown)
	refused("malformed", "ghp_abc", reasonMalformed)
	if r := e.do("GET", "/", nil, nil, "Authorization", "Basic YWxpY2U6eA=="); r.code != 401 || !strings.Contains(r.body, html.EscapeString(reasonAuthScheme)) {
		t.Errorf("basic auth: %d\n%s", r.code, r.body)
	}

	e.reload(map[string]bool{"bob": true, "carol": true}, "")
	refused("alice removed", tok, reasonNoUser)
	e.reload(everyone, "")
	if who := signedInAs(e.do("GET", "/", nil, nil, bearer(tok)...).body); who != "alice" {
		t.Errorf("alice back: the token is %q", who)
	}

	e.clock.advance(30 * 24 * time.Hour)
	refused("expired", tok, reasonExpired)
	if list, _, _ := e.ssh("alice", "token", "list"); !strings.Contains(list, "expired 2026-03-31 12:00 UTC") {
		t.Errorf("token list does not mark the expired token:\n%s", list)
	}

	if out, errOut, code := e.ssh("alice", "token", "revoke", "ro"); code != 0 || !strings.Contains(out, "Revoked token ro of alice") {
		t.Errorf("token revoke: %d %q %q", code, out, errOut)
	}
	refused("revoked", read, reasonRevoked)
	if list, _, _ := e.ssh("alice", "token", "list"); strings.Contains(list, "ro ") {
		t.Errorf("a revoked token is listed:\n%s", list)
	}
	// Its name is free again; the new token is another.
	again, _, code := e.ssh("alice", "token", "create", "ro")
	if code != 0 || strings.TrimSpace(again) == strings.TrimSpace(read) {
		t.Errorf("a new token named like a revoked one: %d", code)
	}
	refused("revoked, after a namesake", read, reasonRevoked)
}

func (e *authEnv) lastUsed(user, name string) time.Time {
	e.t.Helper()
	ts, err := e.db.Tokens(e.t.Context(), user)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, t := range ts {
		if t.Name == name {
			return t.LastUsed
		}
	}
	e.t.Fatalf("%s has no token %s", user, name)
	return time.Time{}
}

// TestTokenCommands: bad input is refused with one line and creates
// nothing; names are unique among a user's tokens; each user manages
// their own, admins anyone's with --user.
func TestTokenCommands(t *testing.T) {
	t.Parallel()
	e := newAuthEnv(t, "")
	for _, args := range [][]string{
		{"token"},
		{"token", "create"},
		{"token", "create", "a", "b"},
		{"token", "create", "-bad"},
		{"token", "create", "bad name"},
		{"token", "create", strings.Repeat("n", 65)},
		{"token", "create", "x", "--scope", "root"},
		{"token", "create", "x", "--expires", "soon"},
		{"token", "create", "x", "--expires", "0d"},
		{"token", "create", "x", "--expires", "4000d"},
		{"token", "create", "x", "--expires", "30s"},
		{"token", "create", "x", "--user", "bob"},
		{"token", "create", "x", "--frobnicate"},
		{"token", "list", "extra"},
		{"token", "revoke"},
		{"token", "destroy", "x"},
	} {
		out, errOut, code := e.ssh("alice", args...)
		if code != 1 || out != "" || !strings.HasPrefix(errOut, "slipway: ") || strings.Count(errOut, "\n") != 1 {
			t.Errorf("%q: %d %q %q", args, code, out, errOut)
		}
	}
	if ts, _ := e.db.Tokens(t.Context(), "alice"); len(ts) != 0 {
		t.Errorf("refused commands made tokens: %v", ts)
	}
	if _, _, code := e.ssh("alice", "token", "create", "ci", "--expires", "never", "--scope", "release"); code != 0 {
		t.Fatal("token create --expires never")
	}
	if _, errOut, code := e.ssh("alice", "token", "create", "ci"); code != 1 || !strings.Contains(errOut, `a token named "ci" already`) {
		t.Errorf("a second token named ci: %d %q", code, errOut)
	}
	if _, _, code := e.ssh("bob", "token", "create", "ci"); code != 0 {
		t.Error("bob's own ci token")
	}
	out, _, _ := e.ssh("alice", "token", "list", "--json")
	var doc []map[string]any
	if err := json.Unmarshal([]byte(out), &doc); err != nil || len(doc) != 1 || doc[0]["name"] != "ci" || doc[0]["scope"] != "release" ||
		doc[0]["expires"] != nil || doc[0]["user"] != "alice" || doc[0]["expired"] != false {
		t.Errorf("token list --json: %v\n%s", err, out)
	}
	// bob may not touch alice's tokens; carol, an admin, may.
	if _, errOut, code := e.ssh("bob", "token", "list", "--user", "alice"); code != 1 || !strings.Contains(errOut, "only admins") {
		t.Errorf("bob lists alice's tokens: %d %q", code, errOut)
	}
	if _, errOut, code := e.ssh("bob", "token", "revoke", "ci", "--user", "alice"); code != 1 || !strings.Contains(errOut, "only admins") {
		t.Errorf("bob revokes alice's token: %d %q", code, errOut)
	}
	if out, _, _ := e.ssh("carol", "token", "list", "--user", "alice"); !strings.Contains(out, "ci") {
		t.Errorf("carol lists alice's tokens:\n%s", out)
	}
	if out, _, code := e.ssh("carol", "token", "revoke", "ci", "--user", "alice"); code != 0 || !strings.Contains(out, "of alice") {
		t.Errorf("carol revokes alice's token: %d %q", code, out)
	}
	if out, _, _ := e.ssh("alice", "token", "list"); out != "alice has no API token.\n" {
		t.Errorf("alice's tokens after carol's revoke: %q", out)
	}
	if out, _, _ := e.ssh("bob", "token", "list"); !strings.Contains(out, "ci") {
		t.Errorf("bob's token went with alice's:\n%s", out)
	}
	if _, errOut, code := e.ssh("alice", "token", "revoke", "ci"); code != 1 || !strings.Contains(errOut, `no token named "ci"`) {
		t.Errorf("revoke twice: %d %q", code, errOut)
	}
}

// TestSecretsComparedInConstantTime: every comparison of a secret in the
// package (a token's hash, a CSRF token) goes through equal, which is
// crypto/subtle's constant-time compare; bytes.Equal, hmac.Equal's
// cousins and == on them would leak, through timing, how much matched.
func TestSecretsComparedInConstantTime(t *testing.T) {
	t.Parallel()
	fset := token.NewFileSet()
	names, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	calls := map[string][]string{} // function -> the functions it calls
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		{
			for _, d := range f.Decls {
				fn, ok := d.(*ast.FuncDecl)
				if !ok || fn.Body == nil {
					continue
				}
				ast.Inspect(fn.Body, func(n ast.Node) bool {
					switch x := n.(type) {
					case *ast.CallExpr:
						switch c := x.Fun.(type) {
						case *ast.Ident:
							calls[fn.Name.Name] = append(calls[fn.Name.Name], c.Name)
						case *ast.SelectorExpr:
							if id, ok := c.X.(*ast.Ident); ok {
								name := id.Name + "." + c.Sel.Name
								calls[fn.Name.Name] = append(calls[fn.Name.Name], name)
								if name == "bytes.Equal" || name == "hmac.Equal" {
									t.Errorf("%s calls %s: compare secrets with equal", fn.Name.Name, name)
								}
							}
						}
					case *ast.BinaryExpr:
						if (x.Op == token.EQL || x.Op == token.NEQ) && !isEmpty(x.X) && !isEmpty(x.Y) {
							for _, side := range []ast.Expr{x.X, x.Y} {
								if s := exprString(side); strings.Contains(strings.ToLower(s), "csrf") || strings.Contains(s, "Hash") || s == "got" || s == "want" {
									t.Errorf("%s compares %s with %s", fn.Name.Name, s, x.Op)
								}
							}
						}
					}
					return true
				})
			}
		}
	}
	has := func(fn, callee string) bool {
		for _, c := range calls[fn] {
			if c == callee {
				return true
			}
		}
		return false
	}
	if !has("equal", "subtle.ConstantTimeCompare") {
		t.Error("equal does not use subtle.ConstantTimeCompare")
	}
	for _, fn := range []string{"checkWrite", "tokenViewer"} {
		if !has(fn, "equal") {
			t.Errorf("%s does not compare with equal", fn)
		}
	}
}

// isEmpty reports whether e is "" or nil: a test for absence, not a
// comparison of secrets.
func isEmpty(e ast.Expr) bool {
	if l, ok := e.(*ast.BasicLit); ok {
		return l.Value == `""`
	}
	id, ok := e.(*ast.Ident)
	return ok && id.Name == "nil"
}

func exprString(e ast.Expr) string {
	switch x := e.(type) {
	case *ast.Ident:
		return x.Name
	case *ast.SelectorExpr:
		return exprString(x.X) + "." + x.Sel.Name
	case *ast.CallExpr:
		return exprString(x.Fun) + "()"
	}
	return ""
}

// TestMetricsBearerIsNotOurs: /metrics has its own bearer token, which
// the sign-in check leaves alone.
func TestMetricsBearerIsNotOurs(t *testing.T) {
	t.Parallel()
	e := newAuthEnv(t, "")
	if r := e.do("GET", "/metrics", nil, nil, "Authorization", "Bearer some-metrics-secret"); r.code == http.StatusUnauthorized {
		t.Errorf("/metrics with its own bearer token: %d %s", r.code, r.body)
	}
}
