package build

import (
	"bytes"
	"context"
	"crypto/md5"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"slipway/configs"
	"slipway/internal/testutil"
	"slipway/record"
)

const appRepo = "[[repo]]\nname = \"app\"\n"

func TestPushBuildsAndPasses(t *testing.T) {
	t.Setenv("SLIPWAY_TEST_DAEMON_ONLY", "leaked")
	e, r := startApp(t, "concurrency = 1", "")
	sha := r.pipelineCommit("refs/heads/main", `[build]
steps = ["echo hello from $SLIPWAY_BRANCH > out.txt", "cat out.txt; env | sort"]
env = { GREETING = "hi" }
`)
	out := e.push(t.Context(), "app", nil, update("refs/heads/main", sha))
	want := fmt.Sprintf("build #1 queued: main @ %s — follow: ssh -p 2222 127.0.0.1 log 1 -f\n", sha[:7])
	if out != want {
		t.Fatalf("push output:\n%q\nwant\n%q", out, want)
	}
	b := e.waitFinal(1)
	log := e.logOf(1)
	if b.State != record.StatePassed {
		t.Fatalf("build is %s (%s); log:\n%s", b.State, b.Reason, log)
	}
	if len(b.Steps) != 2 || b.Steps[0].ExitCode != 0 || b.Steps[1].Name != "cat out.txt; env | sort" || b.Steps[1].Duration <= 0 {
		t.Errorf("steps recorded: %+v", b.Steps)
	}
	for _, want := range []string{
		"== build #1 of app: refs/heads/main @ " + sha,
		"== step 1/2: echo hello from $SLIPWAY_BRANCH > out.txt",
		"== step 2/2: cat out.txt; env | sort",
		"hello from main",
		"CI=true", "GREETING=hi", "HOME=/home/build", "SLIPWAY_BUILD_ID=1", "SLIPWAY_COMMIT=" + sha, "SLIPWAY_REPO=app",
		"PATH=" + StepPath,
		"== step 2 exited 0 after",
		"== passed in ",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	if strings.Contains(log, "SLIPWAY_TEST_DAEMON_ONLY") || strings.Contains(log, "leaked") {
		t.Errorf("the daemon's environment reached the step:\n%s", log)
	}
	if strings.Contains(log, "WARNING") {
		t.Errorf("a sandboxed build warns about running unsandboxed:\n%s", log)
	}
	if _, err := os.Stat(filepath.Join(e.data, "work", "1")); !os.IsNotExist(err) {
		t.Errorf("workspace left behind: %v", err)
	}
}

func TestFailingStepStopsTheBuild(t *testing.T) {
	t.Parallel()
	e, r := startApp(t, "concurrency = 1", "")
	// The cache folder outlives the workspace, so it shows which steps ran.
	e.pushPipeline(r, "refs/heads/main", `[build]
cache = true
steps = ["touch /cache/step1", "echo about to fail; exit 3", "touch /cache/step3"]
`)
	b := e.waitFinal(1)
	if b.State != record.StateFailed || b.Reason != "step 2 (echo about to fail; exit 3) exited 3" {
		t.Fatalf("build %s: %q", b.State, b.Reason)
	}
	if len(b.Steps) != 2 || b.Steps[1].ExitCode != 3 {
		t.Errorf("steps recorded: %+v", b.Steps)
	}
	cache := filepath.Join(e.data, "cache", "app", url.PathEscape("refs/heads/main"))
	if _, err := os.Stat(filepath.Join(cache, "step1")); err != nil {
		t.Errorf("step 1 did not run: %v", err)
	}
	if _, err := os.Stat(filepath.Join(cache, "step3")); !os.IsNotExist(err) {
		t.Errorf("step 3 ran after step 2 failed (%v)", err)
	}
	log := e.logOf(1)
	if !strings.HasSuffix(log, "== failed: step 2 (echo about to fail; exit 3) exited 3\n") || strings.Contains(log, "step 3/3") {
		t.Errorf("log:\n%s", log)
	}
}

func TestMissingPipelineFileIsSkipped(t *testing.T) {
	t.Parallel()
	e, r := startApp(t, "concurrency = 1", "")
	sha := r.commit("refs/heads/main", map[string]*string{"README": ptr("no pipeline here\n")})
	out := e.push(t.Context(), "app", nil, update("refs/heads/main", sha))
	want := fmt.Sprintf("build #1 skipped: main @ %s — no .slipway.toml in this commit\n", sha[:7])
	if out != want {
		t.Fatalf("push output %q, want %q", out, want)
	}
	b, err := e.st.GetBuild(t.Context(), 1)
	if err != nil || b.State != record.StateSkipped || b.Attempt != 0 {
		t.Fatalf("build %+v, %v", b, err)
	}
}

func TestBrokenPipelineFileIsAnErrorWithPosition(t *testing.T) {
	t.Parallel()
	e, r := startApp(t, "concurrency = 1", "")
	e.pushPipeline(r, "refs/heads/main", "[build]\nsteps = [\"true\"\ntimeout = \"1m\"\n")
	b := e.waitFinal(1)
	if b.State != record.StateError || !regexp.MustCompile(`^\.slipway\.toml:\d+:\d+: `).MatchString(b.Reason) {
		t.Fatalf("build %s: %q", b.State, b.Reason)
	}
	if log := e.logOf(1); !strings.Contains(log, "== error: "+b.Reason) {
		t.Errorf("log lacks the error:\n%s", log)
	}
}

func TestTimeoutKillsTheBuild(t *testing.T) {
	t.Parallel()
	e, r := startApp(t, "concurrency = 1", "")
	sha := r.pipelineCommit("refs/heads/main", `[build]
timeout = "1s"
steps = ["sleep 4243.25 & sleep 4243.25; echo never"]
`)
	start := time.Now()
	e.push(t.Context(), "app", nil, update("refs/heads/main", sha))
	b := e.waitFinal(1)
	if took := time.Since(start); took > 15*time.Second {
		t.Errorf("a 1s timeout took %v", took)
	}
	if b.State != record.StateFailed || b.Reason != "timed out after 1s" {
		t.Fatalf("build %s: %q", b.State, b.Reason)
	}
	if log := e.logOf(1); !strings.HasSuffix(log, "== timed out after 1s\n") || strings.Contains(log, "] │ never\n") {
		t.Errorf("log:\n%s", log)
	}
	if ps := testutil.ProcessesWith("sleep 4243.25"); len(ps) > 0 {
		t.Errorf("processes left after the timeout: %v", ps)
	}
}

func TestCancelRunningBuildKillsItsProcesses(t *testing.T) {
	t.Parallel()
	e, r := startApp(t, "concurrency = 1", "")
	e.pushPipeline(r, "refs/heads/main", `[build]
steps = ["sleep 4244.5 & setsid sleep 4244.5 & echo started-$((40+2)); wait", "touch never"]
`)
	e.waitLog(1, "started-42")
	testutil.Eventually(t, 10*time.Second, "the step's sleeps to run", func() bool { return len(testutil.ProcessesWith("sleep 4244.5")) >= 2 })

	if err := e.svc.CancelBy(t.Context(), 1, "alice"); err != nil {
		t.Fatal(err)
	}
	// CancelBy returns once the build is recorded cancelled, its
	// processes gone.
	b, err := e.st.GetBuild(t.Context(), 1)
	if err != nil || b.State != record.StateCancelled || b.Reason != "cancelled by alice" {
		t.Fatalf("build %+v, %v", b, err)
	}
	if ps := testutil.ProcessesWith("sleep 4244.5"); len(ps) > 0 {
		t.Errorf("processes left after cancel: %v", ps)
	}
	if log := e.logOf(1); !strings.HasSuffix(log, "== cancelled by alice\n") || strings.Contains(log, "step 2/2") {
		t.Errorf("log:\n%s", log)
	}
	if err := e.svc.Cancel(t.Context(), 1); err == nil || !strings.Contains(err.Error(), "already cancelled") {
		t.Errorf("cancelling a cancelled build: %v", err)
	}
}

func TestNewerPushSupersedesQueuedBuild(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "concurrency = 1", appRepo)
	r := e.newRepo("app")
	// Not started yet: the first build is still queued when the second
	// push arrives.
	sha1 := e.pushPipeline(r, "refs/heads/main", "[build]\nsteps = [\"echo one\"]\n")
	sha2 := r.pipelineCommit("refs/heads/main", "[build]\nsteps = [\"echo two\"]\n")
	out := e.push(t.Context(), "app", nil, record.RefUpdate{Name: "refs/heads/main", Old: sha1, New: sha2})
	if !strings.HasPrefix(out, fmt.Sprintf("build #1 (main @ %s) superseded: it had not started\nbuild #2 queued: main @ %s", sha1[:7], sha2[:7])) {
		t.Errorf("push output:\n%s", out)
	}
	e.start()
	if b := e.waitFinal(2); b.State != record.StatePassed {
		t.Fatalf("build 2 %s: %s", b.State, b.Reason)
	}
	b1, _ := e.st.GetBuild(t.Context(), 1)
	if b1.State != record.StateSuperseded || b1.Attempt != 0 || b1.Reason != "superseded by build 2" {
		t.Errorf("build 1: %+v", b1)
	}
	var buf bytes.Buffer
	if err := e.svc.Follow(t.Context(), 1, &buf, true); err != nil || buf.String() != "build #1 superseded: superseded by build 2\n" {
		t.Errorf("follow of a superseded build: %q, %v", buf.String(), err)
	}
}

