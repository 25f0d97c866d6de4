package console

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"slipway/configs"
	"slipway/deploy"
	"slipway/gitserver"
	"slipway/record"
	"slipway/views"
	"slipway/views/viewstest"
)

func TestParseTakesFlagsAfterArguments(t *testing.T) {
	var stderr bytes.Buffer
	f, ok := parse("log", []string{"12", "-f"}, &stderr, false, true)
	if !ok || !f.follow || len(f.args) != 1 || f.args[0] != "12" {
		t.Fatalf("parse(log 12 -f) = %+v, %v", f, ok)
	}
	f, ok = parse("builds", []string{"--limit", "5", "app", "--json"}, &stderr, true, false)
	if !ok || !f.json || f.limit != 5 || len(f.args) != 1 || f.args[0] != "app" {
		t.Fatalf("parse(builds --limit 5 app --json) = %+v, %v", f, ok)
	}
	if _, ok := parse("builds", []string{"--bogus"}, &stderr, true, false); ok || !strings.Contains(stderr.String(), "bogus") {
		t.Fatalf("an unknown flag was accepted: %q", stderr.String())
	}
}

// fixture is the filled world and the commands over it.
type fixture struct {
	w    *viewstest.World
	cmds map[string]gitserver.Command
}

func newFixture(t *testing.T, o views.Options) *fixture {
	t.Helper()
	return newFixtureTOML(t, o, viewstest.TOML)
}

func newFixtureTOML(t *testing.T, o views.Options, toml string) *fixture {
	t.Helper()
	cfg, err := configs.Parse([]byte(toml), "test.toml")
	if err != nil {
		t.Fatal(err)
	}
	w := viewstest.Open(t)
	viewstest.Fill(t, w)
	o.Config = cfg
	if o.Repos == nil {
		o.Repos = gitserver.Disk{ReposDir: filepath.Join(w.Dir, "repos")}
	}
	o.Records = w.Store
	if o.Builds == nil {
		o.Builds = w.Builds
	}
	if o.Deploys == nil {
		o.Deploys = w.Deploys
	}
	if o.Schedules == nil {
		o.Schedules = w.Schedules
	}
	o.Logs = w.Logs
	v, err := views.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{w: w, cmds: Commands(Options{Views: v})}
}

func (f *fixture) run(t *testing.T, user string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd, ok := f.cmds[args[0]]
	if !ok {
		t.Fatalf("no command %q", args[0])
	}
	var out, errb bytes.Buffer
	code = cmd.Run(t.Context(), gitserver.Caller{User: user}, args[1:], &out, &errb)
	return out.String(), errb.String(), code
}

// pinned are the commands whose output is pinned, by golden file. The
// golden files were written by the console and gitserver of before the
// read model (package views) with the same records; the output of those
// commands, --json and text, must not change.
var pinned = []struct {
	golden, user string
	args         []string
}{
	{"builds-alice.json", "alice", []string{"builds", "--json"}},
	{"builds-alice-limit2.json", "alice", []string{"builds", "--limit", "2", "--json"}},
	{"builds-app.json", "alice", []string{"builds", "app", "--json"}},
	{"builds-bob.json", "bob", []string{"builds", "--json"}},
	{"builds-alice.txt", "alice", []string{"builds"}},
	{"deploys-app.json", "alice", []string{"deploys", "app", "--json"}},
	{"deploys-app-staging.json", "bob", []string{"deploys", "app", "staging", "--json"}},
	{"deploys-app.txt", "alice", []string{"deploys", "app"}},
	{"releases-app-staging.json", "alice", []string{"releases", "app", "staging", "--json"}},
	{"releases-app-staging.txt", "alice", []string{"releases", "app", "staging"}},
	{"releases-app-prod.json", "alice", []string{"releases", "app", "prod", "--json"}},
	{"releases-app-prod.txt", "alice", []string{"releases", "app", "prod"}},
	{"schedules-alice.json", "alice", []string{"schedules", "--json"}},
	{"schedules-bob.json", "bob", []string{"schedules", "--json"}},
	{"schedules-alice.txt", "alice", []string{"schedules"}},
	{"repos-alice.json", "alice", []string{"repos", "--json"}},
	{"repos-bob.json", "bob", []string{"repos", "--json"}},
	{"repos-alice.txt", "alice", []string{"repos"}},
}

// TestJSONOutputIsPinned: the SSH listings, --json and text, print byte
// for byte what they printed before they were served by the read model,
// from records written by the real store.
func TestJSONOutputIsPinned(t *testing.T) {
	t.Parallel()
	f := newFixture(t, views.Options{})
	for _, p := range pinned {
		want, err := os.ReadFile(filepath.Join("testdata", p.golden))
		if err != nil {
			t.Fatal(err)
		}
		out, stderr, code := f.run(t, p.user, p.args...)
		if code != 0 || out != string(want) {
			t.Errorf("%s: %v (exit %d, %s)\n got:\n%s\nwant:\n%s", p.user, p.args, code, stderr, out, want)
		}
	}
}

