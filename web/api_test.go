package web

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"slipway/configs"
	"slipway/views"
	"slipway/views/viewstest"
)

// apiFixture is a server whose API serves the viewstest world: alice is an
// admin; of app, bob may read and release, carol write, dave only read;
// secret and team/tools are for admins only. With public, app is public.
type apiFixture struct {
	w *viewstest.World
	s *Server
}

// filledWorld opens the viewstest world, filled, and parses its config;
// with public, app is public.
func filledWorld(t *testing.T, public bool) (*viewstest.World, *configs.Config) {
	t.Helper()
	toml := viewstest.TOML
	if public {
		toml = strings.Replace(toml, "name = \"app\"\n", "name = \"app\"\npublic = true\n", 1)
	}
	cfg, err := configs.Parse([]byte(toml), "test.toml")
	if err != nil {
		t.Fatal(err)
	}
	w := viewstest.Open(t)
	viewstest.Fill(t, w)
	return w, cfg
}

func newAPIFixture(t *testing.T, public bool) *apiFixture {
	t.Helper()
	w, cfg := filledWorld(t, public)
	s, err := New(Options{Config: cfg, Views: w.Views(t, cfg)})
	if err != nil {
		t.Fatal(err)
	}
	// Who a request comes from, in place of the auth part: the user in
	// X-Test-User, with all their rights or the scope in X-Test-Scope.
	s.viewerFor = func(r *http.Request) viewer {
		v := viewer{User: r.Header.Get("X-Test-User"), Scope: configs.Admin}
		if r.Header.Get("X-Test-Scope") == "read" {
			v.Scope = configs.Read
		}
		return v
	}
	return &apiFixture{w: w, s: s}
}

// do sends a request as user ("" for nobody) and returns the answer;
// it checks that every answer says what it is.
func (f *apiFixture) do(t *testing.T, method, user, path string, hdr ...string) response {
	t.Helper()
	res := answer(t, f.s.Handler(), request(method, user, path, nil, hdr...))
	ct := res.h.Get("Content-Type")
	switch {
	case strings.HasSuffix(strings.SplitN(path, "?", 2)[0], "/log") && res.code/100 == 2:
		if ct != "text/plain; charset=utf-8" {
			t.Errorf("%s %s: Content-Type %q", method, path, ct)
		}
	case ct != "application/json":
		t.Errorf("%s %s: Content-Type %q, want application/json", method, path, ct)
	case !json.Valid([]byte(res.body)):
		t.Errorf("%s %s: not JSON: %s", method, path, res.body)
	}
	if res.h.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("%s %s: no nosniff", method, path)
	}
	return res
}

func (f *apiFixture) get(t *testing.T, user, path string) response {
	t.Helper()
	return f.do(t, http.MethodGet, user, path)
}

// decode reads the body into v.
func (r response) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(r.body), v); err != nil {
		t.Fatalf("decode %q: %v", r.body, err)
	}
}

func (r response) errorMessage(t *testing.T) string {
	t.Helper()
	var e struct {
		Error string `json:"error"`
	}
	r.decode(t, &e)
	if e.Error == "" {
		t.Errorf("no error message in %q", r.body)
	}
	return e.Error
}

func buildIDs(t *testing.T, r response) []int64 {
	t.Helper()
	var page views.BuildPage
	r.decode(t, &page)
	ids := []int64{}
	for _, b := range page.Builds {
		ids = append(ids, b.ID)
	}
	return ids
}

