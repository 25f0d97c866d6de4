package e2e

// The reliability suite of issue 11: what Slipway promises about durability
// (nothing accepted is lost, nothing stuck, nothing grows without bound),
// proved against the real binary with real git, ssh, bubblewrap, rsync and
// sshd, under kill -9, a full disk, a second daemon, hundreds of pushes and
// concurrent load. Each test prints its figures with t.Logf.

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"slipway/internal/sshdtest"
	"slipway/record"
)

// rlArtifactBytes is the size of the random blob every build of the
// retention test keeps as an artifact: large beside a build's log and
// records, so that artifacts kept for ever show in the data dir's size.
const rlArtifactBytes = 256 << 10

// rlBuildScript copies app/ into dist/ and adds a blob of random bytes, so
// that no two builds keep the same artifacts. A file SLEEP holds seconds to
// sleep first (a slower build).
const rlBuildScript = `set -e
if [ -s SLEEP ]; then sleep "$(cat SLEEP)"; fi
mkdir -p dist
cp -R app/. dist/
head -c ${RL_BLOB:-65536} /dev/urandom > dist/blob
`

// rlPipeline runs build.sh with env added to [build.env].
func rlPipeline(env string) string {
	return "[build]\nsteps = [\"sh build.sh\"]\nartifacts = [\"dist/\"]\n[build.env]\n" + env
}