func TestCancelRunningOnNewerPush(t *testing.T) {
	t.Parallel()
	e, r := startApp(t, "concurrency = 2", "cancel_running = true\n")
	sha1 := e.pushPipeline(r, "refs/heads/main", "[build]\nsteps = [\"echo started-$((40+2)); sleep 4245.5\"]\n")
	e.waitLog(1, "started-42")
	sha2 := r.pipelineCommit("refs/heads/main", "[build]\nsteps = [\"true\"]\n")
	out := e.push(t.Context(), "app", nil, record.RefUpdate{Name: "refs/heads/main", Old: sha1, New: sha2})
	if !strings.Contains(out, "build #1 cancelled: build #2 replaces it\n") {
		t.Errorf("push output:\n%s", out)
	}
	if b := e.waitFinal(1); b.State != record.StateCancelled {
		t.Errorf("build 1: %s %s", b.State, b.Reason)
	}
	if b := e.waitFinal(2); b.State != record.StatePassed {
		t.Errorf("build 2: %s %s", b.State, b.Reason)
	}
}

func TestSecretsAreMaskedInLogs(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "deploy-key")
	multi := "-----BEGIN KEY-----\nc2VjcmV0LWxpbmUtb25l\nc2VjcmV0LWxpbmUtdHdv\n-----END KEY-----"
	if err := os.WriteFile(file, []byte(multi+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SLIPWAY_TEST_TOKEN", "tok-3f9a1c77e2")
	e := newEnv(t, "concurrency = 1", appRepo+fmt.Sprintf(`
  [[repo.secret]]
  name = "KEY"
  file = %q
  branches = ["main"]
  [[repo.secret]]
  name = "TOKEN"
  env = "SLIPWAY_TEST_TOKEN"
  branches = ["main"]
`, file))
	e.start()
	r := e.newRepo("app")
	sha := r.pipelineCommit("refs/heads/main", fmt.Sprintf(`[build]
steps = ['printf "%%s\n" "$KEY"; echo "token=$TOKEN"; printf "%%s" "$TOKEN" | cut -c1-6; printf "%%s" "$TOKEN" | cut -c7-', 'test "$(printf "%%s" "$KEY" | md5sum | cut -c1-32)" = %x']
`, md5.Sum([]byte(multi))))
	e.push(t.Context(), "app", nil, update("refs/heads/main", sha))
	b := e.waitFinal(1)
	log := e.logOf(1)
	if b.State != record.StatePassed {
		t.Fatalf("build %s: %s\n%s", b.State, b.Reason, log)
	}
	for _, secret := range []string{"tok-3f9a1c77e2", "c2VjcmV0LWxpbmUtb25l", "c2VjcmV0LWxpbmUtdHdv"} {
		if strings.Contains(log, secret) {
			t.Errorf("log shows secret %q:\n%s", secret, log)
		}
	}
	if !strings.Contains(log, "token=***") {
		t.Errorf("log lacks the masked token:\n%s", log)
	}
}

func TestUnreadableSecretIsAnError(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "concurrency = 1", appRepo+`
  [[repo.secret]]
  name = "KEY"
  env = "SLIPWAY_TEST_UNSET_VARIABLE"
  branches = ["main"]
`)
	e.start()
	r := e.newRepo("app")
	e.pushPipeline(r, "refs/heads/main", "[build]\nsteps = [\"true\"]\n")
	b := e.waitFinal(1)
	if b.State != record.StateError || b.Reason != "secret KEY: the daemon's environment variable SLIPWAY_TEST_UNSET_VARIABLE is not set" {
		t.Fatalf("build %s: %q", b.State, b.Reason)
	}
	if len(b.Steps) != 0 {
		t.Errorf("steps ran: %+v", b.Steps)
	}
}

