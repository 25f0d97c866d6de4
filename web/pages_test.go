package web

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"slipway/configs"
	"slipway/deploy"
	"slipway/gitserver"
	"slipway/internal/manifest"
	"slipway/record"
	"slipway/views/viewstest"
)

// pagesFixture is a server whose pages show the viewstest world (see
// viewstest.TOML: alice is an admin; of app, bob may read and release,
// carol write, dave only read; secret and team/tools are for admins),
// with the real release gate (deploy.Service) and artifacts folder.
type pagesFixture struct {
	w   *viewstest.World
	s   *Server
	cfg *configs.Config
}

// worldRuns gives the pages the world's builds and deployments with their
// logs.
type worldRuns struct{ w *viewstest.World }

func (r worldRuns) Get(ctx context.Context, id int64) (record.Build, error) {
	return r.w.Store.GetBuild(ctx, id)
}

func (r worldRuns) Follow(ctx context.Context, id int64, out io.Writer, follow bool) error {
	return r.w.Builds.Follow(ctx, id, out, follow)
}

type worldDeploys struct{ w *viewstest.World }

func (r worldDeploys) Get(ctx context.Context, id int64) (record.Deployment, error) {
	return r.w.Store.GetDeployment(ctx, id)
}

func (r worldDeploys) Follow(ctx context.Context, id int64, out io.Writer, follow bool) error {
	return r.w.Deploys.Follow(ctx, id, out, follow)
}

// newPagesFixture makes the world and its server; with public, app is
// public. Requests say who they come from with X-Test-User (viewerFor)
// unless the test signs in for real (sessions are the world's store).
func newPagesFixture(t *testing.T, public bool) *pagesFixture {
	t.Helper()
	w, cfg := filledWorld(t, public)
	gate, err := deploy.NewService(deploy.ServiceOptions{Config: cfg, Store: w.Store, Logs: w.Logs, DataDir: w.Dir})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{Config: cfg, Views: w.Views(t, cfg), Repos: gitserver.Disk{ReposDir: filepath.Join(w.Dir, "repos")},
		BuildLogs: worldRuns{w}, DeployLogs: worldDeploys{w}, Badges: w.Store, Releases: gate,
		ArtifactsDir: filepath.Join(w.Dir, "artifacts"), CloneURL: "ssh://git.example:2222",
		Sessions: w.Store, Tokens: w.Store, Addr: "127.0.0.1:8080"})
	if err != nil {
		t.Fatal(err)
	}
	s.viewerFor = func(r *http.Request) viewer {
		return viewer{User: r.Header.Get("X-Test-User"), Scope: configs.Admin}
	}
	return &pagesFixture{w: w, s: s, cfg: cfg}
}

func (f *pagesFixture) do(t *testing.T, method, user, target string, body io.Reader, hdr ...string) response {
	t.Helper()
	return answer(t, f.s.Handler(), request(method, user, target, body, hdr...))
}

func (f *pagesFixture) get(t *testing.T, user, target string) response {
	t.Helper()
	p := f.do(t, http.MethodGet, user, target, nil)
	if p.code/100 == 2 && strings.HasPrefix(p.h.Get("Content-Type"), "text/html") && !strings.HasSuffix(strings.TrimSpace(p.body), "</html>") {
		t.Errorf("GET %s as %q: a page cut short:\n%s", target, user, p.body)
	}
	return p
}

