package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"slipway/views"
)

// ReadModel is what the JSON API serves: package views, the read model
// the SSH commands print too, so that both give the same documents under
// the same names.
type ReadModel interface {
	Repos(ctx context.Context, c views.Caller) ([]views.Repo, error)
	Builds(ctx context.Context, c views.Caller, q views.BuildQuery) (views.BuildPage, error)
	Build(ctx context.Context, c views.Caller, id int64) (views.Build, error)
	BuildLog(ctx context.Context, c views.Caller, id int64) (views.Build, *os.File, error)
	Deployments(ctx context.Context, c views.Caller, q views.DeploymentQuery) (views.DeploymentPage, error)
	Deployment(ctx context.Context, c views.Caller, id int64) (views.Deployment, error)
	DeploymentLog(ctx context.Context, c views.Caller, id int64) (views.Deployment, *os.File, error)
	Releases(ctx context.Context, c views.Caller, repo, env string) (views.Releases, error)
	Schedules(ctx context.Context, c views.Caller, repo string) ([]views.Schedule, error)
	Pushes(ctx context.Context, c views.Caller, q views.PushQuery) (views.PushPage, error)
	Push(ctx context.Context, c views.Caller, id int64) (views.Push, error)
	Cancel(ctx context.Context, c views.Caller, id int64) (views.Build, error)
	Retry(ctx context.Context, c views.Caller, id int64) (views.Build, error)
	RetryDeploy(ctx context.Context, c views.Caller, id int64) (views.Deployment, error)
	RunSchedule(ctx context.Context, c views.Caller, repo, name string) ([]views.Build, error)
}

// Limits on what a query string may hold: names and ids are short, and
// anything longer is a mistake or an attack, refused before it is read.
const (
	apiMaxQueryBytes = 1024
	apiMaxParamBytes = 256
	apiMaxLimit      = 200
)

// apiHandler answers one API route for the caller.
type apiHandler func(w http.ResponseWriter, r *http.Request, c views.Caller, q apiQuery) error

// apiRoute is one path of the API and its handler per method.
type apiRoute map[string]apiHandler

// apiRoutes registers the JSON API under /api/v1 (see README's "JSON
// API"). Collections take filters in the query string, since repository
// names hold slashes; objects are found by id.
func (s *Server) apiRoutes() {
	if s.o.Views == nil {
		s.mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
			apiWriteError(w, http.StatusNotFound, "this daemon does not serve the JSON API")
		})
		return
	}
	for path, rt := range map[string]apiRoute{
		"/api/v1/repos":                  {"GET": s.apiRepos},
		"/api/v1/builds":                 {"GET": s.apiBuilds},
		"/api/v1/builds/{id}":            {"GET": s.apiBuild},
		"/api/v1/builds/{id}/log":        {"GET": s.apiBuildLog},
		"/api/v1/builds/{id}/cancel":     {"POST": s.apiCancel},
		"/api/v1/builds/{id}/retry":      {"POST": s.apiRetry},
		"/api/v1/deployments":            {"GET": s.apiDeployments},
		"/api/v1/deployments/{id}":       {"GET": s.apiDeployment},
		"/api/v1/deployments/{id}/log":   {"GET": s.apiDeploymentLog},
		"/api/v1/deployments/{id}/retry": {"POST": s.apiRetryDeploy},
		"/api/v1/releases":               {"GET": s.apiReleases},
		"/api/v1/schedules":              {"GET": s.apiSchedules},
		"/api/v1/schedules/run":          {"POST": s.apiRunSchedule},
		"/api/v1/pushes":                 {"GET": s.apiPushes},
		"/api/v1/pushes/{id}":            {"GET": s.apiPush},
	} {
		s.mux.Handle(path, s.api(rt))
	}
	s.mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		apiWriteError(w, http.StatusNotFound, fmt.Sprintf("no API at %s", apiClip(r.URL.Path)))
	})
}

