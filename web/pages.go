package web

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"slipway/build/logs"
	"slipway/configs"
	"slipway/deploy"
	"slipway/internal/manifest"
	"slipway/record"
	"slipway/views"
)

// The dashboard's pages: the repositories, a repository, a build, a
// deployment and a push. They read the views (the read model the JSON
// API and the SSH commands serve), so a page shows what `builds --json`
// says; they work without JavaScript, which only follows live logs.
// Buttons that change something are forms that POST with the session's
// CSRF token (checkWrite) and answer with a redirect to what they made.

// ReleaseGate answers whether a release would be let through
// (deploy.Service).
type ReleaseGate interface {
	CheckRelease(ctx context.Context, repo, env, commit, user string) error
}

// pageRoutes registers the pages; the repository page is reached through
// repoPaths (its name may hold slashes).
func (s *Server) pageRoutes() {
	s.mux.HandleFunc("GET /builds/{id}", s.buildPage)
	s.mux.HandleFunc("POST /builds/{id}/cancel", s.buildAction)
	s.mux.HandleFunc("POST /builds/{id}/retry", s.buildAction)
	s.mux.HandleFunc("GET /builds/{id}/artifacts/{path...}", s.artifact)
	s.mux.HandleFunc("GET /deployments/{id}", s.deploymentPage)
	s.mux.HandleFunc("POST /deployments/{id}/retry", s.retryDeployment)
	s.mux.HandleFunc("GET /pushes/{id}", s.pushPage)
}

// caller is the views' caller of a page's request: the viewer, who sees
// public repositories too.
func (s *Server) caller(r *http.Request) views.Caller {
	return s.apiViewer(r).caller()
}

// pageError answers a refusal of the views as a page: 404 for what does
// not exist or may not be read, 400 for a malformed request, 403 and 409
// with the views' sentence.
func (s *Server) pageError(w http.ResponseWriter, r *http.Request, err error) {
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, views.ErrNotFound):
		s.notFound(w, r)
		return
	case errors.Is(err, views.ErrInvalid):
		s.badRequest(w, r, err.Error())
		return
	case errors.Is(err, views.ErrForbidden):
		status = http.StatusForbidden
	case errors.Is(err, views.ErrConflict):
		status = http.StatusConflict
	case r.Context().Err() != nil:
		return
	default:
		s.log.Error("page", "path", r.URL.Path, "err", err)
	}
	s.render(w, r, status, "error.html", http.StatusText(status), errorPage{Status: status, Message: err.Error()})
}

// pathID is the page's {id}; a malformed one is a 404, as a path that
// names nothing.
func (s *Server) pageID(w http.ResponseWriter, r *http.Request) (int64, bool) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 || s.o.Views == nil {
		s.notFound(w, r)
		return 0, false
	}
	return id, true
}

// The front page.

// indexRepo is one repository on the front page.
type indexRepo struct {
	views.Repo
	Public bool
	// Branches are the newest builds of the repository's most recently
	// built branches, one each.
	Branches []views.Build
	Envs     []envLive
}

// envLive is what is live on one environment, as recorded.
type envLive struct {
	Name string
	Live *views.Deployment // nil: nothing was ever deployed
}

// How much the front page shows of each repository.
const (
	indexBuilds   = 50 // the newest builds read for the branches' states
	indexBranches = 6
)

// index lists the repositories the viewer may read: their last push, the
// state of their branches' last builds, and what is live where.
func (s *Server) index(w http.ResponseWriter, r *http.Request) {
	if s.o.Views == nil {
		s.plainIndex(w, r)
		return
	}
	ctx := r.Context()
	c := s.caller(r)
	cfg := s.config(ctx)
	repos, err := s.o.Views.Repos(ctx, c)
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	rows := make([]indexRepo, 0, len(repos))
	for _, repo := range repos {
		row := indexRepo{Repo: repo}
		if rc, ok := cfg.Repo(repo.Name); ok {
			row.Public = rc.Public
		}
		page, err := s.o.Views.Builds(ctx, c, views.BuildQuery{Repo: repo.Name, Limit: indexBuilds})
		if err != nil {
			s.pageError(w, r, err)
			return
		}
		seen := map[string]bool{}
		for _, b := range page.Builds {
			if !strings.HasPrefix(b.Ref, "refs/heads/") || seen[b.Ref] || len(row.Branches) == indexBranches {
				continue
			}
			seen[b.Ref] = true
			row.Branches = append(row.Branches, b)
		}
		if row.Envs, err = s.liveEnvs(ctx, cfg, repo.Name); err != nil {
			s.pageError(w, r, err)
			return
		}
		rows = append(rows, row)
	}
	s.render(w, r, http.StatusOK, "index.html", "Repositories", rows)
}

