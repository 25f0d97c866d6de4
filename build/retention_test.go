package build

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"slipway/build/sandbox"
	"slipway/deploy"
	"slipway/internal/sshdtest"
	"slipway/internal/testutil"
	"slipway/record"
)

// lockedBuffer collects a service's log for a test to read.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// errorLines returns the lines of a text-handler log at level ERROR.
func errorLines(log string) []string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "level=ERROR") {
			out = append(out, l)
		}
	}
	return out
}

// deployEnv is a build service wired to a deploy service as the daemon
// wires them: passing builds of main go to the staging environment by
// themselves, and alice may write and release.
type deployEnv struct {
	*testEnv
	deploys *deploy.Service
	log     *lockedBuffer // both services' log, every level
	target  string        // staging's path on its target
	repo    *gitRepo
}

// newDeployEnv starts the services with keep builds kept and staging on a
// real sshd when remote, else on a local folder.
func newDeployEnv(t *testing.T, keep int, remote bool) *deployEnv {
	t.Helper()
	target := filepath.Join(t.TempDir(), "staging")
	env := fmt.Sprintf("  [[repo.environment]]\n  name = \"staging\"\n  target = %q\n  auto = \"main\"\n", target)
	if remote {
		srv := sshdtest.New(t)
		env = fmt.Sprintf("  [[repo.environment]]\n  name = \"staging\"\n  target = %q\n  port = %d\n  ssh_key = %q\n  known_hosts = %q\n  auto = \"main\"\n",
			srv.User+"@"+srv.Host+":"+target, srv.Port, srv.KeyFile, srv.KnownHostsFile)
	}
	extra := fmt.Sprintf("[[user]]\nname = \"alice\"\nkeys = [%q]\n[[repo]]\nname = \"app\"\nwrite = [\"alice\"]\nrelease = [\"alice\"]\n%s",
		testutil.NewKey(t).Line, env)
	e := &deployEnv{testEnv: newEnv(t, fmt.Sprintf("concurrency = 1\nsandbox = \"none\"\nkeep = %d", keep), extra),
		log: &lockedBuffer{}, target: target}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("service log:\n%s", e.log.String())
		}
	})
	logger := slog.New(slog.NewTextHandler(e.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var err error
	e.deploys, err = deploy.NewService(deploy.ServiceOptions{
		Config: e.cfg, Store: e.st, Logs: e.logs, Workers: 1, Logger: logger.With("component", "deploy"),
	})
	if err != nil {
		t.Fatal(err)
	}
	e.svc, err = New(Options{
		Config: e.cfg, Store: e.st, Logs: e.logs,
		Executor: &sandbox.Local{Runner: sandbox.None{}, TempDir: filepath.Join(e.data, "work")},
		Logger:   logger.With("component", "build"),
		Deployer: e.deploys,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.deploys.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := e.deploys.Shutdown(ctx); err != nil {
			t.Errorf("shutdown deployments: %v", err)
		}
	})
	e.start()
	e.repo = e.newRepo("app")
	return e
}

// retentionPipeline keeps the commit id as the artifact out/app.
const retentionPipeline = "[build]\nsteps = [\"mkdir -p out && echo $SLIPWAY_COMMIT > out/app\"]\nartifacts = [\"out/\"]\n"

// build commits a change to ref, pushes it, waits for its build to end
// and, when it queued an automatic deployment, for that to end too.
func (e *deployEnv) build(ref string, n int) (record.Build, string) {
	e.t.Helper()
	sha := e.repo.commit(ref, map[string]*string{
		".slipway.toml": ptr(retentionPipeline),
		"n":             ptr(strconv.Itoa(n)),
	})
	e.push(e.t.Context(), "app", nil, update(ref, sha))
	bs, err := e.st.ListBuilds(e.t.Context(), "app", 1)
	if err != nil || len(bs) != 1 || bs[0].Commit != sha {
		e.t.Fatalf("newest build = %+v, %v; want one of %s", bs, err, sha)
	}
	b := e.waitFinal(bs[0].ID)
	if b.State != record.StatePassed {
		e.t.Fatalf("build %d %s: %s\n%s", b.ID, b.State, b.Reason, e.logOf(b.ID))
	}
	if ref == "refs/heads/main" {
		ds, err := e.st.ListDeployments(e.t.Context(), "app", "staging", 1)
		if err != nil || len(ds) != 1 || ds[0].BuildID != b.ID {
			e.t.Fatalf("newest deployment = %+v, %v; want one of build %d", ds, err, b.ID)
		}
		e.waitDeploy(ds[0].ID, record.DeploySucceeded)
	}
	return b, sha
}

func (e *deployEnv) waitDeploy(id int64, want record.DeployState) record.Deployment {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.t.Context(), time.Minute)
	defer cancel()
	d, err := e.deploys.Wait(ctx, id)
	if err != nil || d.State != want {
		e.t.Fatalf("deployment %d: %s (%s), %v; want %s", id, d.State, d.Reason, err, want)
	}
	return d
}

