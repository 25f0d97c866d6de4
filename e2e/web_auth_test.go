package e2e

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"regexp"
	"strings"
	"testing"
	"time"
)

var dashboardRE = regexp.MustCompile(`(?m)^Dashboard: (http://\S+)/$`)

// waDashboard waits for the banner's Dashboard line and returns its
// URL without the final slash.
func waDashboard(t testing.TB, d *daemon) string {
	t.Helper()
	var base string
	d.eventually(t, 30*time.Second, "the Dashboard line", func() bool {
		m := dashboardRE.FindStringSubmatch(d.stdout.String())
		if m != nil {
			base = m[1]
		}
		return m != nil
	})
	return base
}

// waLoginLink runs `ssh login` as u and returns the sign-in link it prints,
// which must be one of the dashboard at base, and what it said on stderr.
func waLoginLink(t *testing.T, d *daemon, u *user, base string) (link, stderr string) {
	t.Helper()
	out, stderr, code := d.ssh(u, "login")
	link = strings.TrimSpace(out)
	if code != 0 || !strings.HasPrefix(link, base+"/login/") {
		t.Fatalf("ssh login as %s: exit %d, %q %q (dashboard %s)", u.name, code, out, stderr, base)
	}
	return link, stderr
}

// waGet sends a GET with the client and returns the status and body.
func waGet(t *testing.T, c *http.Client, url string, hdr ...string) (int, string) {
	t.Helper()
	code, _, body := httpGet(t, c, url, hdr...)
	return code, body
}

// httpGet sends a GET with the client, with the headers hdr (name, value,
// ...), and returns the status, the headers and the body.
func httpGet(t testing.TB, c *http.Client, url string, hdr ...string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return res.StatusCode, res.Header, string(b)
}

// TestWebSignInAndTokens: against the real binary, `ssh login` prints a
// link on the web side's address that a browser (an HTTP client with a
// cookie jar) opens once to be signed in; the session outlives a restart
// of the daemon. A token made with `ssh token create` makes a request its
// user's, until `ssh token revoke`, after which it is refused with 401
// "token revoked".
func TestWebSignInAndTokens(t *testing.T) {
	t.Parallel()
	alice, bob := newUser(t, "alice"), newUser(t, "bob")
	d := startDaemon(t, configFor(`
[http]
listen = "127.0.0.1:0"

[[repo]]
name = "app"
read = ["bob"]

[[repo]]
name = "secret"
`, []*user{alice}, bob))
	base := waDashboard(t, d)

	help, _, _ := d.ssh(bob, "help")
	if !strings.Contains(help, "login") || !strings.Contains(help, "token create NAME") {
		t.Errorf("help does not list login and token:\n%s", help)
	}

	link, errOut := waLoginLink(t, d, alice, base)
	if !strings.Contains(errOut, "within 2 minutes") {
		t.Fatalf("ssh login does not say the link works within 2 minutes: %q", errOut)
	}
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	browser := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	status, body := waGet(t, browser, link)
	if status != http.StatusOK || !strings.Contains(body, "signed in as alice") || !strings.Contains(body, "<a href=\"/secret\">secret</a>") {
		t.Fatalf("open the login link: %d\n%s", status, body)
	}
	if status, body := waGet(t, browser, link); status != http.StatusGone || !strings.Contains(body, "used already") {
		t.Errorf("open the login link again: %d\n%s", status, body)
	}
	if status, body := waGet(t, &http.Client{Timeout: 30 * time.Second}, base+"/"); status != http.StatusOK || strings.Contains(body, "signed in as") {
		t.Errorf("another browser, without the cookie: %d\n%s", status, body)
	}

	tok, errOut, code := d.ssh(bob, "token", "create", "ci", "--expires", "7d")
	tok = strings.TrimSpace(tok)
	if code != 0 || !regexp.MustCompile(`^slw_[0-9a-f]{64}$`).MatchString(tok) {
		t.Fatalf("ssh token create: %d %q %q", code, tok, errOut)
	}
	curl := &http.Client{Timeout: 30 * time.Second}
	status, body = waGet(t, curl, base+"/", "Authorization", "Bearer "+tok)
	if status != http.StatusOK || !strings.Contains(body, "signed in as bob") || !strings.Contains(body, "<a href=\"/app\">app</a>") || strings.Contains(body, "secret") {
		t.Errorf("GET / with bob's token: %d\n%s", status, body)
	}
	list, _, _ := d.ssh(bob, "token", "list")
	if !regexp.MustCompile(`(?m)^ci\s+read\s`).MatchString(list) || strings.Contains(list, tok[4:]) {
		t.Errorf("ssh token list:\n%s", list)
	}
	d.eventually(t, 30*time.Second, "the token's use in token list", func() bool {
		list, _, _ := d.ssh(bob, "token", "list")
		return !strings.HasSuffix(strings.TrimSpace(list), "never")
	})
	mustSSH(t, d, bob, "token", "revoke", "ci")
	if status, body := waGet(t, curl, base+"/", "Authorization", "Bearer "+tok); status != http.StatusUnauthorized || !strings.Contains(body, "token revoked") {
		t.Errorf("GET / with the revoked token: %d\n%s", status, body)
	}

	// Sessions are in the database: a restart keeps alice signed in (the
	// jar sends the cookie to the new port of the same host).
	d.stop()
	d.start()
	base = waDashboard(t, d)
	if status, body := waGet(t, browser, base+"/"); status != http.StatusOK || !strings.Contains(body, "signed in as alice") {
		t.Errorf("after a restart: %d\n%s", status, body)
	}
}