// liveEnvs says what is live on each environment of repo, from the
// records (the deployment that last succeeded there): no target is asked,
// so a page never waits for a host.
func (s *Server) liveEnvs(ctx context.Context, cfg *configs.Config, repo string) ([]envLive, error) {
	var out []envLive
	for _, e := range cfg.EnvironmentsOf(repo) {
		el := envLive{Name: e.Name}
		if s.o.Badges != nil {
			d, ok, err := s.o.Badges.LiveDeployment(ctx, repo, e.Name)
			if err != nil {
				return nil, err
			}
			if ok {
				doc := views.DeploymentOf(d)
				el.Live = &doc
			}
		}
		out = append(out, el)
	}
	return out, nil
}

// The repository page.

// repoPage is a repository: its builds (filtered, a page at a time), its
// environments, its schedules and its latest pushes.
type repoPage struct {
	Name     string
	Public   bool
	CloneURL string
	Filter   views.BuildQuery
	Builds   []views.Build
	// Next is the link to the next page of builds; "" on the last.
	Next      string
	Envs      []repoEnv
	Schedules []views.Schedule
	Pushes    []views.Push
	States    []record.State
	Triggers  []record.Trigger
}

// repoEnv is one environment of a repository: its rules and what is live.
type repoEnv struct {
	envLive
	Auto, Requires string
	Approvers      []string
}

const repoPushes = 10

// repoPage answers /<repo>: ?branch=, ?state=, ?trigger= filter the
// builds, ?cursor= pages through them, ?limit= (1-200) sets the page's
// length.
func (s *Server) repoPage(w http.ResponseWriter, r *http.Request, name string) {
	ctx := r.Context()
	c := s.caller(r)
	cfg := s.config(ctx)
	q, err := buildQueryOf(r.URL.Query(), name)
	if err != nil {
		s.badRequest(w, r, err.Error())
		return
	}
	page, err := s.o.Views.Builds(ctx, c, q)
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	p := repoPage{Name: name, Filter: q, Builds: page.Builds,
		States:   []record.State{record.StateQueued, record.StateRunning, record.StatePassed, record.StateFailed, record.StateError, record.StateCancelled, record.StateSuperseded, record.StateInterrupted, record.StateSkipped},
		Triggers: []record.Trigger{record.TriggerPush, record.TriggerSchedule, record.TriggerRetry, record.TriggerManual, record.TriggerVerify}}
	if rc, ok := cfg.Repo(name); ok {
		p.Public = rc.Public
	}
	if s.o.CloneURL != "" {
		p.CloneURL = s.o.CloneURL + "/" + name + ".git"
	}
	if page.NextCursor != 0 {
		next := r.URL.Query()
		next.Set("cursor", strconv.FormatInt(page.NextCursor, 10))
		p.Next = "/" + name + "?" + next.Encode()
	}
	lives, err := s.liveEnvs(ctx, cfg, name)
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	for i, e := range cfg.EnvironmentsOf(name) {
		p.Envs = append(p.Envs, repoEnv{envLive: lives[i], Auto: e.Auto, Requires: e.Requires, Approvers: e.Approvers})
	}
	if p.Schedules, err = s.o.Views.Schedules(ctx, c, name); err != nil {
		s.pageError(w, r, err)
		return
	}
	pushes, err := s.o.Views.Pushes(ctx, c, views.PushQuery{Repo: name, Limit: repoPushes})
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	p.Pushes = pushes.Pushes
	s.render(w, r, http.StatusOK, "repo.html", name, p)
}

