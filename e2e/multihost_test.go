package e2e

// End-to-end tests of environments of many hosts (issue 16) against the
// real binary: every host is a real OpenSSH sshd on loopback
// (internal/sshdtest) with its own host key and its own target folder. A
// release is transferred to every host before any is switched, switched in
// batches with activate and a health check, and switched back everywhere
// when one host fails; a daemon killed between two batches is settled at
// the next start. Everything here is prefixed mh so that it cannot collide
// with the other files of this package.

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"slipway/internal/sshdtest"
	"slipway/record"
	"slipway/store"
)

// mhHost is one host of an environment: a real sshd and the folder the
// environment's releases live in on it.
type mhHost struct {
	srv *sshdtest.Server
	dir dtTarget
}

// mhNewHosts starts n hosts.
func mhNewHosts(t *testing.T, n int) []mhHost {
	t.Helper()
	hs := make([]mhHost, n)
	for i := range hs {
		hs[i] = mhHost{srv: sshdtest.New(t), dir: dtTarget(filepath.Join(t.TempDir(), "app"))}
	}
	return hs
}

// name is the host as Slipway names it in reasons, logs and listings.
func (h mhHost) name() string {
	return fmt.Sprintf("ssh://%s@%s:%d%s", h.srv.User, h.srv.Host, h.srv.Port, string(h.dir))
}

// table is the host as an inline table of targets, with its own key and
// known_hosts.
func (h mhHost) table() string {
	return fmt.Sprintf("{ target = %q, port = %d, ssh_key = %q, known_hosts = %q }",
		h.srv.User+"@"+h.srv.Host+":"+string(h.dir), h.srv.Port, h.srv.KeyFile, h.srv.KnownHostsFile)
}

// path is a file in the host's target folder (beside releases/ and current).
func (h mhHost) path(name string) string { return filepath.Join(string(h.dir), name) }

// activations are the releases whose activate ran on the host, in order,
// as mhActivate records them.
func (h mhHost) activations(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(h.path("activations"))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(b))
}

// mhActivate records each activation in the target folder (activate runs
// in <target>/releases/<id>) and then runs more, when not empty.
func mhActivate(more string) string {
	a := `echo "$SLIPWAY_RELEASE" >> ../../activations`
	if more != "" {
		a += "; " + more
	}
	return a
}

// mhEnv renders an environment whose hosts are inline tables.
func mhEnv(name string, hosts []mhHost, extra string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "  [[repo.environment]]\n  name = %q\n%s  targets = [\n", name, extra)
	for _, h := range hosts {
		fmt.Fprintf(&b, "    %s,\n", h.table())
	}
	b.WriteString("  ]\n")
	return b.String()
}

// mhRepo is a repository "app" with the given environments.
func mhRepo(envs ...string) string {
	return "\n[[repo]]\nname = \"app\"\nread = [\"*\"]\n" + strings.Join(envs, "")
}

// host is the part of host h in the deployment; it fails the test when
// the deployment does not list h.
func (dep dtDeploy) host(t *testing.T, h mhHost) dtDeployHost {
	t.Helper()
	for _, dh := range dep.Hosts {
		if dh.Host == h.name() {
			return dh
		}
	}
	t.Fatalf("deployment #%d does not list host %s: %+v", dep.ID, h.name(), dep.Hosts)
	return dtDeployHost{}
}

// mhDeployment is deployment id of app as `deploys --json` shows it now.
func mhDeployment(t *testing.T, d *daemon, u *user, env string, id int64) dtDeploy {
	t.Helper()
	return mustFind(t, dtDeployViews(t, d, u, "app", env), func(dep dtDeploy) bool { return dep.ID == id },
		fmt.Sprintf("deployment #%d to %s is not listed", id, env))
}

// mhDaemon is a test's daemon, its store (read directly, so that waiting
// costs a query, not an ssh login to a race-built daemon, on machines with
// few cores shared by four tests) and the user the test acts as.
type mhDaemon struct {
	*daemon
	db *store.Store
	u  *user
}

func mhStart(t *testing.T, u *user, config string) *mhDaemon {
	t.Helper()
	d := startDaemon(t, config)
	return &mhDaemon{daemon: d, db: d.store(t), u: u}
}

// mhFinal reports whether a deployment state is an end state.
func mhFinal(st record.DeployState) bool {
	return st != record.DeployQueued && st != record.DeployRunning
}

// mhWait waits for a deployment of commit to env, newer than deployment
// after, to end, and returns it as `deploys --json` shows it.
func mhWait(t *testing.T, d *mhDaemon, env, commit string, after int64) dtDeploy {
	t.Helper()
	return dtWaitDeployView(t, d.daemon, d.u, "app", env, commit, after)
}

