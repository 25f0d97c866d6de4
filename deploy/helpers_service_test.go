package deploy

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slipway/internal/gitrev"
	"strconv"
	"strings"
	"testing"
	"time"

	"slipway/build/logs"
	"slipway/configs"
	"slipway/internal/manifest"
	"slipway/internal/sshdtest"
	"slipway/internal/testutil"
	"slipway/record"
	"slipway/store"
)

// harness is a deploy Service on a real SQLite store, with the users
//
//	alice: write          bob:  release, the approver of prod
//	carol: release         dave: read
//
// and the environments given as TOML.
type harness struct {
	t       testing.TB
	cfg     *configs.Config
	st      *store.Store
	logs    *logs.Store
	svc     *Service
	data    string
	commits int
}

// localEnv is an environment on a local folder; extra is more TOML keys.
func localEnv(name, dir, extra string) string {
	return fmt.Sprintf("\n  [[repo.environment]]\n  name = %q\n  target = %q\n%s\n", name, dir, extra)
}

// remoteEnv is an environment on a real sshd.
func remoteEnv(name string, srv *sshdtest.Server, path, extra string) string {
	return fmt.Sprintf("\n  [[repo.environment]]\n  name = %q\n  target = %q\n  port = %d\n  ssh_key = %q\n  known_hosts = %q\n%s\n",
		name, srv.User+"@"+srv.Host+":"+path, srv.Port, srv.KeyFile, srv.KnownHostsFile, extra)
}

func newHarness(t testing.TB, workers int, envs ...string) *harness {
	t.Helper()
	data := t.TempDir()
	var b strings.Builder
	fmt.Fprintf(&b, "data_dir = %q\n", data)
	for _, u := range []string{"alice", "bob", "carol", "dave"} {
		fmt.Fprintf(&b, "[[user]]\nname = %q\nkeys = [%q]\n", u, testutil.NewKey(t).Line)
	}
	b.WriteString("[[repo]]\nname = \"app\"\nread = [\"dave\"]\nwrite = [\"alice\"]\nrelease = [\"bob\", \"carol\"]\n")
	for _, e := range envs {
		b.WriteString(e)
	}
	cfg, err := configs.Parse([]byte(b.String()), "test.toml")
	if err != nil {
		t.Fatalf("config: %v\n%s", err, b.String())
	}
	st, err := store.Open(t.Context(), filepath.Join(data, "slipway.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ls := logs.NewStore(filepath.Join(data, "logs"))
	svc, err := NewService(ServiceOptions{
		Revisions: commitsOnly{},
		Config:    cfg, Store: st, Logs: ls, Workers: workers,
		Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, cfg: cfg, st: st, logs: ls, svc: svc, data: data}
}

// localHarness is a harness with one worker, not started, whose one
// environment env is on a fresh local folder, returned with it; extra is
// more TOML keys of env.
func localHarness(t testing.TB, env, extra string) (*harness, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), env)
	return newHarness(t, 1, localEnv(env, dir, extra)), dir
}

// startedLocal is localHarness with its worker started.
func startedLocal(t testing.TB, env, extra string) (*harness, string) {
	t.Helper()
	h, dir := localHarness(t, env, extra)
	h.start()
	return h, dir
}

// start starts the workers and stops them when the test ends.
func (h *harness) start() {
	h.t.Helper()
	if err := h.svc.Start(h.t.Context()); err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := h.svc.Shutdown(ctx); err != nil {
			h.t.Errorf("shutdown: %v", err)
		}
	})
}

func (h *harness) commit() string {
	h.commits++
	sum := sha1.Sum([]byte(fmt.Sprintf("%s commit %d", h.t.Name(), h.commits)))
	return hex.EncodeToString(sum[:])
}

// passedBuild records a passed build of ref with files as its artifacts (no
// artifacts folder when files is nil) and, in the same transaction, the
// automatic deployments the service asks for, as the build service does.
func (h *harness) passedBuild(ref string, files map[string]string) (record.Build, []record.Deployment) {
	h.t.Helper()
	return h.build(ref, record.DefaultPipeline, files)
}

func (h *harness) build(ref, pipeline string, files map[string]string) (record.Build, []record.Deployment) {
	h.t.Helper()
	return h.finish(h.running(ref, pipeline, files))
}

// running records a build of ref that a worker claimed and that kept files
// as its artifacts (none when files is nil), as the build service does
// before recording the result.
func (h *harness) running(ref, pipeline string, files map[string]string) record.Build {
	h.t.Helper()
	return h.runningAt(ref, pipeline, h.commit(), files)
}

// runningAt is running for a given commit (a rebuild of one already built).
func (h *harness) runningAt(ref, pipeline, commit string, files map[string]string) record.Build {
	h.t.Helper()
	ctx := h.t.Context()
	enq, err := h.st.EnqueueBuilds(ctx, []record.Build{{Repo: "app", Ref: ref, Commit: commit, Trigger: record.TriggerManual, Pipeline: pipeline}})
	if err != nil {
		h.t.Fatal(err)
	}
	b, ok, err := h.st.ClaimBuild(ctx, "test")
	if err != nil || !ok || b.ID != enq.Builds[0].ID {
		h.t.Fatalf("claim build: %v %v %+v", ok, err, b)
	}
	if files != nil {
		// As the build service keeps them: the files, their manifest, and
		// the digest recorded with the build before it passes.
		dir := h.svc.artifactDir(b.ID)
		writeFiles(h.t, dir, files)
		digest, err := manifest.Write(dir)
		if err != nil {
			h.t.Fatal(err)
		}
		if err := h.st.SetArtifactsDigest(ctx, b.ID, digest); err != nil {
			h.t.Fatal(err)
		}
		b.ArtifactsDigest = digest
	}
	return b
}