// TestAPIReadRightsMatrix: every GET of the API, for nobody (app public
// and not), a reader, a writer, a releaser and an admin: what each may
// read is there, the rest is 404 exactly like what does not exist.
func TestAPIReadRightsMatrix(t *testing.T) {
	t.Parallel()
	pub, priv := newAPIFixture(t, true), newAPIFixture(t, false)
	const (
		ok   = http.StatusOK
		none = http.StatusNotFound
	)
	type who struct {
		name string
		f    *apiFixture
		user string
	}
	anonPub, anonPriv := who{"nobody (app public)", pub, ""}, who{"nobody (app private)", priv, ""}
	dave, carol, bob, alice := who{"reader", priv, "dave"}, who{"writer", priv, "carol"}, who{"releaser", priv, "bob"}, who{"admin", priv, "alice"}
	everyone := []who{anonPub, anonPriv, dave, carol, bob, alice}
	// app's objects: builds 1-3, deployments 1-2, pushes 1-3; team/tools':
	// build 4, push 4.
	appPaths := []string{"/api/v1/builds/1", "/api/v1/builds/2", "/api/v1/builds/3", "/api/v1/builds/1/log",
		"/api/v1/builds?repo=app", "/api/v1/builds?repo=app&branch=main", "/api/v1/deployments?repo=app",
		"/api/v1/deployments/1", "/api/v1/deployments/2", "/api/v1/deployments/1/log", "/api/v1/releases?repo=app&env=staging",
		"/api/v1/schedules?repo=app", "/api/v1/pushes?repo=app", "/api/v1/pushes/1", "/api/v1/pushes/3"}
	toolsPaths := []string{"/api/v1/builds/4", "/api/v1/builds/4/log", "/api/v1/builds?repo=team/tools",
		"/api/v1/deployments?repo=team/tools", "/api/v1/schedules?repo=team/tools", "/api/v1/pushes/4",
		"/api/v1/pushes?repo=team/tools", "/api/v1/builds?repo=secret"}
	for _, c := range everyone {
		for _, p := range appPaths {
			want := ok
			if c == anonPriv {
				want = none
			}
			if r := c.f.get(t, c.user, p); r.code != want {
				t.Errorf("%s: GET %s = %d %s, want %d", c.name, p, r.code, r.body, want)
			}
		}
		for _, p := range toolsPaths {
			want := none
			if c == alice {
				want = ok
			}
			if r := c.f.get(t, c.user, p); r.code != want {
				t.Errorf("%s: GET %s = %d %s, want %d", c.name, p, r.code, r.body, want)
			} else if want == none {
				// Hidden and missing read alike, but for the name.
				missing := strings.NewReplacer("/4", "/999", "team/tools", "team/nosuch", "secret", "nosuch").Replace(p)
				back := strings.NewReplacer("999", "4", "team/nosuch", "team/tools", "nosuch", "secret")
				if m := c.f.get(t, c.user, missing); m.code != none || back.Replace(m.body) != r.body {
					t.Errorf("%s: GET %s = %d %q but GET %s = %d %q", c.name, p, r.code, r.body, missing, m.code, m.body)
				}
			}
		}
		// The unfiltered listings hold what the caller may read.
		wantBuilds := []int64{3, 2, 1}
		switch c {
		case anonPriv:
			wantBuilds = []int64{}
		case alice:
			wantBuilds = []int64{4, 3, 2, 1}
		}
		if r := c.f.get(t, c.user, "/api/v1/builds"); r.code != ok || !slices.Equal(buildIDs(t, r), wantBuilds) {
			t.Errorf("%s: GET /api/v1/builds = %d %v, want %v", c.name, r.code, r.body, wantBuilds)
		}
		var repos struct{ Repos []views.Repo }
		r := c.f.get(t, c.user, "/api/v1/repos")
		r.decode(t, &repos)
		var names, access []string
		for _, rp := range repos.Repos {
			names = append(names, rp.Name)
			if rp.Name == "app" {
				access = rp.Access
			}
		}
		wantNames, wantAccess := []string{"app"}, map[who][]string{anonPub: {"read"}, dave: {"read"}, carol: {"read", "write"},
			bob: {"read", "release"}, alice: {"read", "write", "release", "create"}}[c]
		switch c {
		case anonPriv:
			wantNames = nil
		case alice:
			wantNames = []string{"app", "old", "secret", "team/tools"}
		}
		if r.code != ok || !slices.Equal(names, wantNames) || !slices.Equal(access, wantAccess) {
			t.Errorf("%s: GET /api/v1/repos = %d %s, want %v with %v on app", c.name, r.code, r.body, wantNames, wantAccess)
		}
		var sch struct{ Schedules []views.Schedule }
		c.f.get(t, c.user, "/api/v1/schedules").decode(t, &sch)
		wantSch := map[who]int{anonPriv: 0, alice: 3}
		n, found := wantSch[c]
		if !found {
			n = 2
		}
		if len(sch.Schedules) != n {
			t.Errorf("%s: %d schedules, want %d", c.name, len(sch.Schedules), n)
		}
	}
}

