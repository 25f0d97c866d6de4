package e2e

// End-to-end tests of issue 9 (promotion integrity) against the real
// binary: artifact digests in builds, deploys and releases; a promotion
// ships the bytes that were live on the environment it requires; a daemon
// killed during activate finds its release live at the next start; and
// readers listing releases cannot flood a target. Everything here is
// prefixed pt so that it cannot collide with the other files of this
// package.

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"slipway/internal/manifest"
	"slipway/internal/sshdtest"
	"slipway/record"
)

// ptBuildScript copies app/ into dist/ and stamps the build with the time
// in nanoseconds, so two builds of one commit never hold the same bytes.
const ptBuildScript = `set -e
mkdir -p dist
cp -R app/. dist/
date +%s%N > dist/stamp
`

// ptRelease is a release as `releases --json` shows it.
type ptRelease struct {
	ID         string `json:"id"`
	Live       bool   `json:"live"`
	Commit     string `json:"commit"`
	Digest     string `json:"digest"`
	Deployment int64  `json:"deployment"`
	Build      int64  `json:"build"`
	Note       string `json:"note"`
}

// ptReleases is `releases REPO ENV --json` as u sees it.
func ptReleases(t *testing.T, d *daemon, u *user, repo, env string) []ptRelease {
	t.Helper()
	return sshJSON[[]ptRelease](t, d, u, "releases", repo, env, "--json")
}

