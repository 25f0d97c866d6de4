package web

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"slipway/configs"
	"slipway/metrics"
	"slipway/metrics/metricstest"
)

// TestMetricsBehindTheBearerToken: /metrics serves the registry only with
// the token of [http] metrics_token_file; without it, or with another,
// 401 and why; without the setting there is no such page; a reload that
// changes the token file's content or drops the setting takes effect at
// once.
func TestMetricsBehindTheBearerToken(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const token, rotated = "c0ffee00c0ffee00c0ffee00c0ffee00", "5ca1ab1e5ca1ab1e5ca1ab1e5ca1ab1e"
	tokenFile := filepath.Join(dir, "metrics-token")
	write := func(tok string) {
		if err := os.WriteFile(tokenFile, []byte(tok+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	parse := func(toml string) *configs.Config {
		cfg, err := configs.Loader{}.Parse([]byte(toml), "test.toml")
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	withToken := "[http]\nlisten = \"127.0.0.1:0\"\nmetrics_token_file = \"" + tokenFile + "\"\n[[repo]]\nname = \"app\"\n"
	write(token)
	live := configs.NewLive(parse(withToken), configs.Origin{Generation: 1})
	m, err := metrics.New(metrics.Options{Config: live})
	if err != nil {
		t.Fatal(err)
	}
	m.PushRecorded("app")
	s, err := New(Options{Config: live, Metrics: m.Handler()})
	if err != nil {
		t.Fatal(err)
	}
	scrape := func(auth string) (int, http.Header, string) {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		s.Handler().ServeHTTP(rec, req)
		body, _ := io.ReadAll(rec.Result().Body)
		return rec.Code, rec.Result().Header, string(body)
	}

	code, h, body := scrape("Bearer " + token)
	if code != http.StatusOK || !strings.HasPrefix(h.Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Fatalf("with the token: %d %v\n%s", code, h, body)
	}
	if n, ok := metricstest.Parse(t, strings.NewReader(body)).Value("slipway_pushes_total", "repo", "app"); !ok || n != 1 {
		t.Errorf("slipway_pushes_total{repo=app} = %v (present %v)", n, ok)
	}
	if code, _, _ := scrape("bearer " + token); code != http.StatusOK {
		t.Errorf("scheme in lower case: %d", code)
	}

	for _, c := range []struct {
		name, auth, why string
	}{
		{"no header", "", "/metrics needs the bearer token of [http] metrics_token_file"},
		{"basic auth", "Basic " + token, "/metrics needs the bearer token"},
		{"empty bearer", "Bearer ", "/metrics needs the bearer token"},
		{"wrong token", "Bearer " + rotated, "the bearer token is not the one in [http] metrics_token_file"},
		{"the token's prefix", "Bearer " + token[:16], "is not the one"},
		{"the token and more", "Bearer " + token + "x", "is not the one"},
	} {
		code, h, body := scrape(c.auth)
		if code != http.StatusUnauthorized || !strings.Contains(body, c.why) || strings.Contains(body, "slipway_") {
			t.Errorf("%s: %d\n%s", c.name, code, body)
		}
		if !strings.HasPrefix(h.Get("WWW-Authenticate"), `Bearer realm="slipway metrics"`) || h.Get("Content-Type") != "text/plain; charset=utf-8" {
			t.Errorf("%s: headers %v", c.name, h)
		}
	}

	// A reload reads the file again: the rotated token in, the old out.
	write(rotated)
	live.Swap(parse(withToken), configs.Origin{Generation: 2})
	if code, _, _ := scrape("Bearer " + token); code != http.StatusUnauthorized {
		t.Errorf("the old token after the reload: %d", code)
	}
	if code, _, _ := scrape("Bearer " + rotated); code != http.StatusOK {
		t.Errorf("the new token after the reload: %d", code)
	}
	// Changed on disk without a reload: the token in force stays.
	write(token)
	if code, _, _ := scrape("Bearer " + rotated); code != http.StatusOK {
		t.Errorf("the token in force after the file changed without a reload: %d", code)
	}

	// Metrics off: no such page, with or without a token.
	live.Swap(parse("[http]\nlisten = \"127.0.0.1:0\"\n"), configs.Origin{Generation: 3})
	for _, auth := range []string{"", "Bearer " + rotated} {
		if code, h, body := scrape(auth); code != http.StatusNotFound || h.Get("Content-Type") != "text/html; charset=utf-8" || strings.Contains(body, "slipway_") {
			t.Errorf("metrics_token_file unset, auth %q: %d %v", auth, code, h)
		}
	}
	// A token but no registry to serve: no such page either.
	bare, err := New(Options{Config: parse(withToken)})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	bare.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusNotFound {
		t.Errorf("no Options.Metrics: %d", rec.Code)
	}
}