// TestAPIActionsRightsMatrix: cancel and retry need write, a deployment
// retry the right to deploy there, a schedule run write; a caller who may
// read gets 403 with the reason, one who may not read 404; a token's scope
// narrows its user's rights.
func TestAPIActionsRightsMatrix(t *testing.T) {
	t.Parallel()
	f := newAPIFixture(t, true)
	ctx := t.Context()
	post := func(user, path string, hdr ...string) response {
		t.Helper()
		return f.do(t, http.MethodPost, user, path, hdr...)
	}
	for _, c := range []struct {
		user, path string
		want       int
		msg        string
	}{
		{"", "/api/v1/builds/3/cancel", 403, "an anonymous caller may read \"app\" but not change its builds"},
		{"dave", "/api/v1/builds/3/cancel", 403, "user dave may read \"app\" but not change its builds"},
		{"bob", "/api/v1/builds/3/cancel", 403, "user bob may read"},
		{"carol", "/api/v1/builds/4/cancel", 404, "build 4 not found"},
		{"carol", "/api/v1/builds/999/cancel", 404, "build 999 not found"},
		{"alice", "/api/v1/builds/3/cancel", 403, "user alice may read \"app\" but not change its builds"}, // with a read-only token
		{"dave", "/api/v1/builds/2/retry", 403, "user dave may read"},
		{"", "/api/v1/builds/2/retry", 403, "anonymous"},
		{"carol", "/api/v1/builds/4/retry", 404, "build 4 not found"},
		{"carol", "/api/v1/builds/3/retry", 409, "build 3 is still queued"},
		{"dave", "/api/v1/schedules/run?repo=app&name=weekly", 403, "user dave may read \"app\" but not run its schedules"},
		{"carol", "/api/v1/schedules/run?repo=team/tools&name=nightly", 404, "repository \"team/tools\" not found"},
		{"carol", "/api/v1/schedules/run?repo=app&name=nosuch", 404, "schedule \"nosuch\" of \"app\" not found"},
		{"bob", "/api/v1/deployments/1/retry", 409, "deployment #1 succeeded; there is nothing to retry"},
		{"dave", "/api/v1/deployments/1/retry", 403, "user dave may not deploy app to staging"},
		{"", "/api/v1/deployments/1/retry", 403, "anonymous caller may not deploy"},
	} {
		var hdr []string
		if c.user == "alice" {
			hdr = []string{"X-Test-Scope", "read"}
		}
		r := post(c.user, c.path, hdr...)
		if r.code != c.want || !strings.Contains(r.errorMessage(t), c.msg) {
			t.Errorf("POST %s as %q: %d %s, want %d %q", c.path, c.user, r.code, r.body, c.want, c.msg)
		}
	}
	if len(f.w.Builds.Cancelled)+len(f.w.Deploys.Retried)+len(f.w.Schedules.Ran) != 0 {
		t.Fatalf("refused actions acted: %v %v %v", f.w.Builds.Cancelled, f.w.Deploys.Retried, f.w.Schedules.Ran)
	}

	// What is allowed acts, and answers with what it made.
	var b views.Build
	r := post("carol", "/api/v1/builds/3/cancel")
	r.decode(t, &b)
	if r.code != 200 || b.ID != 3 || b.State != "cancelled" || b.Reason != "cancelled by carol" {
		t.Errorf("carol cancels 3: %d %s", r.code, r.body)
	}
	if r := post("carol", "/api/v1/builds/3/cancel"); r.code != 409 || !strings.Contains(r.errorMessage(t), "build 3 already ended: cancelled") {
		t.Errorf("cancel again: %d %s", r.code, r.body)
	}
	r = post("alice", "/api/v1/builds/2/retry")
	r.decode(t, &b)
	if r.code != 201 || b.RetryOf != 2 || b.State != "queued" || r.h.Get("Location") != fmt.Sprintf("/api/v1/builds/%d", b.ID) {
		t.Errorf("alice retries 2: %d %v %s", r.code, r.h, r.body)
	}
	var run struct{ Builds []views.Build }
	r = post("carol", "/api/v1/schedules/run?repo=app&name=weekly")
	r.decode(t, &run)
	if r.code != 201 || len(run.Builds) != 1 || run.Builds[0].Trigger != "manual" || f.w.Schedules.Ran[0] != "app/weekly by carol" {
		t.Errorf("carol runs app/weekly: %d %s %v", r.code, r.body, f.w.Schedules.Ran)
	}
	// A failed deployment to prod: the releaser may retry it, the writer
	// may not (prod is no auto branch's).
	if d, ok, err := f.w.Store.ClaimDeployment(ctx); err != nil || !ok || d.ID != 2 {
		t.Fatalf("claim: %d %v %v", d.ID, ok, err)
	}
	if err := f.w.Store.FinishDeployment(ctx, 2, "failed", "rsync failed"); err != nil {
		t.Fatal(err)
	}
	if r := post("carol", "/api/v1/deployments/2/retry"); r.code != 403 || !strings.Contains(r.errorMessage(t), "user carol may not deploy app to prod") {
		t.Errorf("carol retries prod: %d %s", r.code, r.body)
	}
	if r := post("bob", "/api/v1/deployments/2/retry", "X-Test-Scope", "read"); r.code != 403 {
		t.Errorf("bob retries prod with a read-only token: %d %s", r.code, r.body)
	}
	var d views.Deployment
	r = post("bob", "/api/v1/deployments/2/retry")
	r.decode(t, &d)
	if r.code != 201 || d.Env != "prod" || d.Trigger != "retry" || d.User != "bob" || f.w.Deploys.Retried[0] != "2 by bob" {
		t.Errorf("bob retries prod: %d %s", r.code, r.body)
	}
}

