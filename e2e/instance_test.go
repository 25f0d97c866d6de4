package e2e

// End-to-end tests of one daemon per data dir and of the daemon's stop
// (issue 11), against the real binary, git, ssh and bubblewrap.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"slipway/internal/testutil"
	"slipway/record"
)

// secondServe runs a second `slipway serve` on d's config, in d's folder
// and environment, and waits at most limit for it to exit, killing it
// then. It returns what it printed (both streams), how long it ran,
// whether it exited by itself within limit, and how it exited.
func secondServe(t *testing.T, d *daemon, limit time.Duration) (out string, took time.Duration, exited bool, err error) {
	t.Helper()
	var buf testutil.Buffer
	cmd := exec.Command(slipwayBin, "serve", "--config", d.config)
	cmd.Dir = d.root
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + d.root}, d.env...)
	cmd.Stdout, cmd.Stderr = &buf, &buf
	began := time.Now()
	p, err := startProc(cmd)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
		exited = true
	case <-time.After(limit):
		_ = cmd.Process.Kill()
		<-p.done
	}
	return buf.String(), time.Since(began), exited, p.err
}

// TestSecondDaemonOnTheSameDataDirExits: a second `slipway serve` with the
// running daemon's config exits at once with one line naming the data dir
// and the first daemon's pid, and touches nothing: the first daemon's
// running build is not re-queued, its hook socket still works, and the
// build finishes once, with its log intact.
func TestSecondDaemonOnTheSameDataDirExits(t *testing.T) {
	t.Parallel()
	alice, bob, d := btApp(t, "")
	db := d.store(t)
	src := alice.newProject(t, map[string]string{
		".slipway.toml": btPipeline("cache = true\n", `echo run >> /cache/runs; `+btWaitStep("lock")),
	})
	id, _ := btPushOne(t, d, alice, src, "main")
	d.eventually(t, btBuildTimeout, "the step to start", func() bool { return btExists(d, "lock.started") })

	out, took, exited, err := secondServe(t, d, 30*time.Second)
	if !exited {
		t.Fatalf("the second daemon is still running after 30 s:\n%s", out)
	}
	out = strings.TrimSpace(out)
	t.Logf("second daemon exited in %v with %v: %s", took.Round(time.Millisecond), err, out)
	if err == nil {
		t.Fatalf("the second daemon exited 0:\n%s", out)
	}
	want := fmt.Sprintf("slipway: %s: the data dir is in use by another slipway daemon (pid %d)", d.dataDir(), d.proc.cmd.Process.Pid)
	if strings.Count(out, "\n") != 0 || !strings.HasPrefix(out, want) {
		t.Fatalf("the second daemon said:\n%s\nwant one line starting with %q", out, want)
	}

	// Nothing was touched: the build still runs in the first daemon, the
	// hook socket is there and answers a push.
	if d.proc.exited() {
		t.Fatalf("the first daemon exited:\n%s", d.logs)
	}
	if b, err := db.GetBuild(t.Context(), id); err != nil || b.State != record.StateRunning || b.Attempt != 1 {
		t.Fatalf("build #%d after the second daemon: %v attempt %d (%v), want running attempt 1", id, b.State, b.Attempt, err)
	}
	if _, err := os.Stat(filepath.Join(d.dataDir(), "run", "hook.sock")); err != nil {
		t.Fatalf("the hook socket: %v", err)
	}
	other := alice.newProject(t, map[string]string{"README": "other\n"})
	alice.mustGit(t, other, "push", d.url("other"), "main")

	btTouch(t, d, "lock.go")
	b := btFinal(t, d, db, bob, "app", id)
	if b.State != "passed" || b.Attempt != 1 {
		t.Fatalf("build #%d: %s (%s), attempt %d; want passed in attempt 1", id, b.State, b.Reason, b.Attempt)
	}
	runs, _ := os.ReadFile(filepath.Join(btCache(d, "app"), "runs"))
	if n := strings.Count(string(runs), "run\n"); n != 1 {
		t.Fatalf("the build ran %d times, want once", n)
	}
	log := btLog(t, d, bob, id, false)
	for want, n := range map[string]int{"== log opened": 1, "== log continued": 0, "(attempt 1)": 1, "daemon stopped": 0, "passed in": 1} {
		if got := strings.Count(log, want); got != n {
			t.Errorf("the log holds %q %d times, want %d:\n%s", want, got, n, log)
		}
	}
	if lock, err := os.ReadFile(filepath.Join(d.dataDir(), "slipway.lock")); err != nil || strings.TrimSpace(string(lock)) != strconv.Itoa(d.proc.cmd.Process.Pid) {
		t.Errorf("slipway.lock holds %q (%v), want the first daemon's pid", lock, err)
	}
}