// release does what the hooks do for `git push sha:refs/release/staging`
// by alice: the gate, then the push recorded with its deployment.
func (e *deployEnv) release(sha string) (record.Deployment, error) {
	e.t.Helper()
	ctx := e.t.Context()
	if err := e.deploys.CheckRelease(ctx, "app", "staging", sha, "alice"); err != nil {
		return record.Deployment{}, err
	}
	p := record.Push{Repo: "app", User: "alice", Refs: []record.RefUpdate{update("refs/release/staging", sha)}}
	ds, err := e.deploys.ReleaseDeployments(ctx, p)
	if err != nil {
		e.t.Fatal(err)
	}
	enq, err := e.st.RecordPushAndEnqueue(ctx, p, nil, ds)
	if err != nil {
		e.t.Fatal(err)
	}
	if len(enq.Deployments) != 1 {
		e.t.Fatalf("release push recorded %d deployments", len(enq.Deployments))
	}
	e.deploys.Wake()
	return e.waitDeploy(enq.Deployments[0].ID, record.DeploySucceeded), nil
}

// entries lists the names in dir.
func entries(t testing.TB, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var names []string
	for _, d := range des {
		names = append(names, d.Name())
	}
	slices.Sort(names)
	return names
}

// duSize is the bytes of the files under dir.
func duSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// wantFiles is what the artifacts and logs folders must hold for the
// records as they are: the artifacts of every kept passed build, the log of
// every kept build that ran and of every kept deployment.
func (e *deployEnv) wantFiles() (artifacts, logNames []string) {
	e.t.Helper()
	ctx := e.t.Context()
	bs, err := e.st.ListBuilds(ctx, "app", 0)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, b := range bs {
		if b.State == record.StatePassed {
			artifacts = append(artifacts, logID(b.ID))
		}
		if b.Attempt > 0 {
			logNames = append(logNames, logID(b.ID)+".log")
		}
	}
	ds, err := e.st.ListDeployments(ctx, "app", "", 0)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, d := range ds {
		logNames = append(logNames, deploy.LogID(d.ID)+".log")
	}
	slices.Sort(artifacts)
	slices.Sort(logNames)
	return artifacts, logNames
}

// checkFiles fails unless the artifacts and logs folders hold exactly what
// the kept records need.
func (e *deployEnv) checkFiles() (artifacts, logNames []string) {
	e.t.Helper()
	wantA, wantL := e.wantFiles()
	artifacts, logNames = entries(e.t, filepath.Join(e.data, "artifacts")), entries(e.t, filepath.Join(e.data, "logs"))
	if !slices.Equal(artifacts, wantA) {
		e.t.Errorf("artifacts folder holds %v, want %v", artifacts, wantA)
	}
	if !slices.Equal(logNames, wantL) {
		e.t.Errorf("logs folder holds %v, want %v", logNames, wantL)
	}
	return artifacts, logNames
}

