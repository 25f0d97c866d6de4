package web

import "net/http"

// checkWrite is a stand-in until the auth part (auth.go) lands: it refuses
// every state-changing request, since no request can prove who sent it
// yet. The auth part's checkWrite (a bearer token, or a session with its
// CSRF token) replaces this file.
func (s *Server) checkWrite(w http.ResponseWriter, r *http.Request) bool {
	apiWriteError(w, http.StatusForbidden, "sign in with an API token")
	return false
}
