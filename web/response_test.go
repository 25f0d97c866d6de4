package web

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// response is what a handler answered to one test request.
type response struct {
	code   int
	h      http.Header
	body   string
	cookie *http.Cookie // the session cookie it set, if any
}

// request is a test request as user (sent as X-Test-User, none when "")
// with the header name, value pairs hdr.
func request(method, user, target string, body io.Reader, hdr ...string) *http.Request {
	r := httptest.NewRequest(method, target, body)
	if user != "" {
		r.Header.Set("X-Test-User", user)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	return r
}

// answer serves r with h and returns the answer.
func answer(t *testing.T, h http.Handler, r *http.Request) response {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	res := rec.Result()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: read the answer: %v", r.Method, r.URL, err)
	}
	out := response{code: res.StatusCode, h: res.Header, body: string(b)}
	for _, c := range res.Cookies() {
		if strings.HasSuffix(c.Name, "slipway_session") {
			out.cookie = c
		}
	}
	return out
}
