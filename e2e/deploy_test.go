package e2e

// End-to-end tests of deployments (issue 4) against the real binary: real
// git pushes over Slipway's SSH server, builds in bubblewrap, rsync over a
// real OpenSSH sshd on loopback (internal/sshdtest) and local-folder targets.
// Everything here is prefixed dt so that it cannot collide with the other
// files of this package.

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"slipway/internal/testutil"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"slipway/internal/sshdtest"
	"slipway/record"
)

// dtPipeline is the pipeline file of every project here: build.sh makes
// dist/, the artifacts.
const dtPipeline = `[build]
steps = ["sh build.sh"]
artifacts = ["dist/"]
`

// dtBuildScript copies app/ into dist/. A FAIL file fails the build (the
// way failing tests would) and a BIG file asks for an extra artifact of that
// many bytes. Zeros do: rsync and ssh do not compress here, so they weigh on
// the wire what any data would.
const dtBuildScript = `set -e
if [ -e FAIL ]; then echo "tests failed: $(cat FAIL)" >&2; exit 1; fi
mkdir -p dist
cp -R app/. dist/
if [ -e BIG ]; then head -c "$(cat BIG)" /dev/zero > dist/big.bin; fi
`

// dtBig is the size of the artifact that keeps a transfer busy long enough
// to cut it: 8 MiB, of which the gate lets 1 MiB through.
const dtBig = 8 << 20

// dtProject makes a work tree on main whose app/ holds the given files,
// built by dtBuildScript.
func dtProject(t *testing.T, u *user, app map[string]string) (dir, head string) {
	t.Helper()
	return dtProjectBuiltBy(t, u, dtBuildScript, app)
}

// dtProjectBuiltBy is dtProject with another build.sh.
func dtProjectBuiltBy(t *testing.T, u *user, script string, app map[string]string) (dir, head string) {
	t.Helper()
	files := map[string]string{".slipway.toml": dtPipeline, "build.sh": script}
	for name, body := range app {
		files["app/"+name] = body
	}
	dir = u.newProject(t, files)
	return dir, u.head(t, dir)
}

// dtRemote renders the target keys of an environment on the real sshd srv,
// reached at port (srv.Port, or a dtGate in front of it) and checked against
// knownHosts.
func dtRemote(srv *sshdtest.Server, path string, port int, knownHosts string) string {
	return fmt.Sprintf("  target = %q\n  port = %d\n  ssh_key = %q\n  known_hosts = %q\n",
		srv.User+"@"+srv.Host+":"+path, port, srv.KeyFile, knownHosts)
}

// dtKnownHosts writes a known_hosts file that pins hostKey for 127.0.0.1:port.
func dtKnownHosts(t *testing.T, port int, hostKey string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(f, []byte(fmt.Sprintf("[127.0.0.1]:%d %s\n", port, hostKey)), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// dtWaitTimeout bounds the waits for a build or a deployment to end on a
// loaded 2-core machine.
const dtWaitTimeout = 3 * time.Minute

// dtWaitBuild waits for a build of commit newer than build after to end,
// and returns it as u sees it with `builds --json`. The wait reads the
// database (see daemon.store), which is cheap to poll.
func dtWaitBuild(t *testing.T, d *daemon, u *user, repo, commit string, after int64) btBuild {
	t.Helper()
	db := d.store(t)
	var id int64
	d.eventually(t, dtWaitTimeout, "a build of "+commit[:7]+" to end", func() bool {
		bs, err := db.ListBuilds(t.Context(), repo, 0)
		if err != nil {
			return false
		}
		for _, b := range bs {
			if b.Commit == commit && b.ID > after && b.State.Final() {
				id = b.ID
				return true
			}
		}
		return false
	})
	for _, b := range btBuilds(t, d, u, repo) {
		if b.ID == id && b.Commit == commit && b.State.Final() {
			return b
		}
	}
	t.Fatalf("builds %s --json does not show build #%d of %s ended", repo, id, commit[:7])
	return btBuild{}
}

// dtWaitPassed is dtWaitBuild for a build that must pass.
func dtWaitPassed(t *testing.T, d *daemon, u *user, repo, commit string, after int64) btBuild {
	t.Helper()
	b := dtWaitBuild(t, d, u, repo, commit, after)
	if b.State != record.StatePassed {
		t.Fatalf("build #%d of %s in %s: %s (%s), want passed", b.ID, commit[:7], repo, b.State, b.Reason)
	}
	return b
}

// dtDeploy is a deployment as `deploys --json` shows it, with its digest
// and its hosts.
type dtDeploy struct {
	ID      int64                `json:"id"`
	Repo    string               `json:"repo"`
	Env     string               `json:"env"`
	BuildID int64                `json:"build_id"`
	Commit  string               `json:"commit"`
	Trigger record.DeployTrigger `json:"trigger"`
	User    string               `json:"user"`
	State   record.DeployState   `json:"state"`
	Reason  string               `json:"reason"`
	Release string               `json:"release"`
	Digest  string               `json:"digest"`
	Hosts   []dtDeployHost       `json:"hosts"`
}

// dtDeployHost is one host of a deployment as `deploys --json` shows it.
type dtDeployHost struct {
	Host     string           `json:"host"`
	Release  string           `json:"release"`
	Previous string           `json:"previous"`
	State    record.HostState `json:"state"`
	Detail   string           `json:"detail"`
}

// dtDeployViews is the deployment history of an environment, newest
// first, as `deploys REPO ENV --json` shows it.
func dtDeployViews(t *testing.T, d *daemon, u *user, repo, env string) []dtDeploy {
	t.Helper()
	return sshJSON[[]dtDeploy](t, d, u, "deploys", repo, env, "--limit", "100", "--json")
}

// record is the deployment as a record.
func (j dtDeploy) record() record.Deployment {
	return record.Deployment{ID: j.ID, Repo: j.Repo, Env: j.Env, BuildID: j.BuildID, Commit: j.Commit,
		Trigger: j.Trigger, User: j.User, State: j.State, Reason: j.Reason, ReleaseID: j.Release}
}

// dtDeploys is dtDeployViews as records.
func dtDeploys(t *testing.T, d *daemon, u *user, repo, env string) []record.Deployment {
	t.Helper()
	js := dtDeployViews(t, d, u, repo, env)
	ds := make([]record.Deployment, 0, len(js))
	for _, j := range js {
		ds = append(ds, j.record())
	}
	return ds
}

// dtWaitDeploy waits for a deployment of commit to env, newer than
// deployment after, to end, and returns it as u sees it with `deploys
// --json`. The wait reads the database (see daemon.store).
func dtWaitDeploy(t *testing.T, d *daemon, u *user, repo, env, commit string, after int64) record.Deployment {
	t.Helper()
	return dtWaitDeployView(t, d, u, repo, env, commit, after).record()
}

// dtWaitDeployView is dtWaitDeploy returning the deployment as `deploys
// --json` shows it, hosts and digest included.
func dtWaitDeployView(t *testing.T, d *daemon, u *user, repo, env, commit string, after int64) dtDeploy {
	t.Helper()
	db := d.store(t)
	ended := func(c string, id int64, st record.DeployState) bool {
		return c == commit && id > after && st != record.DeployQueued && st != record.DeployRunning
	}
	var id int64
	d.eventually(t, dtWaitTimeout, "a deployment of "+commit[:7]+" to "+env+" to end", func() bool {
		ds, err := db.ListDeployments(t.Context(), repo, env, 0)
		if err != nil {
			return false
		}
		for _, dep := range ds {
			if ended(dep.Commit, dep.ID, dep.State) {
				id = dep.ID
				return true
			}
		}
		return false
	})
	return mustFind(t, dtDeployViews(t, d, u, repo, env), func(dep dtDeploy) bool { return dep.ID == id && ended(dep.Commit, dep.ID, dep.State) },
		fmt.Sprintf("deploys %s %s --json does not show deployment #%d of %s ended", repo, env, id, commit[:7]))
}

// dtDeployLog is `log deploy ID`.
func dtDeployLog(t *testing.T, d *daemon, u *user, id int64) string {
	t.Helper()
	return mustSSH(t, d, u, "log", "deploy", strconv.FormatInt(id, 10))
}

// dtRefused checks that a push was refused with exactly one line that names
// ref and gives the reason why.
func dtRefused(t *testing.T, out string, err error, ref, why string) {
	t.Helper()
	if err == nil {
		t.Fatalf("push to %s accepted, want it refused (%s):\n%s", ref, why, out)
	}
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), "remote:"))
		if strings.HasPrefix(l, ref+": ") {
			lines = append(lines, l)
		}
	}
	if len(lines) != 1 || !strings.Contains(lines[0], why) {
		t.Fatalf("push to %s: want one line %q...%q, got %q in:\n%s", ref, ref+": ", why, lines, out)
	}
}