// TestPromotionShipsWhatStagingProved: the revision live on staging is
// built again with other bytes, and a file of staging's live release is
// swapped by hand; the release to prod ships the artifact set that was
// live on staging, byte for byte, says which build it ships, and shows the
// same digest as staging in builds, deploys and releases. Artifacts changed
// on Slipway's side are never shipped.
func TestPromotionShipsWhatStagingProved(t *testing.T) {
	t.Parallel()
	alice, wendy, rita, rae := newUser(t, "alice"), newUser(t, "wendy"), newUser(t, "rita"), newUser(t, "rae")
	srv := sshdtest.New(t)
	hosts := t.TempDir()
	staging, prod := dtTarget(filepath.Join(hosts, "staging")), dtTarget(filepath.Join(hosts, "prod"))
	d := startDaemon(t, configFor(`
[[repo]]
name = "shop"
read = ["rae"]
write = ["wendy"]
release = ["rita"]
  [[repo.environment]]
  name = "staging"
  auto = "main"
`+dtRemote(srv, string(staging), srv.Port, srv.KnownHostsFile)+`
  [[repo.environment]]
  name = "prod"
  requires = "staging"
`+dtRemote(srv, string(prod), srv.Port, srv.KnownHostsFile), []*user{alice}, wendy, rita, rae))
	url := d.url("shop")

	src, rev := dtProjectBuiltBy(t, wendy, ptBuildScript, map[string]string{"index.html": "v1\n"})
	alice.mustGit(t, src, "push", "-q", url, "main")
	b1 := dtWaitPassed(t, d, wendy, "shop", rev, 0)
	dtWaitDeploy(t, d, rae, "shop", "staging", rev, 0)
	onStaging := dtDeployViews(t, d, rae, "shop", "staging")[0]
	digest := btBuildByID(t, d, rae, "shop", b1.ID).Digest
	if !manifest.Valid(digest) || onStaging.State != record.DeploySucceeded || onStaging.Digest != digest || onStaging.BuildID != b1.ID {
		t.Fatalf("build %d digest %q, staging deployment %+v; want one valid digest on both", b1.ID, digest, onStaging)
	}
	short := manifest.Short(digest)
	if out, _, _ := d.ssh(rae, "builds", "shop"); !dtRowHas(out, strconv.FormatInt(b1.ID, 10), short) {
		t.Errorf("builds does not show %s for build %d:\n%s", short, b1.ID, out)
	}
	if out, _, _ := d.ssh(rae, "deploys", "shop", "staging"); !dtRowHas(out, strconv.FormatInt(onStaging.ID, 10), short, "succeeded") {
		t.Errorf("deploys does not show %s:\n%s", short, out)
	}
	stamp := staging.file(t, onStaging.Release, "stamp")

	// The same commit, pushed to another branch, builds again: a newer
	// passed build of the revision, with another stamp, never on staging.
	wendy.mustGit(t, src, "push", "-q", url, "main:other")
	var b2 btBuild
	d.eventually(t, 2*time.Minute, "the second build of the revision", func() bool {
		for _, b := range btBuilds(t, d, rae, "shop") {
			if b.Ref == "refs/heads/other" && b.State.Final() {
				b2 = b
				return true
			}
		}
		return false
	})
	if b2.State != record.StatePassed || b2.Commit != rev || b2.Digest == digest || !manifest.Valid(b2.Digest) {
		t.Fatalf("rebuild %+v, want passed with another digest than %s", b2, digest)
	}
	// Someone swaps a file of staging's live release by hand.
	if err := os.WriteFile(filepath.Join(string(staging), "current", "dist", "index.html"), []byte("patched on staging\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	out := rita.mustGit(t, src, "push", url, rev+":refs/release/prod")
	p := dtDeployViews(t, d, rae, "shop", "prod")
	if len(p) != 1 || p[0].State != record.DeploySucceeded || p[0].BuildID != b1.ID || p[0].Digest != digest {
		t.Fatalf("prod deployments %+v, want one succeeded deployment of build %d with %s", p, b1.ID, digest)
	}
	want := fmt.Sprintf("deployment #%d ships build #%d (%s), the artifacts that went live on staging in deployment #%d", p[0].ID, b1.ID, short, onStaging.ID)
	if !strings.Contains(out, want) {
		t.Errorf("the release push does not say %q:\n%s", want, out)
	}
	if got := prod.file(t, "current", "index.html"); got != "v1\n" {
		t.Errorf("prod serves index.html %q, want the built v1 (not staging's hand edit)", got)
	}
	if got := prod.file(t, "current", "stamp"); got != stamp {
		t.Errorf("prod serves the stamp %q, want staging's %q (build %d, not the rebuild)", got, stamp, b1.ID)
	}
	if out, _, _ := d.ssh(rae, "deploys", "shop"); !dtRowHas(out, strconv.FormatInt(p[0].ID, 10), "prod", short) ||
		!dtRowHas(out, strconv.FormatInt(onStaging.ID, 10), "staging", short) {
		t.Errorf("deploys does not show one digest for staging and prod:\n%s", out)
	}
	rels := ptReleases(t, d, rae, "shop", "prod")
	if len(rels) != 1 || !rels[0].Live || rels[0].Digest != digest || rels[0].Deployment != p[0].ID || rels[0].Build != b1.ID {
		t.Errorf("releases shop prod --json: %+v", rels)
	}
	if out, _, _ := d.ssh(rae, "releases", "shop", "prod"); !dtRowHas(out, p[0].Release, short, "live") {
		t.Errorf("releases shop prod:\n%s", out)
	}

	// Slipway's kept copy of the rebuild changes on disk: a release of it
	// (staging requires nothing, so the newest passed build is shipped)
	// fails before anything reaches the target.
	kept := filepath.Join(d.dataDir(), "artifacts", strconv.FormatInt(b2.ID, 10), "dist", "index.html")
	if err := os.WriteFile(kept, []byte("v9\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	live := staging.live(t)
	out = rita.mustGit(t, src, "push", url, rev+":refs/release/staging")
	if !strings.Contains(out, fmt.Sprintf("ships build #%d (%s), the newest passed build of %s", b2.ID, manifest.Short(b2.Digest), rev[:7])) {
		t.Errorf("the release push does not name the build it ships:\n%s", out)
	}
	f := dtDeployViews(t, d, rae, "shop", "staging")[0]
	if f.BuildID != b2.ID || f.State != record.DeployFailed ||
		!strings.Contains(f.Reason, fmt.Sprintf("the artifacts kept for build %d are not the ones it recorded", b2.ID)) ||
		!strings.Contains(f.Reason, "dist/index.html differs") {
		t.Errorf("release of changed artifacts: %+v, want failed saying they changed", f)
	}
	if staging.live(t) != live {
		t.Errorf("staging current moved to %q after a refused deployment", staging.live(t))
	}
}

// TestDaemonKilledDuringActivateFindsItsReleaseLive kills the daemon with
// SIGKILL after current was switched, while activate runs: after a restart
// the deployment is recorded live, activate has run again, and the
// revision can be promoted to prod, which requires staging.
func TestDaemonKilledDuringActivateFindsItsReleaseLive(t *testing.T) {
	t.Parallel()
	alice, rita := newUser(t, "alice"), newUser(t, "rita")
	hosts := t.TempDir()
	staging, prod := dtTarget(filepath.Join(hosts, "staging")), dtTarget(filepath.Join(hosts, "prod"))
	// The first run of activate marks that it started and then takes long
	// enough to be killed in; a second run finds the mark and is quick.
	activate := `echo "run $SLIPWAY_RELEASE" >> ../../activations; if [ ! -e ../../slow-once ]; then : > ../../slow-once; sleep 30; fi`
	d := startDaemon(t, configFor(fmt.Sprintf(`
[[repo]]
name = "app"
read = ["*"]
release = ["rita"]
  [[repo.environment]]
  name = "staging"
  target = %q
  auto = "main"
  activate = %q
  [[repo.environment]]
  name = "prod"
  target = %q
  requires = "staging"
`, string(staging), activate, string(prod)), []*user{alice}, rita))

	src, rev := dtProject(t, alice, map[string]string{"index.html": "v1\n"})
	alice.mustGit(t, src, "push", "-q", d.url("app"), "main")
	dtWaitPassed(t, d, alice, "app", rev, 0)
	d.eventually(t, 2*time.Minute, "activate to start on staging", func() bool {
		_, err := os.Stat(filepath.Join(string(staging), "slow-once"))
		return err == nil
	})
	running := dtDeployViews(t, d, alice, "app", "staging")[0]
	if running.State != record.DeployRunning || staging.live(t) != running.Release {
		t.Fatalf("while activate runs: %+v, current -> %q; want running with current switched", running, staging.live(t))
	}
	d.kill()

	d.start()
	got := dtDeployViews(t, d, alice, "app", "staging")[0]
	if got.ID != running.ID || got.State != record.DeploySucceeded ||
		!strings.Contains(got.Reason, "release "+running.Release+" is live; the daemon stopped during activate") {
		t.Fatalf("after the restart the deployment is %+v, want succeeded: live, activate unknown", got)
	}
	d.eventually(t, time.Minute, "activate to have run again", func() bool {
		return strings.Contains(dtDeployViews(t, d, alice, "app", "staging")[0].Reason, "ran again at start and succeeded")
	})
	acts, err := os.ReadFile(filepath.Join(string(staging), "activations"))
	if want := strings.Repeat("run "+running.Release+"\n", 2); err != nil || string(acts) != want {
		t.Errorf("activations %q (%v), want %q", acts, err, want)
	}
	if log := dtDeployLog(t, d, alice, got.ID); !strings.Contains(log, "recorded succeeded, running activate again") {
		t.Errorf("log deploy %d does not tell the story:\n%s", got.ID, log)
	}

	out, err := rita.git(src, "push", d.url("app"), rev+":refs/release/prod")
	if err != nil || !strings.Contains(out, "to prod succeeded") {
		t.Fatalf("promotion of the revision found live on staging: %v\n%s", err, out)
	}
	if prod.file(t, "current", "index.html") != "v1\n" {
		t.Error("prod does not serve v1")
	}
}

// ptFlood runs `releases REPO ENV` as u 50 times at once over real ssh
// and checks that every one lists at least one release.
func ptFlood(t *testing.T, d *daemon, u *user, repo, env string) {
	t.Helper()
	var wg sync.WaitGroup
	type result struct {
		out, stderr string
		err         error
	}
	results := make(chan result, 50)
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := d.sshCmd(u, "releases", repo, env)
			var stdout, stderr strings.Builder
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			results <- result{stdout.String(), stderr.String(), err}
		}()
	}
	wg.Wait()
	close(results)
	for r := range results {
		if r.err != nil || !ptReleaseRow.MatchString(r.out) {
			t.Errorf("releases %s %s: %v\n%s%s", repo, env, r.err, r.out, r.stderr)
		}
	}
}

var ptReleaseRow = regexp.MustCompile(`(?m)^\S+-\d+-[0-9a-f]{7}\s`)

// TestReleasesFromAReaderNeverFloodTheTarget: a reader runs `releases`
// 50 times at once over real ssh while a deployment to that environment
// runs. The target's sshd, which records every session, never sees more
// than one connection at a time; every reader gets the listing; the
// deployment succeeds.
func TestReleasesFromAReaderNeverFloodTheTarget(t *testing.T) {
	t.Parallel()
	alice, rae := newUser(t, "alice"), newUser(t, "rae")
	srv := sshdtest.New(t)
	sessions := srv.RecordSessions()
	staging := dtTarget(filepath.Join(t.TempDir(), "staging"))
	// activate holds the deployment until the readers are done.
	release := filepath.Join(t.TempDir(), "readers-done")
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, withSSH(configFor(`
[[repo]]
name = "site"
read = ["rae"]
  [[repo.environment]]
  name = "staging"
  auto = "main"
  activate = "while [ ! -e `+release+` ]; do sleep 0.05; done"
`+dtRemote(srv, string(staging), srv.Port, srv.KnownHostsFile), []*user{alice}, rae), "max_sessions_per_user = 64\n"))
	url := d.url("site")

	src, rev1 := dtProject(t, alice, map[string]string{"index.html": "v1\n"})
	alice.mustGit(t, src, "push", "-q", url, "main")
	first := dtWaitDeploy(t, d, rae, "site", "staging", rev1, 0)
	if first.State != record.DeploySucceeded {
		t.Fatalf("first deployment %s: %s", first.State, first.Reason)
	}
	// 50 readers at once while the target is idle: one listing serves them.
	ptFlood(t, d, rae, "site", "staging")
	total, most, err := sessions.Connections()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("after the first deployment and 50 readers: %d connections in all, at most %d at once", total, most)
	if most != 1 || total > 3 {
		t.Errorf("one deployment and 50 readers of an idle target: %d connections, %d at once; want at most 3, 1 at once", total, most)
	}

	if err := os.Remove(release); err != nil {
		t.Fatal(err)
	}
	rev2 := alice.commit(t, src, "app/index.html", "v2\n")
	alice.mustGit(t, src, "push", "-q", url, "main")
	d.eventually(t, 2*time.Minute, "the second deployment to run", func() bool {
		ds := dtDeployViews(t, d, rae, "site", "staging")
		return len(ds) == 2 && ds[0].State == record.DeployRunning
	})

	ptFlood(t, d, rae, "site", "staging")
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	second := dtWaitDeploy(t, d, rae, "site", "staging", rev2, first.ID)
	if second.State != record.DeploySucceeded {
		t.Fatalf("the deployment beside 50 readers: %s (%s)", second.State, second.Reason)
	}
	total, most, err = sessions.Connections()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("in all: %d connections, at most %d at once", total, most)
	if most != 1 {
		t.Errorf("the target saw %d connections at once (%d in all), want 1", most, total)
	}
	if total > 6 {
		t.Errorf("%d connections in all for two deployments and 100 listings, want at most 6", total)
	}
	rels := ptReleases(t, d, rae, "site", "staging")
	if len(rels) != 2 || rels[0].ID != second.ReleaseID || !rels[0].Live || rels[0].Note != "" {
		t.Errorf("releases after the deployment: %+v, want %s live", rels, second.ReleaseID)
	}
}
