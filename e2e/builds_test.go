package e2e

// End-to-end tests of issue 3 (builds) against the real binary: real git,
// ssh, bubblewrap and SQLite. Steps that must stay running while the test
// looks at them wait for a file the test creates in the repository's cache
// folder (mounted at /cache in the sandbox), so nothing here races a sleep.

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"slipway/internal/testutil"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"slipway/record"
	"slipway/store"
)

// btBuild is one entry of `builds --json`.
type btBuild struct {
	ID       int64        `json:"id"`
	Repo     string       `json:"repo"`
	Ref      string       `json:"ref"`
	Commit   string       `json:"commit"`
	State    record.State `json:"state"`
	Reason   string       `json:"reason"`
	Trigger  string       `json:"trigger"`
	Attempt  int          `json:"attempt"`
	Started  *time.Time   `json:"started"`
	Finished *time.Time   `json:"finished"`
	PushID   int64        `json:"push_id"`
	RetryOf  int64        `json:"retry_of"`
	Digest   string       `json:"digest"`
	Steps    []struct {
		Name       string `json:"name"`
		ExitCode   int    `json:"exit_code"`
		DurationMS int64  `json:"duration_ms"`
	} `json:"steps"`
}

// btStartDaemon is startDaemon that fails on a warning at start (a sandbox
// that cannot run builds says so there).
func btStartDaemon(t testing.TB, config string, env ...string) *daemon {
	t.Helper()
	d := startDaemon(t, config, env...)
	btNoWarning(d)
	return d
}

func btNoWarning(d *daemon) {
	d.t.Helper()
	if strings.Contains(d.stdout.String(), "WARNING") {
		d.t.Fatalf("slipway serve warns at start:\n%s\n%s", d.stdout, d.logs)
	}
}

// btBuildTimeout bounds how long a build of these tests may take to reach a
// final state on a loaded 2-core machine.
const btBuildTimeout = 2 * time.Minute

// btRepoConfig is the [[repo]] of the tests' "app": alice writes, bob reads.
const btRepoConfig = `
[[repo]]
name = "app"
read = ["*"]
write = ["alice"]
`

// btUsers returns alice (admin) and bob (a reader of app).
func btUsers(t *testing.T) (alice, bob *user) {
	return newUser(t, "alice"), newUser(t, "bob")
}

// btApp starts a daemon (btStartDaemon) on btRepoConfig followed by extra,
// with alice (admin, app's writer) and bob (a reader) as its users.
func btApp(t *testing.T, extra string) (alice, bob *user, d *daemon) {
	t.Helper()
	alice, bob = btUsers(t)
	return alice, bob, btStartDaemon(t, configFor(btRepoConfig+extra, []*user{alice}, bob))
}

// btBuilds lists a repository's builds as a user sees them with
// `builds REPO --json`.
func btBuilds(t *testing.T, d *daemon, u *user, repo string) []btBuild {
	t.Helper()
	return sshJSON[[]btBuild](t, d, u, "builds", repo, "--limit", "200", "--json")
}

// btBuildByID returns one build of btBuilds.
func btBuildByID(t *testing.T, d *daemon, u *user, repo string, id int64) btBuild {
	t.Helper()
	return mustFind(t, btBuilds(t, d, u, repo), func(b btBuild) bool { return b.ID == id },
		fmt.Sprintf("builds %s --json does not list build #%d", repo, id))
}

// btFinal waits (reading the daemon's database, which is cheap to poll)
// until a build reaches a final state, and then for its log to end, and
// returns it as `builds --json` shows it. The result is recorded before
// the log's last line ("== passed in ...") is written, so a test that read
// the log as soon as the state was final could miss that line.
func btFinal(t *testing.T, d *daemon, db *store.Store, u *user, repo string, id int64) btBuild {
	t.Helper()
	d.eventually(t, btBuildTimeout, fmt.Sprintf("build #%d to end", id), func() bool {
		b, err := db.GetBuild(t.Context(), id)
		return err == nil && b.State.Final()
	})
	btLog(t, d, u, id, true)
	return btBuildByID(t, d, u, repo, id)
}

// btPassed is btFinal for a build that must pass; what names it in the
// failure.
func btPassed(t *testing.T, d *daemon, db *store.Store, u *user, repo string, id int64, what string) btBuild {
	t.Helper()
	b := btFinal(t, d, db, u, repo, id)
	if b.State != record.StatePassed {
		t.Fatalf("%s (build #%d): %s (%s), want passed", what, id, b.State, b.Reason)
	}
	return b
}

var btQueuedRE = regexp.MustCompile(`build #(\d+) queued: (\S+) @ ([0-9a-f]{7}) — follow: ssh -p (\d+) (\S+) log (\d+) -f`)

// btQueued returns the ids of the builds a push's output says were queued,
// checking the follow command shown with each.
func btQueued(t *testing.T, d *daemon, pushOut string) []int64 {
	t.Helper()
	var ids []int64
	for _, m := range btQueuedRE.FindAllStringSubmatch(pushOut, -1) {
		if m[1] != m[6] || m[4] != d.port() || m[5] != "127.0.0.1" {
			t.Errorf("follow command of build #%s is wrong: %q", m[1], m[0])
		}
		id, _ := strconv.ParseInt(m[1], 10, 64)
		ids = append(ids, id)
	}
	return ids
}

// btPushOne pushes and returns the one build the push queued.
func btPushOne(t *testing.T, d *daemon, u *user, dir string, args ...string) (int64, string) {
	t.Helper()
	out := u.mustGit(t, dir, append([]string{"push", d.url("app")}, args...)...)
	ids := btQueued(t, d, out)
	if len(ids) != 1 {
		t.Fatalf("push %v queued %d builds, want 1:\n%s", args, len(ids), out)
	}
	return ids[0], out
}

// btLog is `log ID` as u sees it.
func btLog(t testing.TB, d *daemon, u *user, id int64, follow bool) string {
	t.Helper()
	args := []string{"log", strconv.FormatInt(id, 10)}
	if follow {
		args = append(args, "-f")
	}
	out, errOut, code := d.ssh(u, args...)
	if code != 0 && !follow {
		t.Fatalf("log %d: exit %d: %s", id, code, errOut)
	}
	return out
}