// TestAPIWritesNeedTheAuthCheck: without the auth part's check (a bearer
// token, or a session with its CSRF token) no POST acts.
func TestAPIWritesNeedTheAuthCheck(t *testing.T) {
	t.Parallel()
	f := newAPIFixture(t, true)
	f.s.viewerFor = nil
	for _, p := range []string{"/api/v1/builds/3/cancel", "/api/v1/builds/2/retry", "/api/v1/schedules/run?repo=app&name=weekly"} {
		if r := f.do(t, http.MethodPost, "", p); r.code != http.StatusForbidden || !strings.Contains(strings.ToLower(r.errorMessage(t)), "sign in") {
			t.Errorf("POST %s without the check: %d %s", p, r.code, r.body)
		}
	}
	if len(f.w.Builds.Cancelled)+len(f.w.Schedules.Ran) != 0 {
		t.Fatal("a POST acted without the check")
	}
	// Reading a public repository needs nobody.
	if r := f.get(t, "", "/api/v1/builds/1"); r.code != http.StatusOK {
		t.Errorf("GET a public build: %d %s", r.code, r.body)
	}
}

// TestAPIBadInput: malformed, oversized, unknown and repeated parameters
// are 400 with what is wrong; unknown paths 404; wrong methods 405 with
// Allow; all as JSON.
func TestAPIBadInput(t *testing.T) {
	t.Parallel()
	f := newAPIFixture(t, false)
	long := strings.Repeat("a", 300)
	for _, c := range []struct {
		method, path string
		want         int
		msg          string
	}{
		{"GET", "/api/v1/builds?limit=0", 400, "limit must be a whole number from 1 to 200"},
		{"GET", "/api/v1/builds?limit=201", 400, "limit must be"},
		{"GET", "/api/v1/builds?limit=ten", 400, "limit must be"},
		{"GET", "/api/v1/builds?cursor=-3", 400, "cursor must be a positive whole number"},
		{"GET", "/api/v1/builds?cursor=99999999999999999999", 400, "cursor must be"},
		{"GET", "/api/v1/builds?repo=../etc", 400, "invalid repository name"},
		{"GET", "/api/v1/builds?repo=" + long, 400, "longer than 256 bytes"},
		{"GET", "/api/v1/builds?repo=" + strings.Repeat("a", 250) + "&x=" + strings.Repeat("b", 250) + "&y=" + strings.Repeat("c", 250) + "&z=" + strings.Repeat("d", 250) + "&w=" + strings.Repeat("e", 250), 400, "longer than 1024 bytes"},
		{"GET", "/api/v1/builds?state=exploded", 400, `unknown build state "exploded"`},
		{"GET", "/api/v1/builds?trigger=cron", 400, `unknown build trigger "cron"`},
		{"GET", "/api/v1/builds?branch=ma%0Ain", 400, "is not a branch name"},
		{"GET", "/api/v1/builds?repo=app&repo=secret", 400, `parameter "repo" given 2 times`},
		{"GET", "/api/v1/builds?rep=app", 400, `unknown parameter "rep"`},
		{"GET", "/api/v1/builds?%zz", 400, "malformed query string"},
		{"GET", "/api/v1/builds/abc", 400, `"abc" is not a build id`},
		{"GET", "/api/v1/builds/0", 400, `"0" is not a build id`},
		{"GET", "/api/v1/builds/-1", 400, "is not a build id"},
		{"GET", "/api/v1/builds/999", 404, "build 999 not found"},
		{"GET", "/api/v1/deployments/999", 404, "deployment 999 not found"},
		{"GET", "/api/v1/pushes/999", 404, "push 999 not found"},
		{"GET", "/api/v1/deployments?env=Prod!", 400, "environment name"},
		{"GET", "/api/v1/releases?repo=app", 400, "parameter env is required"},
		{"GET", "/api/v1/releases?repo=app&env=qa", 404, `unknown environment "qa" (repository app has staging, prod)`},
		{"GET", "/api/v1/releases?repo=secret&env=qa", 404, `unknown environment "qa" (repository secret has no environments)`},
		{"POST", "/api/v1/schedules/run?repo=app", 400, "parameter name is required"},
		{"POST", "/api/v1/schedules/run?repo=app&name=../x", 400, "schedule name"},
		{"GET", "/api/v1/builds/1/log?offset=-1", 400, "offset must be a whole number of bytes"},
		{"GET", "/api/v1/nope", 404, "no API at /api/v1/nope"},
		{"GET", "/api/v2/builds", 404, "no API at"},
		{"DELETE", "/api/v1/builds/1", 405, "DELETE is not allowed here; use GET or HEAD"},
		{"GET", "/api/v1/builds/1/cancel", 405, "use POST"},
		{"POST", "/api/v1/builds", 405, "use GET or HEAD"},
	} {
		r := f.do(t, c.method, "alice", c.path)
		if r.code != c.want || !strings.Contains(r.errorMessage(t), c.msg) {
			t.Errorf("%s %s: %d %s, want %d %q", c.method, c.path, r.code, r.body, c.want, c.msg)
		}
		if c.want == 405 && r.h.Get("Allow") == "" {
			t.Errorf("%s %s: 405 without Allow", c.method, c.path)
		}
	}
	// For a user who is no admin, a repository missing and one hidden are
	// the same 404.
	for _, p := range []string{"/api/v1/releases?repo=secret&env=qa", "/api/v1/schedules?repo=nosuch", "/api/v1/schedules?repo=secret"} {
		if r := f.get(t, "dave", p); r.code != 404 || !strings.Contains(r.errorMessage(t), "not found") {
			t.Errorf("GET %s as dave: %d %s", p, r.code, r.body)
		}
	}
}