// dtRemoteRef is the commit a ref of the daemon's repository points at, or "".
func dtRemoteRef(t *testing.T, d *daemon, u *user, repo, ref string) string {
	t.Helper()
	out := u.mustGit(t, "", "ls-remote", d.url(repo), ref)
	if f := strings.Fields(out); len(f) == 2 && f[1] == ref {
		return f[0]
	}
	return ""
}

// dtTarget is an environment's folder as the target host sees it (the
// hosts of these tests are this machine).
type dtTarget string

// live is the release `current` points at, or "" when there is none.
func (tg dtTarget) live(t *testing.T) string {
	t.Helper()
	l, err := os.Readlink(filepath.Join(string(tg), "current"))
	if errors.Is(err, fs.ErrNotExist) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	id, ok := strings.CutPrefix(l, "releases/")
	if !ok {
		t.Fatalf("current -> %q, want releases/<id>", l)
	}
	return id
}

// file reads dist/<name> of a release ("current" for the live one).
func (tg dtTarget) file(t *testing.T, release, name string) string {
	t.Helper()
	dir := filepath.Join(string(tg), "releases", release)
	if release == "current" {
		dir = filepath.Join(string(tg), "current")
	}
	b, err := os.ReadFile(filepath.Join(dir, "dist", name))
	if err != nil {
		t.Fatalf("read %s of release %s: %v", name, release, err)
	}
	return string(b)
}

func (tg dtTarget) stat(t *testing.T, release, name string) *syscall.Stat_t {
	t.Helper()
	fi, err := os.Stat(filepath.Join(string(tg), "releases", release, "dist", name))
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t)
}