func TestRightsOnBuilds(t *testing.T) {
	t.Parallel()
	f := newFixture(t, views.Options{})
	if out, _, code := f.run(t, "bob", "builds"); code != 0 || !strings.Contains(out, "app") || strings.Contains(out, "team/tools") {
		t.Fatalf("bob's builds (exit %d):\n%s", code, out)
	}
	if _, stderr, code := f.run(t, "bob", "log", "4"); code != 1 || !strings.Contains(stderr, "build 4 not found") {
		t.Fatalf("bob reading a hidden build: exit %d, %q", code, stderr)
	}
	if _, stderr, code := f.run(t, "bob", "builds", "secret"); code != 1 || !strings.Contains(stderr, `repository "secret" not found`) {
		t.Fatalf("bob listing a hidden repository: exit %d, %q", code, stderr)
	}
	if _, stderr, code := f.run(t, "bob", "cancel", "3"); code != 1 || !strings.Contains(stderr, `user bob may read "app" but not change its builds`) {
		t.Fatalf("bob cancelling: exit %d, %q", code, stderr)
	}
	if _, stderr, code := f.run(t, "carol", "cancel", "4"); code != 1 || !strings.Contains(stderr, "build 4 not found") {
		t.Fatalf("carol cancelling a hidden build: exit %d, %q", code, stderr)
	}
	if out, _, code := f.run(t, "carol", "cancel", "3"); code != 0 || out != "build #3 cancelled\n" || len(f.w.Builds.Cancelled) != 1 {
		t.Fatalf("carol cancelling: exit %d %q, cancelled %v", code, out, f.w.Builds.Cancelled)
	}
	if _, stderr, code := f.run(t, "carol", "cancel", "3"); code != 1 || !strings.Contains(stderr, "build 3 already ended: cancelled") {
		t.Fatalf("cancelling again: exit %d, %q", code, stderr)
	}
	if out, _, code := f.run(t, "carol", "retry", "2"); code != 0 || out != "build #5 queued: a retry of build #2 (feature @ 2222222)\n" {
		t.Fatalf("carol retrying: exit %d, %q", code, out)
	}
	if _, stderr, code := f.run(t, "carol", "cancel", "x"); code != 1 || !strings.Contains(stderr, `"x" is not a build id`) {
		t.Fatalf("cancel x: exit %d, %q", code, stderr)
	}
	if _, stderr, code := f.run(t, "carol", "run", "app", "nosuch"); code != 1 || !strings.Contains(stderr, `schedule "nosuch" of "app" not found`) {
		t.Fatalf("run app nosuch: exit %d, %q", code, stderr)
	}
	if _, stderr, code := f.run(t, "bob", "run", "app", "weekly"); code != 1 || !strings.Contains(stderr, `may read "app" but not run its schedules`) {
		t.Fatalf("bob running a schedule: exit %d, %q", code, stderr)
	}
	if out, _, code := f.run(t, "carol", "run", "app", "weekly"); code != 0 || !strings.HasPrefix(out, "build #6 queued: main @ 1111111") {
		t.Fatalf("carol running a schedule: exit %d, %q", code, out)
	}
}

// failedDeployment records a failed deployment of build 1 to staging with
// reason and returns its id.
func failedDeployment(t *testing.T, f *fixture, reason string) int64 {
	t.Helper()
	ctx := t.Context()
	d, err := f.w.Store.EnqueueDeployment(ctx, record.Deployment{Repo: "app", Env: "staging", BuildID: 1, Trigger: record.DeployAuto})
	if err != nil {
		t.Fatal(err)
	}
	for {
		c, ok, err := f.w.Store.ClaimDeployment(ctx)
		if err != nil || !ok {
			t.Fatalf("claim deployment %d: %v %v", d.ID, ok, err)
		}
		if c.ID == d.ID {
			break
		}
	}
	if err := f.w.Store.FinishDeployment(ctx, d.ID, record.DeployFailed, reason); err != nil {
		t.Fatal(err)
	}
	return d.ID
}