// finish records a running build as passed and, in the same transaction,
// the automatic deployments the service asks for, as the build service
// does; it returns the deployments queued.
func (h *harness) finish(b record.Build) (record.Build, []record.Deployment) {
	h.t.Helper()
	ds, err := h.st.FinishBuildAndDeploy(h.t.Context(), b.ID, record.StatePassed, "", nil, h.svc.AutoDeployments(h.t.Context(), b))
	if err != nil {
		h.t.Fatal(err)
	}
	h.svc.Wake()
	b.State = record.StatePassed
	return b, ds
}

func writeFiles(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		testutil.WriteFile(t, filepath.Join(dir, name), content)
	}
}

const zeroID = "0000000000000000000000000000000000000000"

// release does what the hooks do for `git push <commit>:refs/release/<env>`
// by user: the gate in pre-receive, then recording the push with its
// deployments in post-receive.
func (h *harness) release(user, env, commit string) (record.Deployment, error) {
	h.t.Helper()
	ctx := h.t.Context()
	if err := h.svc.CheckRelease(ctx, "app", env, commit, user); err != nil {
		return record.Deployment{}, err
	}
	p := record.Push{Repo: "app", User: user, Refs: []record.RefUpdate{{Name: gitrev.ReleasePrefix + env, Old: zeroID, New: commit}}}
	ds, err := h.svc.ReleaseDeployments(ctx, p)
	if err != nil {
		h.t.Fatal(err)
	}
	enq, err := h.st.RecordPushAndEnqueue(ctx, p, nil, ds)
	if err != nil {
		h.t.Fatal(err)
	}
	if len(enq.Deployments) != 1 {
		h.t.Fatalf("release push recorded %d deployments, want 1", len(enq.Deployments))
	}
	h.svc.Wake()
	return enq.Deployments[0], nil
}

// enqueueRelease queues, straight in the store, bob's release of build to
// env, as a release push would; no worker is woken.
func (h *harness) enqueueRelease(build int64, env string) record.Deployment {
	h.t.Helper()
	d, err := h.st.EnqueueDeployment(h.t.Context(), record.Deployment{BuildID: build, Env: env, Trigger: record.DeployRelease, User: "bob"})
	if err != nil {
		h.t.Fatal(err)
	}
	return d
}

// releaseAndWait is bob's release of commit to env, followed until it
// ends in state want.
func (h *harness) releaseAndWait(env, commit string, want record.DeployState) record.Deployment {
	h.t.Helper()
	return h.waitState(h.mustRelease("bob", env, commit).ID, want)
}

func (h *harness) mustRelease(user, env, commit string) record.Deployment {
	h.t.Helper()
	d, err := h.release(user, env, commit)
	if err != nil {
		h.t.Fatalf("release of %s to %s by %s refused: %v", gitrev.Short(commit), env, user, err)
	}
	return d
}

// wait returns the deployment once final, failing the test after a minute.
func (h *harness) wait(id int64) record.Deployment {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(h.t.Context(), time.Minute)
	defer cancel()
	d, err := h.svc.Wait(ctx, id)
	if err != nil {
		h.t.Fatalf("wait for deployment %d: %v (state %s)\nlog:\n%s", id, err, d.State, h.log(id))
	}
	return d
}

// waitState waits for a deployment and checks how it ended.
func (h *harness) waitState(id int64, want record.DeployState) record.Deployment {
	h.t.Helper()
	d := h.wait(id)
	if d.State != want {
		h.t.Fatalf("deployment %d is %s (%s), want %s\nlog:\n%s", id, d.State, d.Reason, want, h.log(id))
	}
	return d
}

func (h *harness) log(id int64) string {
	var buf bytes.Buffer
	if err := h.svc.Follow(h.t.Context(), id, &buf, false); err != nil {
		fmt.Fprintf(&buf, "(follow: %v)", err)
	}
	return buf.String()
}

func readLink(t *testing.T, path string) string {
	t.Helper()
	l, err := os.Readlink(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return l
}

// testLogger keeps the service's log and shows it when the test fails.
func testLogger(t testing.TB) *slog.Logger {
	w := &syncWriter{w: &bytes.Buffer{}}
	t.Cleanup(func() {
		if t.Failed() {
			w.mu.Lock()
			t.Logf("service log:\n%s", w.w.(*bytes.Buffer).String())
			w.mu.Unlock()
		}
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func (h *harness) get(id int64) record.Deployment {
	h.t.Helper()
	d, err := h.st.GetDeployment(h.t.Context(), id)
	if err != nil {
		h.t.Fatal(err)
	}
	return d
}

// commitsOnly is a repository in which every pushed id names a commit.
type commitsOnly struct{}

func (commitsOnly) Peel(_ context.Context, _, id string) (string, error) { return id, nil }