// btCache is the host folder of a repository's build cache of main
// (/cache in the sandbox for builds of main; every ref has its own).
func btCache(d *daemon, repo string) string {
	return filepath.Join(d.dataDir(), "build", "cache", repo, url.PathEscape("refs/heads/main"))
}

// btRefCaches are the cache folders of every ref of app that has one.
func btRefCaches(d *daemon) []string {
	dirs, _ := filepath.Glob(filepath.Join(d.dataDir(), "build", "cache", "app", "refs%2F*"))
	return slices.DeleteFunc(dirs, func(dir string) bool { return strings.Contains(filepath.Base(dir), ".new-") })
}

// btTouch creates a file in the cache folder of every ref of app (main's
// made if it has none yet), letting a waiting step go on.
func btTouch(t *testing.T, d *daemon, name string) {
	t.Helper()
	if err := os.MkdirAll(btCache(d, "app"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, dir := range btRefCaches(d) {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// btExists says whether a file exists in the cache folder of any ref of
// app.
func btExists(d *daemon, name string) bool {
	for _, dir := range btRefCaches(d) {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			return true
		}
	}
	return false
}

// btWaitStep is a step that says it started (creates /cache/<name>.started)
// and then waits until the test creates /cache/<name>.go. The waiting is
// the build's; the test only ever polls for the .started file.
func btWaitStep(name string) string {
	return fmt.Sprintf(`touch /cache/%[1]s.started; while [ ! -e /cache/%[1]s.go ]; do sleep 0.05; done`, name)
}

// btMarker is a string unique to one test run, for finding the processes of
// its steps on the host.
func btMarker(what string) string {
	return fmt.Sprintf("btmark-%s-%d", what, time.Now().UnixNano())
}

// btProcs returns the host pids whose command line or environment holds
// marker. Steps get the marker in their environment (every descendant
// inherits it) and in their command text (which bwrap's command line shows).
func btProcs(t *testing.T, marker string) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		for _, f := range []string{"cmdline", "environ"} {
			// Processes that end meanwhile cannot be read: they are gone.
			b, err := os.ReadFile(filepath.Join("/proc", e.Name(), f))
			if err == nil && strings.Contains(string(b), marker) {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}

// btProcDesc describes processes for a failure message.
func btProcDesc(pids []int) string {
	var b strings.Builder
	for _, pid := range pids {
		cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		fmt.Fprintf(&b, "  %d: %s\n", pid, strings.ReplaceAll(string(cmd), "\x00", " "))
	}
	return b.String()
}

// btBackground is a command running in the background whose output the
// test watches as it comes.
type btBackground struct {
	cmd  *exec.Cmd
	out  *testutil.Buffer // stdout and stderr, as they come
	done chan struct{}
	err  error
}

func btStart(t *testing.T, cmd *exec.Cmd) *btBackground {
	t.Helper()
	bg := &btBackground{cmd: cmd, out: &testutil.Buffer{}, done: make(chan struct{})}
	// Separate pipes (see user.git), merged into one buffer.
	stdout, stderr := &testutil.Buffer{}, &testutil.Buffer{}
	cmd.Stdout, cmd.Stderr = btTee{stdout, bg.out}, btTee{stderr, bg.out}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		bg.err = cmd.Wait()
		close(bg.done)
	}()
	t.Cleanup(func() {
		select {
		case <-bg.done:
		default:
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-bg.done
		}
	})
	return bg
}

func (bg *btBackground) exited() bool {
	select {
	case <-bg.done:
		return true
	default:
		return false
	}
}

// wait waits for the command to end and returns its output.
func (bg *btBackground) wait(t *testing.T) string {
	t.Helper()
	select {
	case <-bg.done:
	case <-time.After(btBuildTimeout):
		t.Fatalf("%v did not end; output so far:\n%s", bg.cmd.Args, bg.out)
	}
	return bg.out.String()
}

type btTee [2]*testutil.Buffer

func (w btTee) Write(p []byte) (int, error) {
	w[0].Write(p)
	return w[1].Write(p)
}

// btPipeline renders a .slipway.toml whose [build] has the given steps and
// extra lines (timeout, cache, env).
func btPipeline(extra string, steps ...string) string {
	q := make([]string, len(steps))
	for i, s := range steps {
		q[i] = strconv.Quote(s)
	}
	return "[build]\nsteps = [" + strings.Join(q, ", ") + "]\n" + extra
}

// TestBuildPassesAndIsListed: a push whose pipeline passes is built at once;
// its steps, exit codes and durations are recorded and shown by
// `builds --json`, and its log holds the steps' output.
func TestBuildPassesAndIsListed(t *testing.T) {
	t.Parallel()
	alice, bob, d := btApp(t, "")
	db := d.store(t)
	src := alice.newProject(t, map[string]string{
		"README": "hello\n",
		".slipway.toml": btPipeline("",
			`echo "bt-out branch=$SLIPWAY_BRANCH repo=$SLIPWAY_REPO ci=$CI"`,
			`test -f README && echo "bt-readme $(cat README)"`),
	})
	commit := alice.head(t, src)
	id, out := btPushOne(t, d, alice, src, "main")
	if !strings.Contains(out, fmt.Sprintf("build #%d queued: main @ %s", id, commit[:7])) {
		t.Errorf("push output does not name the build, branch and commit:\n%s", out)
	}

	b := btFinal(t, d, db, bob, "app", id)
	if b.State != "passed" || b.Commit != commit || b.Ref != "refs/heads/main" || b.Trigger != "push" ||
		b.Attempt != 1 || b.PushID == 0 || b.Started == nil || b.Finished == nil {
		t.Fatalf("builds --json shows %+v; want a passed push build of main @ %s, attempt 1", b, commit)
	}
	if len(b.Steps) != 2 {
		t.Fatalf("builds --json records %d steps, want 2: %+v", len(b.Steps), b.Steps)
	}
	for i, s := range b.Steps {
		if s.ExitCode != 0 || s.DurationMS <= 0 || !strings.HasPrefix(s.Name, []string{"echo", "test"}[i]) {
			t.Errorf("step %d recorded as %+v", i+1, s)
		}
	}
	log := btLog(t, d, bob, id, false)
	for _, want := range []string{"bt-out branch=main repo=app ci=true", "bt-readme hello", "== step 2/2", "passed in"} {
		if !strings.Contains(log, want) {
			t.Errorf("log %d lacks %q:\n%s", id, want, log)
		}
	}
	// The text listing says the same.
	list, _, code := d.ssh(bob, "builds", "app")
	if code != 0 || !regexp.MustCompile(fmt.Sprintf(`(?m)^%d\s+app\s+main\s+%s\s+passed\s+push`, id, commit[:7])).MatchString(list) {
		t.Errorf("builds app (exit %d) does not list #%d as passed:\n%s", code, id, list)
	}
}

// TestBuildFailsAtStep2ThenRetryPasses: the first failing step fails the
// build and the steps after it never run. A reader can neither cancel nor
// retry; a writer's retry queues a new build of the same commit, which
// passes once what made step 2 fail is fixed.
func TestBuildFailsAtStep2ThenRetryPasses(t *testing.T) {
	t.Parallel()
	alice, bob, d := btApp(t, "")
	db := d.store(t)
	src := alice.newProject(t, map[string]string{
		".slipway.toml": btPipeline("cache = true\n",
			`touch /cache/step1-$SLIPWAY_BUILD_ID`,
			`echo bt-checking; test -e /cache/fixed`,
			`touch /cache/step3-$SLIPWAY_BUILD_ID; echo bt-step3-ran`),
	})
	id, _ := btPushOne(t, d, alice, src, "main")
	b := btFinal(t, d, db, alice, "app", id)
	if b.State != "failed" || !strings.Contains(b.Reason, "step 2") || !strings.Contains(b.Reason, "exited 1") {
		t.Fatalf("build #%d: %s (%s); want failed at step 2", id, b.State, b.Reason)
	}
	if len(b.Steps) != 2 || b.Steps[0].ExitCode != 0 || b.Steps[1].ExitCode != 1 {
		t.Fatalf("recorded steps %+v; want step 1 exit 0, step 2 exit 1, no step 3", b.Steps)
	}
	if !btExists(d, fmt.Sprintf("step1-%d", id)) {
		t.Fatal("step 1 did not run (its file is not in the cache)")
	}
	if btExists(d, fmt.Sprintf("step3-%d", id)) {
		t.Fatal("step 3 ran after step 2 failed (its file is in the cache)")
	}
	log := btLog(t, d, alice, id, false)
	if !strings.Contains(log, "bt-checking") || strings.Contains(log, "bt-step3-ran") || strings.Contains(log, "step 3/3") {
		t.Fatalf("log of the failed build:\n%s", log)
	}

	// A reader may look but not touch.
	for _, cmd := range []string{"retry", "cancel"} {
		_, errOut, code := d.ssh(bob, cmd, strconv.FormatInt(id, 10))
		if code == 0 || !strings.Contains(errOut, "may read \"app\" but not change its builds") {
			t.Errorf("bob's %s %d: exit %d, %q; want a refusal", cmd, id, code, errOut)
		}
	}
	if n := len(btBuilds(t, d, alice, "app")); n != 1 {
		t.Fatalf("after the reader's retry there are %d builds, want 1", n)
	}

	btTouch(t, d, "fixed")
	out, errOut, code := d.ssh(alice, "retry", strconv.FormatInt(id, 10))
	m := regexp.MustCompile(`build #(\d+) queued: a retry of build #` + strconv.FormatInt(id, 10)).FindStringSubmatch(out)
	if code != 0 || m == nil {
		t.Fatalf("retry %d: exit %d, %q %q", id, code, out, errOut)
	}
	retry, _ := strconv.ParseInt(m[1], 10, 64)
	rb := btFinal(t, d, db, alice, "app", retry)
	if rb.State != "passed" || rb.RetryOf != id || rb.Commit != b.Commit || len(rb.Steps) != 3 {
		t.Fatalf("retry build %+v; want passed, retry_of %d, same commit, 3 steps", rb, id)
	}
	if !btExists(d, fmt.Sprintf("step3-%d", retry)) {
		t.Fatal("step 3 of the retry did not run")
	}
}

// TestMissingAndBrokenPipelineFile: a commit without .slipway.toml is
// recorded as skipped and the push output says so; a broken file ends the
// build in state error naming the line and column.
func TestMissingAndBrokenPipelineFile(t *testing.T) {
	t.Parallel()
	alice, bob, d := btApp(t, "")
	db := d.store(t)
	src := alice.newProject(t, map[string]string{"README": "no pipeline here\n"})
	commit := alice.head(t, src)
	out := alice.mustGit(t, src, "push", d.url("app"), "main")
	m := regexp.MustCompile(`build #(\d+) skipped: main @ ` + commit[:7] + ` — (.*)`).FindStringSubmatch(out)
	if m == nil || !strings.Contains(m[2], "no .slipway.toml") {
		t.Fatalf("push output does not say the build was skipped and why:\n%s", out)
	}
	if ids := btQueued(t, d, out); len(ids) != 0 {
		t.Fatalf("a commit without a pipeline queued builds %v", ids)
	}
	skipped, _ := strconv.ParseInt(m[1], 10, 64)
	if b := btBuildByID(t, d, bob, "app", skipped); b.State != "skipped" || b.Attempt != 0 {
		t.Fatalf("skipped build listed as %+v", b)
	}

	broken := "[build]\nsteps = [\"echo hi\"]\ntimeout = \"soon\"\n"
	alice.commit(t, src, ".slipway.toml", broken)
	id, _ := btPushOne(t, d, alice, src, "main")
	b := btFinal(t, d, db, bob, "app", id)
	pos := regexp.MustCompile(`\.slipway\.toml:3:\d+: `)
	if b.State != "error" || !pos.MatchString(b.Reason) {
		t.Fatalf("broken pipeline: %s (%q); want error with .slipway.toml:3:COL", b.State, b.Reason)
	}
	if len(b.Steps) != 0 {
		t.Fatalf("a broken pipeline ran steps: %+v", b.Steps)
	}
	list, _, _ := d.ssh(bob, "builds", "app")
	if !regexp.MustCompile(fmt.Sprintf(`(?m)^%d\s.*\serror\s.*\.slipway\.toml:3:\d+: `, id)).MatchString(list) {
		t.Errorf("builds app does not show the error with its position:\n%s", list)
	}
	if log := btLog(t, d, bob, id, false); !pos.MatchString(log) {
		t.Errorf("log %d does not show the position of the problem:\n%s", id, log)
	}
}

// btGitBackground starts `git ARGS` as u in dir in the background.
func btGitBackground(t *testing.T, u *user, dir string, args ...string) *btBackground {
	t.Helper()
	return btStart(t, execGit(dir, u.env(), args...))
}

// TestPushWaitStreamsTheLog: `git push -o wait` keeps the push open and
// streams the build's log live (a line the step prints reaches the pusher
// while the step still runs), ending with the result and the duration.
func TestPushWaitStreamsTheLog(t *testing.T) {
	t.Parallel()
	alice, _, d := btApp(t, "")
	db := d.store(t)
	src := alice.newProject(t, map[string]string{
		".slipway.toml": btPipeline("cache = true\n",
			`echo bt-wait-first-$((40+2))`, btWaitStep("wait"), `echo bt-wait-second-$((40+2))`),
	})
	push := btGitBackground(t, alice, src, "push", "-o", "wait", d.url("app"), "main")
	d.eventually(t, btBuildTimeout, "the step's first line in the push output", func() bool {
		return strings.Contains(push.out.String(), "bt-wait-first-42")
	})
	d.eventually(t, btBuildTimeout, "step 2 to start", func() bool { return btExists(d, "wait.started") })
	if push.exited() || strings.Contains(push.out.String(), "bt-wait-second-42") {
		t.Fatalf("the push ended or showed later output before the build went on:\n%s", push.out)
	}
	btTouch(t, d, "wait.go")
	out := push.wait(t)
	if push.err != nil {
		t.Fatalf("git push -o wait: %v\n%s", push.err, out)
	}
	ids := btQueued(t, d, out)
	if len(ids) != 1 {
		t.Fatalf("push output names %d queued builds:\n%s", len(ids), out)
	}
	result := regexp.MustCompile(fmt.Sprintf(`remote: build #%d passed in \d[\d.]*m?s\s*\n`, ids[0]))
	loc := result.FindStringIndex(out)
	first, second := strings.Index(out, "bt-wait-first-42"), strings.Index(out, "bt-wait-second-42")
	if loc == nil || first < 0 || second < first || second > loc[0] {
		t.Fatalf("push output does not stream the log and end with the result and duration:\n%s", out)
	}
	if rest := out[loc[1]:]; strings.Contains(rest, "remote:") {
		t.Errorf("remote output after the result line:\n%s", rest)
	}
	btPassed(t, d, db, alice, "app", ids[0], "the build")

	// A pusher that goes away does not take the build with it.
	alice.commit(t, src, "f", "again\n")
	push = btGitBackground(t, alice, src, "push", "-o", "wait", d.url("app"), "main")
	d.eventually(t, btBuildTimeout, "the second build's step 1 in the push output", func() bool {
		return strings.Count(push.out.String(), "bt-wait-first-42") == 1
	})
	if ids = btQueued(t, d, push.out.String()); len(ids) != 1 {
		t.Fatalf("the second push names %d queued builds:\n%s", len(ids), push.out)
	}
	_ = syscall.Kill(-push.cmd.Process.Pid, syscall.SIGKILL)
	push.wait(t)
	btPassed(t, d, db, alice, "app", ids[0], "the build after the pusher left")
	if log := btLog(t, d, alice, ids[0], false); !strings.Contains(log, "bt-wait-second-42") {
		t.Fatalf("the build did not run to its end after the pusher left:\n%s", log)
	}
}

// TestLogFollowDuringBuild: `log ID -f` of two other clients (a reader and
// the writer) started during the build show what the build printed so far,
// then the rest live, and end when the build ends, with its result.
func TestLogFollowDuringBuild(t *testing.T) {
	t.Parallel()
	alice, bob, d := btApp(t, "")
	db := d.store(t)
	src := alice.newProject(t, map[string]string{
		".slipway.toml": btPipeline("cache = true\n",
			`echo bt-follow-first-$((40+2))`, btWaitStep("follow"), `echo bt-follow-second-$((40+2))`),
	})
	id, _ := btPushOne(t, d, alice, src, "main")
	d.eventually(t, btBuildTimeout, "step 2 to start", func() bool { return btExists(d, "follow.started") })
	var followers []*btBackground
	for _, u := range []*user{bob, alice} {
		f := btStart(t, d.sshCmd(u, "log", strconv.FormatInt(id, 10), "-f"))
		followers = append(followers, f)
	}
	for i, f := range followers {
		d.eventually(t, btBuildTimeout, fmt.Sprintf("follower %d to show the build's output so far", i), func() bool {
			return strings.Contains(f.out.String(), "bt-follow-first-42")
		})
	}
	for i, f := range followers {
		if f.exited() || strings.Contains(f.out.String(), "bt-follow-second-42") {
			t.Fatalf("follower %d ended or showed what was not printed yet:\n%s", i, f.out)
		}
	}
	btTouch(t, d, "follow.go")
	for i, f := range followers {
		out := f.wait(t)
		if f.err != nil {
			t.Errorf("follower %d: %v\n%s", i, f.err, out)
		}
		first, second, end := strings.Index(out, "bt-follow-first-42"), strings.Index(out, "bt-follow-second-42"),
			strings.Index(out, fmt.Sprintf("build #%d passed", id))
		if first < 0 || second < first || end < second {
			t.Errorf("follower %d's output is not the whole log in order, ending with the result:\n%s", i, out)
		}
	}
	btPassed(t, d, db, bob, "app", id, "the build")
	// A finished build is followed to its end at once.
	if out := btLog(t, d, bob, id, true); !strings.Contains(out, "bt-follow-second-42") || !strings.Contains(out, "passed") {
		t.Fatalf("log -f of a finished build:\n%s", out)
	}
}

// TestCancelRunningBuildKillsItsProcesses: `cancel ID` of a running build
// kills every process of the step, background children included, and
// records the build as cancelled by the user; a reader cannot cancel.
func TestCancelRunningBuildKillsItsProcesses(t *testing.T) {
	t.Parallel()
	alice, bob, d := btApp(t, "")
	db := d.store(t)
	marker := btMarker("cancel")
	src := alice.newProject(t, map[string]string{
		".slipway.toml": btPipeline(fmt.Sprintf("cache = true\n[build.env]\nBT_MARKER = %q\n", marker),
			// Children in the background, one in a new session, and the
			// step itself waiting for a file that never comes.
			`: `+marker+`; sleep 300 & setsid sleep 300 & (while :; do sleep 1; done) & `+btWaitStep("cancel")),
	})
	id, _ := btPushOne(t, d, alice, src, "main")
	d.eventually(t, btBuildTimeout, "the step to start", func() bool { return btExists(d, "cancel.started") })
	d.eventually(t, btBuildTimeout, "the step's processes to show on the host", func() bool {
		return len(btProcs(t, marker)) >= 5
	})

	_, errOut, code := d.ssh(bob, "cancel", strconv.FormatInt(id, 10))
	if code == 0 || !strings.Contains(errOut, "not change its builds") {
		t.Fatalf("bob's cancel: exit %d, %q; want a refusal", code, errOut)
	}
	if b, _ := db.GetBuild(t.Context(), id); b.State != record.StateRunning {
		t.Fatalf("after the reader's cancel the build is %s", b.State)
	}

	out, errOut, code := d.ssh(alice, "cancel", strconv.FormatInt(id, 10))
	if code != 0 || !strings.Contains(out, fmt.Sprintf("build #%d cancelled", id)) {
		t.Fatalf("cancel %d: exit %d, %q %q", id, code, out, errOut)
	}
	// cancel returns once the build has stopped: nothing of it is left.
	if left := btProcs(t, marker); len(left) > 0 {
		t.Fatalf("processes of the cancelled step are still running:\n%s", btProcDesc(left))
	}
	b := btBuildByID(t, d, alice, "app", id)
	if b.State != "cancelled" || b.Reason != "cancelled by alice" {
		t.Fatalf("cancelled build listed as %s (%q)", b.State, b.Reason)
	}
	if log := btLog(t, d, bob, id, false); !strings.Contains(log, "cancelled by alice") {
		t.Fatalf("the log does not say who cancelled:\n%s", log)
	}
	_, errOut, code = d.ssh(alice, "cancel", strconv.FormatInt(id, 10))
	if code == 0 || !strings.Contains(errOut, "already ended") {
		t.Fatalf("a second cancel: exit %d, %q", code, errOut)
	}
}

// TestBuildTimeout: a pipeline's timeout kills the step with its children
// and fails the build with "timed out".
func TestBuildTimeout(t *testing.T) {
	t.Parallel()
	alice, bob, d := btApp(t, "")
	db := d.store(t)
	marker := btMarker("timeout")
	src := alice.newProject(t, map[string]string{
		".slipway.toml": btPipeline(fmt.Sprintf("timeout = \"2s\"\n[build.env]\nBT_MARKER = %q\n", marker),
			`: `+marker+`; echo bt-before-$((1+1)); sleep 120 & sleep 120; echo bt-after-$((1+1))`),
	})
	id, _ := btPushOne(t, d, alice, src, "main")
	b := btFinal(t, d, db, bob, "app", id)
	if b.State != "failed" || !strings.Contains(b.Reason, "timed out") {
		t.Fatalf("build #%d: %s (%q); want failed, timed out", id, b.State, b.Reason)
	}
	if took := b.Finished.Sub(*b.Started); took < 2*time.Second || took > 60*time.Second {
		t.Fatalf("a build with a 2s timeout took %v", took)
	}
	if left := btProcs(t, marker); len(left) > 0 {
		t.Fatalf("processes of the timed-out step are still running:\n%s", btProcDesc(left))
	}
	log := btLog(t, d, bob, id, false)
	if !strings.Contains(log, "bt-before-2") || strings.Contains(log, "bt-after-2") || !strings.Contains(log, "timed out") {
		t.Fatalf("log of the timed-out build:\n%s", log)
	}
}

// btHealthy checks that the daemon still answers and builds: whoami works
// and a new commit's build passes.
func btHealthy(t *testing.T, d *daemon, db *store.Store, u *user, src string) {
	t.Helper()
	if out, errOut, code := d.ssh(u, "whoami"); code != 0 || !strings.Contains(out, u.name) {
		t.Fatalf("whoami after the build: exit %d, %q %q", code, out, errOut)
	}
	u.commit(t, src, ".slipway.toml", btPipeline("", `echo bt-next-$((1+1))`))
	id, _ := btPushOne(t, d, u, src, "main")
	btPassed(t, d, db, u, "app", id, "the next build")
	if log := btLog(t, d, u, id, false); !strings.Contains(log, "bt-next-2") {
		t.Fatalf("the next build's log:\n%s", log)
	}
}

// TestHugeOutputIsCut: a step that prints 100 MB leaves a log cut at the
// server's cap, which says where and how much was dropped, and the daemon
// goes on serving and building.
func TestHugeOutputIsCut(t *testing.T) {
	t.Parallel()
	const maxLog = 1 << 20
	alice, bob, d := btApp(t, fmt.Sprintf("[build]\nmax_log_bytes = %d\n", maxLog))
	db := d.store(t)
	src := alice.newProject(t, map[string]string{
		".slipway.toml": btPipeline("",
			`yes bt-flood-0123456789abcdefghijklmnopqrstuvwxyz | head -c 100000000; echo bt-flood-done-$((1+1))`),
	})
	start := time.Now()
	id, _ := btPushOne(t, d, alice, src, "main")
	b := btFinal(t, d, db, alice, "app", id)
	t.Logf("a build printing 100 MB took %v from the push", time.Since(start))
	if b.State != "passed" {
		t.Fatalf("build #%d: %s (%s)", id, b.State, b.Reason)
	}
	info, err := os.Stat(filepath.Join(d.dataDir(), "logs", strconv.FormatInt(id, 10)+".log"))
	if err != nil {
		t.Fatal(err)
	}
	if info.Size() > maxLog+4096 || info.Size() < maxLog {
		t.Fatalf("the log file holds %d bytes; want the 1 MiB cap and a few lines", info.Size())
	}
	log := btLog(t, d, bob, id, false)
	m := regexp.MustCompile(`== log truncated at 1 MiB; (\d+) more bytes discarded`).FindStringSubmatch(log)
	if !strings.Contains(log, "== output cut: the log reached its 1 MiB cap") || m == nil {
		t.Fatalf("the log does not say where it was cut; its end:\n%s", log[max(0, len(log)-2000):])
	}
	if n, _ := strconv.Atoi(m[1]); n < 98_000_000 {
		t.Fatalf("the log says %d bytes were discarded; the step printed 100 MB", n)
	}
	if strings.Contains(log, "bt-flood-done-2") || !strings.Contains(log, "bt-flood-0123") {
		t.Fatal("the log is not the start of the output cut at the cap")
	}
	btHealthy(t, d, db, alice, src)
}

// TestForkBombIsContained: a fork bomb hits the process limit inside its
// sandbox, the build ends with every process of it gone, and the host and
// the daemon carry on.
func TestForkBombIsContained(t *testing.T) {
	t.Parallel()
	// A low process limit keeps the bomb from crowding out other builds of
	// uid 65534 that run on this machine meanwhile.
	alice, _, d := btApp(t, "[build]\nmax_processes = 128\n")
	db := d.store(t)
	marker := btMarker("bomb")
	src := alice.newProject(t, map[string]string{
		".slipway.toml": btPipeline(fmt.Sprintf("timeout = \"6s\"\n[build.env]\nBT_MARKER = %q\n", marker),
			`: `+marker+`; b() { b | b & }; b; while :; do b 2>/dev/null; sleep 0.01; done`),
	})
	id, _ := btPushOne(t, d, alice, src, "main")
	b := btFinal(t, d, db, alice, "app", id)
	// The bomb's own shell gives up when it cannot fork (dash's "Cannot
	// fork" is fatal), or else the timeout ends it: either way it fails.
	if b.State != "failed" {
		t.Fatalf("fork bomb build: %s (%s); want failed\n%s", b.State, b.Reason, btLog(t, d, alice, id, false))
	}
	if left := btProcs(t, marker); len(left) > 0 {
		t.Fatalf("%d processes of the fork bomb are still running:\n%s", len(left), btProcDesc(left))
	}
	log := btLog(t, d, alice, id, false)
	if !regexp.MustCompile(`(?i)can(no|')t fork|resource temporarily unavailable`).MatchString(log) {
		t.Errorf("the log does not show the bomb hitting the process limit:\n%s", log)
	}
	// The host can still fork.
	if out, err := exec.Command("sh", "-c", "echo ok").CombinedOutput(); err != nil || string(out) != "ok\n" {
		t.Fatalf("the host cannot fork after the bomb: %v %q", err, out)
	}
	btHealthy(t, d, db, alice, src)
}

// TestSecretsNeverAppearInLogs: secrets from a file, a multi-line file and
// the daemon's environment reach the steps, and are masked in the stream
// of `git push -o wait`, in `log ID`, and in everything the daemon keeps on
// disk, also when printed line by line, to stderr, or split across writes.
func TestSecretsNeverAppearInLogs(t *testing.T) {
	t.Parallel()
	alice, bob := btUsers(t)
	const (
		token  = "bt-tok-4f9a2c71e0"
		multi1 = "bt-multi-one-8c2d"
		multi2 = "bt-multi-two-5e7b"
		envSec = "bt-envsec-93ab1f"
	)
	secrets := t.TempDir()
	tokenFile, multiFile := filepath.Join(secrets, "token"), filepath.Join(secrets, "multi")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(multiFile, []byte(multi1+"\n"+multi2+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := btRepoConfig + fmt.Sprintf(`
  [[repo.secret]]
  name = "BT_TOKEN"
  file = %q
  branches = ["main"]
  [[repo.secret]]
  name = "BT_MULTI"
  file = %q
  branches = ["main"]
  [[repo.secret]]
  name = "BT_ENVSEC"
  env = "BT_E2E_SECRET"
  branches = ["main"]
`, tokenFile, multiFile)
	d := btStartDaemon(t, configFor(cfg, []*user{alice}, bob), "BT_E2E_SECRET="+envSec)
	db := d.store(t)
	src := alice.newProject(t, map[string]string{
		".slipway.toml": btPipeline("",
			`echo "token=$BT_TOKEN len=${#BT_TOKEN}"`,
			`printf '%s\n' "$BT_MULTI"; printf '%s\n' "$BT_MULTI" | tail -n 1; echo "multi-lines=$(printf '%s\n' "$BT_MULTI" | wc -l)"`,
			`echo "env=$BT_ENVSEC len=${#BT_ENVSEC}"; echo "stderr=$BT_ENVSEC" >&2`,
			// One secret in two writes of two processes, 200 ms apart.
			`printf '%s' "$BT_TOKEN" | head -c 7; sleep 0.2; printf '%s\n' "$BT_TOKEN" | tail -c +8`),
	})
	out := alice.mustGit(t, src, "push", "-o", "wait", d.url("app"), "main")
	ids := btQueued(t, d, out)
	if len(ids) != 1 || !regexp.MustCompile(fmt.Sprintf(`build #%d passed in`, ids[0])).MatchString(out) {
		t.Fatalf("push -o wait did not stream a passing build:\n%s", out)
	}
	id := ids[0]
	leaks := func(where, text string) {
		t.Helper()
		for _, s := range []string{token, multi1, multi2, envSec} {
			if strings.Contains(text, s) {
				t.Errorf("%s shows the secret %q", where, s)
			}
		}
	}
	log := btLog(t, d, bob, id, false)
	for what, text := range map[string]string{"the push stream": out, "log " + strconv.FormatInt(id, 10): log} {
		leaks(what, text)
		// The steps did get the values: their lengths and line counts come through.
		for _, want := range []string{"token=*** len=17", "multi-lines=2", "env=*** len=16", "stderr=***"} {
			if !strings.Contains(text, want) {
				t.Errorf("%s lacks %q:\n%s", what, want, text)
			}
		}
	}
	btPassed(t, d, db, bob, "app", id, "the build")
	// Nothing the daemon keeps holds a secret: logs, database, repositories.
	var files int
	err := filepath.WalkDir(d.dataDir(), func(p string, e fs.DirEntry, err error) error {
		if err != nil || !e.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil // removed meanwhile
		}
		if err != nil {
			return err
		}
		files++
		leaks(p, string(b))
		return nil
	})
	if err != nil || files < 3 {
		t.Fatalf("walk the data dir: %v (%d files)", err, files)
	}
}

// TestNewerPushSupersedesQueuedBuild: with one worker busy, two pushes of
// the same branch leave the earlier build superseded (told to the pusher,
// never run); the newer one runs.
func TestNewerPushSupersedesQueuedBuild(t *testing.T) {
	t.Parallel()
	alice, bob, d := btApp(t, "[build]\nconcurrency = 1\n")
	db := d.store(t)
	src := alice.newProject(t, map[string]string{
		".slipway.toml": btPipeline("cache = true\n",
			`touch /cache/started-$SLIPWAY_BUILD_ID; while [ ! -e /cache/go ]; do sleep 0.05; done`),
	})
	slow, _ := btPushOne(t, d, alice, src, "HEAD:refs/heads/slow")
	d.eventually(t, btBuildTimeout, "the slow build to start", func() bool {
		return btExists(d, fmt.Sprintf("started-%d", slow))
	})
	c1 := alice.commit(t, src, "f", "one\n")
	first, _ := btPushOne(t, d, alice, src, "main")
	alice.commit(t, src, "f", "two\n")
	second, out := btPushOne(t, d, alice, src, "main")
	if !strings.Contains(out, fmt.Sprintf("build #%d (main @ %s) superseded: it had not started", first, c1[:7])) {
		t.Fatalf("the second push does not say build #%d was superseded:\n%s", first, out)
	}
	if b := btBuildByID(t, d, bob, "app", first); b.State != "superseded" {
		t.Fatalf("build #%d is %s, want superseded", first, b.State)
	}
	btTouch(t, d, "go")
	for _, id := range []int64{slow, second} {
		btPassed(t, d, db, bob, "app", id, "the build")
	}
	b := btBuildByID(t, d, bob, "app", first)
	if b.State != "superseded" || b.Attempt != 0 || b.Started != nil || btExists(d, fmt.Sprintf("started-%d", first)) {
		t.Fatalf("superseded build #%d ran or changed: %+v", first, b)
	}
	if log := btLog(t, d, bob, first, false); !strings.Contains(log, fmt.Sprintf("build #%d superseded", first)) {
		t.Fatalf("log of the superseded build: %q", log)
	}
}

// TestDaemonKilledDuringBuild: kill -9 of the daemon during a build leaves
// no process of the step behind; the next start marks the build
// interrupted and runs it again as attempt 2, saying so in its log, and the
// push that caused it is still recorded.
func TestDaemonKilledDuringBuild(t *testing.T) {
	t.Parallel()
	alice, bob, d := btApp(t, "")
	marker := btMarker("kill")
	src := alice.newProject(t, map[string]string{
		".slipway.toml": btPipeline(fmt.Sprintf("cache = true\n[build.env]\nBT_MARKER = %q\n", marker),
			`: `+marker+`; echo run >> /cache/runs; sleep 300 & while [ ! -e /cache/go ]; do sleep 0.05; done`),
	})
	commit := alice.head(t, src)
	id, _ := btPushOne(t, d, alice, src, "main")
	runs := func() int {
		b, _ := os.ReadFile(filepath.Join(btCache(d, "app"), "runs"))
		return strings.Count(string(b), "run\n")
	}
	d.eventually(t, btBuildTimeout, "the step to run", func() bool { return runs() == 1 && len(btProcs(t, marker)) >= 3 })

	d.kill()
	testutil.Eventually(t, 30*time.Second, "the step's processes to die with the daemon", func() bool {
		return len(btProcs(t, marker)) == 0
	})
	db := d.store(t)
	if b, err := db.GetBuild(t.Context(), id); err != nil || b.State != record.StateRunning {
		t.Fatalf("after kill -9 build #%d is %v (%v); the record should still say running", id, b.State, err)
	}

	d.start()
	btNoWarning(d)
	d.eventually(t, btBuildTimeout, "the build to run again", func() bool { return runs() == 2 })
	btTouch(t, d, "go")
	b := btFinal(t, d, db, bob, "app", id)
	if b.State != "passed" || b.Attempt != 2 || b.Commit != commit {
		t.Fatalf("build #%d after the restart: %s (%s), attempt %d", id, b.State, b.Reason, b.Attempt)
	}
	log := btLog(t, d, bob, id, false)
	for _, want := range []string{"(attempt 1)", "the daemon stopped during attempt 1; running again", "(attempt 2)", "passed in"} {
		if !strings.Contains(log, want) {
			t.Errorf("log of the re-run build lacks %q:\n%s", want, log)
		}
	}
	p, err := db.GetPush(t.Context(), b.PushID)
	if err != nil || p.User != "alice" || len(p.Refs) != 1 || p.Refs[0].Name != "refs/heads/main" || p.Refs[0].New != commit {
		t.Fatalf("the push of build #%d: %+v, %v", id, p, err)
	}
	if n := len(btBuilds(t, d, bob, "app")); n != 1 {
		t.Fatalf("%d builds after the restart, want the one build", n)
	}
}

// TestFiftyPushesAllBuild: 50 pushes of distinct branches, several at a
// time, with two workers held busy: every push gets its build, 48 wait in
// the queue, then every build reaches a final state (passed), and never
// more than two run at once.
func TestFiftyPushesAllBuild(t *testing.T) {
	t.Parallel()
	alice, bob, d := btApp(t, "[build]\nconcurrency = 2\n")
	db := d.store(t)
	// The builds wait for a go-ahead, so that the queue really fills up.
	src := alice.newProject(t, map[string]string{".slipway.toml": btPipeline("cache = true\n",
		`echo "bt-branch $SLIPWAY_BRANCH"; while [ ! -e /cache/go ]; do sleep 0.05; done`)})
	const n = 50
	branch := func(i int) string { return fmt.Sprintf("b%02d", i) }
	for i := range n {
		alice.mustGit(t, src, "branch", branch(i))
	}
	// The first push creates the repository; the other 49 go at once, five
	// at a time.
	ids := make([]int64, n)
	push := func(i int) error {
		out, err := alice.git(src, "push", d.url("app"), branch(i))
		if err != nil {
			return fmt.Errorf("push %s: %v\n%s", branch(i), err, out)
		}
		got := btQueuedRE.FindAllStringSubmatch(out, -1)
		if len(got) != 1 || got[0][2] != branch(i) {
			return fmt.Errorf("push %s queued %d builds:\n%s", branch(i), len(got), out)
		}
		ids[i], _ = strconv.ParseInt(got[0][1], 10, 64)
		return nil
	}
	start := time.Now()
	if err := push(0); err != nil {
		t.Fatal(err)
	}
	next := make(chan int)
	var wg sync.WaitGroup
	for range 5 {
		wg.Go(func() {
			for i := range next {
				if err := push(i); err != nil {
					t.Error(err)
				}
			}
		})
	}
	for i := 1; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("50 pushes took %v", time.Since(start))
	states := func() map[record.State]int {
		bs, err := db.ListBuilds(t.Context(), "app", 0)
		if err != nil {
			t.Fatal(err)
		}
		m := map[record.State]int{}
		for _, b := range bs {
			m[b.State]++
		}
		return m
	}
	d.eventually(t, btBuildTimeout, "two builds to run", func() bool { return states()[record.StateRunning] == 2 })
	if m := states(); m[record.StateRunning] != 2 || m[record.StateQueued] != n-2 {
		t.Fatalf("with the workers busy the builds are %v; want 2 running and %d queued", m, n-2)
	}
	btTouch(t, d, "go")
	d.eventually(t, 5*time.Minute, "all 50 builds to end", func() bool {
		bs, err := db.ListBuilds(t.Context(), "app", 0)
		if err != nil {
			return false
		}
		for _, b := range bs {
			if !b.State.Final() {
				return false
			}
		}
		return len(bs) >= n
	})
	t.Logf("50 pushes to 50 finished builds took %v", time.Since(start))

	bs := btBuilds(t, d, bob, "app")
	if len(bs) != n {
		t.Fatalf("%d builds listed, want %d", len(bs), n)
	}
	byRef, pushes := map[string]int64{}, map[int64]bool{}
	type event struct {
		at    time.Time
		delta int
	}
	var events []event
	for _, b := range bs {
		if b.State != "passed" || len(b.Steps) != 1 {
			t.Errorf("build #%d of %s: %s (%s)", b.ID, b.Ref, b.State, b.Reason)
			continue
		}
		byRef[b.Ref] = b.ID
		pushes[b.PushID] = true
		events = append(events, event{*b.Started, 1}, event{*b.Finished, -1})
	}
	for i := range n {
		if id := byRef["refs/heads/"+branch(i)]; id == 0 || id != ids[i] {
			t.Errorf("branch %s: build #%d listed, push said #%d", branch(i), id, ids[i])
		}
	}
	if len(pushes) != n {
		t.Errorf("the builds come from %d pushes, want %d", len(pushes), n)
	}
	// Ends sort before starts at the same instant.
	sort.Slice(events, func(i, j int) bool {
		if events[i].at.Equal(events[j].at) {
			return events[i].delta < events[j].delta
		}
		return events[i].at.Before(events[j].at)
	})
	running, most := 0, 0
	for _, e := range events {
		running += e.delta
		most = max(most, running)
	}
	if most > 2 {
		t.Errorf("%d builds ran at once with concurrency = 2", most)
	}
}

// TestMemoryLimitIsHeld: with build.max_memory_bytes set, a step whose
// processes together go over it is killed by the kernel; the build fails
// saying so, and the daemon and the next build are fine.
func TestMemoryLimitIsHeld(t *testing.T) {
	t.Parallel()
	alice, _, d := btApp(t, "[build]\nmax_memory_bytes = 50331648\n")
	db := d.store(t)
	// Two shells holding 40 MB each: 80 MB against a 48 MiB limit.
	src := alice.newProject(t, map[string]string{
		".slipway.toml": btPipeline("",
			`hold() { x=$(head -c 40000000 /dev/zero | tr '\0' a); sleep 1; echo ${#x}; }; hold & hold; wait`),
	})
	id, _ := btPushOne(t, d, alice, src, "main")
	b := btFinal(t, d, db, alice, "app", id)
	log := btLog(t, d, alice, id, false)
	if b.State != "failed" || !strings.Contains(b.Reason, "out of memory") || !strings.Contains(log, "went over the memory limit (48 MiB)") {
		t.Fatalf("80 MB under a 48 MiB limit: %s (%s)\n%s", b.State, b.Reason, log)
	}
	btHealthy(t, d, db, alice, src)
}