// buildQueryOf reads the repository page's filters. The views check
// their values; this refuses what is not one of them at all.
func buildQueryOf(v url.Values, repo string) (views.BuildQuery, error) {
	q := views.BuildQuery{Repo: repo, Branch: v.Get("branch"), State: v.Get("state"), Trigger: v.Get("trigger")}
	for key, vals := range v {
		switch key {
		case "branch", "state", "trigger", "cursor", "limit":
		default:
			return q, fmt.Errorf("unknown parameter %q (branch, state, trigger, cursor, limit)", clip(key))
		}
		if len(vals) > 1 {
			return q, fmt.Errorf("%s is given %d times", key, len(vals))
		}
		if len(vals[0]) > 256 {
			return q, fmt.Errorf("%s is longer than 256 bytes", key)
		}
	}
	if s := v.Get("cursor"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n <= 0 {
			return q, fmt.Errorf("cursor must be a build id")
		}
		q.Cursor = n
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 200 {
			return q, fmt.Errorf("limit must be a number from 1 to 200")
		}
		q.Limit = n
	}
	return q, nil
}

// The environment page.

// envPageData is one environment of a repository: what is live, what
// its target holds, and its deployments.
type envPageData struct {
	Repo string
	repoEnv
	Releases views.Releases
	// ReleasesErr says why the target's listing is missing.
	ReleasesErr string
	Deployments []views.Deployment
	Next        string
}

// envPage answers /<repo>/env/<env>; ?cursor= pages through the
// deployments. The target is listed through the deployment service,
// which asks it at most every few seconds and never while a deployment
// to it runs.
func (s *Server) envPage(w http.ResponseWriter, r *http.Request, repo, env string) {
	ctx := r.Context()
	c := s.caller(r)
	cfg := s.config(ctx)
	q := views.DeploymentQuery{Repo: repo, Env: env}
	for key, vals := range r.URL.Query() {
		if key != "cursor" || len(vals) > 1 {
			s.badRequest(w, r, "an environment's page takes one parameter: ?cursor=DEPLOYMENT")
			return
		}
		n, err := strconv.ParseInt(vals[0], 10, 64)
		if err != nil || n <= 0 {
			s.badRequest(w, r, "cursor must be a deployment id")
			return
		}
		q.Cursor = n
	}
	e, _ := cfg.Environment(repo, env)
	lives, err := s.liveEnvs(ctx, cfg, repo)
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	p := envPageData{Repo: repo, repoEnv: repoEnv{envLive: envLive{Name: env}, Auto: e.Auto, Requires: e.Requires, Approvers: e.Approvers}}
	for _, l := range lives {
		if l.Name == env {
			p.Live = l.Live
		}
	}
	page, err := s.o.Views.Deployments(ctx, c, q)
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	p.Deployments = page.Deployments
	if page.NextCursor != 0 {
		p.Next = fmt.Sprintf("/%s/env/%s?cursor=%d", repo, env, page.NextCursor)
	}
	if p.Releases, err = s.o.Views.Releases(ctx, c, repo, env); err != nil {
		if errors.Is(err, views.ErrNotFound) || errors.Is(err, views.ErrInvalid) || ctx.Err() != nil {
			s.pageError(w, r, err)
			return
		}
		p.ReleasesErr = err.Error()
	}
	s.render(w, r, http.StatusOK, "env.html", fmt.Sprintf("%s of %s", env, repo), p)
}

// The build page.

// buildPage is one build: its steps, its log, its artifacts, what the
// viewer may do with it, and how to release it.
type buildPageData struct {
	Build     views.Build
	Log       logView
	Artifacts []artifactFile
	// ArtifactsNote says why none are listed, or that the list was cut.
	ArtifactsNote string
	CanCancel     bool
	CanRetry      bool
	// Releases: one per environment, for a viewer who may release.
	Releases   []releaseCheck
	CanRelease bool
}

// artifactFile is one file a passed build kept.
type artifactFile struct {
	Path string
	Size int64
	URL  string
}

// releaseCheck is how a build's commit would be released to one
// environment, and what the gate says of it now.
type releaseCheck struct {
	Env     string
	Command string
	Refusal string // "" when the gate would let it through
}

// maxArtifactsListed bounds the artifact list of a page.
const maxArtifactsListed = 500

// runPageParams reads a build's or deployment's page request: its id and
// how many of its log's last lines to show. It answers a bad request
// itself and then returns false.
func (s *Server) runPageParams(w http.ResponseWriter, r *http.Request, what string) (id int64, lines int, ok bool) {
	if id, ok = s.pageID(w, r); !ok {
		return 0, 0, false
	}
	n, all, err := linesParam(r)
	if err != nil || all {
		if all {
			err = fmt.Errorf("a %s page shows the last lines of its log; the whole log is at its log page", what)
		}
		s.badRequest(w, r, err.Error())
		return 0, 0, false
	}
	return id, n, true
}