func TestDeploymentLogAndRetryAreCheckedLikeBuilds(t *testing.T) {
	t.Parallel()
	f := newFixture(t, views.Options{})
	if out, _, code := f.run(t, "bob", "log", "deploy", "1"); code != 0 || out != "log of deployment 1\n" {
		t.Fatalf("log deploy 1: exit %d %q", code, out)
	}
	for _, args := range [][]string{{"log", "deploy", "9"}, {"retry", "deploy", "9"}} {
		if _, stderr, code := f.run(t, "bob", args...); code != 1 || !strings.Contains(stderr, "deployment 9 not found") {
			t.Errorf("%v: exit %d, %q; want not found", args, code, stderr)
		}
	}
	if _, stderr, code := f.run(t, "bob", "retry", "deploy", "x"); code != 1 || !strings.Contains(stderr, `"x" is not a deployment id`) {
		t.Errorf("retry deploy x: exit %d, %q", code, stderr)
	}
	if _, stderr, code := f.run(t, "bob", "retry", "deploy", "1"); code != 1 || !strings.Contains(stderr, "deployment #1 succeeded; there is nothing to retry") {
		t.Errorf("retry deploy 1: exit %d, %q", code, stderr)
	}
	if _, stderr, code := f.run(t, "alice", "retry", "deploy", "2"); code != 1 || !strings.Contains(stderr, "deployment #2 is still queued") {
		t.Errorf("retry deploy 2: exit %d, %q", code, stderr)
	}
	id := failedDeployment(t, f, "rsync: connection refused")
	if out, _, code := f.run(t, "bob", "retry", "deploy", fmt.Sprint(id)); code != 0 ||
		out != fmt.Sprintf("deployment #%d queued: a retry of deployment #%d to staging — follow: log deploy %d -f\n", id+1, id, id+1) ||
		len(f.w.Deploys.Retried) != 1 || f.w.Deploys.Retried[0] != fmt.Sprintf("%d by bob", id) {
		t.Fatalf("bob's retry deploy %d: exit %d %q, retried %v", id, code, out, f.w.Deploys.Retried)
	}
}

// TestRetryDeployNeedsTheRightToDeploy: a reader may not retry a
// deployment; a writer may where the environment is its auto branch's and
// names no approvers (staging), not elsewhere (prod).
func TestRetryDeployNeedsTheRightToDeploy(t *testing.T) {
	t.Parallel()
	f := newFixture(t, views.Options{})
	ctx := t.Context()
	// Deployment 2 to prod fails.
	if d, ok, err := f.w.Store.ClaimDeployment(ctx); err != nil || !ok || d.ID != 2 {
		t.Fatalf("claim: %d %v %v", d.ID, ok, err)
	}
	if err := f.w.Store.FinishDeployment(ctx, 2, record.DeployFailed, "rsync failed"); err != nil {
		t.Fatal(err)
	}
	staging := failedDeployment(t, f, "activate failed")
	if _, stderr, code := f.run(t, "dave", "retry", "deploy", fmt.Sprint(staging)); code != 1 || !strings.Contains(stderr, "user dave may not deploy app to staging") {
		t.Errorf("dave (reader) retrying on staging: exit %d %q", code, stderr)
	}
	if out, _, code := f.run(t, "carol", "retry", "deploy", fmt.Sprint(staging)); code != 0 || !strings.Contains(out, "queued") {
		t.Errorf("carol (writer) retrying on staging: exit %d %q", code, out)
	}
	if _, stderr, code := f.run(t, "carol", "retry", "deploy", "2"); code != 1 || !strings.Contains(stderr, "user carol may not deploy app to prod") {
		t.Errorf("carol (writer) retrying on prod: exit %d %q", code, stderr)
	}
	if out, _, code := f.run(t, "bob", "retry", "deploy", "2"); code != 0 || !strings.Contains(out, "to prod") {
		t.Errorf("bob (releaser) retrying on prod: exit %d %q", code, out)
	}
}

// hostile is what a step or an activate script may print to take over the
// terminal of whoever reads the log: a carriage return and erase-line
// over the line before, a window title, a clipboard write, hidden text and
// a fake result; and a colour, which stays.
const hostile = "[00:00.100] │ real output\r\x1b[2K\x1b]0;title\x07\x1b]52;c;ZXZpbA==\x07\x1b[8mhidden\n" +
	"[00:00.200] │ \x1b[31mred\x1b[0m \u009b1A\xff\n"

// hostileShown is hostile as a terminal must get it.
const hostileShown = "[00:00.100] │ real output\\r\\x1b[2K\\x1b]0;title\\x07\\x1b]52;c;ZXZpbA==\\x07\\x1b[8mhidden\n" +
	"[00:00.200] │ \x1b[31mred\x1b[0m \\u009b1A\\xff\n"

// hostileLogs copies hostile as the log store does: in pieces, here a
// byte at a time.
type hostileLogs struct{}

func (hostileLogs) Follow(_ context.Context, _ int64, w io.Writer, _ bool) error {
	for i := range len(hostile) {
		if _, err := w.Write([]byte{hostile[i]}); err != nil {
			return err
		}
	}
	return nil
}
func (hostileLogs) CancelBy(context.Context, int64, string) error { return nil }
func (hostileLogs) Retry(context.Context, int64) (record.Build, error) {
	return record.Build{}, nil
}