func TestArtifactsKeptAndEscapesRefused(t *testing.T) {
	t.Parallel()
	e, r := startApp(t, "concurrency = 1", "")
	e.pushPipeline(r, "refs/heads/main", `[build]
steps = ["mkdir -p bin && printf 'app' > bin/app && chmod 755 bin/app && ln -s app bin/current && ln -s ../../etc bin/outside || true", "printf 'notes' > notes.txt"]
artifacts = ["bin/current", "notes.txt"]
`)
	if b := e.waitFinal(1); b.State != record.StatePassed {
		t.Fatalf("build %s: %s\n%s", b.State, b.Reason, e.logOf(1))
	}
	dst := filepath.Join(e.data, "artifacts", "1")
	if got, err := os.ReadFile(filepath.Join(dst, "bin", "current")); err != nil || string(got) != "app" {
		t.Errorf("artifact bin/current (a link to app, followed): %q, %v", got, err)
	}
	if got, err := os.ReadFile(filepath.Join(dst, "notes.txt")); err != nil || string(got) != "notes" {
		t.Errorf("artifact notes.txt: %q, %v", got, err)
	}

	// A folder holding a link out of the workspace, and a top-level link
	// out of it, are both refused: the build fails and keeps nothing.
	for i, arts := range []string{`["bin/"]`, `["etc"]`} {
		sha := r.pipelineCommit("refs/heads/main", fmt.Sprintf(`[build]
steps = ["mkdir -p bin && printf 'app' > bin/app && ln -s /etc/hostname bin/host && ln -s /etc etc"]
artifacts = %s
`, arts))
		e.push(t.Context(), "app", nil, update("refs/heads/main", sha))
		id := int64(2 + i)
		b := e.waitFinal(id)
		if b.State != record.StateFailed || !strings.Contains(b.Reason, "outside the workspace") {
			t.Errorf("artifacts %s: build %s: %q", arts, b.State, b.Reason)
		}
		if _, err := os.Stat(filepath.Join(e.data, "artifacts", logID(id))); !os.IsNotExist(err) {
			t.Errorf("artifacts %s: refused artifacts were kept (%v)", arts, err)
		}
	}
}