// logViewOf is the last n lines of a build's or deployment's log for its
// page; a run without a log file yet is an empty view, not an error.
func (s *Server) logViewOf(ctx context.Context, kind string, id int64, n int) (logView, error) {
	run, err := s.lookupRun(ctx, kind, id)
	if err != nil {
		if noLog(err) {
			return logView{}, nil
		}
		return logView{}, err
	}
	t, err := tail(ctx, run, n)
	if err != nil {
		if noLog(err) {
			return logView{}, nil
		}
		return logView{}, err
	}
	return logView{Run: run, Tail: t, Asked: n}, nil
}

func (s *Server) buildPage(w http.ResponseWriter, r *http.Request) {
	id, n, ok := s.runPageParams(w, r, "build")
	if !ok {
		return
	}
	ctx := r.Context()
	c := s.caller(r)
	b, err := s.o.Views.Build(ctx, c, id)
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	cfg := s.config(ctx)
	a := c.Access(cfg, b.Repo)
	p := buildPageData{Build: b}
	if a.Has(configs.Write) {
		p.CanCancel, p.CanRetry = !b.State.Final(), b.State.Final()
	}
	if p.Log, err = s.logViewOf(ctx, "build", id, n); err != nil {
		s.pageError(w, r, err)
		return
	}
	p.Artifacts, p.ArtifactsNote = s.artifactsOf(b)
	if a.Has(configs.Release) && b.State == record.StatePassed {
		p.CanRelease = true
		for _, e := range cfg.EnvironmentsOf(b.Repo) {
			rc := releaseCheck{Env: e.Name, Command: s.releaseCommand(b.Repo, b.Commit, e.Name)}
			if s.o.Releases != nil {
				if err := s.o.Releases.CheckRelease(ctx, b.Repo, e.Name, b.Commit, c.User); err != nil {
					rc.Refusal = err.Error()
				}
			}
			p.Releases = append(p.Releases, rc)
		}
	}
	s.render(w, r, http.StatusOK, "build.html", fmt.Sprintf("Build #%d of %s", b.ID, b.Repo), p)
}

// releaseCommand is the git push that releases commit of repo to env.
func (s *Server) releaseCommand(repo, commit, env string) string {
	remote := s.o.CloneURL
	if remote == "" {
		remote = "ssh://HOST"
	}
	return fmt.Sprintf("git push %s/%s.git %s:refs/release/%s", remote, repo, commit, env)
}

// artifactsOf lists what a build kept, from its manifest (the list the
// deployments ship): nothing when it kept nothing or it was pruned.
func (s *Server) artifactsOf(b views.Build) ([]artifactFile, string) {
	if b.State != record.StatePassed {
		return nil, ""
	}
	if s.o.ArtifactsDir == "" || b.Digest == "" {
		return nil, "This build kept no artifacts."
	}
	f, err := os.Open(filepath.Join(s.o.ArtifactsDir, strconv.FormatInt(b.ID, 10), manifest.FileName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "This build's artifacts are no longer kept."
	}
	if err != nil {
		s.log.Error("read artifacts", "build", b.ID, "err", err)
		return nil, "This build's artifacts could not be read."
	}
	defer f.Close()
	var out []artifactFile
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 4<<10), 64<<10)
	for sc.Scan() {
		// f <mode> <size> <sha256> "<path>"
		kind, rest, _ := strings.Cut(sc.Text(), " ")
		if kind != "f" {
			continue
		}
		fields := strings.SplitN(rest, " ", 4)
		if len(fields) != 4 {
			continue
		}
		size, _ := strconv.ParseInt(fields[1], 10, 64)
		p, err := strconv.Unquote(fields[3])
		if err != nil {
			continue
		}
		if len(out) == maxArtifactsListed {
			return out, fmt.Sprintf("The first %d files; the build kept more.", maxArtifactsListed)
		}
		u := url.URL{Path: fmt.Sprintf("/builds/%d/artifacts/%s", b.ID, p)}
		out = append(out, artifactFile{Path: p, Size: size, URL: u.EscapedPath()})
	}
	return out, ""
}