// TestReliabilityRetention: 300 pushes, each built and deployed to its
// repository's staging by itself, with build.keep = 20. The pushes go to
// five repositories at once, 60 each (three times keep), as fast as their
// builds go. The data dir stops growing: its size after 300 pushes is
// within 25% of its size after 100. Rolling back to the previous release
// still works afterwards.
func TestReliabilityRetention(t *testing.T) {
	t.Parallel()
	const repos, rounds, perRound, keep = 5, 6, 10, 20 // 5 × 6 × 10 = 300 pushes
	alice := newUser(t, "alice")
	hosts := t.TempDir()
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "[build]\nkeep = %d\n", keep)
	for r := range repos {
		fmt.Fprintf(&cfg, "\n[[repo]]\nname = \"app%d\"\nread = [\"*\"]\nwrite = [\"alice\"]\n"+
			"  [[repo.environment]]\n  name = \"staging\"\n  target = %q\n  auto = \"main\"\n", r, filepath.Join(hosts, "app"+strconv.Itoa(r)))
	}
	d := btStartDaemon(t, configFor(cfg.String(), []*user{alice}))
	seed := alice.newProject(t, map[string]string{
		".slipway.toml": rlPipeline(fmt.Sprintf("RL_BLOB = \"%d\"\n", rlArtifactBytes)),
		"build.sh":      rlBuildScript,
		"app/version":   "0\n",
	})
	srcs := make([]string, repos)
	commits := make([][]string, repos) // commits[r][i]: app/version says i
	for r := range repos {
		srcs[r] = filepath.Join(t.TempDir(), "src")
		alice.mustGit(t, "", "clone", "-q", seed, srcs[r])
		commits[r] = []string{strings.TrimSpace(alice.mustGit(t, srcs[r], "rev-parse", "HEAD"))}
	}
	sizes := map[int]int64{}
	start := time.Now()
	for round := 1; round <= rounds; round++ {
		var wg sync.WaitGroup
		for r := range repos {
			wg.Go(func() {
				for range perRound {
					i := len(commits[r])
					if err := os.WriteFile(filepath.Join(srcs[r], "app", "version"), []byte(strconv.Itoa(i)+"\n"), 0o644); err != nil {
						t.Error(err)
						return
					}
					if out, err := alice.git(srcs[r], "commit", "-q", "-a", "-m", "version "+strconv.Itoa(i)); err != nil {
						t.Errorf("commit: %v\n%s", err, out)
						return
					}
					head, _ := alice.git(srcs[r], "rev-parse", "HEAD")
					commits[r] = append(commits[r], strings.TrimSpace(head))
					// -o wait: the push returns when its build has ended,
					// so each repository's pushes go as fast as its builds.
					if out, err := rlGitRun(alice.env(), 2*time.Minute, srcs[r], "push", "-o", "wait", d.url("app"+strconv.Itoa(r)), "main"); err != nil {
						t.Errorf("push %d to app%d: %v\n%s", i, r, err, out)
						return
					}
				}
			})
		}
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
		n := round * repos * perRound
		if left := rlSettled(t, d, time.Minute); left != "" {
			t.Fatalf("after %d pushes, still unfinished after a minute: %s", n, left)
		}
		if n%50 == 0 {
			sizes[n] = rlDirSize(t, d.dataDir())
			t.Logf("after %3d pushes (%v): data dir %s (artifacts %s, logs %s, repos %s, database %s)", n,
				time.Since(start).Round(time.Second), rlMiB(sizes[n]),
				rlMiB(rlDirSize(t, filepath.Join(d.dataDir(), "artifacts"))),
				rlMiB(rlDirSize(t, filepath.Join(d.dataDir(), "logs"))),
				rlMiB(rlDirSize(t, filepath.Join(d.dataDir(), "repos"))),
				rlMiB(rlDBSize(d.dataDir())))
		}
	}
	total := rounds * repos * perRound
	t.Logf("%d pushes (%d repositories at once) built and deployed in %v (%.1f pushes/s)", total, repos,
		time.Since(start).Round(time.Second), float64(total)/time.Since(start).Seconds())
	if limit := sizes[100] + sizes[100]/4; sizes[total] > limit {
		t.Errorf("the data dir keeps growing with build.keep = %d: %s after 100 pushes, %s after %d (more than 25%% larger)",
			keep, rlMiB(sizes[100]), rlMiB(sizes[total]), total)
	}

	// Roll back app0: release its previous live revision to staging again.
	// Its artifacts must still be there (the previous release is kept), and
	// the release it goes to must be complete and match its manifest.
	staging := filepath.Join(hosts, "app0")
	last := commits[0][len(commits[0])-1]
	ds := dtDeploys(t, d, alice, "app0", "staging")
	if len(ds) == 0 || ds[0].State != record.DeploySucceeded || ds[0].Commit != last {
		t.Fatalf("the newest staging deployment of app0 is %+v, want a succeeded one of the last push %s", ds[:min(1, len(ds))], rlShort(last))
	}
	var prev record.Deployment
	for _, dep := range ds[1:] {
		if dep.State == record.DeploySucceeded && dep.Commit != ds[0].Commit {
			prev = dep
			break
		}
	}
	if prev.ID == 0 {
		t.Fatalf("no previous succeeded staging deployment among the %d listed", len(ds))
	}
	out, err := alice.git(srcs[0], "push", d.url("app0"), "+"+prev.Commit+":refs/release/staging")
	if err != nil {
		t.Fatalf("rollback of staging to %s (deployment #%d): %v\n%s", rlShort(prev.Commit), prev.ID, err, out)
	}
	back := dtWaitDeploy(t, d, alice, "app0", "staging", prev.Commit, ds[0].ID)
	if back.State != record.DeploySucceeded {
		t.Fatalf("rollback deployment #%d: %s (%s)\n%s", back.ID, back.State, back.Reason, dtDeployLog(t, d, alice, back.ID))
	}
	id, problem := rlCheckCurrent(staging)
	if problem != "" || id != back.ReleaseID {
		t.Fatalf("after the rollback staging current is %q (%s), want release %s", id, problem, back.ReleaseID)
	}
	want := strconv.Itoa(slices.Index(commits[0], prev.Commit)) + "\n"
	if got, err := os.ReadFile(filepath.Join(staging, "current", "dist", "version")); err != nil || string(got) != want {
		t.Fatalf("after the rollback staging serves version %q (%v), want %q", got, err, want)
	}
	t.Logf("rolled back app0's staging to %s (deployment #%d, release %s)", rlShort(prev.Commit), back.ID, back.ReleaseID)
	if errs := rlErrorLines(d.logs.String(), 10); errs != "" {
		t.Logf("the daemon logged errors:\n%s", errs)
	}
}

// rlClient is one of the crash loop's pushers: its own work tree and
// branch, and the pushes git reported as successful.
type rlClient struct {
	u      *user
	dir    string
	branch string
	n      int      // commits made
	ok     []string // commits whose push exited 0
	failed int      // pushes that did not
}

