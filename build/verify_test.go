package build

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"slipway/internal/testutil"
	"slipway/record"
)

// quarantined commits files in r's work tree and pushes the commit to ref of
// the bare repository through a pre-receive hook that keeps a copy of git's
// quarantine folder, inside the repository's objects folder as git's own is,
// and refuses the push. The copy holds what a pre-receive hook sees of a
// push; the repository never gets the commit.
func (r *gitRepo) quarantined(ref string, files map[string]*string) (commit, quarantine string) {
	r.t.Helper()
	quarantine = filepath.Join(r.bare, "objects", fmt.Sprintf("incoming-test%d", time.Now().UnixNano()))
	hooks := r.t.TempDir()
	script := "#!/bin/sh\ncp -r \"$GIT_QUARANTINE_PATH\" '" + quarantine + "'\nexit 1\n"
	if err := os.WriteFile(filepath.Join(hooks, "pre-receive"), []byte(script), 0o755); err != nil {
		r.t.Fatal(err)
	}
	commit = r.commitLocal("pushed", files)
	r.git(r.bare, "config", "core.hooksPath", hooks)
	defer r.git(r.bare, "config", "--unset", "core.hooksPath")
	cmd := r.gitCmd(r.work, "push", "-q", r.bare, "HEAD:"+ref)
	if out, err := cmd.CombinedOutput(); err == nil {
		r.t.Fatalf("the quarantining hook let the push in:\n%s", out)
	}
	if _, err := os.Stat(quarantine); err != nil {
		r.t.Fatalf("no quarantine kept: %v", err)
	}
	return commit, quarantine
}

// land pushes the work tree's HEAD to ref for real, as git does once
// pre-receive said yes.
func (r *gitRepo) land(ref string) {
	r.t.Helper()
	r.git(r.work, "push", "-q", "-f", r.bare, "HEAD:"+ref)
}

// verifyPush is a push of one branch update by alice.
func verifyPush(ref, old, commit string) (record.Push, []record.RefUpdate) {
	u := record.RefUpdate{Name: ref, Old: old, New: commit}
	return record.Push{Repo: "app", User: "alice", Refs: []record.RefUpdate{u}, Options: []string{"verify"}}, []record.RefUpdate{u}
}

// heldPush is what Verify is handed for a push that a pre-receive hook
// holds in quarantine.
type heldPush struct {
	commit, quarantine string
	push               record.Push
	refs               []record.RefUpdate
}

// toVerify commits files (see quarantined) and returns alice's push of the
// commit to ref, a new branch, as pre-receive hands it to Verify.
func (r *gitRepo) toVerify(ref string, files map[string]*string) heldPush {
	r.t.Helper()
	commit, q := r.quarantined(ref, files)
	p, refs := verifyPush(ref, zeroID, commit)
	return heldPush{commit: commit, quarantine: q, push: p, refs: refs}
}

// pipelineFile is a .slipway.toml of toml, for commit and toVerify.
func pipelineFile(toml string) map[string]*string {
	return map[string]*string{".slipway.toml": &toml}
}

// verify runs Verify of v in the background, with output to out, and
// returns where its error will come.
func (e *testEnv) verify(ctx context.Context, v heldPush, out io.Writer) <-chan error {
	done := make(chan error, 1)
	go func() {
		_, err := e.svc.Verify(ctx, v.push, v.refs, v.quarantine, out)
		done <- err
	}()
	return done
}

// occupyWorker pushes a build of branch busy that holds a worker until the
// returned release is called, and returns once its step runs.
func (e *testEnv) occupyWorker(r *gitRepo) (release func()) {
	e.t.Helper()
	cache := filepath.Join(e.data, "cache", "app", url.PathEscape("refs/heads/busy"))
	e.pushPipeline(r, "refs/heads/busy", "[build]\ncache = true\nsteps = [\"touch /cache/busy; while [ ! -e /cache/go ]; do sleep 0.05; done\"]\n")
	testutil.Eventually(e.t, time.Minute, "the busy build's step", func() bool {
		_, err := os.Stat(filepath.Join(cache, "busy"))
		return err == nil
	})
	return func() {
		e.t.Helper()
		if err := os.WriteFile(filepath.Join(cache, "go"), nil, 0o644); err != nil {
			e.t.Fatal(err)
		}
	}
}

