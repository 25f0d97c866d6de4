package e2e

// End-to-end tests of issue 8 (a push that lands only when green: `git push
// -o verify`, verify_branches) against the real binary, git, ssh, bubblewrap
// and SQLite. Steps that must stay running while the test acts wait for a
// file the test creates in the repository's cache folder.

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"slipway/record"
	"slipway/store"
)

// vtStart starts a daemon (btStartDaemon) on app (alice writes, bob
// writes too, carol reads) with extra lines in its [[repo]], and a local
// staging folder that passing builds of main go to.
func vtStart(t *testing.T, extra string) (alice, bob *user, d *daemon, staging string) {
	t.Helper()
	alice, bob = btUsers(t)
	staging = filepath.Join(t.TempDir(), "staging")
	return alice, bob, btStartDaemon(t, configFor(fmt.Sprintf(`
[[repo]]
name = "app"
read = ["*"]
write = ["alice", "bob"]
%s
  [[repo.environment]]
  name = "staging"
  auto = "main"
  target = %q
`, extra, staging), []*user{alice}, bob)), staging
}

var vtVerifiesRE = regexp.MustCompile(`build #(\d+) verifies (\S+) @ ([0-9a-f]{7}) before the push lands — follow: ssh -p (\d+) (\S+) log (\d+) -f`)

// vtVerifyID returns the build a push's output says verifies it.
func vtVerifyID(t *testing.T, d *daemon, out string) int64 {
	t.Helper()
	m := vtVerifiesRE.FindAllStringSubmatch(out, -1)
	if len(m) != 1 || m[0][1] != m[0][6] || m[0][4] != d.port() {
		t.Fatalf("push output does not name one verify build with its follow command:\n%s", out)
	}
	id, _ := strconv.ParseInt(m[0][1], 10, 64)
	return id
}

