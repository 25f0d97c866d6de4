package web

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
)

// metricsRoutes serves /metrics: the daemon's Prometheus metrics
// (Options.Metrics), behind the bearer token of [http] metrics_token_file.
// Without that setting, or without metrics, there is no such page (404).
// The token is the configuration's in force, read with it at start and at
// each reload; sessions and API tokens do not open /metrics, which is for
// the scraper.
func (s *Server) metricsRoutes() {
	s.mux.HandleFunc("GET /metrics", s.serveMetrics)
}

// metricsRealm names what the bearer token is for, in WWW-Authenticate.
const metricsRealm = `Bearer realm="slipway metrics"`

func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request) {
	want := s.o.Config.Current().MetricsToken()
	if want == "" || s.o.Metrics == nil {
		s.notFound(w, r)
		return
	}
	got, ok := metricsBearer(r)
	switch {
	case !ok:
		refuseMetrics(w, metricsRealm, "/metrics needs the bearer token of [http] metrics_token_file: Authorization: Bearer TOKEN")
		return
	case !sameMetricsToken(got, want):
		refuseMetrics(w, metricsRealm+`, error="invalid_token"`, "the bearer token is not the one in [http] metrics_token_file")
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	s.o.Metrics.ServeHTTP(w, r)
}

// metricsBearer is the token of r's "Authorization: Bearer TOKEN" header
// (the scheme's name in any case, RFC 7235).
func metricsBearer(r *http.Request) (string, bool) {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	tok = strings.TrimSpace(tok)
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return "", false
	}
	return tok, true
}

// sameMetricsToken compares two tokens in constant time: their digests, so
// that not even the length of the expected one leaks through the time taken.
func sameMetricsToken(got, want string) bool {
	a, b := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

// refuseMetrics answers 401 with why, in plain text, and the challenge.
func refuseMetrics(w http.ResponseWriter, challenge, why string) {
	h := w.Header()
	h.Set("WWW-Authenticate", challenge)
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusUnauthorized)
	w.Write([]byte("slipway: " + why + "\n"))
}