// TestRetentionKeepsLiveAndPreviousReleases: with keep = 3, once newer
// builds of another branch push the deployed builds of main beyond keep,
// only the live release's build and the one before it keep their artifacts
// (and their records), and rolling back to the previous release still works
// over a real sshd.
func TestRetentionKeepsLiveAndPreviousReleases(t *testing.T) {
	t.Parallel()
	e := newDeployEnv(t, 3, true)
	var mains []record.Build
	var shas []string
	for i := range 4 {
		b, sha := e.build("refs/heads/main", i)
		mains = append(mains, b)
		shas = append(shas, sha)
	}
	var features []record.Build
	for i := range 5 {
		b, _ := e.build("refs/heads/feature", 10+i)
		features = append(features, b)
	}
	live, prev := mains[3], mains[2]
	want := []string{logID(prev.ID), logID(live.ID)}
	for _, b := range features[2:] {
		want = append(want, logID(b.ID))
	}
	slices.Sort(want)
	artifacts, _ := e.checkFiles()
	if !slices.Equal(artifacts, want) {
		t.Errorf("artifacts kept %v, want the newest 3 builds and the live and previous releases' %v", artifacts, want)
	}
	for _, b := range mains[:2] {
		if _, err := e.st.GetBuild(t.Context(), b.ID); err == nil {
			t.Errorf("build %d (deployed, neither live nor previous) was kept", b.ID)
		}
	}

	// The rollback: release the previous revision; then the one before it
	// is refused, its artifacts being gone.
	d, err := e.release(shas[2])
	if err != nil {
		t.Fatalf("rollback to the previous release refused: %v", err)
	}
	if d.BuildID != prev.ID {
		t.Errorf("rollback shipped build %d, want %d", d.BuildID, prev.ID)
	}
	got, err := os.ReadFile(filepath.Join(e.target, "current", "out", "app"))
	if err != nil || strings.TrimSpace(string(got)) != shas[2] {
		t.Errorf("current/out/app after the rollback = %q, %v; want %s", got, err, shas[2])
	}
	if _, err := e.release(shas[1]); err == nil {
		t.Error("release of a pruned build's revision was accepted")
	}
	// Live is now the rolled-back build, previous the one it replaced:
	// both keep their artifacts after another build.
	e.build("refs/heads/feature", 20)
	if artifacts, _ := e.checkFiles(); !slices.Contains(artifacts, logID(prev.ID)) || !slices.Contains(artifacts, logID(live.ID)) {
		t.Errorf("after the rollback, artifacts %v lack build %d (live) or %d (previous)", artifacts, prev.ID, live.ID)
	}
	if errs := errorLines(e.log.String()); len(errs) > 0 {
		t.Errorf("errors logged:\n%s", strings.Join(errs, "\n"))
	}
}

// TestPruneOfBuildsWithoutLogsIsQuiet: superseded builds never ran and have
// no log; pruning them is not an error.
func TestPruneOfBuildsWithoutLogsIsQuiet(t *testing.T) {
	t.Parallel()
	buf := &lockedBuffer{}
	e := newEnv(t, "concurrency = 1\nsandbox = \"none\"\nkeep = 1", appRepo)
	e.debugLog = buf
	e.svc = e.newService()
	r := e.newRepo("app")
	var last string
	for i := range 4 { // queued before any worker runs: the first three are superseded
		last = r.commit("refs/heads/main", map[string]*string{".slipway.toml": ptr(retentionPipeline), "n": ptr(strconv.Itoa(i))})
		e.push(t.Context(), "app", nil, update("refs/heads/main", last))
	}
	e.start()
	if b := e.waitFinal(4); b.State != record.StatePassed || b.Commit != last {
		t.Fatalf("build 4: %+v", b)
	}
	bs := e.builds("app")
	if len(bs) != 1 || bs[0].ID != 4 {
		t.Errorf("builds kept: %+v; want build 4 only", bs)
	}
	if errs := errorLines(buf.String()); len(errs) > 0 {
		t.Errorf("errors logged:\n%s", strings.Join(errs, "\n"))
	}
	if !strings.Contains(buf.String(), "pruned old records") {
		t.Errorf("no prune logged:\n%s", buf.String())
	}
	if got := entries(t, filepath.Join(e.data, "logs")); !slices.Equal(got, []string{"4.log"}) {
		t.Errorf("logs folder holds %v", got)
	}
}