// vtPushes counts the pushes the daemon recorded.
func vtPushes(t *testing.T, db *store.Store) int {
	t.Helper()
	last, err := db.LastPushes(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := last["app"]; ok {
		return int(p.ID)
	}
	return 0
}

// TestVerifiedPushFailingLeavesTheRef: `git push -o verify` of a revision
// whose step 2 fails streams the build's log while it runs, exits non-zero
// with git's "[remote rejected]" and one line naming the failing step, and
// leaves main where it was; the failed build stays listed (trigger verify)
// with its log, and no push is recorded.
func TestVerifiedPushFailingLeavesTheRef(t *testing.T) {
	t.Parallel()
	alice, bob, d, _ := vtStart(t, "")
	db := d.store(t)
	src := alice.newProject(t, map[string]string{".slipway.toml": btPipeline("", "true")})
	before := alice.head(t, src)
	id, _ := btPushOne(t, d, alice, src, "main")
	btFinal(t, d, db, alice, "app", id)
	pushes := vtPushes(t, db)

	if err := os.WriteFile(filepath.Join(src, ".slipway.toml"), []byte(btPipeline("cache = true\n",
		`echo vt-first-$((40+2))`, btWaitStep("fail")+`; echo vt-failing-$((40+2)); exit 3`, `echo vt-never-$((40+2))`)), 0o644); err != nil {
		t.Fatal(err)
	}
	alice.mustGit(t, src, "commit", "-q", "-am", "break step 2")
	push := btGitBackground(t, alice, src, "push", "-o", "verify", d.url("app"), "main")
	// Live: the first step's output reaches the pusher while step 2 waits.
	d.eventually(t, btBuildTimeout, "step 1's output in the push output", func() bool {
		return strings.Contains(push.out.String(), "vt-first-42")
	})
	d.eventually(t, btBuildTimeout, "step 2 to start", func() bool { return btExists(d, "fail.started") })
	if push.exited() {
		t.Fatalf("the push ended before its build did:\n%s", push.out)
	}
	btTouch(t, d, "fail.go")
	out := push.wait(t)
	if push.err == nil {
		t.Fatalf("git push -o verify of a failing revision exited 0:\n%s", out)
	}
	vid := vtVerifyID(t, d, out)
	step := fmt.Sprintf("remote: refs/heads/main: build #%d failed: step 2 (%s) exited 3", vid, stepShort(btWaitStep("fail")+`; echo vt-failing-$((40+2)); exit 3`))
	for _, want := range []string{"vt-failing-42", step, "remote: slipway: push refused; no ref was updated",
		"! [remote rejected] main -> main (pre-receive hook declined)"} {
		if !strings.Contains(out, want) {
			t.Errorf("push output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "vt-never-42") {
		t.Errorf("step 3 ran after step 2 failed:\n%s", out)
	}
	if got := dtRemoteRef(t, d, bob, "app", "refs/heads/main"); got != before {
		t.Fatalf("main is at %s after a refused verified push, want %s", got, before)
	}
	b := btFinal(t, d, db, bob, "app", vid)
	if b.State != "failed" || b.Trigger != "verify" || b.PushID != 0 || !strings.Contains(b.Reason, "step 2") {
		t.Fatalf("the failed verification is listed as %+v", b)
	}
	if log := btLog(t, d, bob, vid, false); !strings.Contains(log, "vt-failing-42") || !strings.Contains(log, "== failed: step 2") {
		t.Fatalf("log %d:\n%s", vid, log)
	}
	if n := vtPushes(t, db); n != pushes {
		t.Errorf("a refused push was recorded (%d pushes, %d before)", n, pushes)
	}
	if n := len(btBuilds(t, d, bob, "app")); n != 2 {
		t.Errorf("%d builds, want the first push's and the failed verification", n)
	}
}

// stepShort is a step as build results name it.
func stepShort(step string) string {
	if len(step) > 40 {
		return step[:40] + "…"
	}
	return step
}

// TestVerifiedPushPassingCountsOnce: a passing `git push -o verify` moves
// the ref; the push is recorded with exactly one build, the verify build,
// passed; nothing else is queued; and the pass ships to staging as any
// passed build of main does.
func TestVerifiedPushPassingCountsOnce(t *testing.T) {
	t.Parallel()
	alice, bob, d, staging := vtStart(t, "")
	db := d.store(t)
	src := alice.newProject(t, map[string]string{
		"index.html":    "verified\n",
		".slipway.toml": btPipeline("artifacts = [\"dist/\"]\n", `echo vt-ok-$((40+2)) on $SLIPWAY_BRANCH`, `mkdir dist && cp index.html dist/`),
	})
	commit := alice.head(t, src)
	out, err := alice.git(src, "push", "-o", "verify", d.url("app"), "main")
	if err != nil {
		t.Fatalf("a passing verified push: %v\n%s", err, out)
	}
	vid := vtVerifyID(t, d, out)
	for _, want := range []string{
		"vt-ok-42 on main",
		fmt.Sprintf("remote: build #%d passed: main may move to %s", vid, commit[:7]),
		fmt.Sprintf("remote: build #%d passed: main @ %s — verified before the push landed, it is the branch's build", vid, commit[:7]),
		"main -> main",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("push output lacks %q:\n%s", want, out)
		}
	}
	if ids := btQueued(t, d, out); len(ids) != 0 {
		t.Errorf("the verified push queued builds %v besides its verification:\n%s", ids, out)
	}
	if got := dtRemoteRef(t, d, bob, "app", "refs/heads/main"); got != commit {
		t.Fatalf("main is at %q after a passing verified push, want %s", got, commit)
	}
	b := btBuildByID(t, d, bob, "app", vid)
	if b.State != "passed" || b.Trigger != "verify" || b.PushID == 0 || b.Commit != commit || len(b.Steps) != 2 {
		t.Fatalf("the verify build after the push: %+v", b)
	}
	var ofPush []btBuild
	for _, x := range btBuilds(t, d, bob, "app") {
		if x.PushID == b.PushID {
			ofPush = append(ofPush, x)
		}
	}
	if len(ofPush) != 1 || len(btBuilds(t, d, bob, "app")) != 1 {
		t.Fatalf("push #%d has builds %+v, want exactly the verify build", b.PushID, ofPush)
	}
	p, err := db.GetPush(t.Context(), b.PushID)
	if err != nil || p.User != "alice" || len(p.Refs) != 1 || p.Refs[0].New != commit {
		t.Fatalf("push #%d: %+v, %v", b.PushID, p, err)
	}
	if log := btLog(t, d, bob, vid, false); !strings.Contains(log, "vt-ok-42") ||
		!strings.Contains(log, fmt.Sprintf("== push #%d landed: main is at %s, and this is its build", b.PushID, commit[:7])) {
		t.Errorf("log %d:\n%s", vid, log)
	}
	dep := dtWaitDeploy(t, d, bob, "app", "staging", commit, 0)
	if dep.State != record.DeploySucceeded || dep.BuildID != vid || dep.Trigger != record.DeployAuto {
		t.Fatalf("staging deployment of the verified build: %+v", dep)
	}
	if got, err := os.ReadFile(filepath.Join(staging, "current", "dist", "index.html")); err != nil || string(got) != "verified\n" {
		t.Errorf("staging serves %q, %v", got, err)
	}
}

// TestConcurrentPushRefusedWhileVerifying: while alice's verified push to
// main builds, bob's push to main is refused at once with one line saying
// whose push holds it, and his push to another branch goes through; alice's
// push then lands.
func TestConcurrentPushRefusedWhileVerifying(t *testing.T) {
	t.Parallel()
	alice, bob, d, _ := vtStart(t, "")
	src := alice.newProject(t, map[string]string{".slipway.toml": btPipeline("cache = true\n", btWaitStep("hold"))})
	commit := alice.head(t, src)
	push := btGitBackground(t, alice, src, "push", "-o", "verify", d.url("app"), "main")
	d.eventually(t, btBuildTimeout, "alice's build to start", func() bool { return btExists(d, "hold.started") })
	vid := vtVerifyID(t, d, push.out.String())

	other := bob.newProject(t, map[string]string{"b": "bob's\n"})
	out, err := bob.git(other, "push", "-f", d.url("app"), "main")
	dtRefused(t, out, err, "refs/heads/main",
		fmt.Sprintf("another push is being verified (build #%d by alice); push again when it ends", vid))
	if !strings.Contains(out, "[remote rejected] main -> main (pre-receive hook declined)") {
		t.Errorf("bob's push output:\n%s", out)
	}
	if out, err := bob.git(other, "push", d.url("app"), "main:bob"); err != nil {
		t.Fatalf("bob's push to another branch: %v\n%s", err, out)
	}
	// A second verified push of main is refused the same way.
	out, err = bob.git(other, "push", "-f", "-o", "verify", d.url("app"), "main")
	dtRefused(t, out, err, "refs/heads/main", fmt.Sprintf("(build #%d by alice)", vid))

	btTouch(t, d, "hold.go")
	if out := push.wait(t); push.err != nil {
		t.Fatalf("alice's verified push: %v\n%s", push.err, out)
	}
	if got := dtRemoteRef(t, d, bob, "app", "refs/heads/main"); got != commit {
		t.Fatalf("main is at %q, want alice's %s", got, commit)
	}
	// Once her push has landed, main takes pushes again.
	bob.mustGit(t, other, "fetch", "-q", d.url("app"), "main")
	bob.mustGit(t, other, "merge", "-q", "--allow-unrelated-histories", "-m", "merge", "FETCH_HEAD")
	if out, err := bob.git(other, "push", d.url("app"), "main"); err != nil {
		t.Fatalf("bob's push after alice's landed: %v\n%s", err, out)
	}
}

// TestVerifyBranchesMakePlainPushVerified: with verify_branches = ["main"],
// a plain push to main is verified as if -o verify was given: refused when
// its build fails, landed when it passes; a push to another branch builds
// after landing, as before.
func TestVerifyBranchesMakePlainPushVerified(t *testing.T) {
	t.Parallel()
	alice, bob, d, _ := vtStart(t, `verify_branches = ["main"]`)
	db := d.store(t)
	src := alice.newProject(t, map[string]string{".slipway.toml": btPipeline("", `echo vt-red; exit 1`)})
	out, err := alice.git(src, "push", d.url("app"), "main")
	if err == nil {
		t.Fatalf("a failing plain push to a verify branch was accepted:\n%s", out)
	}
	vid := vtVerifyID(t, d, out)
	dtRefused(t, out, err, "refs/heads/main", fmt.Sprintf("build #%d failed: step 1 (echo vt-red; exit 1) exited 1", vid))
	if got := dtRemoteRef(t, d, bob, "app", "refs/heads/main"); got != "" {
		t.Fatalf("main exists (%s) after its only push failed verification", got)
	}

	// Another branch is not verified: it lands and then builds (and fails).
	out, err = alice.git(src, "push", d.url("app"), "main:topic")
	if err != nil || len(btQueued(t, d, out)) != 1 || vtVerifiesRE.MatchString(out) {
		t.Fatalf("a push to topic: %v\n%s", err, out)
	}

	commit := alice.commit(t, src, ".slipway.toml", btPipeline("", `echo vt-green`))
	out, err = alice.git(src, "push", d.url("app"), "main")
	if err != nil {
		t.Fatalf("a passing plain push to a verify branch: %v\n%s", err, out)
	}
	vid = vtVerifyID(t, d, out)
	if got := dtRemoteRef(t, d, bob, "app", "refs/heads/main"); got != commit {
		t.Fatalf("main is at %q, want %s", got, commit)
	}
	if b := btFinal(t, d, db, bob, "app", vid); b.State != "passed" || b.PushID == 0 {
		t.Fatalf("the verification of the passing push: %+v", b)
	}
}

// TestPusherLeavingCancelsVerification: a pusher who disconnects during the
// build takes it down: the build is cancelled, its processes killed, and
// main does not move.
func TestPusherLeavingCancelsVerification(t *testing.T) {
	t.Parallel()
	alice, bob, d, _ := vtStart(t, "")
	db := d.store(t)
	marker := btMarker("leave")
	src := alice.newProject(t, map[string]string{".slipway.toml": btPipeline(
		fmt.Sprintf("cache = true\n[build.env]\nBT_MARKER = %q\n", marker), `: `+marker+`; `+btWaitStep("leave"))})
	push := btGitBackground(t, alice, src, "push", "-o", "verify", d.url("app"), "main")
	d.eventually(t, btBuildTimeout, "the build to start", func() bool { return btExists(d, "leave.started") })
	vid := vtVerifyID(t, d, push.out.String())
	_ = syscall.Kill(-push.cmd.Process.Pid, syscall.SIGKILL)
	push.wait(t)
	b := btFinal(t, d, db, bob, "app", vid)
	if b.State != "cancelled" || b.Reason != "cancelled: the pusher went away" {
		t.Fatalf("verification after its pusher left: %s (%q)", b.State, b.Reason)
	}
	d.eventually(t, 30*time.Second, "the step's processes to end", func() bool { return len(btProcs(t, marker)) == 0 })
	if got := dtRemoteRef(t, d, bob, "app", "refs/heads/main"); got != "" {
		t.Fatalf("main exists (%s) after its pusher left mid-verification", got)
	}
	// main is free again.
	btTouch(t, d, "leave.go")
	if out, err := alice.git(src, "push", "-o", "verify", d.url("app"), "main"); err != nil {
		t.Fatalf("a verified push after the first pusher left: %v\n%s", err, out)
	}
}

// TestDaemonKilledDuringVerification: kill -9 of the daemon mid-build
// fails the push; after the restart the build is recorded as interrupted,
// never runs again and never counts as passed; main never moved.
func TestDaemonKilledDuringVerification(t *testing.T) {
	t.Parallel()
	alice, bob, d, _ := vtStart(t, "")
	src := alice.newProject(t, map[string]string{".slipway.toml": btPipeline("cache = true\n",
		`echo run >> /cache/runs; `+btWaitStep("kill"))})
	commit := alice.head(t, src)
	push := btGitBackground(t, alice, src, "push", "-o", "verify", d.url("app"), "main")
	d.eventually(t, btBuildTimeout, "the build to start", func() bool { return btExists(d, "kill.started") })
	vid := vtVerifyID(t, d, push.out.String())
	d.kill()
	out := push.wait(t)
	// The SSH server died too: git says the remote hung up.
	if push.err == nil || strings.Contains(out, "main -> main\n") {
		t.Fatalf("the push went on after the daemon died: %v\n%s", push.err, out)
	}
	btTouch(t, d, "kill.go")
	d.start()
	btNoWarning(d)
	db := d.store(t)
	b := btBuildByID(t, d, bob, "app", vid)
	if b.State != "interrupted" || !strings.Contains(b.Reason, "does not count") {
		t.Fatalf("the verification after the restart: %s (%q)", b.State, b.Reason)
	}
	if _, ok, _ := db.PassedBuildForCommit(t.Context(), "app", commit); ok {
		t.Fatal("a passed build of the refused commit exists")
	}
	if got := dtRemoteRef(t, d, bob, "app", "refs/heads/main"); got != "" {
		t.Fatalf("main exists (%s) after the daemon died mid-verification", got)
	}
	runs, _ := os.ReadFile(filepath.Join(btCache(d, "app"), "runs"))
	if strings.Count(string(runs), "run\n") != 1 {
		t.Fatalf("the verification ran %d times, want once", strings.Count(string(runs), "run\n"))
	}
	if n := len(btBuilds(t, d, bob, "app")); n != 1 {
		t.Fatalf("%d builds after the restart, want the interrupted one", n)
	}
}

// TestDaemonStoppedDuringVerification: SIGTERM during a verification that
// would outlast the shutdown grace stops the daemon cleanly and at once
// (the waiting push is refused when the stop begins, not when the SSH
// server's 30 s grace runs out); the push fails naming the stop, the build
// ends cancelled (never passed, never run again), main never moved.
func TestDaemonStoppedDuringVerification(t *testing.T) {
	t.Parallel()
	alice, bob, d, _ := vtStart(t, "")
	marker := btMarker("stop")
	src := alice.newProject(t, map[string]string{".slipway.toml": btPipeline(
		fmt.Sprintf("cache = true\n[build.env]\nBT_MARKER = %q\n", marker), `: `+marker+`; echo run >> /cache/runs; `+btWaitStep("stop"))})
	push := btGitBackground(t, alice, src, "push", "-o", "verify", d.url("app"), "main")
	d.eventually(t, btBuildTimeout, "the build to start", func() bool { return btExists(d, "stop.started") })
	vid := vtVerifyID(t, d, push.out.String())
	began := time.Now()
	d.stop() // fails the test unless the daemon exits cleanly
	took := time.Since(began)
	out := push.wait(t)
	if push.err == nil || strings.Contains(out, "main -> main\n") {
		t.Fatalf("the push landed although the daemon stopped mid-verification: %v\n%s", push.err, out)
	}
	t.Logf("the daemon stopped %v after SIGTERM", took.Round(time.Millisecond))
	if took > 15*time.Second {
		t.Errorf("the daemon took %v to stop: the waiting push held the shutdown for its grace", took)
	}
	if want := fmt.Sprintf("build #%d cancelled: the daemon is stopping", vid); !strings.Contains(out, want) {
		t.Errorf("the refusal does not say %q:\n%s", want, out)
	}
	if left := btProcs(t, marker); len(left) > 0 {
		t.Fatalf("the step outlived the daemon:\n%s", btProcDesc(left))
	}
	d.start()
	btNoWarning(d)
	b := btBuildByID(t, d, bob, "app", vid)
	if b.State != "cancelled" || !strings.HasPrefix(b.Reason, "cancelled: ") {
		t.Fatalf("the verification after the stop: %s (%q)", b.State, b.Reason)
	}
	if got := dtRemoteRef(t, d, bob, "app", "refs/heads/main"); got != "" {
		t.Fatalf("main exists (%s) after the daemon stopped mid-verification", got)
	}
	runs, _ := os.ReadFile(filepath.Join(btCache(d, "app"), "runs"))
	if n := strings.Count(string(runs), "run\n"); n != 1 {
		t.Fatalf("the verification ran %d times, want once", n)
	}
	t.Logf("verification ended %s: %q", b.State, b.Reason)
	if log := btLog(t, d, bob, vid, false); !strings.Contains(log, b.Reason) {
		t.Errorf("the log does not say how the build ended (%q):\n%s", b.Reason, log)
	}
}