func TestManyBuildsAllFinish(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "concurrency = 2", appRepo+"[[repo]]\nname = \"lib\"\n")
	e.start()
	shas := map[string]string{}
	for _, name := range []string{"app", "lib"} {
		shas[name] = e.newRepo(name).pipelineCommit("refs/heads/main", "[build]\nsteps = [\"true\"]\n")
	}
	const n = 50
	for i := range n {
		repo := []string{"app", "lib"}[i%2]
		e.push(t.Context(), repo, nil, update(fmt.Sprintf("refs/heads/b%d", i), shas[repo]))
	}
	for id := int64(1); id <= n; id++ {
		if b := e.waitFinal(id); b.State != record.StatePassed {
			t.Errorf("build %d: %s %s", id, b.State, b.Reason)
		}
	}
	if bs := e.builds(""); len(bs) != n {
		t.Errorf("%d builds recorded, want %d", len(bs), n)
	}
}

func TestInterruptedBuildRunsAgainOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "concurrency = 1", appRepo)
	r := e.newRepo("app")
	e.pushPipeline(r, "refs/heads/main", "[build]\nsteps = [\"echo attempt ran\"]\n")
	// A daemon that died while running it: claimed, log begun, never
	// finished.
	if _, ok, err := e.st.ClaimBuild(t.Context(), "dead-daemon"); !ok || err != nil {
		t.Fatalf("claim: %v %v", ok, err)
	}
	w, err := e.logs.Create("1", 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	w.Printf("== step 1/1: echo attempt ran")
	w.Close()

	e.start()
	b := e.waitFinal(1)
	if b.State != record.StatePassed || b.Attempt != 2 {
		t.Fatalf("build %s after attempt %d: %s", b.State, b.Attempt, b.Reason)
	}
	log := e.logOf(1)
	if !strings.Contains(log, "== the daemon stopped during attempt 1; running again\n") ||
		!strings.Contains(log, "(attempt 2)") || !strings.HasSuffix(log, "== passed in "+strings.TrimPrefix(b.Reason, "passed in ")+"\n") {
		t.Errorf("log:\n%s", log)
	}
	if bs := e.builds("app"); len(bs) != 1 {
		t.Errorf("%d builds, want the one build re-run", len(bs))
	}
}