// TestAPIServesTheSSHDocuments: the API's documents are the SSH --json
// output's, the same data under the same names (console's golden files).
func TestAPIServesTheSSHDocuments(t *testing.T) {
	t.Parallel()
	f := newAPIFixture(t, false)
	for _, c := range []struct{ path, key, golden string }{
		{"/api/v1/builds", "builds", "builds-alice.json"},
		{"/api/v1/builds?repo=app", "builds", "builds-app.json"},
		{"/api/v1/deployments?repo=app", "deployments", "deploys-app.json"},
		{"/api/v1/releases?repo=app&env=staging", "releases", "releases-app-staging.json"},
		{"/api/v1/schedules", "schedules", "schedules-alice.json"},
		{"/api/v1/repos", "repos", "repos-alice.json"},
	} {
		var got map[string]any
		f.get(t, "alice", c.path).decode(t, &got)
		b, err := os.ReadFile(filepath.Join("..", "console", "testdata", c.golden))
		if err != nil {
			t.Fatal(err)
		}
		var want any
		if err := json.Unmarshal(b, &want); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got[c.key], want) {
			t.Errorf("GET %s .%s:\n%v\nwant (ssh %s):\n%v", c.path, c.key, got[c.key], c.golden, want)
		}
	}
	// One build, one deployment, one push by id.
	var b views.Build
	f.get(t, "alice", "/api/v1/builds/1").decode(t, &b)
	if b.ID != 1 || len(b.Steps) != 2 || b.Steps[1].Name != "go test ./..." || b.DurationMS != 60500 || b.Digest != viewstest.Digest {
		t.Errorf("build 1 = %+v", b)
	}
	var p views.Push
	f.get(t, "alice", "/api/v1/pushes/3").decode(t, &p)
	if p.User != "bob" || p.KeyFingerprint != "SHA256:bob" || len(p.Refs) != 1 || p.Refs[0].Name != "refs/release/prod" ||
		len(p.Deployments) != 1 || p.Deployments[0].ID != 2 || len(p.Builds) != 0 || !slices.Equal(p.Options, []string{"nowait"}) {
		t.Errorf("push 3 = %+v", p)
	}
	f.get(t, "alice", "/api/v1/pushes/1").decode(t, &p)
	if len(p.Builds) != 1 || p.Builds[0].ID != 1 || p.Builds[0].PushID != 1 {
		t.Errorf("push 1 = %+v", p)
	}
	var rel views.Releases
	f.get(t, "alice", "/api/v1/releases?repo=app&env=prod").decode(t, &rel)
	if len(rel.Releases) != 0 || rel.Note != viewstest.ProdNote || rel.Listed == nil {
		t.Errorf("prod's releases = %+v", rel)
	}
}