// releases lists the folders under releases/, partial ones included.
func (tg dtTarget) releases(t *testing.T) []string {
	t.Helper()
	es, err := os.ReadDir(filepath.Join(string(tg), "releases"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

// TestDeployAutoToStagingAndReleaseGateToProd follows a project from its
// first push to production over a real sshd: automatic staging deployments
// with hard-linked unchanged files, a failing build that ships nothing, every
// refusal of the release gate, a streamed release, a release with -o nowait,
// a rollback without a rebuild, and the history commands.
func TestDeployAutoToStagingAndReleaseGateToProd(t *testing.T) {
	t.Parallel()
	alice, wendy, rita, rob := newUser(t, "alice"), newUser(t, "wendy"), newUser(t, "rita"), newUser(t, "rob")
	srv := sshdtest.New(t)
	hosts := t.TempDir()
	staging, prod := dtTarget(filepath.Join(hosts, "staging")), dtTarget(filepath.Join(hosts, "prod"))
	d := startDaemon(t, configFor(`
[[repo]]
name = "shop"
read = ["*"]
write = ["wendy"]
release = ["rita", "rob"]
  [[repo.environment]]
  name = "staging"
  auto = "main"
`+dtRemote(srv, string(staging), srv.Port, srv.KnownHostsFile)+`
  [[repo.environment]]
  name = "prod"
  requires = "staging"
  approvers = ["rita"]
  activate = "echo \"activated $SLIPWAY_RELEASE of $SLIPWAY_COMMIT\" | tee -a ../../activations"
`+dtRemote(srv, string(prod), srv.Port, srv.KnownHostsFile), []*user{alice}, wendy, rita, rob))
	url := d.url("shop")

	// A push to main builds, and the passing build goes to staging by itself.
	// The admin creates the repository; the writer pushes from then on.
	src, rev1 := dtProject(t, wendy, map[string]string{"index.html": "v1\n", "lib.js": "lib v1\n"})
	alice.mustGit(t, src, "push", "-q", url, "main")
	b1 := dtWaitPassed(t, d, wendy, "shop", rev1, 0)
	s1 := dtWaitDeploy(t, d, wendy, "shop", "staging", rev1, 0)
	if s1.State != record.DeploySucceeded || s1.Trigger != record.DeployAuto || s1.BuildID != b1.ID || s1.ReleaseID == "" {
		t.Fatalf("staging deployment of rev1: %+v, want a succeeded auto deployment of build %d", s1, b1.ID)
	}
	if got := staging.live(t); got != s1.ReleaseID {
		t.Fatalf("staging current -> %q, want releases/%s", got, s1.ReleaseID)
	}
	if got := staging.file(t, "current", "index.html"); got != "v1\n" {
		t.Fatalf("staging serves index.html %q, want v1", got)
	}

	// One changed file: a new release in which the unchanged file is the
	// previous release's file (one inode), the changed one is not.
	rev2 := wendy.commit(t, src, "app/index.html", "v2\n")
	wendy.mustGit(t, src, "push", "-q", url, "main")
	s2 := dtWaitDeploy(t, d, wendy, "shop", "staging", rev2, s1.ID)
	if s2.State != record.DeploySucceeded || s2.ReleaseID == s1.ReleaseID {
		t.Fatalf("staging deployment of rev2: %+v, want succeeded into a new release", s2)
	}
	if got := staging.live(t); got != s2.ReleaseID {
		t.Fatalf("staging current -> %q, want releases/%s", got, s2.ReleaseID)
	}
	if got := staging.file(t, "current", "index.html"); got != "v2\n" {
		t.Fatalf("staging serves index.html %q after rev2, want v2", got)
	}
	old, cur := staging.stat(t, s1.ReleaseID, "lib.js"), staging.stat(t, s2.ReleaseID, "lib.js")
	if old.Ino != cur.Ino || cur.Nlink < 2 {
		t.Fatalf("unchanged lib.js: inode %d (links %d) in the new release, %d in the previous; want one hard-linked file", cur.Ino, cur.Nlink, old.Ino)
	}
	if staging.stat(t, s1.ReleaseID, "index.html").Ino == staging.stat(t, s2.ReleaseID, "index.html").Ino {
		t.Fatal("changed index.html shares its inode with the previous release")
	}
	if got := staging.file(t, s1.ReleaseID, "index.html"); got != "v1\n" {
		t.Fatalf("the previous release's index.html became %q; releases must not change", got)
	}

	// A failing build deploys nothing. Its deployments would be recorded with
	// its result, so once the build has ended there is nothing to wait for.
	rev3 := wendy.commit(t, src, "FAIL", "checkout test\n")
	wendy.mustGit(t, src, "push", "-q", url, "main")
	if b3 := dtWaitBuild(t, d, wendy, "shop", rev3, 0); b3.State != record.StateFailed {
		t.Fatalf("build of rev3 %s, want failed", b3.State)
	}
	if ds := dtDeploys(t, d, wendy, "shop", "staging"); len(ds) != 2 || ds[0].ID != s2.ID {
		t.Fatalf("after a failed build staging has deployments %+v, want only the two before", ds)
	}
	if got := staging.live(t); got != s2.ReleaseID {
		t.Fatalf("staging current -> %q after a failed build, want %s still", got, s2.ReleaseID)
	}

	// A branch other than main builds and passes but is never on staging.
	wendy.mustGit(t, src, "checkout", "-q", "-b", "feature", rev2)
	rev4 := wendy.commit(t, src, "app/index.html", "v4 (feature)\n")
	wendy.mustGit(t, src, "push", "-q", url, "feature")
	dtWaitPassed(t, d, wendy, "shop", rev4, 0)

	// The release gate, refusal by refusal. Each is one line naming the ref.
	const ref = "refs/release/prod"
	out, err := wendy.git(src, "push", url, rev2+":"+ref)
	dtRefused(t, out, err, ref, "user wendy may not release repository shop")
	out, err = rob.git(src, "push", url, rev2+":"+ref)
	dtRefused(t, out, err, ref, "user rob is not an approver of prod")
	out, err = rita.git(src, "push", url, rev3+":"+ref)
	dtRefused(t, out, err, ref, "revision "+rev3[:7]+" has no passed build")
	out, err = rita.git(src, "push", url, rev4+":"+ref)
	dtRefused(t, out, err, ref, "revision "+rev4[:7]+" has not been live on staging")
	if got := dtRemoteRef(t, d, rita, "shop", ref); got != "" {
		t.Fatalf("%s exists after refused pushes: %s", ref, got)
	}
	if ds := dtDeploys(t, d, rita, "shop", "prod"); len(ds) != 0 {
		t.Fatalf("refused releases recorded deployments: %+v", ds)
	}
	if _, err := os.Lstat(string(prod)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("refused releases touched the prod host: %v", err)
	}

	// A good release: the push streams the deployment and returns with it done.
	out, err = rita.git(src, "push", url, rev1+":"+ref)
	if err != nil {
		t.Fatalf("release of rev1: %v\n%s", err, out)
	}
	p1 := dtDeploys(t, d, rita, "shop", "prod")
	if len(p1) != 1 || p1[0].State != record.DeploySucceeded || p1[0].Commit != rev1 || p1[0].Trigger != record.DeployRelease || p1[0].User != "rita" || p1[0].BuildID != b1.ID {
		t.Fatalf("when the release push returned, prod had %+v; want one succeeded release of build %d by rita", p1, b1.ID)
	}
	for _, want := range []string{
		fmt.Sprintf("deployment #%d queued: shop @ %s to prod (release by rita)", p1[0].ID, rev1[:7]),
		"==> rsync to releases/" + p1[0].ReleaseID + ".partial",
		"activated " + p1[0].ReleaseID + " of " + rev1,
		fmt.Sprintf("deployment #%d to prod succeeded in ", p1[0].ID),
	} {
		if !strings.Contains(out, want) {
			t.Fatalf("the release push did not show %q:\n%s", want, out)
		}
	}
	if got := prod.live(t); got != p1[0].ReleaseID || prod.file(t, "current", "index.html") != "v1\n" {
		t.Fatalf("prod current -> %q, want %s serving v1", got, p1[0].ReleaseID)
	}

	// -o nowait returns once the deployment is queued; it still completes.
	out, err = rita.git(src, "push", "-o", "nowait", url, rev2+":"+ref)
	if err != nil {
		t.Fatalf("release of rev2 with nowait: %v\n%s", err, out)
	}
	if !strings.Contains(out, "to prod (release by rita)") || strings.Contains(out, "==> ") || strings.Contains(out, "to prod succeeded") {
		t.Fatalf("a nowait release push should say the deployment is queued and not stream it:\n%s", out)
	}
	p2 := dtWaitDeploy(t, d, rita, "shop", "prod", rev2, p1[0].ID)
	if p2.State != record.DeploySucceeded || prod.live(t) != p2.ReleaseID || prod.file(t, "current", "index.html") != "v2\n" {
		t.Fatalf("nowait release of rev2: %+v, prod current -> %q; want it live", p2, prod.live(t))
	}

	// Rollback: pushing the older revision redeploys its artifacts. Nothing
	// is built, and the release still on the host goes live again as it was.
	// rev1 is an ancestor of rev2, so git wants the move forced ("+").
	builds := len(btBuilds(t, d, rita, "shop"))
	out, err = rita.git(src, "push", url, "+"+rev1+":"+ref)
	if err != nil {
		t.Fatalf("rollback to rev1: %v\n%s", err, out)
	}
	p3 := dtDeploys(t, d, rita, "shop", "prod")[0]
	if p3.Trigger != record.DeployRollback || p3.State != record.DeploySucceeded || p3.BuildID != b1.ID || p3.ReleaseID != p1[0].ReleaseID {
		t.Fatalf("rollback deployment %+v, want a succeeded rollback of build %d into release %s", p3, b1.ID, p1[0].ReleaseID)
	}
	if !strings.Contains(out, "(rollback by rita)") || !strings.Contains(out, "already on the target; switching without transfer") {
		t.Fatalf("the rollback push did not show a rollback without transfer:\n%s", out)
	}
	if n := len(btBuilds(t, d, rita, "shop")); n != builds {
		t.Fatalf("the rollback made %d new builds, want none", n-builds)
	}
	if prod.live(t) != p1[0].ReleaseID || prod.file(t, "current", "index.html") != "v1\n" {
		t.Fatalf("prod current -> %q after the rollback, want %s serving v1", prod.live(t), p1[0].ReleaseID)
	}
	acts, err := os.ReadFile(filepath.Join(string(prod), "activations"))
	if err != nil || strings.Count(string(acts), "\n") != 3 {
		t.Fatalf("activate ran %q (%v), want once per prod deployment", acts, err)
	}

	// Release refs cannot be deleted, not even by an admin.
	for _, u := range []*user{rita, alice} {
		out, err = u.git(src, "push", url, ":"+ref)
		dtRefused(t, out, err, ref, "release refs cannot be deleted")
	}
	if got := dtRemoteRef(t, d, rita, "shop", ref); got != rev1 {
		t.Fatalf("%s -> %q after refused deletes, want %s", ref, got, rev1)
	}

	// What happened, as the commands tell it.
	hist, _, code := d.ssh(wendy, "deploys", "shop", "prod")
	lines := strings.Split(strings.TrimSpace(hist), "\n")
	if code != 0 || len(lines) != 4 || !strings.HasPrefix(lines[0], "ID") {
		t.Fatalf("deploys shop prod: exit %d\n%s", code, hist)
	}
	for i, want := range [][]string{
		{strconv.FormatInt(p3.ID, 10), "prod", rev1[:7], "succeeded", "rollback", "rita", p1[0].ReleaseID},
		{strconv.FormatInt(p2.ID, 10), "prod", rev2[:7], "succeeded", "release", "rita", p2.ReleaseID},
		{strconv.FormatInt(p1[0].ID, 10), "prod", rev1[:7], "succeeded", "release", "rita", p1[0].ReleaseID},
	} {
		if f := strings.Fields(lines[i+1]); len(f) < len(want) || !dtHasAll(f, want) {
			t.Fatalf("deploys shop prod row %d = %q, want the fields %q", i+1, lines[i+1], want)
		}
	}
	rels, _, code := d.ssh(wendy, "releases", "shop", "prod")
	if code != 0 || !dtRowHas(rels, p1[0].ReleaseID, rev1[:7], "live") || !dtRowHas(rels, p2.ReleaseID, rev2[:7]) ||
		strings.Count(rels, "live") != 1 {
		t.Fatalf("releases shop prod: exit %d\n%s", code, rels)
	}
	if log := dtDeployLog(t, d, wendy, p3.ID); !strings.Contains(log, "rollback by rita") ||
		!strings.Contains(log, fmt.Sprintf("deployment #%d succeeded", p3.ID)) {
		t.Fatalf("log deploy %d:\n%s", p3.ID, log)
	}
}

// dtHasAll reports whether every one of want is among fields.
func dtHasAll(fields, want []string) bool {
	for _, w := range want {
		if !slices.Contains(fields, w) {
			return false
		}
	}
	return true
}

// dtRowHas reports whether one line of a table holds all of want as fields.
func dtRowHas(table string, want ...string) bool {
	for _, l := range strings.Split(table, "\n") {
		if dtHasAll(strings.Fields(l), want) {
			return true
		}
	}
	return false
}

// TestDeployActivateFailureSwitchesBack releases to a local-folder target
// whose second release fails to start: current goes back to the first
// release, whose activate runs again, the deployment is rolled_back, and the
// pusher is told.
func TestDeployActivateFailureSwitchesBack(t *testing.T) {
	t.Parallel()
	alice, rita := newUser(t, "alice"), newUser(t, "rita")
	prod := dtTarget(filepath.Join(t.TempDir(), "prod"))
	d := startDaemon(t, configFor(fmt.Sprintf(`
[[repo]]
name = "api"
read = ["*"]
release = ["rita"]
  [[repo.environment]]
  name = "prod"
  target = %q
  activate = "sh dist/start.sh"
`, string(prod)), []*user{alice}, rita))
	url := d.url("api")

	src, rev1 := dtProject(t, alice, map[string]string{
		"start.sh": `echo "started $SLIPWAY_RELEASE" >> ../../started` + "\n",
	})
	alice.mustGit(t, src, "push", "-q", url, "main")
	rev2 := alice.commit(t, src, "app/start.sh", "echo 'port 8080 is taken' >&2; exit 3\n")
	alice.mustGit(t, src, "push", "-q", url, "main")
	for _, rev := range []string{rev1, rev2} {
		dtWaitPassed(t, d, alice, "api", rev, 0)
	}

	rita.mustGit(t, src, "push", url, rev1+":refs/release/prod")
	first := dtDeploys(t, d, rita, "api", "prod")[0]
	if first.State != record.DeploySucceeded || prod.live(t) != first.ReleaseID {
		t.Fatalf("first release %+v, current -> %q", first, prod.live(t))
	}

	out := rita.mustGit(t, src, "push", url, rev2+":refs/release/prod")
	second := dtDeploys(t, d, rita, "api", "prod")[0]
	if second.Commit != rev2 || second.State != record.DeployRolledBack {
		t.Fatalf("release whose activate fails: %+v, want rolled_back", second)
	}
	if !strings.Contains(second.Reason, "exit 3") || !strings.Contains(second.Reason, "switched back to release "+first.ReleaseID) {
		t.Fatalf("rolled back with reason %q, want the exit status and the release switched back to", second.Reason)
	}
	for _, want := range []string{"port 8080 is taken", "switching back to release " + first.ReleaseID,
		fmt.Sprintf("deployment #%d to prod rolled_back in ", second.ID)} {
		if !strings.Contains(out, want) {
			t.Fatalf("the pusher was not told %q:\n%s", want, out)
		}
	}
	if got := prod.live(t); got != first.ReleaseID {
		t.Fatalf("current -> %q after a failed activate, want %s back", got, first.ReleaseID)
	}
	started, err := os.ReadFile(filepath.Join(string(prod), "started"))
	want := strings.Repeat("started "+first.ReleaseID+"\n", 2)
	if err != nil || string(started) != want {
		t.Fatalf("activations %q (%v), want the first release started at its release and again after the switch back", started, err)
	}
	if rels, _, _ := d.ssh(rita, "releases", "api", "prod"); !dtRowHas(rels, first.ReleaseID, "live") {
		t.Fatalf("releases api prod does not show %s live:\n%s", first.ReleaseID, rels)
	}
}

// TestDeployWrongHostKeyIsRefused gives an environment a known_hosts file
// that pins another key for the real sshd: the deployment fails saying so
// and nothing reaches the host.
func TestDeployWrongHostKeyIsRefused(t *testing.T) {
	t.Parallel()
	alice := newUser(t, "alice")
	srv := sshdtest.New(t)
	impostor := newUser(t, "impostor") // any other ed25519 key will do
	f := strings.Fields(impostor.pub)
	knownHosts := dtKnownHosts(t, srv.Port, f[0]+" "+f[1])
	staging := dtTarget(filepath.Join(t.TempDir(), "staging"))
	d := startDaemon(t, configFor(`
[[repo]]
name = "web"
  [[repo.environment]]
  name = "staging"
  auto = "main"
`+dtRemote(srv, string(staging), srv.Port, knownHosts), []*user{alice}))

	src, rev := dtProject(t, alice, map[string]string{"index.html": "hi\n"})
	alice.mustGit(t, src, "push", "-q", d.url("web"), "main")
	dtWaitPassed(t, d, alice, "web", rev, 0)
	dep := dtWaitDeploy(t, d, alice, "web", "staging", rev, 0)
	if dep.State != record.DeployFailed || !strings.Contains(dep.Reason, "host key verification failed for 127.0.0.1:"+strconv.Itoa(srv.Port)) {
		t.Fatalf("deployment with a wrong host key: %s (%s), want failed on the host key", dep.State, dep.Reason)
	}
	if _, err := os.Lstat(string(staging)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a host with the wrong key was changed: %v", err)
	}
	if log := dtDeployLog(t, d, alice, dep.ID); !strings.Contains(log, "failed: host key verification failed") {
		t.Fatalf("log deploy %d does not say the host key was refused:\n%s", dep.ID, log)
	}
}

// TestDeployTargetLostMidTransferThenRetry stops the staging host's sshd
// while rsync is shipping a release: the deployment fails, current stays on
// the previous complete release, and once the host is back a retry of the
// build ships the release and clears the partial one.
func TestDeployTargetLostMidTransferThenRetry(t *testing.T) {
	t.Parallel()
	alice, wendy := newUser(t, "alice"), newUser(t, "wendy")
	srv := sshdtest.New(t)
	gate := dtNewGate(t, srv.Addr())
	staging := dtTarget(filepath.Join(t.TempDir(), "staging"))
	d := startDaemon(t, configFor(`
[[repo]]
name = "site"
read = ["*"]
write = ["wendy"]
  [[repo.environment]]
  name = "staging"
  auto = "main"
`+dtRemote(srv, string(staging), gate.port(), dtKnownHosts(t, gate.port(), srv.HostPublicKey)), []*user{alice}, wendy))
	url := d.url("site")

	src, rev1 := dtProject(t, wendy, map[string]string{"index.html": "v1\n"})
	alice.mustGit(t, src, "push", "-q", url, "main") // the admin creates the repository
	d1 := dtWaitDeploy(t, d, wendy, "site", "staging", rev1, 0)
	if d1.State != record.DeploySucceeded {
		t.Fatalf("first deployment %s: %s", d1.State, d1.Reason)
	}

	rev2 := wendy.commit(t, src, "BIG", strconv.Itoa(dtBig))
	held := gate.arm(1 << 20)
	wendy.mustGit(t, src, "push", "-q", url, "main")
	b2 := dtWaitPassed(t, d, wendy, "site", rev2, 0)
	dtHeld(t, held)
	running := dtDeploys(t, d, wendy, "site", "staging")[0]
	if running.Commit != rev2 || running.State != record.DeployRunning {
		t.Fatalf("while the transfer is held the newest deployment is %+v, want rev2 running", running)
	}
	if log := dtDeployLog(t, d, wendy, running.ID); !strings.Contains(log, "==> rsync to releases/"+running.ReleaseID+".partial") {
		t.Fatalf("the deployment log does not show the transfer under way:\n%s", log)
	}
	srv.Stop()

	failed := dtWaitDeploy(t, d, wendy, "site", "staging", rev2, d1.ID)
	if failed.ID != running.ID || failed.State != record.DeployFailed || !strings.Contains(failed.Reason, "connection to the target was lost") {
		t.Fatalf("deployment cut by the host's sshd stopping: %+v, want failed, connection lost", failed)
	}
	if got := staging.live(t); got != d1.ReleaseID || staging.file(t, "current", "index.html") != "v1\n" {
		t.Fatalf("current -> %q after the cut transfer, want %s still", got, d1.ReleaseID)
	}
	if rels := staging.releases(t); slices.Contains(rels, failed.ReleaseID) || !slices.Contains(rels, failed.ReleaseID+".partial") {
		t.Fatalf("releases on staging after the cut transfer: %q, want %s only as a partial release", rels, failed.ReleaseID)
	}

	srv.Start()
	gate.open()
	out := mustSSH(t, d, wendy, "retry", strconv.FormatInt(b2.ID, 10))
	b3 := dtWaitBuild(t, d, wendy, "site", rev2, b2.ID)
	if b3.State != record.StatePassed {
		t.Fatalf("retried build %s: %s", b3.State, out)
	}
	d3 := dtWaitDeploy(t, d, wendy, "site", "staging", rev2, failed.ID)
	if d3.State != record.DeploySucceeded || staging.live(t) != d3.ReleaseID {
		t.Fatalf("deployment after the host came back: %+v, current -> %q", d3, staging.live(t))
	}
	if log := dtDeployLog(t, d, wendy, d3.ID); !strings.Contains(log, "removed stale partial release "+failed.ReleaseID+".partial") {
		t.Fatalf("log deploy %d does not say the cut release's partial folder was removed:\n%s", d3.ID, log)
	}
	if fi, err := os.Stat(filepath.Join(string(staging), "current", "dist", "big.bin")); err != nil || fi.Size() != dtBig {
		t.Fatalf("big.bin on staging after the retry: %v, %v", fi, err)
	}
	if rels := staging.releases(t); !slices.Equal(rels, []string{d1.ReleaseID, d3.ReleaseID}) && !slices.Equal(rels, []string{d3.ReleaseID, d1.ReleaseID}) {
		t.Fatalf("releases on staging after the retry: %q, want %s and %s with no partial left", rels, d1.ReleaseID, d3.ReleaseID)
	}
}

// TestDeployDaemonKilledMidTransfer kills the daemon with SIGKILL while a
// release is in flight: after a restart the deployment is recorded failed
// (not running for ever), current still serves the previous release, and
// the next release goes through.
func TestDeployDaemonKilledMidTransfer(t *testing.T) {
	t.Parallel()
	alice, rita := newUser(t, "alice"), newUser(t, "rita")
	srv := sshdtest.New(t)
	gate := dtNewGate(t, srv.Addr())
	prod := dtTarget(filepath.Join(t.TempDir(), "prod"))
	d := startDaemon(t, configFor(`
[[repo]]
name = "app"
read = ["*"]
release = ["rita"]
  [[repo.environment]]
  name = "prod"
`+dtRemote(srv, string(prod), gate.port(), dtKnownHosts(t, gate.port(), srv.HostPublicKey)), []*user{alice}, rita))
	url := d.url("app")

	src, rev1 := dtProject(t, alice, map[string]string{"index.html": "v1\n"})
	alice.mustGit(t, src, "push", "-q", url, "main")
	rev2 := alice.commit(t, src, "BIG", strconv.Itoa(dtBig))
	alice.mustGit(t, src, "push", "-q", url, "main")
	for _, rev := range []string{rev1, rev2} {
		dtWaitPassed(t, d, alice, "app", rev, 0)
	}
	rita.mustGit(t, src, "push", url, rev1+":refs/release/prod")
	live := prod.live(t)
	if live == "" {
		t.Fatal("rev1 not live on prod")
	}

	// Release rev2 and kill the daemon once its transfer is under way and
	// the pusher has seen it start.
	held := gate.arm(1 << 20)
	push := execGit(src, rita.env(), "push", url, rev2+":refs/release/prod")
	var pushOut testutil.Buffer
	push.Stdout, push.Stderr = &pushOut, &pushOut
	if err := push.Start(); err != nil {
		t.Fatal(err)
	}
	dtHeld(t, held)
	d.eventually(t, time.Minute, "the pusher to see the transfer start", func() bool {
		return strings.Contains(pushOut.String(), "==> rsync to releases/")
	})
	d.kill()
	_ = push.Wait() // the daemon's end is the push's end; its status is not the point
	if got := prod.live(t); got != live || prod.file(t, "current", "index.html") != "v1\n" {
		t.Fatalf("current -> %q after the daemon died mid-transfer, want %s still", got, live)
	}
	gate.open()

	d.start()
	url = d.url("app") // a new port
	ds := dtDeploys(t, d, rita, "app", "prod")
	cut := ds[0]
	if cut.Commit != rev2 || cut.State != record.DeployFailed || cut.Reason != record.RecoveredDeployReason {
		t.Fatalf("after the restart the cut deployment is %+v, want failed: %s", cut, record.RecoveredDeployReason)
	}
	if log := dtDeployLog(t, d, rita, cut.ID); !strings.Contains(log, "==> rsync to") || !strings.Contains(log, "the daemon stopped during deployment") {
		t.Fatalf("log deploy %d does not tell the story:\n%s", cut.ID, log)
	}
	if got := prod.live(t); got != live {
		t.Fatalf("current -> %q after the restart, want %s", got, live)
	}
	if rels := prod.releases(t); !slices.Contains(rels, cut.ReleaseID+".partial") || slices.Contains(rels, cut.ReleaseID) {
		t.Fatalf("releases on prod after the kill: %q, want %s only as a partial release", rels, cut.ReleaseID)
	}

	// The environment is not stuck: the next release goes through and the
	// partial release of the cut one is gone.
	rev3 := alice.commit(t, src, "app/index.html", "v3\n")
	alice.mustGit(t, src, "push", "-q", url, "main")
	dtWaitPassed(t, d, alice, "app", rev3, 0)
	out, err := rita.git(src, "push", url, rev3+":refs/release/prod")
	if err != nil || !strings.Contains(out, "to prod succeeded") {
		t.Fatalf("release after the restart: %v\n%s", err, out)
	}
	next := dtDeploys(t, d, rita, "app", "prod")[0]
	if next.Commit != rev3 || prod.live(t) != next.ReleaseID || prod.file(t, "current", "index.html") != "v3\n" {
		t.Fatalf("release after the restart: %+v, current -> %q", next, prod.live(t))
	}
	for _, r := range prod.releases(t) {
		if strings.HasSuffix(r, ".partial") {
			t.Fatalf("partial release %s left on prod after a successful release", r)
		}
	}
}

// dtHeld waits for a gate to hold a transfer.
func dtHeld(t *testing.T, held <-chan struct{}) {
	t.Helper()
	select {
	case <-held:
	case <-time.After(2 * time.Minute):
		t.Fatal("timed out waiting for the transfer to reach the gate's limit")
	}
}

// dtGate is a TCP relay in front of a target's sshd that can stall the
// line. Armed, it forwards a given number of bytes towards the target and
// then holds the rest, as a link that stops mid-transfer would, so that a
// test acts while a transfer is certainly under way rather than racing a
// fast loopback copy. Replies from the target always flow.
type dtGate struct {
	ln       net.Listener
	upstream string
	wg       sync.WaitGroup

	mu       sync.Mutex
	limit    int64         // bytes still allowed towards the target; < 0: no limit
	held     chan struct{} // closed once the limit is reached
	isHeld   bool
	resume   chan struct{} // closed by open
	conns    map[net.Conn]struct{}
	released bool
}

func dtNewGate(t *testing.T, upstream string) *dtGate {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &dtGate{ln: ln, upstream: upstream, limit: -1, conns: map[net.Conn]struct{}{}}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			g.wg.Add(1)
			go func() {
				defer g.wg.Done()
				g.relay(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		g.open()
		g.mu.Lock()
		g.released = true
		for c := range g.conns {
			c.Close()
		}
		g.mu.Unlock()
		g.wg.Wait()
	})
	return g
}

func (g *dtGate) port() int { return g.ln.Addr().(*net.TCPAddr).Port }

// arm lets n more bytes through towards the target, then holds. The
// returned channel is closed when the gate holds.
func (g *dtGate) arm(n int64) <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.limit, g.held, g.isHeld, g.resume = n, make(chan struct{}), false, make(chan struct{})
	return g.held
}

// open lets everything through again, what was held first.
func (g *dtGate) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.limit = -1
	if g.resume != nil {
		close(g.resume)
		g.resume = nil
	}
}

// take grants up to n bytes towards the target. When it grants fewer, the
// caller waits for the returned channel before asking again.
func (g *dtGate) take(n int64) (int64, <-chan struct{}) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.limit < 0 {
		return n, nil
	}
	grant := min(n, g.limit)
	g.limit -= grant
	if grant == n {
		return grant, nil
	}
	if !g.isHeld {
		g.isHeld = true
		close(g.held)
	}
	return grant, g.resume
}