// push commits once (a third of the commits ask their build to sleep a
// second) and pushes the branch.
func (c *rlClient) push(t *testing.T, url string, sleepy bool) {
	c.n++
	sleep := ""
	if sleepy {
		sleep = "1\n"
	}
	for name, body := range map[string]string{"SLEEP": sleep, "app/version": fmt.Sprintf("%s %d\n", c.branch, c.n)} {
		if err := os.WriteFile(filepath.Join(c.dir, name), []byte(body), 0o644); err != nil {
			t.Error(err)
			return
		}
	}
	if out, err := c.u.git(c.dir, "commit", "-q", "-a", "-m", fmt.Sprintf("%s %d", c.branch, c.n)); err != nil {
		t.Errorf("commit: %v\n%s", err, out)
		return
	}
	head, err := c.u.git(c.dir, "rev-parse", "HEAD")
	if err != nil {
		t.Errorf("rev-parse: %v", err)
		return
	}
	if _, err := rlGitRun(c.u.env(), time.Minute, c.dir, "push", "-q", url, "HEAD:refs/heads/"+c.branch); err != nil {
		c.failed++
		return
	}
	c.ok = append(c.ok, strings.TrimSpace(head))
}

// TestReliabilityCrashLoop: 30 cycles of four clients pushing at once,
// builds (some sleeping), an auto deployment to a real sshd, and a kill -9
// of the daemon at a random moment, then a restart. After every cycle:
// every push git reported as successful is on the server and recorded;
// every ref on the server was set by a recorded push (before the restart)
// and matches the recorded state (after it); every build and deployment
// ends within 60 s of the restart; the database and the repository are
// sound; staging's current is a complete release matching its manifest;
// no quarantine folder, workspace or sandbox process is left behind.
func TestReliabilityCrashLoop(t *testing.T) {
	t.Parallel()
	const cycles = 30
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 11))
	var users []*user
	for _, name := range []string{"alice", "bob", "carol", "dave"} {
		users = append(users, newUser(t, name))
	}
	srv := sshdtest.New(t)
	staging := filepath.Join(t.TempDir(), "staging")
	marker := btMarker("crash")
	d := btStartDaemon(t, configFor(`
[build]
concurrency = 2

[[repo]]
name = "app"
read = ["*"]
write = ["bob", "carol", "dave"]
  [[repo.environment]]
  name = "staging"
  auto = "main"
`+dtRemote(srv, staging, srv.Port, srv.KnownHostsFile), users[:1], users[1:]...))
	src := users[0].newProject(t, map[string]string{
		".slipway.toml": rlPipeline(fmt.Sprintf("RL_MARKER = %q\n", marker)),
		"build.sh":      rlBuildScript,
		"SLEEP":         "",
		"app/version":   "0\n",
	})
	url := d.url("app")
	users[0].mustGit(t, src, "push", "-q", url, "main")
	bare := filepath.Join(d.dataDir(), "repos", "app.git")
	var clients []*rlClient
	for i, u := range users {
		c := &rlClient{u: u, dir: filepath.Join(t.TempDir(), "w"), branch: "main"}
		if i > 0 {
			c.branch = "c" + strconv.Itoa(i)
		}
		u.mustGit(t, "", "clone", "-q", src, c.dir)
		clients = append(clients, c)
	}

	var v rlTally
	start := time.Now()
	var killedAfter []time.Duration
	for cycle := 1; cycle <= cycles; cycle++ {
		// Four clients push at once until the daemon is killed.
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for _, c := range clients {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					c.push(t, url, rng.IntN(3) == 0)
				}
			})
		}
		// The kill comes at a random moment: during a push, a build, a
		// deployment, or between them.
		after := time.Duration(300+rng.IntN(2700)) * time.Millisecond
		killedAfter = append(killedAfter, after)
		time.Sleep(after)
		d.kill()
		close(stop)
		wg.Wait()
		rlAfterCrash(t, &v, cycle, d, bare, staging, marker, clients)

		restart := time.Now()
		d.start()
		if left := rlSettled(t, d, 60*time.Second-time.Since(restart)); left != "" {
			v.add(t, "work not final 60 s after a restart", fmt.Sprintf("cycle %d: %s", cycle, left))
			// Give it the time it needs, so that the next cycle starts
			// from a daemon at rest and is judged on its own.
			rlSettled(t, d, 2*time.Minute)
		}
		rlAtRest(t, &v, cycle, d, bare, staging, marker)
	}

	okPushes, failed := 0, 0
	for _, c := range clients {
		okPushes += len(c.ok)
		failed += c.failed
	}
	db := rlOpenDB(t, d.dataDir())
	defer db.Close()
	recorded, _ := rlPushes(db)
	builds, _ := rlStates(db, "builds")
	deploys, _ := rlStates(db, "deployments")
	t.Logf("crash loop: %d cycles in %v (kill -9 after %v to %v of pushing); pushes: %d ok, %d failed (cut by the kill), %d recorded",
		cycles, time.Since(start).Round(time.Second), slices.Min(killedAfter), slices.Max(killedAfter), okPushes, failed, recorded)
	t.Logf("builds: %v; deployments: %v", builds, deploys)
	if s := v.summary(); s != "" {
		t.Logf("broken promises:\n%s", s)
	}
}