// TestAPIPagesByCursor: a listing walked by next_cursor gives every build
// once, newest first, whatever the filters.
func TestAPIPagesByCursor(t *testing.T) {
	t.Parallel()
	f := newAPIFixture(t, false)
	for _, c := range []struct {
		path string
		want []int64
	}{
		{"/api/v1/builds?limit=1", []int64{4, 3, 2, 1}},
		{"/api/v1/builds?limit=3", []int64{4, 3, 2, 1}},
		{"/api/v1/builds?limit=2&repo=app&branch=main", []int64{3, 1}},
		{"/api/v1/builds?limit=1&state=failed", []int64{2}},
		{"/api/v1/builds?limit=1&trigger=push", []int64{2, 1}},
		{"/api/v1/builds?limit=1&repo=app&trigger=schedule", nil},
	} {
		var got []int64
		pages, cursor := 0, int64(0)
		for {
			path := c.path
			if cursor != 0 {
				path += fmt.Sprintf("&cursor=%d", cursor)
			}
			var page views.BuildPage
			f.get(t, "alice", path).decode(t, &page)
			for _, b := range page.Builds {
				got = append(got, b.ID)
			}
			pages++
			if cursor = page.NextCursor; cursor == 0 || pages > 10 {
				break
			}
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: walked %v, want %v", c.path, got, c.want)
		}
	}
	var dp views.DeploymentPage
	f.get(t, "alice", "/api/v1/deployments?repo=app&limit=1").decode(t, &dp)
	if len(dp.Deployments) != 1 || dp.Deployments[0].ID != 2 || dp.NextCursor != 2 {
		t.Errorf("deployments page 1 = %+v", dp)
	}
	f.get(t, "alice", "/api/v1/deployments?repo=app&limit=1&cursor=2").decode(t, &dp)
	if len(dp.Deployments) != 1 || dp.Deployments[0].ID != 1 || dp.NextCursor != 0 {
		t.Errorf("deployments page 2 = %+v", dp)
	}
	var pp views.PushPage
	f.get(t, "alice", "/api/v1/pushes?limit=3").decode(t, &pp)
	if len(pp.Pushes) != 3 || pp.Pushes[0].ID != 4 || pp.NextCursor != 2 || len(pp.Pushes[0].Refs) != 2 {
		t.Errorf("pushes page 1 = %+v", pp)
	}
	// A last page says so with next_cursor 0, never by its absence.
	if r := f.get(t, "alice", "/api/v1/builds?repo=team/tools"); !strings.Contains(r.body, `"next_cursor": 0`) {
		t.Errorf("last page: %s", r.body)
	}
}