// mhWaitID waits for deployment id to end.
func mhWaitID(t *testing.T, d *mhDaemon, env string, id int64) dtDeploy {
	t.Helper()
	d.eventually(t, 3*time.Minute, fmt.Sprintf("deployment #%d to end", id), func() bool {
		dep, err := d.db.GetDeployment(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		return mhFinal(dep.State)
	})
	return mhDeployment(t, d.daemon, d.u, env, id)
}

// mhPushAndDeploy commits body to app/index.html (unless body is empty),
// pushes main and waits for its build to pass and for the deployment to env
// that follows it.
func mhPushAndDeploy(t *testing.T, d *mhDaemon, src, body, env string, after int64) (string, dtDeploy) {
	t.Helper()
	u := d.u
	rev := u.head(t, src)
	if body != "" {
		rev = u.commit(t, src, "app/index.html", body)
	}
	u.mustGit(t, src, "push", "-q", d.url("app"), "main")
	dtWaitPassed(t, d.daemon, u, "app", rev, 0)
	return rev, mhWait(t, d, env, rev, after)
}

// mhFirstDeploy makes the project of d's user with app/index.html v1 and
// pushes it; its deployment to prod must succeed.
func mhFirstDeploy(t *testing.T, d *mhDaemon) (src string, d1 dtDeploy) {
	t.Helper()
	src, _ = dtProject(t, d.u, map[string]string{"index.html": "v1\n"})
	_, d1 = mhPushAndDeploy(t, d, src, "", "prod", 0)
	if d1.State != record.DeploySucceeded {
		t.Fatalf("first deployment %s (%s)", d1.State, d1.Reason)
	}
	return src, d1
}

// mhSwitchedAndBack checks that each of hosts (the first ones of the
// environment) ran activate for prev, then next, then prev again: it was
// switched (its activate ran for the new release), then back (the
// previous release's activate ran again).
func mhSwitchedAndBack(t *testing.T, hosts []mhHost, prev, next string) {
	t.Helper()
	for i, h := range hosts {
		if got, want := h.activations(t), []string{prev, next, prev}; !slices.Equal(got, want) {
			t.Errorf("host %d ran activate for %q, want %q", i+1, got, want)
		}
	}
}

// mhNeverSwitched checks that hosts[from:] ran activate only for prev.
func mhNeverSwitched(t *testing.T, hosts []mhHost, from int, prev string) {
	t.Helper()
	for i, h := range hosts[from:] {
		if got := h.activations(t); !slices.Equal(got, []string{prev}) {
			t.Errorf("host %d ran activate for %q, want only %s: it is never switched", from+i+1, got, prev)
		}
	}
}

// mhAllOn checks that every host's current points at release.
func mhAllOn(t *testing.T, hosts []mhHost, release, when string) {
	t.Helper()
	for i, h := range hosts {
		if got := h.dir.live(t); got != release {
			t.Errorf("%s: host %d current -> %q, want releases/%s", when, i+1, got, release)
		}
	}
}

// mhAllServe checks that every host's current release serves index.html
// with the body want.
func mhAllServe(t *testing.T, hosts []mhHost, want, when string) {
	t.Helper()
	for i, h := range hosts {
		if got := h.dir.file(t, "current", "index.html"); got != want {
			t.Errorf("%s: host %d serves index.html %q, want %q", when, i+1, got, want)
		}
	}
}

// mhStates checks each host's state in dep, in the order of hosts.
func mhStates(t *testing.T, dep dtDeploy, hosts []mhHost, want ...record.HostState) {
	t.Helper()
	if len(dep.Hosts) != len(hosts) {
		t.Errorf("deployment #%d lists %d hosts, want %d: %+v", dep.ID, len(dep.Hosts), len(hosts), dep.Hosts)
	}
	for i, h := range hosts {
		if got := dep.host(t, h); got.State != want[i] {
			t.Errorf("deployment #%d: host %d is %s (%s), want %s", dep.ID, i+1, got.State, got.Detail, want[i])
		}
	}
}

// mhHostsColumn is the HOSTS column of deployment id in `deploys app env`.
func mhHostsColumn(t *testing.T, d *daemon, u *user, env string, id int64) string {
	t.Helper()
	out := mustSSH(t, d, u, "deploys", "app", env)
	lines := strings.Split(out, "\n")
	col := strings.Index(lines[0], "HOSTS")
	end := strings.Index(lines[0], "REASON")
	if col < 0 || end < col {
		t.Fatalf("deploys app %s has no HOSTS column before REASON:\n%s", env, out)
	}
	for _, l := range lines[1:] {
		if f := strings.Fields(l); len(f) > 0 && f[0] == strconv.FormatInt(id, 10) && len(l) >= end {
			return strings.TrimSpace(l[col:end])
		}
	}
	t.Fatalf("deploys app %s does not list #%d:\n%s", env, id, out)
	return ""
}

// mhReleaseHost is one host of `releases --json`.
type mhReleaseHost struct {
	Host           string           `json:"host"`
	Live           string           `json:"live"`
	Error          string           `json:"error"`
	LastDeployment int64            `json:"last_deployment"`
	LastState      record.HostState `json:"last_state"`
	LastDetail     string           `json:"last_detail"`
}

// mhReleases runs `releases app env` and `releases app env --json` and
// returns the text and the hosts each shows: the text's HOST table as
// fields by host name, and from the JSON each host's live release (the
// releases' live_on). A JSON that names no host is an error of the test
// (Errorf), not the end of it.
func mhReleases(t *testing.T, d *daemon, u *user, env string) (string, map[string][]string, map[string]mhReleaseHost) {
	t.Helper()
	out := mustSSH(t, d, u, "releases", "app", env)
	rows := map[string][]string{}
	in := false
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) > 0 && f[0] == "HOST":
			in = true
		case in && len(f) >= 4:
			rows[f[0]] = f
		}
	}
	if !in {
		t.Errorf("releases app %s has no HOST table:\n%s", env, out)
	}
	js := mustSSH(t, d, u, "releases", "app", env, "--json")
	// --json keeps its array of releases; each names the hosts it is
	// live on.
	hosts := map[string]mhReleaseHost{}
	var rels []struct {
		ID     string   `json:"id"`
		LiveOn []string `json:"live_on"`
	}
	if err := json.Unmarshal([]byte(js), &rels); err != nil {
		t.Errorf("releases app %s --json: %v\n%s", env, err, js)
	}
	for _, r := range rels {
		for _, h := range r.LiveOn {
			hosts[h] = mhReleaseHost{Host: h, Live: r.ID}
		}
	}
	if len(hosts) == 0 {
		t.Errorf("releases app %s --json names no host a release is live on:\n%s", env, js)
	}
	return out, rows, hosts
}