// rlAfterCrash checks what a kill -9 left, before anything starts again:
// the step processes died with the daemon; the database is sound; every
// push git reported as successful is on the server and recorded; every ref
// on the server was set by a recorded push; the repository is sound; the
// target's current is a complete release.
func rlAfterCrash(t *testing.T, v *rlTally, cycle int, d *daemon, bare, target, marker string, clients []*rlClient) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for len(btProcs(t, marker)) > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if pids := btProcs(t, marker); len(pids) > 0 {
		v.add(t, "sandbox processes outlive a kill -9 of the daemon", fmt.Sprintf("cycle %d:\n%s", cycle, btProcDesc(pids)))
	}
	if ok := rlIntegrity(t, d.dataDir()); ok != "ok" {
		v.add(t, "database damaged by a kill -9", fmt.Sprintf("cycle %d: %s", cycle, ok))
	}
	db := rlOpenDB(t, d.dataDir())
	defer db.Close()
	recs, err := rlRecordedRefs(db, "app")
	if err != nil {
		t.Fatalf("cycle %d: %v", cycle, err)
	}
	server := rlServerRefs(t, bare)
	for _, ref := range rlUnrecordedRefs(server, recs) {
		v.add(t, "a ref moved without a push record", fmt.Sprintf("cycle %d: %s", cycle, ref))
	}
	for _, c := range clients {
		ref := "refs/heads/" + c.branch
		for _, id := range c.ok {
			if !rlRecorded(recs, ref, id) {
				v.add(t, "a push git reported as successful is not recorded", fmt.Sprintf("cycle %d: %s %s by %s", cycle, ref, id[:12], c.u.name))
			}
			if server[ref] == "" {
				v.add(t, "a push git reported as successful is not on the server", fmt.Sprintf("cycle %d: %s is gone", cycle, ref))
			} else if _, err := rlGit(bare, "merge-base", "--is-ancestor", id, server[ref]); err != nil {
				v.add(t, "a push git reported as successful is not on the server", fmt.Sprintf("cycle %d: %s at %s does not hold %s", cycle, ref, server[ref][:12], id[:12]))
			}
		}
	}
	if bad := rlFsck(bare); bad != "" {
		v.add(t, "git fsck fails after a kill -9", fmt.Sprintf("cycle %d: %s", cycle, bad))
	}
	if _, bad := rlCheckCurrent(target); bad != "" {
		v.add(t, "current is not a complete release after a kill -9", fmt.Sprintf("cycle %d: %s", cycle, bad))
	}
}

// rlAtRest checks a restarted daemon once its work has ended: the refs
// match the recorded state, and nothing of the crash is left behind.
func rlAtRest(t *testing.T, v *rlTally, cycle int, d *daemon, bare, target, marker string) {
	t.Helper()
	db := rlOpenDB(t, d.dataDir())
	defer db.Close()
	recs, err := rlRecordedRefs(db, "app")
	if err != nil {
		t.Fatalf("cycle %d: %v", cycle, err)
	}
	for _, diff := range rlRefsDifferFromRecord(rlServerRefs(t, bare), recs) {
		v.add(t, "refs differ from the recorded state after a restart", fmt.Sprintf("cycle %d: %s", cycle, diff))
	}
	for _, q := range rlQuarantines(d.dataDir()) {
		v.add(t, "quarantine folder left behind", fmt.Sprintf("cycle %d: %s", cycle, filepath.Base(q)))
	}
	if ws := rlWorkspaces(d.dataDir()); len(ws) > 0 {
		v.add(t, "workspaces left behind with no build running", fmt.Sprintf("cycle %d: build/work holds %v", cycle, ws))
	}
	if pids := btProcs(t, marker); len(pids) > 0 {
		v.add(t, "sandbox processes left behind with no build running", fmt.Sprintf("cycle %d:\n%s", cycle, btProcDesc(pids)))
	}
	if _, bad := rlCheckCurrent(target); bad != "" {
		v.add(t, "current is not a complete release after a restart", fmt.Sprintf("cycle %d: %s", cycle, bad))
	}
	if ok := rlIntegrity(t, d.dataDir()); ok != "ok" {
		v.add(t, "database damaged", fmt.Sprintf("cycle %d: %s", cycle, ok))
	}
}