// TestVerifyPassLandsAsTheBranchBuild: a passing revision is built from the
// quarantine, its log streams to the pusher, and once its push is recorded
// it is the branch's one passed build, linked to the push, with its
// artifacts; no second build is queued for the ref.
func TestVerifyPassLandsAsTheBranchBuild(t *testing.T) {
	t.Parallel()
	e, r := startApp(t, "concurrency = 1", "")
	v := r.toVerify("refs/heads/main", pipelineFile("[build]\nsteps = [\"echo verifying-$((40+2)) on $SLIPWAY_BRANCH; mkdir out; echo hi > out/a\"]\nartifacts = [\"out/\"]\n"))
	commit := v.commit
	out := newWatcher("")
	release, err := e.svc.Verify(t.Context(), v.push, v.refs, v.quarantine, out)
	if err != nil {
		t.Fatalf("Verify: %v\n%s", err, out)
	}
	for _, want := range []string{
		fmt.Sprintf("build #1 verifies main @ %s before the push lands — follow: ssh -p 2222 127.0.0.1 log 1 -f\n", commit[:7]),
		"verifying-42 on main",
		fmt.Sprintf("build #1 passed: main may move to %s\n", commit[:7]),
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("pusher's output lacks %q:\n%s", want, out)
		}
	}
	if b, _ := e.st.GetBuild(t.Context(), 1); b.State != record.StateRunning || b.Trigger != record.TriggerVerify {
		t.Fatalf("before its push is recorded the build is %s (%s), want a running verify build", b.State, b.Trigger)
	}
	if h := e.svc.Holder("app", "refs/heads/main"); !strings.Contains(h, "build #1 by alice") {
		t.Errorf("Holder while the push lands = %q", h)
	}

	r.land("refs/heads/main")
	rec := newWatcher("")
	if _, err := e.handlePush(t.Context(), v.push, rec); err != nil {
		t.Fatal(err)
	}
	release()
	if want := fmt.Sprintf("build #1 passed: main @ %s — verified before the push landed, it is the branch's build\n", commit[:7]); rec.String() != want {
		t.Errorf("post-receive output:\n%q\nwant\n%q", rec, want)
	}
	bs := e.builds("app")
	if len(bs) != 1 {
		t.Fatalf("%d builds recorded, want the verify build alone: %+v", len(bs), bs)
	}
	b := bs[0]
	if b.State != record.StatePassed || b.PushID == 0 || b.Trigger != record.TriggerVerify || len(b.Steps) != 1 {
		t.Fatalf("verified build after its push was recorded: %+v", b)
	}
	if got, err := os.ReadFile(filepath.Join(e.data, "artifacts", "1", "out", "a")); err != nil || string(got) != "hi\n" {
		t.Errorf("artifact of the landed build: %q, %v", got, err)
	}
	if log := e.logOf(1); !strings.Contains(log, "main moves to "+commit[:7]+" if git accepts the push") ||
		!strings.Contains(log, fmt.Sprintf("== push #%d landed: main is at %s, and this is its build", b.PushID, commit[:7])) {
		t.Errorf("log:\n%s", log)
	}
	if h := e.svc.Holder("app", "refs/heads/main"); h != "" {
		t.Errorf("main still held after its push was recorded: %q", h)
	}
}