// TestRetentionStopsGrowth runs forty builds with keep = 5,
// every passing build of main deployed: the artifacts and logs folders
// stop growing once keep is reached, and the records with them.
func TestRetentionStopsGrowth(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("forty builds")
	}
	// Eight times keep: growth that retention did not stop would show.
	const keep, n = 5, 40
	e := newDeployEnv(t, keep, false)
	var maxA, maxL int
	for i := range n {
		ref := "refs/heads/main"
		if i%4 == 3 {
			ref = "refs/heads/feature" // builds that never deploy
		}
		e.build(ref, i)
		artifacts, logNames := e.checkFiles()
		if i >= keep {
			maxA, maxL = max(maxA, len(artifacts)), max(maxL, len(logNames))
		}
		if (i+1)%20 == 0 {
			t.Logf("after %3d builds: artifacts %2d entries, %6d bytes; logs %2d entries, %6d bytes; builds kept %d",
				i+1, len(artifacts), duSize(filepath.Join(e.data, "artifacts")), len(logNames), duSize(filepath.Join(e.data, "logs")), len(e.builds("app")))
		}
		if t.Failed() {
			t.FailNow()
		}
	}
	// keep builds, plus at most the live and previous releases' builds;
	// every kept build ran (one log each) and, on main, deployed once.
	if maxA > keep+2 {
		t.Errorf("artifacts folder reached %d entries, want at most %d", maxA, keep+2)
	}
	if maxL > 2*(keep+2) {
		t.Errorf("logs folder reached %d entries, want at most %d", maxL, 2*(keep+2))
	}
	var pushes int
	for id := int64(1); id <= n; id++ { // one push per build
		if _, err := e.st.GetPush(t.Context(), id); err == nil {
			pushes++
		}
	}
	if pushes > keep+2 {
		t.Errorf("%d push records kept after %d pushes, want at most %d", pushes, n, keep+2)
	}
	t.Logf("at most %d artifact folders and %d logs after %d builds with keep = %d; %d push records", maxA, maxL, n, keep, pushes)
	if errs := errorLines(e.log.String()); len(errs) > 0 {
		t.Errorf("errors logged:\n%s", strings.Join(errs, "\n"))
	}
}