// artifact answers GET /builds/{id}/artifacts/{path...}: one file a
// build kept, to readers of its repository, always as a download (a kept
// HTML file must not run as a page of the dashboard).
func (s *Server) artifact(w http.ResponseWriter, r *http.Request) {
	id, ok := s.pageID(w, r)
	if !ok {
		return
	}
	b, err := s.o.Views.Build(r.Context(), s.caller(r), id)
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	name := r.PathValue("path")
	if s.o.ArtifactsDir == "" || b.State != record.StatePassed || name == "" || name == manifest.FileName || !fs.ValidPath(name) {
		s.notFound(w, r)
		return
	}
	root, err := os.OpenRoot(filepath.Join(s.o.ArtifactsDir, strconv.FormatInt(id, 10)))
	if err != nil {
		s.notFound(w, r)
		return
	}
	defer root.Close()
	// The root keeps the path, symbolic links included, inside the
	// build's folder.
	f, err := root.Open(name)
	if err != nil {
		s.notFound(w, r)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		s.notFound(w, r)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "sandbox")
	h.Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", strings.ReplaceAll(path.Base(name), `"`, "_")))
	http.ServeContent(w, r, "", st.ModTime(), f)
}

// buildAction answers the build page's buttons: POST
// /builds/{id}/cancel and /builds/{id}/retry, for writers, with the
// session's CSRF token; it redirects to the build (the new one for a
// retry).
func (s *Server) buildAction(w http.ResponseWriter, r *http.Request) {
	id, ok := s.pageID(w, r)
	if !ok || !s.writeAllowed(w, r) {
		return
	}
	var (
		b   views.Build
		err error
	)
	if strings.HasSuffix(r.URL.Path, "/cancel") {
		b, err = s.o.Views.Cancel(r.Context(), s.caller(r), id)
	} else {
		b, err = s.o.Views.Retry(r.Context(), s.caller(r), id)
	}
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	http.Redirect(w, r, fmt.Sprintf("/builds/%d", b.ID), http.StatusSeeOther)
}

// noLog reports whether err says there is no log to show: no service to
// ask, or no log file (a run that never started, or pruned).
func noLog(err error) bool {
	return errors.Is(err, record.ErrNotFound) || errors.Is(err, logs.ErrNotFound)
}

// The deployment page.

type deploymentPageData struct {
	Deployment views.Deployment
	Log        logView
	CanRetry   bool
}

func (s *Server) deploymentPage(w http.ResponseWriter, r *http.Request) {
	id, n, ok := s.runPageParams(w, r, "deployment")
	if !ok {
		return
	}
	ctx := r.Context()
	c := s.caller(r)
	d, err := s.o.Views.Deployment(ctx, c, id)
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	p := deploymentPageData{Deployment: d}
	cfg := s.config(ctx)
	if env, ok := cfg.Environment(d.Repo, d.Env); ok && (d.State == record.DeployFailed || d.State == record.DeployRolledBack) {
		p.CanRetry = deploy.MayRetry(env, c.User, c.Access(cfg, d.Repo))
	}
	if p.Log, err = s.logViewOf(ctx, "deployment", id, n); err != nil {
		s.pageError(w, r, err)
		return
	}
	s.render(w, r, http.StatusOK, "deployment.html", fmt.Sprintf("Deployment #%d of %s to %s", d.ID, d.Repo, d.Env), p)
}

// retryDeployment answers the deployment page's button: POST
// /deployments/{id}/retry.
func (s *Server) retryDeployment(w http.ResponseWriter, r *http.Request) {
	id, ok := s.pageID(w, r)
	if !ok || !s.writeAllowed(w, r) {
		return
	}
	d, err := s.o.Views.RetryDeploy(r.Context(), s.caller(r), id)
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	http.Redirect(w, r, fmt.Sprintf("/deployments/%d", d.ID), http.StatusSeeOther)
}

// The push page.

func (s *Server) pushPage(w http.ResponseWriter, r *http.Request) {
	id, ok := s.pageID(w, r)
	if !ok {
		return
	}
	p, err := s.o.Views.Push(r.Context(), s.caller(r), id)
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	s.render(w, r, http.StatusOK, "push.html", fmt.Sprintf("Push #%d to %s", p.ID, p.Repo), p)
}