type hostileDeployLogs struct{}

func (hostileDeployLogs) Releases(context.Context, string, string) (deploy.Listing, error) {
	return deploy.Listing{}, nil
}
func (hostileDeployLogs) Retry(context.Context, int64, string) (record.Deployment, error) {
	return record.Deployment{}, nil
}
func (hostileDeployLogs) Follow(_ context.Context, _ int64, w io.Writer, _ bool) error {
	_, err := io.WriteString(w, hostile)
	return err
}

// TestLogsAreShownSafeAndRawOnRequest: `log`, `log -f` and `log deploy`
// render what the log holds safe for a terminal (visible escapes, colours
// kept); --raw gives the stored bytes; the listings escape reasons, which
// quote a step's command or what a target printed.
func TestLogsAreShownSafeAndRawOnRequest(t *testing.T) {
	t.Parallel()
	f := newFixture(t, views.Options{Builds: hostileLogs{}, Deploys: hostileDeployLogs{}})
	ctx := t.Context()
	st := f.w.Store
	reason := "step 1 (printf '\x1b]0;t\x07\r\nbuild #3 passed') exited 1"
	enq, err := st.EnqueueBuilds(ctx, []record.Build{{Repo: "app", Ref: "refs/heads/x", Commit: viewstest.C1, Trigger: record.TriggerManual}})
	if err != nil {
		t.Fatal(err)
	}
	id := enq.Builds[0].ID
	for {
		b, ok, err := st.ClaimBuild(ctx, "w")
		if err != nil || !ok {
			t.Fatalf("claim: %v %v", ok, err)
		}
		if b.ID == id {
			break
		}
	}
	if err := st.FinishBuild(ctx, id, record.StateFailed, reason, nil); err != nil {
		t.Fatal(err)
	}
	dep := failedDeployment(t, f, "activate: exit 1: \x1b[1Adone\r")

	sid, sdep := fmt.Sprint(id), fmt.Sprint(dep)
	if out, _, code := f.run(t, "bob", "log", sid); code != 0 || out != hostileShown {
		t.Errorf("log %s: exit %d\n got %q\nwant %q", sid, code, out, hostileShown)
	}
	wantEnd := fmt.Sprintf(`build #%d failed (step 1 (printf '\x1b]0;t\x07\r\nbuild #3 passed') exited 1)`, id) + "\n"
	if out, _, code := f.run(t, "bob", "log", sid, "-f"); code != 1 || out != hostileShown+wantEnd {
		t.Errorf("log %s -f: exit %d\n got %q\nwant %q", sid, code, out, hostileShown+wantEnd)
	}
	if out, _, code := f.run(t, "bob", "log", "deploy", sdep); code != 0 || out != hostileShown {
		t.Errorf("log deploy %s: exit %d\n got %q\nwant %q", sdep, code, out, hostileShown)
	}
	for _, args := range [][]string{{sid, "--raw"}, {"--raw", "deploy", sdep}} {
		if out, _, code := f.run(t, "bob", append([]string{"log"}, args...)...); code != 0 || out != hostile {
			t.Errorf("log %v: exit %d\n got %q\nwant the stored bytes %q", args, code, out, hostile)
		}
	}
	if out, _, _ := f.run(t, "bob", "builds", "app"); !strings.Contains(out, `printf '\x1b]0;t\x07\r\nbuild #3 passed') exited 1`) || strings.ContainsAny(out, "\x1b\r\a") {
		t.Errorf("builds app does not escape the reason:\n%q", out)
	}
	if out, _, _ := f.run(t, "bob", "deploys", "app"); !strings.Contains(out, `activate: exit 1: \x1b[1Adone\r`) || strings.ContainsAny(out, "\x1b\r") {
		t.Errorf("deploys app does not escape the reason:\n%q", out)
	}
}

// TestBuildsLinkToTheDashboard: with [http] public_url, `builds` gives each
// build's page; without it, no column of links.
func TestBuildsLinkToTheDashboard(t *testing.T) {
	t.Parallel()
	f := newFixtureTOML(t, views.Options{}, viewstest.TOML+"\n[http]\npublic_url = \"https://ci.example.com/\"\n")
	out, _, code := f.run(t, "bob", "builds", "app")
	if code != 0 || !strings.Contains(out, "LINK") || !strings.Contains(out, "https://ci.example.com/builds/3 ") {
		t.Errorf("builds app with a public URL (exit %d):\n%s", code, out)
	}
	plain := newFixture(t, views.Options{})
	if out, _, _ := plain.run(t, "bob", "builds", "app"); strings.Contains(out, "LINK") || strings.Contains(out, "https://") {
		t.Errorf("builds app without a public URL shows links:\n%s", out)
	}
}