// mhLogLine reports whether the log has a line of host h that holds want.
func mhLogLine(log string, h mhHost, want string) bool {
	for _, l := range strings.Split(log, "\n") {
		if i := strings.Index(l, "["+h.name()+"] "); i >= 0 && strings.Contains(l[i:], want) {
			return true
		}
	}
	return false
}

// mhRetry runs `retry deploy ID` and returns the new deployment's id.
func mhRetry(t *testing.T, d *daemon, u *user, id int64) int64 {
	t.Helper()
	out := mustSSH(t, d, u, "retry", "deploy", strconv.FormatInt(id, 10))
	var nid int64
	if _, err := fmt.Sscanf(out, "deployment #%d queued", &nid); err != nil {
		t.Fatalf("retry deploy %d printed %q: %v", id, out, err)
	}
	return nid
}

// TestMultiHostFiveHostsGoLiveWithHardLinks: a passing build lands on five
// hosts, written as plain targets that share the environment's key and
// known_hosts; every host's current points at the one release, `releases`
// shows the five live and `deploys` sums them up. A second build with one
// file changed goes live everywhere, and on every host the unchanged file
// is the previous release's (one inode) while the changed one is not.
func TestMultiHostFiveHostsGoLiveWithHardLinks(t *testing.T) {
	t.Parallel()
	alice := newUser(t, "alice")
	hosts := mhNewHosts(t, 5)
	// One deploy key for all (the first host's, authorized on every
	// host) and one known_hosts file with every host's key.
	pub, err := os.ReadFile(hosts[0].srv.KeyFile + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	var known []byte
	var targets []string
	for _, h := range hosts {
		if err := os.WriteFile(h.srv.KeyFile+".pub", pub, 0o600); err != nil {
			t.Fatal(err)
		}
		k, err := os.ReadFile(h.srv.KnownHostsFile)
		if err != nil {
			t.Fatal(err)
		}
		known = append(known, k...)
		targets = append(targets, strconv.Quote(h.name()))
	}
	knownHosts := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(knownHosts, known, 0o600); err != nil {
		t.Fatal(err)
	}
	d := mhStart(t, alice, configFor(mhRepo(fmt.Sprintf(`  [[repo.environment]]
  name = "prod"
  auto = "main"
  targets = [%s]
  ssh_key = %q
  known_hosts = %q
  parallel = 3
`, strings.Join(targets, ", "), hosts[0].srv.KeyFile, knownHosts)), []*user{alice}))

	src, _ := dtProject(t, alice, map[string]string{"index.html": "v1\n", "lib.js": "lib v1\n"})
	rev1, d1 := mhPushAndDeploy(t, d, src, "", "prod", 0)
	if d1.State != record.DeploySucceeded || d1.Release == "" || !strings.Contains(d1.Reason, "on all 5 hosts") {
		t.Fatalf("first deployment %s (%s), want succeeded on all 5 hosts", d1.State, d1.Reason)
	}
	mhAllOn(t, hosts, d1.Release, "after the first deployment")
	mhAllServe(t, hosts, "v1\n", "after the first deployment")
	mhStates(t, d1, hosts, record.HostLive, record.HostLive, record.HostLive, record.HostLive, record.HostLive)
	if got := mhHostsColumn(t, d.daemon, alice, "prod", d1.ID); got != "5 live" {
		t.Errorf("deploys shows HOSTS %q for #%d, want \"5 live\"", got, d1.ID)
	}
	log := dtDeployLog(t, d.daemon, alice, d1.ID)
	for i, h := range hosts {
		if !mhLogLine(log, h, "current -> releases/"+d1.Release) {
			t.Errorf("log deploy %d has no line of host %d, prefixed [%s], saying its current was switched:\n%s", d1.ID, i+1, h.name(), log)
		}
	}
	text, rows, js := mhReleases(t, d.daemon, alice, "prod")
	if !dtRowHas(text, d1.Release, rev1[:7], "live") {
		t.Errorf("releases does not list %s live:\n%s", d1.Release, text)
	}
	for i, h := range hosts {
		if f := rows[h.name()]; len(f) < 4 || f[1] != d1.Release || f[2] != "#"+strconv.FormatInt(d1.ID, 10) || f[3] != "live" {
			t.Errorf("releases: host %d row %q, want %s live by deployment %d:\n%s", i+1, f, d1.Release, d1.ID, text)
		}
		if jh, ok := js[h.name()]; !ok || jh.Live != d1.Release {
			t.Errorf("releases --json: host %d is %+v, want %s live by deployment %d", i+1, jh, d1.Release, d1.ID)
		}
	}
	// A succeeded deployment to the hosts it reached has nothing to retry.
	if _, stderr, code := d.ssh(alice, "retry", "deploy", strconv.FormatInt(d1.ID, 10)); code == 0 || !strings.Contains(stderr, "succeeded; there is nothing to retry") {
		t.Errorf("retry of a succeeded deployment: exit %d: %s", code, stderr)
	}

	_, d2 := mhPushAndDeploy(t, d, src, "v2\n", "prod", d1.ID)
	if d2.State != record.DeploySucceeded || d2.Release == d1.Release {
		t.Fatalf("second deployment %s (%s) into %s, want succeeded into a new release", d2.State, d2.Reason, d2.Release)
	}
	mhAllOn(t, hosts, d2.Release, "after the second deployment")
	for i, h := range hosts {
		if got := h.dir.file(t, "current", "index.html"); got != "v2\n" {
			t.Errorf("host %d serves index.html %q after the second deployment, want v2", i+1, got)
		}
		old, cur := h.dir.stat(t, d1.Release, "lib.js"), h.dir.stat(t, d2.Release, "lib.js")
		if old.Ino != cur.Ino || cur.Nlink < 2 {
			t.Errorf("host %d: unchanged lib.js is inode %d (links %d) in the new release, %d in the previous; want one hard-linked file", i+1, cur.Ino, cur.Nlink, old.Ino)
		}
		if h.dir.stat(t, d1.Release, "index.html").Ino == h.dir.stat(t, d2.Release, "index.html").Ino {
			t.Errorf("host %d: the changed index.html shares its inode with the previous release", i+1)
		}
	}
	mhStates(t, d2, hosts, record.HostLive, record.HostLive, record.HostLive, record.HostLive, record.HostLive)
	for i, h := range hosts {
		if dh := d2.host(t, h); dh.Release != d2.Release || dh.Previous != d1.Release {
			t.Errorf("deployment #%d: host %d release %q previous %q, want %s after %s", d2.ID, i+1, dh.Release, dh.Previous, d2.Release, d1.Release)
		}
	}
}

// TestMultiHostStoppedHostSwitchesNothingThenRetry: with one of five hosts'
// sshd stopped, the deployment fails before any switch: every host's
// current is unchanged, the reason names the stopped host. Once it is back,
// `retry deploy` makes all five live.
func TestMultiHostStoppedHostSwitchesNothingThenRetry(t *testing.T) {
	t.Parallel()
	alice := newUser(t, "alice")
	hosts := mhNewHosts(t, 5)
	d := mhStart(t, alice, configFor(mhRepo(mhEnv("prod", hosts, "  auto = \"main\"\n")), []*user{alice}))

	src, d1 := mhFirstDeploy(t, d)
	mhAllOn(t, hosts, d1.Release, "after the first deployment")

	down := hosts[2]
	down.srv.Stop()
	rev2, d2 := mhPushAndDeploy(t, d, src, "v2\n", "prod", d1.ID)
	want := "nothing was switched: 1 of 5 hosts failed before the switch: " + down.name() + ": "
	if d2.State != record.DeployFailed || !strings.Contains(d2.Reason, want) {
		t.Fatalf("deployment with host 3 down: %s (%s), want failed: %s...", d2.State, d2.Reason, want)
	}
	mhAllOn(t, hosts, d1.Release, "after the failed deployment")
	mhAllServe(t, hosts, "v1\n", "after the failed deployment")
	mhStates(t, d2, hosts, record.HostSkipped, record.HostSkipped, record.HostFailed, record.HostSkipped, record.HostSkipped)
	if got := mhHostsColumn(t, d.daemon, alice, "prod", d2.ID); got != "4 skipped, 1 failed" {
		t.Errorf("deploys shows HOSTS %q for #%d, want \"4 skipped, 1 failed\"", got, d2.ID)
	}

	down.srv.Start()
	rid := mhRetry(t, d.daemon, alice, d2.ID)
	d3 := mhWaitID(t, d, "prod", rid)
	if d3.State != record.DeploySucceeded || d3.Commit != rev2 || d3.Release == d1.Release {
		t.Fatalf("retry once the host is back: %s (%s) of %s into %s, want rev2 succeeded", d3.State, d3.Reason, d3.Commit, d3.Release)
	}
	mhAllOn(t, hosts, d3.Release, "after the retry")
	mhAllServe(t, hosts, "v2\n", "after the retry")
	mhStates(t, d3, hosts, record.HostLive, record.HostLive, record.HostLive, record.HostLive, record.HostLive)
}

// TestMultiHostActivateFailureRollsBackBatches: five hosts switched two at
// a time; activate fails on host 3. Hosts 1 and 2 (first batch) and 3 and
// 4 (second) go back to the previous release, whose activate runs again;
// host 5 is never switched; the deployment is rolled back, naming host 3.
func TestMultiHostActivateFailureRollsBackBatches(t *testing.T) {
	t.Parallel()
	alice := newUser(t, "alice")
	hosts := mhNewHosts(t, 5)
	// activate fails on a host whose "fail" file names the commit.
	activate := mhActivate(`[ "$(cat ../../fail 2>/dev/null)" != "$SLIPWAY_COMMIT" ]`)
	d := mhStart(t, alice, configFor(mhRepo(mhEnv("prod", hosts, fmt.Sprintf("  auto = \"main\"\n  batch = 2\n  activate = %q\n", activate))), []*user{alice}))

	src, d1 := mhFirstDeploy(t, d)
	mhAllOn(t, hosts, d1.Release, "after the first deployment")

	rev2 := alice.commit(t, src, "app/index.html", "v2\n")
	if err := os.WriteFile(hosts[2].path("fail"), []byte(rev2+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, d2 := mhPushAndDeploy(t, d, src, "", "prod", d1.ID)
	want := hosts[2].name() + ": activate failed with exit 1; every host switched is back on its previous release"
	if d2.State != record.DeployRolledBack || !strings.Contains(d2.Reason, want) {
		t.Fatalf("deployment whose activate fails on host 3: %s (%s), want rolled_back: %s", d2.State, d2.Reason, want)
	}
	mhAllOn(t, hosts, d1.Release, "after the rollback")
	mhSwitchedAndBack(t, hosts[:4], d1.Release, d2.Release)
	mhNeverSwitched(t, hosts, 4, d1.Release)
	mhStates(t, d2, hosts, record.HostRolledBack, record.HostRolledBack, record.HostRolledBack, record.HostRolledBack, record.HostSkipped)
	if dh := d2.host(t, hosts[2]); !strings.Contains(dh.Detail, "activate failed with exit 1") {
		t.Errorf("host 3's detail %q does not say its activate failed", dh.Detail)
	}
	if dh := d2.host(t, hosts[4]); !strings.Contains(dh.Detail, "never switched") {
		t.Errorf("host 5's detail %q does not say it was never switched", dh.Detail)
	}
	if got := mhHostsColumn(t, d.daemon, alice, "prod", d2.ID); got != "4 rolled_back, 1 skipped" {
		t.Errorf("deploys shows HOSTS %q for #%d, want \"4 rolled_back, 1 skipped\"", got, d2.ID)
	}
	if log := dtDeployLog(t, d.daemon, alice, d2.ID); !mhLogLine(log, hosts[2], "switching back to release "+d1.Release) {
		t.Errorf("log deploy %d does not show host 3 switching back:\n%s", d2.ID, log)
	}
}

// TestMultiHostHealthFailureRollsBackFirstBatch: the health check fails on
// host 1 after the first batch (two hosts) is switched: both go back, hosts
// 3 to 5 are never switched, and the deployment is rolled back.
func TestMultiHostHealthFailureRollsBackFirstBatch(t *testing.T) {
	t.Parallel()
	alice := newUser(t, "alice")
	hosts := mhNewHosts(t, 5)
	// The health command runs in <target>/current, which is
	// <target>/releases/<id> for the file system.
	d := mhStart(t, alice, configFor(mhRepo(mhEnv("prod", hosts, fmt.Sprintf(`  auto = "main"
  batch = 2
  activate = %q
  health = "test ! -e ../../unhealthy"
  health_timeout = "20s"
  health_retries = 1
`, mhActivate("")))), []*user{alice}))

	src, d1 := mhFirstDeploy(t, d)
	mhAllOn(t, hosts, d1.Release, "after the first deployment")

	if err := os.WriteFile(hosts[0].path("unhealthy"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, d2 := mhPushAndDeploy(t, d, src, "v2\n", "prod", d1.ID)
	want := hosts[0].name() + ": health check failed with exit 1 (2 attempts); every host switched is back on its previous release"
	if d2.State != record.DeployRolledBack || !strings.Contains(d2.Reason, want) {
		t.Fatalf("deployment whose health check fails on host 1: %s (%s), want rolled_back: %s", d2.State, d2.Reason, want)
	}
	mhAllOn(t, hosts, d1.Release, "after the rollback")
	mhSwitchedAndBack(t, hosts[:2], d1.Release, d2.Release)
	mhNeverSwitched(t, hosts, 2, d1.Release)
	mhStates(t, d2, hosts, record.HostRolledBack, record.HostRolledBack, record.HostSkipped, record.HostSkipped, record.HostSkipped)
	if log := dtDeployLog(t, d.daemon, alice, d2.ID); !mhLogLine(log, hosts[0], "health (attempt 2 of 2)") || mhLogLine(log, hosts[1], "health (attempt 2 of 2)") {
		t.Errorf("log deploy %d: want host 1's health tried twice and host 2's once:\n%s", d2.ID, log)
	}
}

// TestMultiHostHangingHealthIsKilledAtItsTimeout: a health command that
// hangs is killed on the host at health_timeout, and the deployment is
// rolled back in bounded time, saying there was no answer.
func TestMultiHostHangingHealthIsKilledAtItsTimeout(t *testing.T) {
	t.Parallel()
	alice := newUser(t, "alice")
	hosts := mhNewHosts(t, 2)
	// A release that holds dist/hang hangs its health check; the shell's
	// pid, which sleep takes over, is written down to look for it later.
	health := `if [ -e dist/hang ]; then echo $$ > ../../health.pid; exec sleep 600; fi`
	d := mhStart(t, alice, configFor(mhRepo(mhEnv("prod", hosts, fmt.Sprintf(`  auto = "main"
  health = %q
  health_timeout = "2s"
  health_retries = 0
`, health))), []*user{alice}))

	src, d1 := mhFirstDeploy(t, d)

	rev2 := alice.commit(t, src, "app/hang", "\n")
	alice.mustGit(t, src, "push", "-q", d.url("app"), "main")
	pidFile := hosts[0].path("health.pid")
	d.eventually(t, 3*time.Minute, "the health check to hang on host 1", func() bool {
		_, err := os.Stat(pidFile)
		return err == nil
	})
	hung := time.Now()
	d2 := mhWait(t, d, "prod", rev2, d1.ID)
	took := time.Since(hung)
	t.Logf("the deployment ended %v after the health check started hanging", took.Round(time.Millisecond))
	if d2.State != record.DeployRolledBack || !strings.Contains(d2.Reason, "health check failed with no answer within 2s (1 attempt)") {
		t.Fatalf("deployment whose health check hangs: %s (%s), want rolled_back: no answer within 2s", d2.State, d2.Reason)
	}
	// Slipway's own bound is 10 s past the timeout; the host's timeout(1)
	// must have ended it before that.
	if took > 12*time.Second {
		t.Errorf("the deployment ended %v after the health check started, want within about 2s of it", took)
	}
	mhAllOn(t, hosts, d1.Release, "after the rollback")
	mhStates(t, d2, hosts, record.HostRolledBack, record.HostRolledBack)
	for i, h := range hosts {
		b, err := os.ReadFile(h.path("health.pid"))
		if err != nil {
			t.Errorf("host %d: %v", i+1, err)
			continue
		}
		pid := strings.TrimSpace(string(b))
		cmd, _ := os.ReadFile(filepath.Join("/proc", pid, "cmdline"))
		if strings.HasPrefix(string(cmd), "sleep\x00600") {
			t.Errorf("host %d: the health command (pid %s) is still running after the deployment ended", i+1, pid)
		}
	}
}

// TestMultiHostDaemonKilledBetweenBatches kills the daemon with SIGKILL
// while a rollout of one host at a time has host 1 switched and activated
// and host 2 switched with its activate running. At the next start,
// recovery switches both back, so every host is on the previous release,
// and records the deployment rolled back because it was cut off.
func TestMultiHostDaemonKilledBetweenBatches(t *testing.T) {
	t.Parallel()
	alice := newUser(t, "alice")
	hosts := mhNewHosts(t, 3)
	// activate holds while the host's "block" file exists.
	activate := mhActivate("while [ -e ../../block ]; do sleep 0.1; done")
	d := mhStart(t, alice, configFor(mhRepo(mhEnv("prod", hosts, fmt.Sprintf("  auto = \"main\"\n  batch = 1\n  activate = %q\n", activate))), []*user{alice}))

	src, d1 := mhFirstDeploy(t, d)

	block := hosts[1].path("block")
	if err := os.WriteFile(block, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	rev2 := alice.commit(t, src, "app/index.html", "v2\n")
	alice.mustGit(t, src, "push", "-q", d.url("app"), "main")
	var id int64
	d.eventually(t, 3*time.Minute, "host 2's activate to start", func() bool {
		ds, err := d.db.ListDeployments(t.Context(), "app", "prod", 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) == 0 || ds[0].Commit != rev2 || ds[0].ReleaseID == "" {
			return false
		}
		id = ds[0].ID
		return slices.Contains(hosts[1].activations(t), ds[0].ReleaseID)
	})
	running := mhDeployment(t, d.daemon, alice, "prod", id)
	if running.State != record.DeployRunning {
		t.Fatalf("while host 2's activate runs the deployment is %s (%s)", running.State, running.Reason)
	}
	for i, want := range []string{running.Release, running.Release, d1.Release} {
		if got := hosts[i].dir.live(t); got != want {
			t.Fatalf("before the kill host %d current -> %q, want %s", i+1, got, want)
		}
	}
	if got := hosts[0].activations(t); !slices.Equal(got, []string{d1.Release, running.Release}) {
		t.Fatalf("before the kill host 1 ran activate for %q, want its batch done", got)
	}
	d.kill()
	// Host 2's activate, left running by the dead daemon, may end now.
	if err := os.Remove(block); err != nil {
		t.Fatal(err)
	}

	d.start()
	got := mhWaitID(t, d, "prod", running.ID)
	want := "the daemon stopped with 2 of 3 hosts switched; every host switched to release " + running.Release + " is back on its previous release"
	if got.State != record.DeployRolledBack || !strings.Contains(got.Reason, want) {
		t.Fatalf("after the restart the cut deployment is %s (%s), want rolled_back: %s", got.State, got.Reason, want)
	}
	mhAllOn(t, hosts, d1.Release, "after recovery")
	for i, h := range hosts[:2] {
		if acts := h.activations(t); len(acts) == 0 || acts[len(acts)-1] != d1.Release {
			t.Errorf("host %d ran activate for %q: want the previous release's run again last", i+1, acts)
		}
	}
	if acts := hosts[2].activations(t); !slices.Equal(acts, []string{d1.Release}) {
		t.Errorf("host 3 ran activate for %q, want only %s: it was never switched", acts, d1.Release)
	}
	rows, err := d.db.DeploymentHosts(t.Context(), running.ID)
	if err != nil {
		t.Fatal(err)
	}
	states := map[string]record.HostState{}
	for _, r := range rows {
		states[r.Host] = r.State
		t.Logf("after recovery %s is %s (%s)", r.Host, r.State, r.Detail)
	}
	if states[hosts[0].name()] != record.HostRolledBack || states[hosts[1].name()] != record.HostRolledBack {
		t.Errorf("hosts of the cut deployment in the store: %+v, want hosts 1 and 2 rolled_back", rows)
	}
	if st := states[hosts[2].name()]; st != record.HostSkipped {
		t.Errorf("host 3 of the cut deployment is %s in the store, want it skipped (never switched)", st)
	}
	if log := dtDeployLog(t, d.daemon, alice, running.ID); !strings.Contains(log, "switching every host on release "+running.Release+" back") {
		t.Errorf("log deploy %d does not tell the recovery:\n%s", running.ID, log)
	}

	// The environment is not stuck: a retry makes every host live.
	rid := mhRetry(t, d.daemon, alice, running.ID)
	d3 := mhWaitID(t, d, "prod", rid)
	if d3.State != record.DeploySucceeded {
		t.Fatalf("retry after recovery: %s (%s)", d3.State, d3.Reason)
	}
	mhAllOn(t, hosts, d3.Release, "after the retry")
}

// TestMultiHostReleaseGateNeedsEveryStagingHost: a revision whose staging
// deployment failed on one of two hosts cannot be released to prod; once a
// retry makes it live on both, it can.
func TestMultiHostReleaseGateNeedsEveryStagingHost(t *testing.T) {
	t.Parallel()
	alice := newUser(t, "alice")
	staging := mhNewHosts(t, 2)
	prod := dtTarget(filepath.Join(t.TempDir(), "prod"))
	d := mhStart(t, alice, configFor(mhRepo(
		mhEnv("staging", staging, "  auto = \"main\"\n"),
		fmt.Sprintf("  [[repo.environment]]\n  name = \"prod\"\n  requires = \"staging\"\n  target = %q\n", string(prod)),
	), []*user{alice}))

	staging[1].srv.Stop()
	src, _ := dtProject(t, alice, map[string]string{"index.html": "v1\n"})
	rev, s1 := mhPushAndDeploy(t, d, src, "", "staging", 0)
	if s1.State != record.DeployFailed || !strings.Contains(s1.Reason, staging[1].name()) {
		t.Fatalf("staging deployment with host 2 down: %s (%s), want failed naming host 2", s1.State, s1.Reason)
	}
	if got := staging[0].dir.live(t); got != "" {
		t.Fatalf("staging host 1 current -> %q after a deployment that failed on host 2, want nothing switched", got)
	}

	const ref = "refs/release/prod"
	out, err := alice.git(src, "push", d.url("app"), rev+":"+ref)
	dtRefused(t, out, err, ref, "revision "+rev[:7]+" has not been live on staging")
	if ds := dtDeployViews(t, d.daemon, alice, "app", "prod"); len(ds) != 0 {
		t.Fatalf("a refused release recorded prod deployments: %+v", ds)
	}

	staging[1].srv.Start()
	s2 := mhWaitID(t, d, "staging", mhRetry(t, d.daemon, alice, s1.ID))
	if s2.State != record.DeploySucceeded {
		t.Fatalf("staging retry: %s (%s)", s2.State, s2.Reason)
	}
	mhAllOn(t, staging, s2.Release, "after the staging retry")

	out, err = alice.git(src, "push", d.url("app"), rev+":"+ref)
	if err != nil || !strings.Contains(out, "to prod succeeded") {
		t.Fatalf("release once live on both staging hosts: %v\n%s", err, out)
	}
	if got := prod.file(t, "current", "index.html"); got != "v1\n" {
		t.Errorf("prod serves index.html %q, want v1", got)
	}
}

// TestMultiHostAddedHostGetsReleaseOnRetry: a host added to targets (with
// a reload) after a succeeded deployment is not live until `retry deploy`
// of that deployment ships the release to it; then `releases` lists it
// live beside the others, and there is nothing more to retry.
func TestMultiHostAddedHostGetsReleaseOnRetry(t *testing.T) {
	t.Parallel()
	alice := newUser(t, "alice")
	hosts := mhNewHosts(t, 3)
	activate := mhActivate("")
	config := func(hs []mhHost) string {
		return configFor(mhRepo(mhEnv("prod", hs, fmt.Sprintf("  auto = \"main\"\n  activate = %q\n", activate))), []*user{alice})
	}
	d := mhStart(t, alice, config(hosts[:2]))

	_, d1 := mhFirstDeploy(t, d)
	mhAllOn(t, hosts[:2], d1.Release, "after the first deployment")

	added := hosts[2]
	rtReload(t, d.daemon, alice, config(hosts))
	text, rows, _ := mhReleases(t, d.daemon, alice, "prod")
	if f := rows[added.name()]; len(f) < 2 || f[1] == d1.Release {
		t.Errorf("releases after the reload: the added host's row is %q, want it listed and not live:\n%s", f, text)
	}
	if got := added.dir.live(t); got != "" {
		t.Fatalf("the added host has current -> %q before any deployment to it", got)
	}

	d2 := mhWaitID(t, d, "prod", mhRetry(t, d.daemon, alice, d1.ID))
	if d2.State != record.DeploySucceeded || d2.Release != d1.Release {
		t.Fatalf("retry of the succeeded deployment after a host was added: %s (%s) into %s, want succeeded into %s", d2.State, d2.Reason, d2.Release, d1.Release)
	}
	mhAllOn(t, hosts, d1.Release, "after the retry")
	if got := added.dir.file(t, "current", "index.html"); got != "v1\n" {
		t.Errorf("the added host serves index.html %q, want v1", got)
	}
	mhStates(t, d2, hosts, record.HostLive, record.HostLive, record.HostLive)
	if acts := added.activations(t); !slices.Equal(acts, []string{d1.Release}) {
		t.Errorf("the added host ran activate for %q, want %s once", acts, d1.Release)
	}
	log := dtDeployLog(t, d.daemon, alice, d2.ID)
	for i, h := range hosts[:2] {
		if !mhLogLine(log, h, "already on the target; switching without transfer") {
			t.Errorf("log deploy %d: host %d, which had the release, was not switched without transfer:\n%s", d2.ID, i+1, log)
		}
	}
	if !mhLogLine(log, added, "rsync to releases/"+d1.Release) {
		t.Errorf("log deploy %d does not show the release shipped to the added host:\n%s", d2.ID, log)
	}

	text, rows, js := mhReleases(t, d.daemon, alice, "prod")
	for i, h := range hosts {
		if f := rows[h.name()]; len(f) < 4 || f[1] != d1.Release || f[2] != "#"+strconv.FormatInt(d2.ID, 10) || f[3] != "live" {
			t.Errorf("releases after the retry: host %d row %q, want %s live by deployment %d:\n%s", i+1, f, d1.Release, d2.ID, text)
		}
		if jh, ok := js[h.name()]; !ok || jh.Live != d1.Release {
			t.Errorf("releases --json after the retry: host %d is %+v, want %s live", i+1, jh, d1.Release)
		}
	}
	if _, stderr, code := d.ssh(alice, "retry", "deploy", strconv.FormatInt(d2.ID, 10)); code == 0 || !strings.Contains(stderr, "succeeded; there is nothing to retry") {
		t.Errorf("retry once every host is live: exit %d: %s", code, stderr)
	}
}