// api answers a route: the method (405 with Allow otherwise), the query
// string's size, the caller, the write check for POST, and the handler's
// error as JSON.
func (s *Server) api(rt apiRoute) http.Handler {
	var allow []string
	for m := range rt {
		allow = append(allow, m)
		if m == http.MethodGet {
			allow = append(allow, http.MethodHead)
		}
	}
	slices.Sort(allow)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-store")
		method := r.Method
		if method == http.MethodHead {
			method = http.MethodGet
		}
		handle, ok := rt[method]
		if !ok {
			h.Set("Allow", strings.Join(allow, ", "))
			apiWriteError(w, http.StatusMethodNotAllowed, fmt.Sprintf("%s is not allowed here; use %s", apiClip(r.Method), strings.Join(allow, " or ")))
			return
		}
		q, err := parseAPIQuery(r.URL.RawQuery)
		if err != nil {
			apiWriteError(w, http.StatusBadRequest, err.Error())
			return
		}
		if r.Method == http.MethodPost && !s.writeAllowed(w, r) {
			return
		}
		v := s.apiViewer(r)
		c := views.Caller{User: v.User, Scope: v.Scope, Public: true}
		if err := handle(w, r, c, q); err != nil {
			s.apiError(w, r, err)
		}
	})
}

// apiViewer is who an API request comes from: the auth part's answer, or
// in tests the viewer they set (viewerFor).
func (s *Server) apiViewer(r *http.Request) viewer {
	if s.viewerFor != nil {
		return s.viewerFor(r)
	}
	return s.viewerOf(r)
}

// writeAllowed is the check a state-changing request must pass (a bearer
// token, or a session with its CSRF token: checkWrite, the auth part's).
// In tests that set the viewer themselves (viewerFor), that viewer stands
// for a request that passed it.
func (s *Server) writeAllowed(w http.ResponseWriter, r *http.Request) bool {
	if s.viewerFor != nil {
		return true
	}
	return s.checkWrite(w, r)
}

// apiError writes err as the JSON error of its kind.
func (s *Server) apiError(w http.ResponseWriter, r *http.Request, err error) {
	var bad apiBadParam
	switch {
	case errors.As(err, &bad), errors.Is(err, views.ErrInvalid):
		apiWriteError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, views.ErrNotFound):
		apiWriteError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, views.ErrForbidden):
		apiWriteError(w, http.StatusForbidden, err.Error())
	case errors.Is(err, views.ErrConflict):
		apiWriteError(w, http.StatusConflict, err.Error())
	case r.Context().Err() != nil:
		// The client went away; nobody reads the answer.
	default:
		s.log.Error("api", "path", r.URL.Path, "err", err)
		// The services' messages are sentences for people, as over SSH.
		apiWriteError(w, http.StatusInternalServerError, err.Error())
	}
}

// apiWriteJSON writes v as the response.
func apiWriteJSON(w http.ResponseWriter, status int, v any) {
	var buf strings.Builder
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		apiWriteError(w, http.StatusInternalServerError, "encode the answer: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	io.WriteString(w, buf.String())
}

// apiWriteError writes {"error": msg}.
func apiWriteError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(struct {
		Error string `json:"error"`
	}{msg})
}

// apiBadParam is a malformed query parameter.
type apiBadParam struct{ msg string }

func (b apiBadParam) Error() string { return b.msg }

// apiQuery is a request's query string: each parameter at most once, every
// one of them known to the handler that reads it.
type apiQuery struct {
	v    url.Values
	used map[string]bool
}

func parseAPIQuery(raw string) (apiQuery, error) {
	if len(raw) > apiMaxQueryBytes {
		return apiQuery{}, apiBadParam{fmt.Sprintf("the query string is longer than %d bytes", apiMaxQueryBytes)}
	}
	v, err := url.ParseQuery(raw)
	if err != nil {
		return apiQuery{}, apiBadParam{"malformed query string: " + err.Error()}
	}
	for k, vs := range v {
		if len(vs) > 1 {
			return apiQuery{}, apiBadParam{fmt.Sprintf("parameter %q given %d times", apiClip(k), len(vs))}
		}
		if len(vs[0]) > apiMaxParamBytes {
			return apiQuery{}, apiBadParam{fmt.Sprintf("parameter %q is longer than %d bytes", apiClip(k), apiMaxParamBytes)}
		}
	}
	return apiQuery{v: v, used: map[string]bool{}}, nil
}