func TestShutdownCutsOffBuildsForTheNextStart(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "concurrency = 1", appRepo)
	svc := e.svc
	if err := svc.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	r := e.newRepo("app")
	e.pushPipeline(r, "refs/heads/main", "[build]\nsteps = [\"test -e /cache/again || { touch /cache/again; echo started-$((40+2)); sleep 4246.5; }\"]\ncache = true\n")
	e.waitLog(1, "started-42")
	ctx, cancel := context.WithCancel(t.Context())
	cancel() // no patience: cut the build off at once
	if err := svc.Shutdown(ctx); err == nil {
		t.Error("Shutdown with an ended context reports no cut-off builds")
	}
	if ps := testutil.ProcessesWith("sleep 4246.5"); len(ps) > 0 {
		t.Errorf("processes left after shutdown: %v", ps)
	}
	if b, _ := e.st.GetBuild(t.Context(), 1); b.State != record.StateRunning {
		t.Fatalf("cut-off build is %s, want it left running for recovery", b.State)
	}

	e.svc = e.newService()
	e.start()
	b := e.waitFinal(1)
	if b.State != record.StatePassed || b.Attempt != 2 {
		t.Fatalf("build %s after attempt %d: %s", b.State, b.Attempt, b.Reason)
	}
	log := e.logOf(1)
	for _, want := range []string{"attempt 1 cut off", "the daemon stopped during attempt 1; running again", "(attempt 2)"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
}

func TestPushOutputSaysWhatIsNotBuilt(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "concurrency = 1\nmax_per_push = 2", appRepo+"build_branches = [\"main\", \"rel/*\"]\n")
	r := e.newRepo("app")
	sha := r.pipelineCommit("refs/heads/main", "[build]\nsteps = [\"true\"]\n")
	out := e.push(t.Context(), "app", nil,
		update("refs/heads/main", sha),
		update("refs/heads/wip", sha),
		update("refs/tags/v1", sha),
		record.RefUpdate{Name: "refs/heads/rel/old", Old: sha, New: zeroID},
		update("refs/heads/rel/a", sha),
		update("refs/heads/rel/b", sha),
		update("refs/release/prod", sha),
	)
	c := sha[:7]
	want := "build #1 queued: main @ " + c + " — follow: ssh -p 2222 127.0.0.1 log 1 -f\n" +
		"build #2 queued: rel/a @ " + c + " — follow: ssh -p 2222 127.0.0.1 log 2 -f\n" +
		"wip: not built: branch does not match build_branches (main, rel/*)\n" +
		"v1: not built: tags do not build in this repository (build_tags is off)\n" +
		"1 more refs not built: this push reached the limit of 2 builds per push (build.max_per_push)\n"
	if out != want {
		t.Errorf("push output:\n%s\nwant:\n%s", out, want)
	}
	p, err := e.st.GetPush(t.Context(), 1)
	if err != nil || len(p.Refs) != 7 {
		t.Errorf("push record: %+v, %v", p, err)
	}
}