// keepArtifacts gives build 1 the artifacts its digest names: a manifest
// and its files, as the build service keeps them.
func (f *pagesFixture) keepArtifacts(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := filepath.Join(f.w.Dir, "artifacts", "1")
	for name, body := range files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := manifest.Write(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestPagesRightsMatrix: every page, for nobody (app public and not), a
// reader, a writer, a releaser and an admin: what each may read is a
// page, the rest is the same 404 as what does not exist.
func TestPagesRightsMatrix(t *testing.T) {
	t.Parallel()
	pub, priv := newPagesFixture(t, true), newPagesFixture(t, false)
	appPages := []string{"/app", "/app/env/staging", "/app/env/prod", "/builds/1", "/builds/2", "/builds/3", "/deployments/1", "/deployments/2", "/pushes/1", "/pushes/3",
		"/builds/1/log", "/deployments/1/log", "/app/badge.svg", "/app/env/staging/badge.svg"}
	adminPages := []string{"/secret", "/team/tools", "/builds/4", "/pushes/4", "/team/tools/badge.svg", "/old"}
	none := []string{"/nosuch", "/app/env/nosuch", "/app/env", "/secret/env/staging", "/builds/99", "/deployments/99", "/pushes/99", "/builds/x", "/pushes/0", "/app/nosuch", "/team"}
	for _, c := range []struct {
		f      *pagesFixture
		who    string
		app    bool // may read app
		admins bool // may read what only admins may
	}{
		{priv, "", false, false}, {pub, "", true, false}, {priv, "dave", true, false}, {priv, "carol", true, false},
		{priv, "bob", true, false}, {priv, "alice", true, true},
	} {
		for _, p := range appPages {
			if got := c.f.get(t, c.who, p); (got.code == http.StatusOK) != c.app || got.code != http.StatusOK && got.code != http.StatusNotFound {
				t.Errorf("GET %s as %q (app public %v): %d", p, c.who, c.f == pub, got.code)
			}
		}
		for _, p := range adminPages {
			if got := c.f.get(t, c.who, p); (got.code == http.StatusOK) != c.admins || got.code != http.StatusOK && got.code != http.StatusNotFound {
				t.Errorf("GET %s as %q: %d", p, c.who, got.code)
			}
		}
		for _, p := range none {
			if got := c.f.get(t, c.who, p); got.code != http.StatusNotFound || !strings.Contains(got.body, "Nothing at") {
				t.Errorf("GET %s as %q: %d, want the 404 page", p, c.who, got.code)
			}
		}
		home := c.f.get(t, c.who, "/")
		if got := strings.Contains(home.body, `<a href="/app">app</a>`); home.code != http.StatusOK || got != c.app {
			t.Errorf("GET / as %q: %d, lists app %v", c.who, home.code, got)
		}
		if got := strings.Contains(home.body, `<a href="/secret">secret</a>`); got != c.admins {
			t.Errorf("GET / as %q lists secret %v", c.who, got)
		}
	}
}

// TestIndexPage: the front page says, for each repository, its last
// push, its branches' last builds and what is live where.
func TestIndexPage(t *testing.T) {
	t.Parallel()
	f := newPagesFixture(t, false)
	p := f.get(t, "dave", "/")
	for _, want := range []string{
		`<a href="/pushes/3">2026-11-25 18:45:00 UTC</a> by bob`,
		`<a href="/builds/3">main</a> <span class="queued">queued</span>`,
		`<a href="/builds/2">feature</a> <span class="failed">failed</span>`,
		`<a href="/app/env/staging">staging</a>: <a href="/deployments/1"><code>1111111</code></a>`,
		`<a href="/app/env/prod">prod</a>: none`,
	} {
		if !strings.Contains(p.body, want) {
			t.Errorf("the front page lacks %q:\n%s", want, p.body)
		}
	}
	if a := f.get(t, "alice", "/"); !strings.Contains(a.body, `<a href="/old">old</a> <span class="tag">unconfigured</span>`) {
		t.Errorf("an admin's front page does not mark old as unconfigured:\n%s", a.body)
	}
}

// TestRepoPage: a repository's builds, filtered by branch, state and
// trigger and paged by cursor; its environments with what is live, the
// release, its artifacts, build and who released it; its schedules with
// their next fire time; its latest pushes. Bad filters are a 400.
func TestRepoPage(t *testing.T) {
	t.Parallel()
	f := newPagesFixture(t, false)
	ids := func(body string) []string {
		var out []string
		for _, m := range regexp.MustCompile(`<tr class="build">\n<td><a href="/builds/(\d+)">`).FindAllStringSubmatch(body, -1) {
			out = append(out, m[1])
		}
		return out
	}
	p := f.get(t, "dave", "/app")
	if got := fmt.Sprint(ids(p.body)); p.code != http.StatusOK || got != "[3 2 1]" {
		t.Errorf("/app: %d, builds %s", p.code, got)
	}
	for _, want := range []string{
		`<code>git clone ssh://git.example:2222/app.git</code>`,
		`<img src="/app/badge.svg"`,
		// staging: what is live, from the records.
		`<td><a href="/deployments/1">#1</a> <code>1111111</code></td><td>20261125-184102-1</td><td><code>sha256:abababab</code></td><td><a href="/builds/1">#1</a></td><td>auto</td><td>2026-11-25 18:41:03 UTC</td>`,
		`<td>release pushes; live on staging first</td>`,
		`<td colspan="6">nothing yet</td>`,
		// schedules
		`<td>weekly</td><td><code>CRON_TZ=CET @weekly</code></td><td>main, release/*</td><td>nightly</td>`,
		`<td>2026-11-28 23:00:00 UTC</td>`,
		// pushes
		`<a href="/pushes/3">#3</a></td><td>2026-11-25 18:45:00 UTC</td><td>bob</td>`,
		`<code>refs/release/prod</code> <code>1111111</code>`,
		// the retry's trigger and the failed build's reason
		`retry of <a href="/builds/1">#1</a>`,
		`<span class="failed">failed</span> <span class="reason">step 2 (go test ./...) exited 1</span>`,
	} {
		if !strings.Contains(p.body, want) {
			t.Errorf("/app lacks %q", want)
		}
	}
	for query, want := range map[string]string{
		"?branch=feature": "[2]", "?branch=main": "[3 1]", "?state=queued": "[3]", "?trigger=retry": "[3]",
		"?state=passed&branch=main": "[1]", "?branch=nope": "[]", "?limit=2": "[3 2]", "?limit=2&cursor=2": "[1]",
	} {
		p := f.get(t, "dave", "/app"+query)
		if got := fmt.Sprint(ids(p.body)); p.code != http.StatusOK || got != want {
			t.Errorf("/app%s: %d, builds %s, want %s", query, p.code, got, want)
		}
	}
	// The next page's link keeps the filters.
	p = f.get(t, "dave", "/app?branch=main&limit=1")
	next := regexp.MustCompile(`<a href="([^"]+)" rel="next">`).FindStringSubmatch(p.body)
	if next == nil {
		t.Fatalf("no link to the next page:\n%s", p.body)
	}
	link := strings.ReplaceAll(next[1], "&amp;", "&")
	if got := fmt.Sprint(ids(f.get(t, "dave", link).body)); got != "[1]" || !strings.Contains(link, "branch=main") {
		t.Errorf("the next page %s: builds %s, want [1]", link, got)
	}
	if p := f.get(t, "dave", "/app?limit=1&cursor=1"); strings.Contains(p.body, `rel="next"`) || !strings.Contains(p.body, "No builds") {
		t.Errorf("past the last page:\n%s", p.body)
	}
	for _, query := range []string{"?state=bogus", "?trigger=bogus", "?limit=0", "?limit=201", "?cursor=x", "?cursor=-1", "?color=red",
		"?branch=a&branch=b", "?branch=" + strings.Repeat("b", 300), "?branch=a%20b"} {
		if p := f.get(t, "dave", "/app"+query); p.code != http.StatusBadRequest {
			t.Errorf("/app%s: %d, want 400", query, p.code)
		}
	}
}

// TestBuildPage: a build's facts, steps with durations and results, its
// log (escaped, coloured), its artifacts with download links, the
// buttons its viewer may use, and for releasers the git push that
// releases it to each environment with the gate's answer now.
func TestBuildPage(t *testing.T) {
	t.Parallel()
	f := newPagesFixture(t, false)
	p := f.get(t, "dave", "/builds/1")
	for _, want := range []string{
		`Build #1 of <a href="/app">app</a>: <span class="passed" id="state">passed</span>`,
		`<dd><code>refs/heads/main</code></dd>`, `<dd><code>` + viewstest.C1 + `</code></dd>`,
		`push, <a href="/pushes/1">push #1</a>`, `after 1 min 00 s`,
		`<td>1</td><td><code>go vet ./...</code></td><td>0</td><td>1.2 s</td>`,
		`<td>2</td><td><code>go test ./...</code></td><td>0</td><td>58.3 s</td>`,
		`&lt;script&gt;alert(1)&lt;&#47;script&gt;`, `<span class="term-fg32">ok</span>`,
		`All 4 lines.`, `<a href="/builds/1/log.txt">Raw log</a>`,
		`This build&#39;s artifacts are no longer kept.`,
	} {
		if !strings.Contains(p.body, want) {
			t.Errorf("/builds/1 as a reader lacks %q", want)
		}
	}
	for _, not := range []string{"<script>alert", "<form", "Release</h2>", "live.js"} {
		if strings.Contains(p.body, not) {
			t.Errorf("/builds/1 as a reader has %q", not)
		}
	}
	// A writer may retry a finished build and cancel a queued one.
	if p := f.get(t, "carol", "/builds/1"); !strings.Contains(p.body, `action="/builds/1/retry"`) || strings.Contains(p.body, "/cancel") || strings.Contains(p.body, "Release</h2>") {
		t.Errorf("/builds/1 as a writer:\n%s", p.body)
	}
	if p := f.get(t, "carol", "/builds/3"); !strings.Contains(p.body, `action="/builds/3/cancel"`) || strings.Contains(p.body, "/retry\"") ||
		!strings.Contains(p.body, "No step has run yet.") || !strings.Contains(p.body, "No log.") {
		t.Errorf("/builds/3 (queued) as a writer:\n%s", p.body)
	}
	// A releaser sees the commands and what the gate says: no artifacts
	// kept yet, then kept.
	p = f.get(t, "bob", "/builds/1")
	for _, env := range []string{"staging", "prod"} {
		cmd := "git push ssh://git.example:2222/app.git " + viewstest.C1 + ":refs/release/" + env
		if !strings.Contains(p.body, "<td>"+env+"</td><td><code>"+cmd+"</code></td>") {
			t.Errorf("/builds/1 as a releaser: no %q", cmd)
		}
	}
	if n := strings.Count(p.body, "would refuse it:</span> build 1 kept no artifacts"); n != 2 {
		t.Errorf("/builds/1 as a releaser without artifacts: %d refusals\n%s", n, p.body)
	}
	f.keepArtifacts(t, map[string]string{"dist/index.html": "<script>alert(1)</script>\n", "dist/app.js": "console.log(1)\n"})
	p = f.get(t, "bob", "/builds/1")
	if n := strings.Count(p.body, "would let it through"); n != 2 {
		t.Errorf("/builds/1 as a releaser with artifacts: %d accepted\n%s", n, p.body)
	}
	if !strings.Contains(p.body, `<a href="/builds/1/artifacts/dist/index.html" download>dist/index.html</a> <span class="size">26 B</span>`) ||
		!strings.Contains(p.body, `<a href="/builds/1/artifacts/dist/app.js" download>dist/app.js</a>`) {
		t.Errorf("/builds/1 does not list its artifacts:\n%s", p.body)
	}
	// A reader downloads them, never as a page of the dashboard.
	a := f.get(t, "dave", "/builds/1/artifacts/dist/index.html")
	if a.code != http.StatusOK || a.body != "<script>alert(1)</script>\n" || a.h.Get("Content-Type") != "application/octet-stream" ||
		a.h.Get("Content-Disposition") != `attachment; filename="index.html"` || a.h.Get("X-Content-Type-Options") != "nosniff" ||
		a.h.Get("Content-Security-Policy") != "sandbox" {
		t.Errorf("artifact download: %d %v %q", a.code, a.h, a.body)
	}
	// Nothing outside the build's folder, nor the manifest, nor a folder.
	outside := filepath.Join(f.w.Dir, "slipway-outside")
	os.WriteFile(outside, []byte("secret"), 0o644)
	os.Symlink(outside, filepath.Join(f.w.Dir, "artifacts", "1", "dist", "link"))
	for _, path := range []string{"/builds/1/artifacts/dist/link", "/builds/1/artifacts/..%2f..%2fslipway.db", "/builds/1/artifacts/.slipway-manifest",
		"/builds/1/artifacts/dist", "/builds/1/artifacts/nosuch", "/builds/2/artifacts/dist/index.html", "/builds/99/artifacts/x"} {
		if a := f.get(t, "alice", path); a.code != http.StatusNotFound {
			t.Errorf("GET %s: %d %q", path, a.code, a.body)
		}
	}
	if a := f.get(t, "", "/builds/1/artifacts/dist/index.html"); a.code != http.StatusNotFound {
		t.Errorf("an anonymous download of a private build's artifact: %d", a.code)
	}
	for _, q := range []string{"?lines=0", "?lines=all", "?lines=x"} {
		if p := f.get(t, "dave", "/builds/1"+q); p.code != http.StatusBadRequest {
			t.Errorf("/builds/1%s: %d, want 400", q, p.code)
		}
	}
	if p := f.get(t, "dave", "/builds/1?lines=2"); !strings.Contains(p.body, "The last 2 of 4 lines.") || !strings.Contains(p.body, `href="/builds/1/log?lines=all"`) {
		t.Errorf("/builds/1?lines=2:\n%s", p.body)
	}
}

// TestDeploymentAndPushPages: a deployment's facts and log, its retry
// button for those who may deploy once it failed; a push's who, key,
// refs and what it caused.
func TestDeploymentAndPushPages(t *testing.T) {
	t.Parallel()
	f := newPagesFixture(t, false)
	p := f.get(t, "dave", "/deployments/1")
	for _, want := range []string{`Deployment #1 of <a href="/app">app</a> to staging: <span class="succeeded" id="state">succeeded</span>`,
		`<dd><a href="/builds/1">#1</a></dd>`, `<dd><code>20261125-184102-1</code></dd>`, `<dd><code>` + viewstest.Digest + `</code></dd>`,
		`<dd>auto</dd>`, "log of deployment 1"} {
		if !strings.Contains(p.body, want) {
			t.Errorf("/deployments/1 lacks %q:\n%s", want, p.body)
		}
	}
	// Deployment 2 fails: bob, who may release to prod, may retry it.
	ctx := t.Context()
	if d, ok, err := f.w.Store.ClaimDeployment(ctx); err != nil || !ok || d.ID != 2 {
		t.Fatal(d.ID, ok, err)
	}
	if err := f.w.Store.FinishDeployment(ctx, 2, record.DeployFailed, "rsync: connection refused"); err != nil {
		t.Fatal(err)
	}
	if p := f.get(t, "dave", "/deployments/2"); strings.Contains(p.body, "<form") || !strings.Contains(p.body, "rsync: connection refused") ||
		!strings.Contains(p.body, `<dd>release by bob, <a href="/pushes/3">push #3</a></dd>`) {
		t.Errorf("/deployments/2 (failed) as a reader:\n%s", p.body)
	}
	if p := f.get(t, "bob", "/deployments/2"); !strings.Contains(p.body, `action="/deployments/2/retry"`) {
		t.Errorf("/deployments/2 (failed) as a releaser has no retry:\n%s", p.body)
	}
	if r := f.do(t, http.MethodPost, "dave", "/deployments/2/retry", nil); r.code != http.StatusForbidden {
		t.Errorf("a reader retries a deployment: %d", r.code)
	}
	if r := f.do(t, http.MethodPost, "bob", "/deployments/2/retry", nil); r.code != http.StatusSeeOther || r.h.Get("Location") != "/deployments/3" {
		t.Errorf("bob retries deployment 2: %d %v\n%s", r.code, r.h, r.body)
	}

	p = f.get(t, "dave", "/pushes/3")
	for _, want := range []string{`Push #3 to <a href="/app">app</a>`, "<dd>bob</dd>", "<dd><code>SHA256:bob</code></dd>", "<code>-o nowait</code>",
		`<td><code>refs/release/prod</code></td>`, `<td>(created)</td>`, `<a href="/deployments/2">deployment #2</a></td><td>prod</td>`} {
		if !strings.Contains(p.body, want) {
			t.Errorf("/pushes/3 lacks %q:\n%s", want, p.body)
		}
	}
	if p := f.get(t, "dave", "/pushes/1"); !strings.Contains(p.body, `<a href="/builds/1">build #1</a></td><td>main</td>`) {
		t.Errorf("/pushes/1 does not show the build it caused:\n%s", p.body)
	}
	if p := f.get(t, "alice", "/pushes/4"); !strings.Contains(p.body, `<td><code>refs/tags/v1</code></td>`) || !strings.Contains(p.body, "(deleted)") ||
		!strings.Contains(p.body, "No builds and no deployments.") {
		t.Errorf("/pushes/4:\n%s", p.body)
	}
}

// TestBuildButtons: the buttons' POSTs act for writers and redirect to
// the build; readers are refused (403) and nothing changes; a build that
// ended cannot be cancelled (409).
func TestBuildButtons(t *testing.T) {
	t.Parallel()
	f := newPagesFixture(t, false)
	if r := f.do(t, http.MethodPost, "dave", "/builds/3/cancel", nil); r.code != http.StatusForbidden || !strings.Contains(r.body, "may read") {
		t.Errorf("a reader cancels: %d\n%s", r.code, r.body)
	}
	if r := f.do(t, http.MethodPost, "", "/builds/3/cancel", nil); r.code != http.StatusNotFound {
		t.Errorf("nobody cancels a private build: %d", r.code)
	}
	if r := f.do(t, http.MethodPost, "carol", "/builds/1/cancel", nil); r.code != http.StatusConflict || !strings.Contains(r.body, "already ended") {
		t.Errorf("cancel a finished build: %d\n%s", r.code, r.body)
	}
	if len(f.w.Builds.Cancelled) != 0 {
		t.Fatalf("cancelled %v", f.w.Builds.Cancelled)
	}
	if r := f.do(t, http.MethodPost, "carol", "/builds/3/cancel", nil); r.code != http.StatusSeeOther || r.h.Get("Location") != "/builds/3" {
		t.Errorf("carol cancels build 3: %d %v", r.code, r.h)
	}
	if b, _ := f.w.Store.GetBuild(t.Context(), 3); b.State != record.StateCancelled || fmt.Sprint(f.w.Builds.Cancelled) != "[3 by carol]" {
		t.Errorf("build 3 is %s after the cancel (%v)", b.State, f.w.Builds.Cancelled)
	}
	if r := f.do(t, http.MethodPost, "carol", "/builds/2/retry", nil); r.code != http.StatusSeeOther || r.h.Get("Location") != "/builds/5" {
		t.Errorf("carol retries build 2: %d %v", r.code, r.h)
	}
	if b, err := f.w.Store.GetBuild(t.Context(), 5); err != nil || b.RetryOf != 2 || b.State != record.StateQueued {
		t.Errorf("build 5: %+v %v", b, err)
	}
}

// TestButtonsNeedTheSessionsCSRFToken: signed in for real (a login link,
// a session cookie), the page's forms carry the session's CSRF token; a
// POST without it, or with another, is refused and changes nothing; with
// it, the build is cancelled.
func TestButtonsNeedTheSessionsCSRFToken(t *testing.T) {
	t.Parallel()
	f := newPagesFixture(t, false)
	f.s.viewerFor = nil
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(viewstest.KeyC))
	if err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if code := f.s.Commands()["login"].Run(t.Context(), gitserver.Caller{User: "carol", KeyFingerprint: ssh.FingerprintSHA256(pub)}, nil, &out, &errOut); code != 0 {
		t.Fatalf("login: %d %s", code, errOut.String())
	}
	link, err := url.Parse(strings.TrimSpace(out.String()))
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	f.s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, link.Path, nil))
	var cookie *http.Cookie
	for _, c := range rec.Result().Cookies() {
		cookie = c
	}
	if rec.Code != http.StatusSeeOther || cookie == nil {
		t.Fatalf("open the login link: %d", rec.Code)
	}
	send := func(method, target, form string) response {
		r := httptest.NewRequest(method, target, strings.NewReader(form))
		r.AddCookie(cookie)
		if form != "" {
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		return answer(t, f.s.Handler(), r)
	}
	p := send(http.MethodGet, "/builds/3", "")
	m := regexp.MustCompile(`<form method="post" action="/builds/3/cancel"><input type="hidden" name="csrf" value="([^"]+)">`).FindStringSubmatch(p.body)
	if p.code != http.StatusOK || m == nil || !strings.Contains(p.body, "signed in as carol") {
		t.Fatalf("/builds/3 signed in as carol: %d\n%s", p.code, p.body)
	}
	for _, form := range []string{"", "csrf=" + strings.Repeat("x", len(m[1]))} {
		if r := send(http.MethodPost, "/builds/3/cancel", form); r.code != http.StatusForbidden {
			t.Errorf("POST cancel with %q: %d", form, r.code)
		}
	}
	if len(f.w.Builds.Cancelled) != 0 {
		t.Fatalf("a POST without the token cancelled: %v", f.w.Builds.Cancelled)
	}
	if r := send(http.MethodPost, "/builds/3/cancel", "csrf="+url.QueryEscape(m[1])); r.code != http.StatusSeeOther || r.h.Get("Location") != "/builds/3" {
		t.Errorf("POST cancel with the page's token: %d\n%s", r.code, r.body)
	}
	if fmt.Sprint(f.w.Builds.Cancelled) != "[3 by carol]" {
		t.Errorf("cancelled: %v", f.w.Builds.Cancelled)
	}
}