func (g *dtGate) relay(c net.Conn) {
	s, err := net.Dial("tcp", g.upstream)
	if err != nil {
		c.Close()
		return
	}
	g.mu.Lock()
	if g.released {
		g.mu.Unlock()
		c.Close()
		s.Close()
		return
	}
	g.conns[c], g.conns[s] = struct{}{}, struct{}{}
	g.mu.Unlock()
	done := make(chan struct{})
	var once sync.Once
	end := func() {
		once.Do(func() {
			close(done)
			c.Close()
			s.Close()
			g.mu.Lock()
			delete(g.conns, c)
			delete(g.conns, s)
			g.mu.Unlock()
		})
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		defer end()
		_, _ = io.Copy(c, s)
	}()
	go func() {
		defer wg.Done()
		defer end()
		g.forward(s, c, done)
	}()
	wg.Wait()
}

// forward copies src to dst through the gate's limit.
func (g *dtGate) forward(dst, src net.Conn, done <-chan struct{}) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		p := buf[:n]
		for len(p) > 0 {
			grant, wait := g.take(int64(len(p)))
			if grant > 0 {
				if _, werr := dst.Write(p[:grant]); werr != nil {
					return
				}
				p = p[grant:]
			}
			if wait != nil {
				select {
				case <-wait:
				case <-done:
					return
				}
			}
		}
		if err != nil {
			return
		}
	}
}