// TestVerifyFailureRefuses: a failing step ends the verification with one
// line naming the ref, the build and the step; the build stays recorded as
// failed with its log, and nothing holds the branch afterwards.
func TestVerifyFailureRefuses(t *testing.T) {
	t.Parallel()
	e, r := startApp(t, "concurrency = 1", "")
	v := r.toVerify("refs/heads/main", pipelineFile("[build]\nsteps = [\"echo first\", \"echo broken-$((6*7)); exit 3\", \"echo never\"]\n"))
	out := newWatcher("")
	release, err := e.svc.Verify(t.Context(), v.push, v.refs, v.quarantine, out)
	if err == nil || release != nil {
		t.Fatalf("Verify of a failing revision passed:\n%s", out)
	}
	if want := "refs/heads/main: build #1 failed: step 2 (echo broken-$((6*7)); exit 3) exited 3"; err.Error() != want {
		t.Errorf("refusal = %q, want %q", err, want)
	}
	if !strings.Contains(out.String(), "broken-42") || strings.Contains(out.String(), "never\n") {
		t.Errorf("pusher's output:\n%s", out)
	}
	b := e.waitFinal(1)
	if b.State != record.StateFailed || b.PushID != 0 || b.Trigger != record.TriggerVerify {
		t.Fatalf("failed verification recorded as %+v", b)
	}
	if log := e.logOf(1); !strings.Contains(log, "broken-42") || !strings.Contains(log, "== failed: step 2") {
		t.Errorf("log of the failed verification:\n%s", log)
	}
	if h := e.svc.Holder("app", "refs/heads/main"); h != "" {
		t.Errorf("main held after a refused verification: %q", h)
	}
	// A revision without a pipeline file has nothing that could pass.
	r.git(r.work, "rm", "-q", ".slipway.toml")
	v = r.toVerify("refs/heads/main", nil)
	if _, err := e.svc.Verify(t.Context(), v.push, v.refs, v.quarantine, newWatcher("")); err == nil ||
		!strings.Contains(err.Error(), "skipped: no .slipway.toml in commit "+v.commit[:7]) {
		t.Errorf("Verify of a revision without a pipeline: %v", err)
	}
	if _, err := e.svc.Retry(t.Context(), 1); err == nil || !strings.Contains(err.Error(), "push it again") {
		t.Errorf("retry of a verification whose commit never landed: %v", err)
	}
}

// TestVerifyPassWithoutLandingKeepsNothing: a passed verification whose
// push does not land (git failed to move the ref) is recorded cancelled
// when the push's session ends, and its artifacts are removed.
func TestVerifyPassWithoutLandingKeepsNothing(t *testing.T) {
	t.Parallel()
	e, r := startApp(t, "concurrency = 1", "")
	v := r.toVerify("refs/heads/main", pipelineFile("[build]\nsteps = [\"mkdir out && echo x > out/x\"]\nartifacts = [\"out/\"]\n"))
	release, err := e.svc.Verify(t.Context(), v.push, v.refs, v.quarantine, newWatcher(""))
	if err != nil {
		t.Fatal(err)
	}
	arts := filepath.Join(e.data, "artifacts", "1")
	if _, err := os.Stat(arts); err != nil {
		t.Fatalf("artifacts of the passed verification not written: %v", err)
	}
	release()
	b, _ := e.st.GetBuild(t.Context(), 1)
	if b.State != record.StateCancelled || !strings.Contains(b.Reason, "the push did not land") {
		t.Fatalf("verification whose push did not land: %s (%q)", b.State, b.Reason)
	}
	if _, err := os.Stat(arts); !os.IsNotExist(err) {
		t.Errorf("artifacts kept for a push that did not land (%v)", err)
	}
	if ok, _, _ := e.st.PassedBuildForCommit(t.Context(), "app", v.commit); ok.ID != 0 {
		t.Errorf("the release gate finds a passed build of a commit that never landed: %+v", ok)
	}
	if log := e.logOf(1); !strings.Contains(log, "the push did not land; nothing kept") {
		t.Errorf("log:\n%s", log)
	}
	// The session's end after the push was recorded changes nothing.
	release()
	if h := e.svc.Holder("app", "refs/heads/main"); h != "" {
		t.Errorf("main still held: %q", h)
	}
}