func TestWaitStreamsTheLog(t *testing.T) {
	t.Parallel()
	e, r := startApp(t, "concurrency = 1", "")
	sha := r.pipelineCommit("refs/heads/main", "[build]\nsteps = [\"echo streaming-line\"]\n")
	out := e.push(t.Context(), "app", []string{"wait"}, update("refs/heads/main", sha))
	for _, want := range []string{"build #1 queued", "== step 1/1: echo streaming-line", "] │ streaming-line\n", "== passed in "} {
		if !strings.Contains(out, want) {
			t.Errorf("push output lacks %q:\n%s", want, out)
		}
	}
	if !regexp.MustCompile(`\nbuild #1 passed in \d+(\.\d)?m?s\n$`).MatchString(out) {
		t.Errorf("push output does not end with the result:\n%s", out)
	}

	// A pusher who goes away does not stop the build.
	sha = r.pipelineCommit("refs/heads/main", "[build]\nsteps = [\"echo started-$((40+2)); sleep 1; echo finished\"]\n")
	ctx, cancel := context.WithCancel(t.Context())
	w := newWatcher("started-42")
	done := make(chan struct{})
	go func() {
		defer close(done)
		if _, err := e.handlePush(ctx, record.Push{Repo: "app", Refs: []record.RefUpdate{{Name: "refs/heads/main", Old: zeroID, New: sha}}, Options: []string{"wait"}}, w); err != nil {
			t.Error(err)
		}
	}()
	w.wait(t, 30*time.Second, "the pusher never saw the build start")
	cancel()
	<-done
	if b := e.waitFinal(2); b.State != record.StatePassed || !strings.Contains(e.logOf(2), "finished") {
		t.Errorf("build after the pusher left: %s %s", b.State, b.Reason)
	}
}

func TestSandboxUnusableFailsBuilds(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "concurrency = 1", appRepo)
	e.svc.o.SandboxErr = fmt.Errorf("bwrap: no permission to create namespaces")
	e.start()
	r := e.newRepo("app")
	e.pushPipeline(r, "refs/heads/main", "[build]\nsteps = [\"true\"]\n")
	b := e.waitFinal(1)
	if b.State != record.StateError || !strings.Contains(b.Reason, "no permission to create namespaces") || len(b.Steps) != 0 {
		t.Errorf("build %s: %q, steps %v", b.State, b.Reason, b.Steps)
	}
}

func TestUnsandboxedBuildsSaySo(t *testing.T) {
	t.Parallel()
	e, r := startApp(t, "concurrency = 1\nsandbox = \"none\"", "")
	e.pushPipeline(r, "refs/heads/main", "[build]\nsteps = [\"true\"]\n")
	if b := e.waitFinal(1); b.State != record.StatePassed {
		t.Fatalf("build %s: %s", b.State, b.Reason)
	}
	if log := e.logOf(1); !strings.Contains(log, "WARNING: the server runs builds unsandboxed") {
		t.Errorf("log:\n%s", log)
	}
}