// BenchmarkReleasePush times `git push <rev>:refs/release/prod` of a small
// artifact, from the start of the push until it returns with the deployment
// done, to a local-folder target and to a real sshd on loopback. Each
// iteration releases a new passed revision, so each ships a new release
// hard-linked against the previous one. As a baseline in the same run it
// times a push of a branch that does not build (SSH, git and the hooks, no
// deployment). It runs the binary built without -race (releaseBin), because the figure
// is about the product, and reports p50/p90 and the ratio to the baseline.
//
//	go test -run '^$' -bench BenchmarkReleasePush -benchtime 20x ./e2e
func BenchmarkReleasePush(b *testing.B) {
	bin := mustReleaseBin(b)
	b.Run("local", func(b *testing.B) {
		dtBenchRelease(b, bin, func(path string) string { return fmt.Sprintf("  target = %q\n", path) })
	})
	b.Run("sshd", func(b *testing.B) {
		srv := sshdtest.New(b)
		dtBenchRelease(b, bin, func(path string) string { return dtRemote(srv, path, srv.Port, srv.KnownHostsFile) })
	})
}

// dtBenchRelease runs BenchmarkReleasePush against the prod target that
// target renders for a folder.
func dtBenchRelease(b *testing.B, bin string, target func(path string) string) {
	root := b.TempDir()
	u := newUser(b, "bench")
	prod := filepath.Join(root, "prod")
	cfg := configFor(`
[[repo]]
name = "app"
build_branches = ["main"]
  [[repo.environment]]
  name = "prod"
`+target(prod), []*user{u})
	addr := startDaemonIn(b, bin, root, cfg).addr
	url := "ssh://git@" + addr + "/app"

	src := filepath.Join(root, "src")
	files := map[string]string{".slipway.toml": dtPipeline, "build.sh": dtBuildScript, "app/index.html": "0\n", "app/lib.js": strings.Repeat("x", 20<<10)}
	for name, body := range files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(src, name)), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, name), []byte(body), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	git := func(args ...string) string {
		out, err := u.git(src, args...)
		if err != nil {
			b.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	git("init", "-q", "-b", "main")
	// newRevision commits, pushes main and waits (-o wait) for its build.
	newRevision := func(i int) string {
		if err := os.WriteFile(filepath.Join(src, "app", "index.html"), []byte(strconv.Itoa(i)+"\n"), 0o644); err != nil {
			b.Fatal(err)
		}
		git("add", "-A")
		git("commit", "-q", "-m", "revision "+strconv.Itoa(i))
		if out := git("push", "-o", "wait", url, "main"); !strings.Contains(out, "passed") {
			b.Fatalf("build did not pass:\n%s", out)
		}
		return strings.TrimSpace(git("rev-parse", "HEAD"))
	}
	rev := newRevision(0)
	git("push", "-q", url, rev+":refs/release/prod") // the first release has nothing to link against

	var release, plain []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		rev = newRevision(i + 1)
		b.StartTimer()
		start := time.Now()
		out := git("push", url, rev+":refs/release/prod")
		release = append(release, time.Since(start))
		if !strings.Contains(out, "to prod succeeded") {
			b.Fatalf("release push did not end with the deployment done:\n%s", out)
		}
		b.StopTimer()
		start = time.Now()
		git("push", "-q", url, rev+":refs/heads/plain-"+strconv.Itoa(i))
		plain = append(plain, time.Since(start))
		b.StartTimer()
	}
	b.StopTimer()
	if l, err := os.Readlink(filepath.Join(prod, "current")); err != nil || !strings.HasSuffix(l, rev[:7]) {
		b.Fatalf("prod current -> %q (%v), want the last revision %s", l, err, rev[:7])
	}
	rp50, pp50 := percentile(release, 50), percentile(plain, 50)
	b.ReportMetric(float64(rp50.Milliseconds()), "p50-ms")
	b.ReportMetric(float64(percentile(release, 90).Milliseconds()), "p90-ms")
	b.ReportMetric(float64(pp50.Milliseconds()), "plain-push-p50-ms")
	b.ReportMetric(float64(rp50)/float64(pp50), "x-plain-push")
}