// str is parameter name, "" when absent.
func (q apiQuery) str(name string) string {
	q.used[name] = true
	return q.v.Get(name)
}

// id is parameter name as a positive id, 0 when absent.
func (q apiQuery) id(name string) (int64, error) {
	s := q.str(name)
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, apiBadParam{fmt.Sprintf("%s must be a positive whole number, not %q", name, apiClip(s))}
	}
	return n, nil
}

// limit is the page length asked for: 1 to apiMaxLimit, the views'
// default when absent.
func (q apiQuery) limit() (int, error) {
	s := q.str("limit")
	if s == "" {
		return views.DefaultLimit, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > apiMaxLimit {
		return 0, apiBadParam{fmt.Sprintf("limit must be a whole number from 1 to %d, not %q", apiMaxLimit, apiClip(s))}
	}
	return n, nil
}

// done refuses the parameters nobody read: a misspelt filter must not
// silently widen a listing.
func (q apiQuery) done() error {
	var unknown []string
	for k := range q.v {
		if !q.used[k] {
			unknown = append(unknown, fmt.Sprintf("%q", apiClip(k)))
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	slices.Sort(unknown)
	return apiBadParam{"unknown parameter " + strings.Join(unknown, ", ")}
}

// required is parameter name, which must be there.
func (q apiQuery) required(name string) (string, error) {
	s := q.str(name)
	if s == "" {
		return "", apiBadParam{fmt.Sprintf("parameter %s is required", name)}
	}
	return s, nil
}

// apiPathID is the {id} of the path.
func apiPathID(r *http.Request, what string) (int64, error) {
	return views.ParseID(what, r.PathValue("id"))
}

// apiClip keeps hostile input short in messages.
func apiClip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

func (s *Server) apiRepos(w http.ResponseWriter, r *http.Request, c views.Caller, q apiQuery) error {
	if err := q.done(); err != nil {
		return err
	}
	rs, err := s.o.Views.Repos(r.Context(), c)
	if err != nil {
		return err
	}
	apiWriteJSON(w, http.StatusOK, struct {
		Repos []views.Repo `json:"repos"`
	}{rs})
	return nil
}

func (s *Server) apiBuilds(w http.ResponseWriter, r *http.Request, c views.Caller, q apiQuery) error {
	bq := views.BuildQuery{Repo: q.str("repo"), Branch: q.str("branch"), State: q.str("state"), Trigger: q.str("trigger")}
	var err error
	if bq.Limit, err = q.limit(); err != nil {
		return err
	}
	if bq.Cursor, err = q.id("cursor"); err != nil {
		return err
	}
	if err := q.done(); err != nil {
		return err
	}
	page, err := s.o.Views.Builds(r.Context(), c, bq)
	if err != nil {
		return err
	}
	apiWriteJSON(w, http.StatusOK, page)
	return nil
}

func (s *Server) apiBuild(w http.ResponseWriter, r *http.Request, c views.Caller, q apiQuery) error {
	id, err := apiPathID(r, "build")
	if err != nil {
		return err
	}
	if err := q.done(); err != nil {
		return err
	}
	b, err := s.o.Views.Build(r.Context(), c, id)
	if err != nil {
		return err
	}
	apiWriteJSON(w, http.StatusOK, b)
	return nil
}

func (s *Server) apiBuildLog(w http.ResponseWriter, r *http.Request, c views.Caller, q apiQuery) error {
	id, err := apiPathID(r, "build")
	if err != nil {
		return err
	}
	offset, set, err := apiLogOffset(r, q)
	if err != nil {
		return err
	}
	b, f, err := s.o.Views.BuildLog(r.Context(), c, id)
	if err != nil {
		return err
	}
	w.Header().Set("X-Slipway-State", string(b.State))
	return apiServeLog(w, r, f, offset, set)
}

func (s *Server) apiDeploymentLog(w http.ResponseWriter, r *http.Request, c views.Caller, q apiQuery) error {
	id, err := apiPathID(r, "deployment")
	if err != nil {
		return err
	}
	offset, set, err := apiLogOffset(r, q)
	if err != nil {
		return err
	}
	d, f, err := s.o.Views.DeploymentLog(r.Context(), c, id)
	if err != nil {
		return err
	}
	w.Header().Set("X-Slipway-State", string(d.State))
	return apiServeLog(w, r, f, offset, set)
}

// apiLogOffset reads ?offset=N, the byte to start from: the tail of a log
// for a client that already has its first N bytes. It and a Range header
// are two ways of asking the same; only one may be given.
func apiLogOffset(r *http.Request, q apiQuery) (offset int64, set bool, err error) {
	s := q.str("offset")
	if err := q.done(); err != nil {
		return 0, false, err
	}
	if s == "" {
		return 0, false, nil
	}
	if r.Header.Get("Range") != "" {
		return 0, false, apiBadParam{"give either ?offset or a Range header, not both"}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, false, apiBadParam{fmt.Sprintf("offset must be a whole number of bytes, not %q", apiClip(s))}
	}
	return n, true, nil
}

// apiServeLog writes a stored log as it is, from the file, never whole in
// memory: the bytes up to its size now (a live log grows behind it; ask
// again from X-Slipway-Log-Size for what came since), from offset when
// set, or the ranges of a Range header (206). f nil is a build or
// deployment without a log yet: an empty log.
//
// The log is what steps printed, escape sequences and HTML alike: it is
// served as plain text that a browser must neither sniff nor run.
func apiServeLog(w http.ResponseWriter, r *http.Request, f *os.File, offset int64, set bool) error {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Content-Security-Policy", "sandbox; default-src 'none'")
	var size int64
	if f != nil {
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return fmt.Errorf("read the log: %w", err)
		}
		size = fi.Size()
	}
	h.Set("X-Slipway-Log-Size", strconv.FormatInt(size, 10))
	if set {
		if offset > size {
			h.Set("Content-Range", fmt.Sprintf("bytes */%d", size))
			apiWriteError(w, http.StatusRequestedRangeNotSatisfiable, fmt.Sprintf("offset %d is past the end of the log (%d bytes)", offset, size))
			return nil
		}
		h.Set("Content-Length", strconv.FormatInt(size-offset, 10))
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodHead || f == nil {
			return nil
		}
		// A copy cut short is a client that hung up: the status line
		// is sent, and there is nobody left to tell.
		_, _ = io.Copy(w, io.NewSectionReader(f, offset, size-offset))
		return nil
	}
	if f == nil {
		h.Set("Content-Length", "0")
		w.WriteHeader(http.StatusOK)
		return nil
	}
	// ServeContent answers Range (206, 416, several ranges) and HEAD,
	// copying through a fixed buffer.
	http.ServeContent(w, r, "", time.Time{}, io.NewSectionReader(f, 0, size))
	return nil
}

func (s *Server) apiCancel(w http.ResponseWriter, r *http.Request, c views.Caller, q apiQuery) error {
	id, err := apiPathID(r, "build")
	if err != nil {
		return err
	}
	if err := q.done(); err != nil {
		return err
	}
	b, err := s.o.Views.Cancel(r.Context(), c, id)
	if err != nil {
		return err
	}
	apiWriteJSON(w, http.StatusOK, b)
	return nil
}

func (s *Server) apiRetry(w http.ResponseWriter, r *http.Request, c views.Caller, q apiQuery) error {
	id, err := apiPathID(r, "build")
	if err != nil {
		return err
	}
	if err := q.done(); err != nil {
		return err
	}
	b, err := s.o.Views.Retry(r.Context(), c, id)
	if err != nil {
		return err
	}
	w.Header().Set("Location", fmt.Sprintf("/api/v1/builds/%d", b.ID))
	apiWriteJSON(w, http.StatusCreated, b)
	return nil
}

func (s *Server) apiDeployments(w http.ResponseWriter, r *http.Request, c views.Caller, q apiQuery) error {
	dq := views.DeploymentQuery{Repo: q.str("repo"), Env: q.str("env")}
	var err error
	if dq.Limit, err = q.limit(); err != nil {
		return err
	}
	if dq.Cursor, err = q.id("cursor"); err != nil {
		return err
	}
	if err := q.done(); err != nil {
		return err
	}
	page, err := s.o.Views.Deployments(r.Context(), c, dq)
	if err != nil {
		return err
	}
	apiWriteJSON(w, http.StatusOK, page)
	return nil
}

func (s *Server) apiDeployment(w http.ResponseWriter, r *http.Request, c views.Caller, q apiQuery) error {
	id, err := apiPathID(r, "deployment")
	if err != nil {
		return err
	}
	if err := q.done(); err != nil {
		return err
	}
	d, err := s.o.Views.Deployment(r.Context(), c, id)
	if err != nil {
		return err
	}
	apiWriteJSON(w, http.StatusOK, d)
	return nil
}

func (s *Server) apiRetryDeploy(w http.ResponseWriter, r *http.Request, c views.Caller, q apiQuery) error {
	id, err := apiPathID(r, "deployment")
	if err != nil {
		return err
	}
	if err := q.done(); err != nil {
		return err
	}
	d, err := s.o.Views.RetryDeploy(r.Context(), c, id)
	if err != nil {
		return err
	}
	w.Header().Set("Location", fmt.Sprintf("/api/v1/deployments/%d", d.ID))
	apiWriteJSON(w, http.StatusCreated, d)
	return nil
}

func (s *Server) apiReleases(w http.ResponseWriter, r *http.Request, c views.Caller, q apiQuery) error {
	repo, err := q.required("repo")
	if err != nil {
		return err
	}
	env, err := q.required("env")
	if err != nil {
		return err
	}
	if err := q.done(); err != nil {
		return err
	}
	l, err := s.o.Views.Releases(r.Context(), c, repo, env)
	if err != nil {
		return err
	}
	apiWriteJSON(w, http.StatusOK, l)
	return nil
}

func (s *Server) apiSchedules(w http.ResponseWriter, r *http.Request, c views.Caller, q apiQuery) error {
	repo := q.str("repo")
	if err := q.done(); err != nil {
		return err
	}
	ss, err := s.o.Views.Schedules(r.Context(), c, repo)
	if err != nil {
		return err
	}
	apiWriteJSON(w, http.StatusOK, struct {
		Schedules []views.Schedule `json:"schedules"`
	}{ss})
	return nil
}

func (s *Server) apiRunSchedule(w http.ResponseWriter, r *http.Request, c views.Caller, q apiQuery) error {
	repo, err := q.required("repo")
	if err != nil {
		return err
	}
	name, err := q.required("name")
	if err != nil {
		return err
	}
	if err := q.done(); err != nil {
		return err
	}
	bs, err := s.o.Views.RunSchedule(r.Context(), c, repo, name)
	if err != nil {
		return err
	}
	apiWriteJSON(w, http.StatusCreated, struct {
		Builds []views.Build `json:"builds"`
	}{bs})
	return nil
}

func (s *Server) apiPushes(w http.ResponseWriter, r *http.Request, c views.Caller, q apiQuery) error {
	pq := views.PushQuery{Repo: q.str("repo")}
	var err error
	if pq.Limit, err = q.limit(); err != nil {
		return err
	}
	if pq.Cursor, err = q.id("cursor"); err != nil {
		return err
	}
	if err := q.done(); err != nil {
		return err
	}
	page, err := s.o.Views.Pushes(r.Context(), c, pq)
	if err != nil {
		return err
	}
	apiWriteJSON(w, http.StatusOK, page)
	return nil
}

func (s *Server) apiPush(w http.ResponseWriter, r *http.Request, c views.Caller, q apiQuery) error {
	id, err := apiPathID(r, "push")
	if err != nil {
		return err
	}
	if err := q.done(); err != nil {
		return err
	}
	p, err := s.o.Views.Push(r.Context(), c, id)
	if err != nil {
		return err
	}
	apiWriteJSON(w, http.StatusOK, p)
	return nil
}