// TestVerifyHoldsTheBranch: while a push to main is being verified,
// another push to main is refused at once with the reason, and a push to
// another branch is not.
func TestVerifyHoldsTheBranch(t *testing.T) {
	t.Parallel()
	e, r := startApp(t, "concurrency = 2", "")
	cache := filepath.Join(e.data, "cache", "app", url.PathEscape("refs/heads/main"))
	v := r.toVerify("refs/heads/main", pipelineFile("[build]\ncache = true\nsteps = [\"touch /cache/started; while [ ! -e /cache/go ]; do sleep 0.05; done\"]\n"))
	type result struct {
		release func()
		err     error
	}
	first := make(chan result, 1)
	go func() {
		rel, err := e.svc.Verify(t.Context(), v.push, v.refs, v.quarantine, newWatcher(""))
		first <- result{rel, err}
	}()
	testutil.Eventually(t, time.Minute, "the first verification's step", func() bool {
		_, err := os.Stat(filepath.Join(cache, "started"))
		return err == nil
	})
	second := record.Push{Repo: "app", User: "bob", Refs: v.refs}
	_, err := e.svc.Verify(t.Context(), second, v.refs, v.quarantine, newWatcher(""))
	if want := "refs/heads/main: another push is being verified (build #1 by alice); push again when it ends"; err == nil || err.Error() != want {
		t.Errorf("second push to main: %v, want %q", err, want)
	}
	if h := e.svc.Holder("app", "refs/heads/main"); !strings.Contains(h, "build #1 by alice") {
		t.Errorf("Holder(main) = %q", h)
	}
	if h := e.svc.Holder("app", "refs/heads/dev"); h != "" {
		t.Errorf("Holder(dev) = %q", h)
	}
	if err := os.WriteFile(filepath.Join(cache, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	res := <-first
	if res.err != nil {
		t.Fatalf("the first verification: %v", res.err)
	}
	res.release()
	if h := e.svc.Holder("app", "refs/heads/main"); h != "" {
		t.Errorf("main held after the first push's session ended: %q", h)
	}
	if len(e.builds("app")) != 1 {
		t.Errorf("the refused push queued a build: %+v", e.builds("app"))
	}
}

// TestVerifyPusherGoneCancels: a pusher who goes away cancels the build,
// whose processes are killed, and the push is refused.
func TestVerifyPusherGoneCancels(t *testing.T) {
	t.Parallel()
	e, r := startApp(t, "concurrency = 1", "")
	v := r.toVerify("refs/heads/main", pipelineFile("[build]\nsteps = [\"echo started-$((40+2)); sleep 4247.5\"]\n"))
	ctx, cancel := context.WithCancelCause(t.Context())
	out := newWatcher("started-42")
	done := e.verify(ctx, v, out)
	out.wait(t, time.Minute, "the step never started")
	cancel(errors.New("the pusher went away"))
	err := <-done
	if err == nil || err.Error() != "refs/heads/main: build #1 cancelled: the pusher went away" {
		t.Errorf("Verify after the pusher left: %v", err)
	}
	if ps := testutil.ProcessesWith("sleep 4247.5"); len(ps) > 0 {
		t.Errorf("the step still runs: %v", ps)
	}
	if b, _ := e.st.GetBuild(t.Context(), 1); b.State != record.StateCancelled || b.Reason != "cancelled: the pusher went away" {
		t.Errorf("build after the pusher left: %s (%q)", b.State, b.Reason)
	}
	if h := e.svc.Holder("app", "refs/heads/main"); h != "" {
		t.Errorf("main still held: %q", h)
	}
}

// TestVerifyGoesFirst: with every worker busy, a verify build waits (and
// the pusher is told so), then runs before builds queued earlier.
func TestVerifyGoesFirst(t *testing.T) {
	t.Parallel()
	e, r := startApp(t, "concurrency = 1", "")
	release := e.occupyWorker(r)
	e.pushPipeline(r, "refs/heads/later", "[build]\nsteps = [\"true\"]\n")
	v := r.toVerify("refs/heads/main", pipelineFile("[build]\nsteps = [\"true\"]\n"))
	out := newWatcher("waits for a free worker")
	done := e.verify(t.Context(), v, out)
	out.wait(t, time.Minute, "the pusher was not told the build waits")
	release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	vb, _ := e.st.GetBuild(t.Context(), 3)
	l := e.waitFinal(2)
	if vb.Trigger != record.TriggerVerify || l.StartedAt.Before(vb.StartedAt) {
		t.Errorf("the build queued before the verification started first: verify %v, queued %v", vb.StartedAt, l.StartedAt)
	}
}

// TestVerifyShutdownRefuses: a daemon stopping mid-verification cancels the
// build, refuses the push, and takes no new verification.
func TestVerifyShutdownRefuses(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "concurrency = 1", appRepo)
	svc := e.svc
	if err := svc.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	r := e.newRepo("app")
	v := r.toVerify("refs/heads/main", pipelineFile("[build]\nsteps = [\"echo started-$((40+2)); sleep 4248.5\"]\n"))
	out := newWatcher("started-42")
	done := e.verify(t.Context(), v, out)
	out.wait(t, time.Minute, "the step never started")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_ = svc.Shutdown(ctx)
	// Shutdown begins by answering the waiting pushes; the build's own
	// cancellation may reach the pusher first. Either says why.
	if err := <-done; err == nil || err.Error() != "refs/heads/main: build #1 cancelled: the daemon is stopping" &&
		err.Error() != "refs/heads/main: build #1 cancelled: the daemon stopped during the build" {
		t.Errorf("Verify when the daemon stopped: %v", err)
	}
	if ps := testutil.ProcessesWith("sleep 4248.5"); len(ps) > 0 {
		t.Errorf("the step still runs: %v", ps)
	}
	if b, _ := e.st.GetBuild(t.Context(), 1); b.State != record.StateCancelled {
		t.Errorf("build after the stop: %s (%q)", b.State, b.Reason)
	}
	if _, err := svc.Verify(t.Context(), v.push, v.refs, v.quarantine, newWatcher("")); err == nil || !strings.Contains(err.Error(), "the daemon is stopping") {
		t.Errorf("Verify after Shutdown: %v", err)
	}
}

// TestVerifyCancelledWhileQueued: a pusher who leaves while the build still
// waits for a worker cancels it before it runs; a `cancel` by someone ends a
// running one and refuses the push, naming who.
func TestVerifyCancelledWhileQueued(t *testing.T) {
	t.Parallel()
	e, r := startApp(t, "concurrency = 1", "")
	release := e.occupyWorker(r)
	v := r.toVerify("refs/heads/main", pipelineFile("[build]\ncache = true\nsteps = [\"touch /cache/ran-$SLIPWAY_BUILD_ID; sleep 4249.5\"]\n"))
	ctx, cancel := context.WithCancelCause(t.Context())
	out := newWatcher("waits for a free worker")
	done := e.verify(ctx, v, out)
	out.wait(t, time.Minute, "the verification never queued")
	cancel(errors.New("the pusher went away"))
	if err := <-done; err == nil || err.Error() != "refs/heads/main: build #2 cancelled: the pusher went away" {
		t.Fatalf("Verify after its pusher left the queue: %v", err)
	}
	if b, _ := e.st.GetBuild(t.Context(), 2); b.State != record.StateCancelled || b.Attempt != 0 {
		t.Fatalf("queued verification after its pusher left: %s, attempt %d", b.State, b.Attempt)
	}

	// Cancelled by a user while it runs.
	release()
	e.waitFinal(1)
	out = newWatcher("== step 1/1")
	done = e.verify(t.Context(), v, out)
	out.wait(t, time.Minute, "the second verification never started")
	if err := e.svc.CancelBy(t.Context(), 3, "bob"); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err == nil || err.Error() != "refs/heads/main: build #3 cancelled by bob" {
		t.Fatalf("Verify of a cancelled build: %v", err)
	}
	if _, err := os.Stat(filepath.Join(e.data, "cache", "app", url.PathEscape("refs/heads/main"), "ran-2")); !os.IsNotExist(err) {
		t.Errorf("the verification cancelled in the queue ran (%v)", err)
	}
	if ps := testutil.ProcessesWith("sleep 4249.5"); len(ps) > 0 {
		t.Errorf("the cancelled step still runs: %v", ps)
	}
}