// TestEnvPage: an environment's page says what is live (as recorded),
// what its target holds (as the deployment service lists it, with its
// note when it cannot be reached), and its deployments, paged.
func TestEnvPage(t *testing.T) {
	t.Parallel()
	f := newPagesFixture(t, false)
	p := f.get(t, "dave", "/app/env/staging")
	for _, want := range []string{
		`<h1>staging of <a href="/app">app</a></h1>`, `Passing builds of main go here by themselves.`,
		`<dt>Release</dt><dd><code>20261125-184102-1</code></dd>`, `<dt>Deployment</dt><dd><a href="/deployments/1">#1</a>, auto</dd>`,
		"<td><code>20261125-184102-1</code></td><td><strong>live</strong></td>\n<td><code>1111111</code></td><td><code>sha256:abababab</code></td>",
		`<td><code>20261125-183000-9</code></td><td>incomplete</td>`,
		`Listed 2026-11-25 18:50:00 UTC</p>`,
		`<tr class="deployment"><td><a href="/deployments/1">#1</a></td>`,
	} {
		if !strings.Contains(p.body, want) {
			t.Errorf("/app/env/staging lacks %q", want)
		}
	}
	p = f.get(t, "dave", "/app/env/prod")
	for _, want := range []string{`a revision must be live on <a href="/app/env/staging">staging</a> first`,
		"Nothing was ever deployed here.", "No releases on the target.", viewstest.ProdNote,
		`<tr class="deployment"><td><a href="/deployments/2">#2</a></td>`, `<td>release by bob, <a href="/pushes/3">push #3</a></td>`} {
		if !strings.Contains(p.body, want) {
			t.Errorf("/app/env/prod lacks %q:\n%s", want, p.body)
		}
	}
	for _, q := range []string{"?cursor=x", "?cursor=0", "?page=2", "?cursor=1&cursor=2"} {
		if p := f.get(t, "dave", "/app/env/staging"+q); p.code != http.StatusBadRequest {
			t.Errorf("/app/env/staging%s: %d, want 400", q, p.code)
		}
	}
	if p := f.get(t, "dave", "/app/env/staging?cursor=1"); p.code != http.StatusOK || !strings.Contains(p.body, "No deployments.") {
		t.Errorf("/app/env/staging?cursor=1: %d", p.code)
	}
}