// TestPushWaitWhenTheDaemonStops: SIGTERM while a `git push -o wait`
// streams its running build answers the pusher at once: the push was
// recorded, so git exits 0, after a line saying that the build continues
// after the restart. Nothing new starts meanwhile: a build queued behind
// the running one stays queued.
func TestPushWaitWhenTheDaemonStops(t *testing.T) {
	t.Parallel()
	alice, _, d := btApp(t, "\n[build]\nconcurrency = 1\n")
	db := d.store(t)
	src := alice.newProject(t, map[string]string{
		".slipway.toml": btPipeline("cache = true\n", `echo run >> /cache/runs; `+btWaitStep("stopwait")),
	})
	push := btGitBackground(t, alice, src, "push", "-o", "wait", d.url("app"), "main")
	d.eventually(t, btBuildTimeout, "the step to start", func() bool { return btExists(d, "stopwait.started") })
	ids := btQueued(t, d, push.out.String())
	if len(ids) != 1 {
		t.Fatalf("push output names %d queued builds:\n%s", len(ids), push.out)
	}
	// A second branch's build waits for the one worker.
	alice.mustGit(t, src, "checkout", "-q", "-b", "other")
	second, _ := btPushOne(t, d, alice, src, "other")

	began := time.Now()
	if err := d.proc.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	out := push.wait(t)
	took := time.Since(began)
	t.Logf("the push ended %v after SIGTERM", took.Round(time.Millisecond))
	if push.err != nil {
		t.Fatalf("git push -o wait exited with %v when the daemon stopped:\n%s", push.err, out)
	}
	want := fmt.Sprintf("remote: slipway: the daemon is stopping; build #%d will continue after it restarts", ids[0])
	if !strings.Contains(out, want) || !strings.Contains(out, "main -> main") {
		t.Fatalf("push output lacks %q or the ref update:\n%s", want, out)
	}
	if took > 15*time.Second {
		t.Errorf("the push took %v to end after SIGTERM; it should not wait for the shutdown grace", took)
	}
	// The build is still running: let it end within the daemon's grace.
	if b, err := db.GetBuild(t.Context(), ids[0]); err != nil || b.State != record.StateRunning {
		t.Fatalf("build #%d when the push ended: %v (%v), want running", ids[0], b.State, err)
	}
	btTouch(t, d, "stopwait.go")
	d.stop()
	if b, err := db.GetBuild(t.Context(), ids[0]); err != nil || b.State != record.StatePassed {
		t.Fatalf("build #%d after the stop: %v %q (%v), want passed", ids[0], b.State, b.Reason, err)
	}
	if b, err := db.GetBuild(t.Context(), second); err != nil || b.State != record.StateQueued || b.Attempt != 0 {
		t.Fatalf("build #%d queued before the stop: %v attempt %d (%v); nothing should start after SIGTERM", second, b.State, b.Attempt, err)
	}
	runs, _ := os.ReadFile(filepath.Join(btCache(d, "app"), "runs"))
	if n := strings.Count(string(runs), "run\n"); n != 1 {
		t.Fatalf("%d runs, want the one build that was running", n)
	}
}
