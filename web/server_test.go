package web

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"slipway/configs"
)

type fixedRepos []string

func (f fixedRepos) Repos(context.Context) ([]string, error) { return f, nil }

func newTestServer(t *testing.T, toml string, repos ...string) *Server {
	t.Helper()
	cfg, err := configs.Loader{}.Parse([]byte(toml), "test.toml")
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{Config: cfg, Repos: fixedRepos(repos)})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func get(t *testing.T, h http.Handler, path string) (int, http.Header, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	body, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, rec.Result().Header, string(body)
}

const publicTOML = `
[[repo]]
name = "pub"
public = true
[[repo]]
name = "priv"
`

// TestAnonymousSeesOnlyPublicRepositories: without signing in, the front
// page lists the public repositories and nothing else; an unknown page is
// a 404 page, and the stylesheet is served.
func TestAnonymousSeesOnlyPublicRepositories(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, publicTOML, "priv", "pub", "unconfigured")
	code, h, body := get(t, s.Handler(), "/")
	if code != http.StatusOK || !strings.Contains(body, "<a href=\"/pub\">pub</a>") || strings.Contains(body, "priv") || strings.Contains(body, "unconfigured") {
		t.Errorf("GET / as nobody: %d\n%s", code, body)
	}
	if ct := h.Get("Content-Type"); ct != "text/html; charset=utf-8" || h.Get("Content-Security-Policy") == "" {
		t.Errorf("GET / headers: %v", h)
	}
	code, _, body = get(t, s.Handler(), "/no/such/page")
	if code != http.StatusNotFound || !strings.Contains(body, "404 Not found") {
		t.Errorf("GET /no/such/page: %d\n%s", code, body)
	}
	code, h, body = get(t, s.Handler(), "/static/slipway.css")
	if code != http.StatusOK || !strings.HasPrefix(h.Get("Content-Type"), "text/css") || !strings.Contains(body, "pre.log") {
		t.Errorf("GET /static/slipway.css: %d %v", code, h)
	}
}