// TestStartSweepsLeftovers: what a daemon's death leaves (the workspace of
// a build that recovery then ends as superseded, a step's home, the
// artifacts and log of a build whose record was pruned before its files)
// is removed when the service starts, and one line counts it; a queued
// build's workspace is left for its own run.
func TestStartSweepsLeftovers(t *testing.T) {
	t.Parallel()
	buf := &lockedBuffer{}
	e := newEnv(t, "concurrency = 1\nsandbox = \"none\"", appRepo)
	work := filepath.Join(e.data, "work")
	e.debugLog = buf
	e.svc = e.newService()
	r := e.newRepo("app")
	ctx := t.Context()
	sha1 := r.commit("refs/heads/main", map[string]*string{".slipway.toml": ptr(retentionPipeline), "n": ptr("1")})
	e.push(ctx, "app", nil, update("refs/heads/main", sha1))
	// The previous daemon claimed build 1 and died in it, after a push of
	// build 2 to the same branch.
	if b, ok, err := e.st.ClaimBuild(ctx, "worker-1"); err != nil || !ok || b.ID != 1 {
		t.Fatalf("claim: %+v %v %v", b, ok, err)
	}
	sha2 := r.commit("refs/heads/main", map[string]*string{"n": ptr("2")})
	e.push(ctx, "app", nil, update("refs/heads/main", sha2))
	leftovers := []string{
		filepath.Join(work, "1", "workspace", "a"),
		filepath.Join(work, "2", "workspace", "a"), // queued: its run clears it
		filepath.Join(work, homePrefix+"0123456789abcdef01234567", ".cache", "x"),
		filepath.Join(e.data, "artifacts", "999", "out", "app"),
	}
	for _, f := range leftovers {
		testutil.WriteFile(t, f, "x\n")
	}
	// A read-only folder, as Go's module cache leaves them.
	if err := os.Chmod(filepath.Join(work, "1", "workspace"), 0o555); err != nil {
		t.Fatal(err)
	}
	lw, err := e.logs.Create("999", 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	lw.Printf("pruned, but its log stayed")
	if err := lw.Close(); err != nil {
		t.Fatal(err)
	}

	e.start()
	if b := e.waitFinal(2); b.State != record.StatePassed {
		t.Fatalf("build 2: %s %s", b.State, b.Reason)
	}
	if b, _ := e.st.GetBuild(ctx, 1); b.State != record.StateSuperseded {
		t.Errorf("build 1 is %s, want superseded by recovery", b.State)
	}
	if got := entries(t, work); len(got) != 0 {
		t.Errorf("work folder holds %v", got)
	}
	if got := entries(t, filepath.Join(e.data, "artifacts")); !slices.Equal(got, []string{"2"}) {
		t.Errorf("artifacts folder holds %v, want [2]", got)
	}
	if got := entries(t, filepath.Join(e.data, "logs")); !slices.Equal(got, []string{"1.log", "2.log"}) {
		t.Errorf("logs folder holds %v, want the two builds' logs", got)
	}
	if want := `msg="removed leftovers of earlier runs" workspaces=1 homes=1 artifacts=1 logs=1`; !strings.Contains(buf.String(), want) {
		t.Errorf("no line %q in the log:\n%s", want, buf.String())
	}
	if errs := errorLines(buf.String()); len(errs) > 0 {
		t.Errorf("errors logged:\n%s", strings.Join(errs, "\n"))
	}
}

// A build queued again after the daemon died and then superseded, or
// cancelled, before it ran leaves no workspace: nothing else would clear
// its interrupted attempt's until the next start.
func TestBuildThatWillNotRunLeavesNoWorkspace(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "concurrency = 1\nsandbox = \"none\"", appRepo)
	r := e.newRepo("app")
	ctx := t.Context()
	work := filepath.Join(e.data, "work")
	sha1 := r.commit("refs/heads/main", map[string]*string{".slipway.toml": ptr(retentionPipeline), "n": ptr("1")})
	e.push(ctx, "app", nil, update("refs/heads/main", sha1))
	testutil.WriteFile(t, filepath.Join(work, "1", "workspace", "a"), "x\n")
	sha2 := r.commit("refs/heads/main", map[string]*string{"n": ptr("2")})
	e.push(ctx, "app", nil, update("refs/heads/main", sha2))
	if b, err := e.st.GetBuild(ctx, 1); err != nil || b.State != record.StateSuperseded {
		t.Fatalf("build 1: %+v, %v; want superseded", b, err)
	}
	if _, err := os.Stat(filepath.Join(work, "1")); !os.IsNotExist(err) {
		t.Errorf("the superseded build's workspace is still there: %v", err)
	}
	testutil.WriteFile(t, filepath.Join(work, "2", "workspace", "a"), "x\n")
	if err := e.svc.Cancel(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(work, "2")); !os.IsNotExist(err) {
		t.Errorf("the cancelled queued build's workspace is still there: %v", err)
	}
}