func TestRetryAndPrune(t *testing.T) {
	t.Parallel()
	e, r := startApp(t, "concurrency = 1\nkeep = 2", "")
	e.pushPipeline(r, "refs/heads/main", "[build]\nsteps = [\"mkdir -p out && echo x > out/x\"]\nartifacts = [\"out\"]\n")
	e.waitFinal(1)
	for want := int64(2); want <= 3; want++ {
		nb, err := e.svc.Retry(t.Context(), want-1)
		if err != nil || nb.ID != want || nb.RetryOf != want-1 {
			t.Fatalf("retry: %+v, %v", nb, err)
		}
		if b := e.waitFinal(want); b.State != record.StatePassed {
			t.Fatalf("retry %d: %s", want, b.State)
		}
	}
	// keep = 2: build 1 is gone with its log and artifacts.
	if _, err := e.svc.Get(t.Context(), 1); err == nil {
		t.Error("build 1 was not pruned")
	}
	if _, err := os.Stat(filepath.Join(e.data, "artifacts", "1")); !os.IsNotExist(err) {
		t.Errorf("artifacts of build 1 kept: %v", err)
	}
	if _, err := os.Stat(filepath.Join(e.data, "logs", "1.log")); !os.IsNotExist(err) {
		t.Errorf("log of build 1 kept: %v", err)
	}
	if _, err := os.Stat(filepath.Join(e.data, "artifacts", "3", "out", "x")); err != nil {
		t.Errorf("artifacts of build 3: %v", err)
	}
	if bs, err := e.svc.List(t.Context(), "app", 10); err != nil || len(bs) != 2 || bs[0].ID != 3 {
		t.Errorf("list: %v, %v", bs, err)
	}
}

func TestFmtDuration(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{
		3400 * time.Millisecond: "3.4s",
		10 * time.Minute:        "10m",
		90 * time.Second:        "1m30s",
		time.Hour:               "1h",
		90 * time.Minute:        "1h30m",
		42 * time.Millisecond:   "42ms",
	} {
		if got := fmtDuration(d); got != want {
			t.Errorf("fmtDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

// TestManualRunFallsBackToBuild: a manual run, as `run REPO SCHEDULE` would
// queue, of a section the file lacks falls back to [build] and says so.
func TestManualRunFallsBackToBuild(t *testing.T) {
	t.Parallel()
	e, r := startApp(t, "concurrency = 1", "")
	sha := r.pipelineCommit("refs/heads/main", "[build]\nsteps = [\"true\"]\n")

	// A manual run, as `run REPO SCHEDULE` would queue, of a section the
	// file lacks: it falls back to [build] and says so.
	b, err := e.svc.Enqueue(t.Context(), record.Build{Repo: "app", Ref: "refs/heads/main", Commit: sha, Trigger: record.TriggerManual, Pipeline: "nightly"})
	if err != nil {
		t.Fatal(err)
	}
	if b = e.waitFinal(b.ID); b.State != record.StatePassed {
		t.Errorf("manual build: %s %s", b.State, b.Reason)
	}
	if log := e.logOf(b.ID); !strings.Contains(log, "== .slipway.toml has no [nightly] section; running [build]") {
		t.Errorf("log:\n%s", log)
	}
}

func TestFollowCommand(t *testing.T) {
	t.Parallel()
	host, _ := os.Hostname()
	for listen, want := range map[string]string{
		"127.0.0.1:2222": "ssh -p 2222 127.0.0.1 log 7 -f",
		"[::1]:22":       "ssh ::1 log 7 -f",
		"0.0.0.0:2222":   "ssh -p 2222 " + host + " log 7 -f",
		":2200":          "ssh -p 2200 " + host + " log 7 -f",
	} {
		h, p := configs.DisplayAddr(listen)
		s := &Service{o: Options{SSHHost: h, SSHPort: p}}
		if got := s.followCommand(7); got != want {
			t.Errorf("listen %q: %q, want %q", listen, got, want)
		}
	}
}

// TestPushOutputLinksToTheDashboard: with [http] public_url, each queued
// build comes with its page.
func TestPushOutputLinksToTheDashboard(t *testing.T) {
	t.Parallel()
	e, r := startApp(t, "concurrency = 1", "\n[http]\npublic_url = \"https://ci.example.com\"\n")
	sha := r.pipelineCommit("refs/heads/main", "[build]\nsteps = [\"true\"]\n")
	out := e.push(t.Context(), "app", nil, update("refs/heads/main", sha))
	want := fmt.Sprintf("build #1 queued: main @ %s — follow: ssh -p 2222 127.0.0.1 log 1 -f\n  https://ci.example.com/builds/1\n", sha[:7])
	if out != want {
		t.Fatalf("push output:\n%q\nwant\n%q", out, want)
	}
	e.waitFinal(1)
}
