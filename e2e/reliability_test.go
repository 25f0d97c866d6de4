package e2e

// The reliability suite of issue 11: what Slipway promises about durability
// (nothing accepted is lost, nothing stuck, nothing grows without bound),
// proved against the real binary with real git, ssh, bubblewrap, rsync and
// sshd, under kill -9, a full disk, a second daemon, hundreds of pushes and
// concurrent load. Each test prints its figures with t.Logf.

import (
	"database/sql"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"slipway/internal/manifest"
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
		commits[r] = []string{alice.head(t, srcs[r])}
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
			kept, _ := os.ReadDir(filepath.Join(d.dataDir(), "artifacts"))
			t.Logf("after %3d pushes (%v): data dir %s (artifacts of %d builds %s, logs %s, repos %s, database %s)", n,
				time.Since(start).Round(time.Second), rlMiB(sizes[n]), len(kept),
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
	why    []string // the last line of each failed push's output
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
	if out, err := rlGitRun(c.u.env(), time.Minute, c.dir, "push", "-q", url, "HEAD:refs/heads/"+c.branch); err != nil {
		c.failed++
		c.why = append(c.why, rlWhy(out))
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
	var users []*user
	for _, name := range []string{"alice", "bob", "carol", "dave"} {
		users = append(users, newUser(t, name))
	}
	srv := sshdtest.New(t)
	staging := filepath.Join(t.TempDir(), "staging")
	marker := btMarker("crash")
	// keep above the builds made: every push's record must stay to be
	// checked (retention has its own test).
	d := btStartDaemon(t, configFor(`
[build]
concurrency = 2
keep = 10000

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
	users[0].mustGit(t, src, "push", "-q", d.url("app"), "main")
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
	movedAfterKill := 0
	for cycle := 1; cycle <= cycles; cycle++ {
		// Four clients push at once until the daemon is killed. (Each
		// start listens on a new port.)
		url := d.url("app")
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
					c.push(t, url, rand.IntN(3) == 0)
				}
			})
		}
		// The kill comes at a random moment: during a push, a build, a
		// deployment, or between them.
		after := time.Duration(500+rand.IntN(4500)) * time.Millisecond
		killedAfter = append(killedAfter, after)
		time.Sleep(after)
		d.kill()
		close(stop)
		atKill := rlServerRefs(t, bare)
		wg.Wait()
		rlAfterCrash(t, &v, cycle, d, bare, staging, marker, clients)
		for ref, id := range rlServerRefs(t, bare) {
			if atKill[ref] != id {
				movedAfterKill++
				t.Logf("cycle %d: %s moved from %s to %s after the daemon was killed (by a git receive-pack it left running)",
					cycle, ref, rlShort(atKill[ref]), id[:12])
			}
		}

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
	why := map[string]int{}
	for _, c := range clients {
		okPushes += len(c.ok)
		failed += c.failed
		for _, w := range c.why {
			why[w]++
		}
	}
	db := rlOpenDB(t, d.dataDir())
	defer db.Close()
	recorded, _ := rlPushes(db)
	builds, _ := rlStates(db, "builds")
	deploys, _ := rlStates(db, "deployments")
	t.Logf("crash loop: %d cycles in %v (kill -9 after %v to %v of pushing); pushes: %d ok, %d failed (cut by the kill), %d recorded",
		cycles, time.Since(start).Round(time.Second), slices.Min(killedAfter), slices.Max(killedAfter), okPushes, failed, recorded)
	t.Logf("builds: %v; deployments: %v; refs moved after a kill: %d", builds, deploys, movedAfterKill)
	for w, n := range why {
		t.Logf("%d× a failed push ended with: %s", n, w)
	}
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
	// git processes the daemon ran (receive-pack, its hooks) may still be
	// finishing: wait for them, for what they do to the repository is
	// what the next start finds, and report those that do not end.
	for time.Now().Before(deadline) && len(btProcs(t, bare)) > 0 {
		time.Sleep(50 * time.Millisecond)
	}
	if pids := btProcs(t, bare); len(pids) > 0 {
		v.add(t, "git processes outlive a kill -9 of the daemon by 30 s", fmt.Sprintf("cycle %d:\n%s", cycle, btProcDesc(pids)))
	}
	if ok := rlIntegrity(t, d.dataDir()); ok != "ok" {
		v.add(t, "database damaged by a kill -9", fmt.Sprintf("cycle %d: %s", cycle, ok))
	}
	db := rlOpenDB(t, d.dataDir())
	defer db.Close()
	recs, server := rlRecordsAndRefs(t, cycle, db, bare)
	for _, ref := range rlUnrecordedRefs(server, recs) {
		v.addKeyed(t, "a ref moved without a push record", ref, fmt.Sprintf("cycle %d: %s", cycle, ref))
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

// rlRecordsAndRefs reads app's recorded ref updates from db and the refs
// of the bare repository on the server's disk.
func rlRecordsAndRefs(t *testing.T, cycle int, db *sql.DB, bare string) ([]rlRefRecord, map[string]string) {
	t.Helper()
	recs, err := rlRecordedRefs(db, "app")
	if err != nil {
		t.Fatalf("cycle %d: %v", cycle, err)
	}
	return recs, rlServerRefs(t, bare)
}

// rlAtRest checks a restarted daemon once its work has ended: the refs
// match the recorded state, every branch tip has its build, current is the
// release the records say is live, and nothing of the crash is left
// behind.
func rlAtRest(t *testing.T, v *rlTally, cycle int, d *daemon, bare, target, marker string) {
	t.Helper()
	db := rlOpenDB(t, d.dataDir())
	defer db.Close()
	recs, server := rlRecordsAndRefs(t, cycle, db, bare)
	for _, diff := range rlRefsDifferFromRecord(server, recs) {
		v.addKeyed(t, "refs differ from the recorded state after a restart", diff, fmt.Sprintf("cycle %d: %s", cycle, diff))
	}
	// Every branch's tip is built (this repository builds every branch),
	// a tip found at start included.
	for ref, id := range server {
		var n int
		if err := db.QueryRow(`SELECT count(*) FROM builds WHERE repo = 'app' AND ref = ? AND commit_id = ?`, ref, id).Scan(&n); err != nil {
			t.Fatalf("cycle %d: %v", cycle, err)
		}
		if n == 0 {
			v.addKeyed(t, "a branch tip is never built", ref+" "+id, fmt.Sprintf("cycle %d: %s at %s has no build", cycle, ref, id[:12]))
		}
	}
	for _, q := range rlQuarantines(d.dataDir()) {
		v.addKeyed(t, "quarantine folder left behind", q, fmt.Sprintf("cycle %d: %s", cycle, filepath.Base(q)))
	}
	if ws := rlWorkspaces(d.dataDir()); len(ws) > 0 {
		v.add(t, "workspaces left behind with no build running", fmt.Sprintf("cycle %d: build/work holds %v", cycle, ws))
	}
	if pids := btProcs(t, marker); len(pids) > 0 {
		v.add(t, "sandbox processes left behind with no build running", fmt.Sprintf("cycle %d:\n%s", cycle, btProcDesc(pids)))
	}
	live, bad := rlCheckCurrent(target)
	if bad != "" {
		v.add(t, "current is not a complete release after a restart", fmt.Sprintf("cycle %d: %s", cycle, bad))
	}
	// The records say which release is live: the newest succeeded
	// deployment's, with the digest of the artifacts it shipped.
	var rel, digest string
	err := db.QueryRow(`SELECT release_id, digest FROM deployments WHERE repo = 'app' AND env = 'staging' AND state = 'succeeded'
		ORDER BY id DESC LIMIT 1`).Scan(&rel, &digest)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		t.Fatalf("cycle %d: read the live deployment: %v", cycle, err)
	}
	kept, _ := os.ReadFile(filepath.Join(target, "current", manifest.FileName))
	if live != rel || (rel != "" && digest != manifest.Digest(kept)) {
		v.add(t, "current is not the release the records say is live", fmt.Sprintf("cycle %d: current -> %q (%s), recorded live %q (%s)",
			cycle, live, manifest.Short(manifest.Digest(kept)), rel, manifest.Short(digest)))
	}
	if ok := rlIntegrity(t, d.dataDir()); ok != "ok" {
		v.add(t, "database damaged", fmt.Sprintf("cycle %d: %s", cycle, ok))
	}
}

// TestReliabilitySecondDaemon: a second `slipway serve` on the data dir of
// a running one exits at once with a message saying why, and touches
// nothing: the first daemon's running build is not queued again, runs once
// and ends with its log intact, and the first daemon still records pushes.
func TestReliabilitySecondDaemon(t *testing.T) {
	t.Parallel()
	alice, bob, d := btApp(t, "")
	src := alice.newProject(t, map[string]string{
		".slipway.toml": btPipeline("cache = true\n", `echo rl-step-ran; echo run >> /cache/runs; `+btWaitStep("hold")),
	})
	id, _ := btPushOne(t, d, alice, src, "main")
	d.eventually(t, btBuildTimeout, "the build to start", func() bool { return btExists(d, "hold.started") })
	before := rlWork(t, d)

	out, took, exited, exit := secondServe(t, d, 15*time.Second)
	if !exited {
		t.Errorf("a second slipway serve on the same data dir was still running after 15 s:\n%s", out)
	}
	t.Logf("the second daemon exited after %v with %v:\n%s", took.Round(time.Millisecond), exit, out)
	msg := strings.ToLower(out)
	// It exits without waiting for the lock (~0.1 s on a quiet machine; a
	// race-built binary took 5.8 s to start and exit in a run at a high
	// load, hence 10 s: one that waited would still be there at 15).
	if exit == nil || took > 10*time.Second || !strings.Contains(out, d.dataDir()) ||
		!(strings.Contains(msg, "another") || strings.Contains(msg, "already") || strings.Contains(msg, "lock")) {
		t.Errorf("a second daemon on %s should exit at once (within 10 s), with an error naming the data dir and saying "+
			"another daemon holds it; it took %v, exit %v, said:\n%s", d.dataDir(), took.Round(time.Millisecond), exit, out)
	}
	if after := rlWork(t, d); after != before {
		t.Errorf("the second daemon changed the first one's work:\nbefore:\n%s\nafter:\n%s", before, after)
	}

	// The first daemon goes on: it records pushes (its hook socket is still
	// its own) and answers commands.
	alice.mustGit(t, src, "tag", "v1")
	if out, err := alice.git(src, "push", d.url("app"), "v1"); err != nil || !strings.Contains(out, "recorded push") {
		t.Errorf("a push to the first daemon after the second exited: %v\n%s", err, out)
	}
	btTouch(t, d, "hold.go")
	db := d.store(t)
	b := btFinal(t, d, db, bob, "app", id)
	runs, _ := os.ReadFile(filepath.Join(btCache(d, "app"), "runs"))
	log := btLog(t, d, bob, id, false)
	if b.State != "passed" || b.Attempt != 1 || string(runs) != "run\n" {
		t.Errorf("the first daemon's build #%d: %s (%s), attempt %d, its step ran %d times; want passed at its first and only run",
			id, b.State, b.Reason, b.Attempt, strings.Count(string(runs), "run\n"))
	}
	// The step's own line, not its header (which names the command).
	if strings.Count(log, "] │ rl-step-ran\n") != 1 || !strings.Contains(log, "(attempt 1)") || !strings.Contains(log, "passed in") ||
		strings.Contains(log, "attempt 2") || strings.Contains(log, "running again") {
		t.Errorf("the log of build #%d is not the one run's, whole:\n%s", id, log)
	}
}

// rlWork renders the builds and deployments of a daemon's database, for
// telling whether something changed them.
func rlWork(t *testing.T, d *daemon) string {
	t.Helper()
	db := rlOpenDB(t, d.dataDir())
	defer db.Close()
	var b strings.Builder
	for _, q := range []string{
		`SELECT 'build', id, state, attempt, worker, coalesce(started_at, 0) FROM builds ORDER BY id`,
		`SELECT 'deployment', id, state, 0, release_id, coalesce(started_at, 0) FROM deployments ORDER BY id`,
	} {
		rows, err := db.Query(q)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var kind, state, worker string
			var id, attempt, started int64
			if err := rows.Scan(&kind, &id, &state, &attempt, &worker, &started); err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&b, "%s #%d %s attempt %d worker %q started %d\n", kind, id, state, attempt, worker, started)
		}
		rows.Close()
	}
	return b.String()
}

// TestReliabilityFullDisk: the data dir (database, logs, repositories,
// artifacts) on a small tmpfs, filled in steps to within a few KiB and then
// to the last byte, with a push at each step. No push is reported
// successful without its record, and no ref moves without one; a refused
// push says why; nothing is stuck, even while the disk is full; once space
// is freed, without a restart, new pushes build and the database is sound.
func TestReliabilityFullDisk(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs for the data dir needs root; CI runs as root")
	}
	alice := newUser(t, "alice")
	root := t.TempDir()
	searchable(t, root)
	data := filepath.Join(root, "data")
	if err := os.Mkdir(data, 0o711); err != nil {
		t.Fatal(err)
	}
	run(t, "", nil, "mount", "-t", "tmpfs", "-o", "size=32m,mode=0711", "slipway-full-disk", data)
	// Registered before the daemon's stop, so it runs after it.
	t.Cleanup(func() {
		if out, err := exec.Command("umount", data).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v\n%s", data, err, out)
			_ = exec.Command("umount", "-l", data).Run()
		}
	})
	d := startDaemonIn(t, "", root, configFor(btRepoConfig, []*user{alice}))
	src := alice.newProject(t, map[string]string{
		".slipway.toml": btPipeline("artifacts = [\"out/\"]\n", "echo built; mkdir -p out; cp f out/"),
		"f":             "0\n",
	})
	first, _ := btPushOne(t, d, alice, src, "main")
	db := d.store(t)
	btPassed(t, d, db, alice, "app", first, "the first build")
	bare := filepath.Join(data, "repos", "app.git")
	filler := filepath.Join(data, "filler")

	var v rlTally
	ok, refused := 0, 0
	// Steps of a few KiB where a push's objects may still fit and its
	// record may not: the database's write-ahead log grows in pages too.
	for i, kib := range []int64{1024, 256, 128, 64, 48, 40, 32, 24, 16, 12, 8, 4, 0} {
		free := rlSetFree(t, data, filler, kib<<10)
		body := fmt.Sprintf("%d %s\n", i, strings.Repeat(strconv.FormatInt(time.Now().UnixNano(), 36), 64))
		commit := alice.commit(t, src, "f", body)
		out, err := rlGitRun(alice.env(), time.Minute, src, "push", d.url("app"), "main")
		if d.proc.exited() {
			t.Fatalf("the daemon died with %d KiB free (%v):\n%s", free>>10, d.proc.err, d.logs)
		}
		rdb := rlOpenDB(t, data)
		recs, rerr := rlRecordedRefs(rdb, "app")
		rdb.Close()
		if rerr != nil {
			t.Fatal(rerr)
		}
		for _, ref := range rlUnrecordedRefs(rlServerRefs(t, bare), recs) {
			v.add(t, "a ref moved without a push record on a full disk", fmt.Sprintf("%d KiB free: %s", free>>10, ref))
		}
		if err == nil {
			ok++
			if !rlRecorded(recs, "refs/heads/main", commit) {
				v.add(t, "a push git reported as successful is not recorded", fmt.Sprintf("%d KiB free: main at %s; the push said:\n%s", free>>10, commit[:12], out))
			}
		} else {
			refused++
			if l := strings.ToLower(out); !strings.Contains(l, "space") && !strings.Contains(l, "disk") {
				// The reason, as a user needs it: "No space left on
				// device", "disk full".
				v.add(t, "a push refused on a full disk does not say why", fmt.Sprintf("%d KiB free: %v\n%s", free>>10, err, out))
			}
		}
		t.Logf("%4d KiB free: push %s", free>>10, rlOutcome(err, out))
		// Let the push's build run (or fail) before the next step sets
		// the free space again; one that is stuck is reported below.
		rlSettled(t, d, 5*time.Second)
	}
	// Nothing stuck, even with the disk full: every build and deployment
	// ends, in error if it must.
	if left := rlSettled(t, d, 30*time.Second); left != "" {
		v.add(t, "work stuck while the disk is full (30 s)", left)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if left := rlSettled(t, d, 30*time.Second); left != "" {
		v.add(t, "work stuck after space returned (30 s)", left)
	}

	// Space is back: without a restart, a push builds and passes.
	commit := alice.commit(t, src, "f", "after\n")
	if out, err := rlGitRun(alice.env(), time.Minute, src, "push", d.url("app"), "main"); err != nil {
		t.Fatalf("a push once space returned: %v\n%s", err, out)
	}
	var last record.Build
	d.eventually(t, btBuildTimeout, "the build of the push after space returned to end", func() bool {
		bs, err := db.ListBuilds(t.Context(), "app", 0)
		if err != nil {
			return false
		}
		for _, b := range bs {
			if b.Commit == commit && b.State.Final() {
				last = b
				return true
			}
		}
		return false
	})
	if last.State != record.StatePassed {
		t.Errorf("the build once space returned: %s (%s)", last.State, last.Reason)
	}
	if ok := rlIntegrity(t, data); ok != "ok" {
		t.Errorf("integrity_check after a full disk: %s", ok)
	}
	if bad := rlFsck(bare); bad != "" {
		t.Errorf("git fsck after a full disk: %s", bad)
	}
	rdb := rlOpenDB(t, data)
	defer rdb.Close()
	recs, err := rlRecordedRefs(rdb, "app")
	if err != nil {
		t.Fatal(err)
	}
	for _, diff := range rlRefsDifferFromRecord(rlServerRefs(t, bare), recs) {
		v.add(t, "refs differ from the recorded state after a full disk", diff)
	}
	states, _ := rlStates(rdb, "builds")
	t.Logf("full disk: pushes %d ok, %d refused; builds %v", ok, refused, states)
	// A build the full disk ended says so.
	bs, err := db.ListBuilds(t.Context(), "app", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bs {
		if b.State == record.StateError {
			t.Logf("build #%d: %s (%s)", b.ID, b.State, b.Reason)
			if l := strings.ToLower(b.Reason); !strings.Contains(l, "space") && !strings.Contains(l, "disk") {
				v.add(t, "a build the full disk ended does not say why", fmt.Sprintf("#%d: %q", b.ID, b.Reason))
			}
		}
	}
	if s := v.summary(); s != "" {
		t.Logf("broken promises:\n%s", s)
	}
}

// rlSetFree grows or shrinks filler until the file system of dir has
// about target bytes free (within a page; to the last byte for 0), and
// returns what is free then.
func rlSetFree(t *testing.T, dir, filler string, target int64) int64 {
	t.Helper()
	free := func() int64 {
		var st syscall.Statfs_t
		if err := syscall.Statfs(dir, &st); err != nil {
			t.Fatal(err)
		}
		return int64(st.Bavail) * st.Bsize
	}
	f, err := os.OpenFile(filler, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		t.Fatal(err)
	}
	if n := free(); n < target {
		size = max(0, size-(target-n))
		if err := f.Truncate(size); err != nil {
			t.Fatal(err)
		}
	}
	chunk := make([]byte, 64<<10)
	for n := free(); n > target; n = free() {
		step := min(int64(len(chunk)), n-target)
		if step < 4096 && target > 0 {
			break // within a page of the target
		}
		m, err := f.WriteAt(chunk[:max(step, 1)], size)
		size += int64(m)
		if err != nil {
			break // full
		}
	}
	return free()
}

var rlPortRE = regexp.MustCompile(`(127\.0\.0\.1:|port )\d+`)

// rlWhy is the line of a failed push's output that says most about why:
// git's rejection of a ref, else its last line, with ports taken out so
// that failures of one kind count together.
func rlWhy(out string) string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	why := lines[len(lines)-1]
	for _, l := range lines {
		if strings.Contains(l, "[remote rejected]") || strings.Contains(l, "! [") || strings.Contains(l, "Connection refused") {
			why = l
			break
		}
	}
	return rlPortRE.ReplaceAllString(strings.TrimSpace(why), "${1}PORT")
}

// rlOutcome is one line on how a push went: "ok" or the last line of why.
func rlOutcome(err error, out string) string {
	if err == nil {
		return "ok"
	}
	return fmt.Sprintf("refused (%v): %s", err, rlWhy(out))
}

// rlLoadResult is what one run of the load workload measured.
type rlLoadResult struct {
	wall            time.Duration
	latencies       []time.Duration // of the pushes that succeeded
	failures        []string        // pushes and clones that did not
	ok              map[string][]string
	clones          int
	pushes, pushers int
}

func (r rlLoadResult) String() string {
	return fmt.Sprintf("%d pushes (%d pushers) in %v: %.1f pushes/s, p50 %v, p95 %v; %d clones alongside, %d failures",
		r.pushes, r.pushers, r.wall.Round(time.Millisecond), float64(len(r.latencies))/r.wall.Seconds(),
		percentile(r.latencies, 50).Round(time.Millisecond), percentile(r.latencies, 95).Round(time.Millisecond),
		r.clones, len(r.failures))
}

// rlLoad runs the load workload against one server: pushers clients, each
// with its own clone of seed and its own branch, push each commits as fast
// as they can, while cloners clone the repository over and over. envs[i]
// is the environment of pusher i (its key), url the repository's.
func rlLoad(t *testing.T, seed, url string, envs [][]string, each, cloners int) rlLoadResult {
	t.Helper()
	r := rlLoadResult{ok: map[string][]string{}, pushes: len(envs) * each, pushers: len(envs)}
	var mu sync.Mutex
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		r.failures = append(r.failures, fmt.Sprintf(format, args...))
	}
	dirs := make([]string, len(envs))
	for i, env := range envs {
		dirs[i] = filepath.Join(t.TempDir(), "w")
		if out, err := rlGitRun(env, time.Minute, "", "clone", "-q", seed, dirs[i]); err != nil {
			t.Fatalf("clone the seed: %v\n%s", err, out)
		}
	}
	done := make(chan struct{})
	var cl sync.WaitGroup
	for c := range cloners {
		cl.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-done:
					return
				default:
				}
				dir := filepath.Join(t.TempDir(), "clone")
				if out, err := rlGitRun(envs[c%len(envs)], time.Minute, "", "clone", "-q", url, dir); err != nil {
					fail("clone: %v\n%s", err, out)
				} else {
					mu.Lock()
					r.clones++
					mu.Unlock()
				}
				_ = os.RemoveAll(dir)
			}
		})
	}
	start := time.Now()
	var wg sync.WaitGroup
	for i, env := range envs {
		wg.Go(func() {
			branch := "p" + strconv.Itoa(i)
			for n := range each {
				if err := os.WriteFile(filepath.Join(dirs[i], branch), []byte(strconv.Itoa(n)+"\n"), 0o644); err != nil {
					fail("%v", err)
					return
				}
				if out, err := rlGitRun(env, time.Minute, dirs[i], "add", branch); err != nil {
					fail("add: %v\n%s", err, out)
					return
				}
				if out, err := rlGitRun(env, time.Minute, dirs[i], "commit", "-q", "-m", fmt.Sprintf("%s %d", branch, n)); err != nil {
					fail("commit: %v\n%s", err, out)
					return
				}
				head, _ := rlGitRun(env, time.Minute, dirs[i], "rev-parse", "HEAD")
				began := time.Now()
				out, err := rlGitRun(env, time.Minute, dirs[i], "push", "-q", url, "HEAD:refs/heads/"+branch)
				took := time.Since(began)
				if err != nil {
					fail("push %s #%d: %v\n%s", branch, n, err, out)
					continue
				}
				mu.Lock()
				r.latencies = append(r.latencies, took)
				r.ok["refs/heads/"+branch] = append(r.ok["refs/heads/"+branch], strings.TrimSpace(head))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	r.wall = time.Since(start)
	close(done)
	cl.Wait()
	return r
}

// TestReliabilityLoad: 8 pushers × 25 pushes at once, each to its own
// branch, plus 2 clients cloning all the while. Every push and clone
// succeeds; every push is recorded and on the server, the refs match the
// records, every build ends, the repository and database are sound. The
// same workload then runs against a stock OpenSSH sshd with git-shell
// (bench/openssh-baseline.sh) on loopback, and both figures are printed.
func TestReliabilityLoad(t *testing.T) {
	t.Parallel()
	const pushers, each, cloners = 8, 25, 2
	var users []*user
	var envs [][]string
	for i := range pushers {
		u := newUser(t, "pusher"+strconv.Itoa(i))
		users = append(users, u)
		envs = append(envs, u.env())
	}
	// keep above the pushes made: every push's record must stay to be
	// checked (retention has its own test).
	d := btStartDaemon(t, configFor("[build]\nkeep = 1000\n", users[:1], users[1:]...)+`
[[repo]]
name = "load"
read = ["*"]
write = ["*"]
`)
	seed := users[0].newProject(t, map[string]string{".slipway.toml": btPipeline("", "true"), "f": "0\n"})
	users[0].mustGit(t, seed, "push", "-q", d.url("load"), "main")

	res := rlLoad(t, seed, d.url("load"), envs, each, cloners)
	note := ""
	if raceEnabled {
		note = " (slipway built with -race)"
	}
	t.Logf("slipway:         %v%s", res, note)
	for _, f := range res.failures {
		t.Errorf("under load on slipway: %s", f)
	}
	if left := rlSettled(t, d, 2*time.Minute); left != "" {
		t.Errorf("builds and deployments still unfinished 2 min after the load: %s", left)
	}
	bare := filepath.Join(d.dataDir(), "repos", "load.git")
	db := rlOpenDB(t, d.dataDir())
	defer db.Close()
	recs, err := rlRecordedRefs(db, "load")
	if err != nil {
		t.Fatal(err)
	}
	server := rlServerRefs(t, bare)
	for ref, ids := range res.ok {
		for _, id := range ids {
			if !rlRecorded(recs, ref, id) {
				t.Errorf("push of %s to %s succeeded and is not recorded", id[:12], ref)
			}
		}
		if last := ids[len(ids)-1]; server[ref] != last {
			t.Errorf("%s is %s on the server, want %s, its last successful push", ref, rlShort(server[ref]), last[:12])
		}
	}
	for _, diff := range rlRefsDifferFromRecord(server, recs) {
		t.Errorf("refs differ from the recorded state: %s", diff)
	}
	if bad := rlFsck(bare); bad != "" {
		t.Errorf("git fsck after the load: %s", bad)
	}
	if ok := rlIntegrity(t, d.dataDir()); ok != "ok" {
		t.Errorf("integrity_check after the load: %s", ok)
	}
	builds, _ := rlStates(db, "builds")
	recorded, _ := rlPushes(db)
	t.Logf("slipway recorded %d pushes; builds %v", recorded, builds)

	// The same workload on stock OpenSSH + git-shell.
	if os.Geteuid() != 0 {
		t.Log("no OpenSSH baseline: bench/openssh-baseline.sh needs root (it creates the user gitbench); CI runs as root")
		return
	}
	base := rlBaseline(t)
	benv := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_AUTHOR_NAME=bench", "GIT_AUTHOR_EMAIL=bench@example.invalid",
		"GIT_COMMITTER_NAME=bench", "GIT_COMMITTER_EMAIL=bench@example.invalid",
		"GIT_SSH_COMMAND=ssh -i " + base.key + " -o IdentitiesOnly=yes -o IdentityAgent=none -o StrictHostKeyChecking=no" +
			" -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o BatchMode=yes"}
	if out, err := rlGitRun(benv, time.Minute, seed, "push", "-q", base.url, "main"); err != nil {
		t.Fatalf("seed push to the OpenSSH baseline: %v\n%s", err, out)
	}
	benvs := make([][]string, pushers)
	for i := range benvs {
		benvs[i] = benv
	}
	bres := rlLoad(t, seed, base.url, benvs, each, cloners)
	t.Logf("openssh+git-shell: %v", bres)
	for _, f := range bres.failures {
		t.Logf("under load on the OpenSSH baseline: %s", f)
	}
	t.Logf("slipway/openssh: throughput %.2f×, p50 %.1f×, p95 %.1f×",
		(float64(len(res.latencies))/res.wall.Seconds())/(float64(len(bres.latencies))/bres.wall.Seconds()),
		float64(percentile(res.latencies, 50))/float64(percentile(bres.latencies, 50)),
		float64(percentile(res.latencies, 95))/float64(percentile(bres.latencies, 95)))
}

// rlBaselineServer is a stock OpenSSH sshd whose user's shell is git-shell.
type rlBaselineServer struct {
	url string // ssh://gitbench@127.0.0.1:PORT/.../repos/load.git, an empty bare repository
	key string // the client key it accepts
}

// rlBaseline starts bench/openssh-baseline.sh (as root) with a bare
// repository "load" and stops it at the end of the test. sshd cannot listen
// on port 0 and say which port it got, so ports of a high range are tried
// in turn from a random one until sshd binds one (never listen and close).
// The script returns as soon as sshd has gone to the background, which it
// does before it listens, so the server is ready (and the port its own)
// only once sshd has written its pid file; a try that never gets there is
// given up, its sshd killed.
func rlBaseline(t *testing.T) rlBaselineServer {
	t.Helper()
	script, err := filepath.Abs(filepath.Join("..", "bench", "openssh-baseline.sh"))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "openssh")
	searchable(t, filepath.Dir(dir))
	if err := os.Chmod(filepath.Dir(dir), 0o755); err != nil {
		t.Fatal(err)
	}
	pidFile := filepath.Join(dir, "etc", "sshd.pid")
	config := filepath.Join(dir, "etc", "sshd_config")
	stop := func() {
		_ = exec.Command(script, "stop", dir).Run()
		for _, pid := range btProcs(t, config) {
			_ = syscall.Kill(pid, syscall.SIGTERM)
		}
	}
	t.Cleanup(stop)
	first := 20000 + rand.IntN(20000)
	var prefix, tries string
	for port := first; port < first+20 && prefix == ""; port++ {
		_ = os.Remove(pidFile)
		out, err := exec.Command(script, "start", dir, strconv.Itoa(port)).CombinedOutput()
		if err != nil {
			tries += fmt.Sprintf("port %d: %v\n%s", port, err, out)
			continue
		}
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			if b, err := os.ReadFile(pidFile); err == nil && len(strings.TrimSpace(string(b))) > 0 {
				lines := strings.Split(strings.TrimSpace(string(out)), "\n")
				prefix = lines[len(lines)-1]
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if prefix == "" {
			tries += fmt.Sprintf("port %d: sshd did not start listening within 10 s\n", port)
			stop()
		}
	}
	if prefix == "" {
		t.Fatalf("start %s:\n%s", script, tries)
	}
	repo := filepath.Join(dir, "repos", "load.git")
	run(t, "", nil, "git", "init", "-q", "--bare", repo)
	run(t, "", nil, "chown", "-R", "gitbench", repo)
	return rlBaselineServer{url: prefix + "/load.git", key: filepath.Join(dir, "etc", "client_key")}
}
