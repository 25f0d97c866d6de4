package build

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"slipway/build/executor"
	"slipway/build/logs"
	"slipway/build/sandbox"
	"slipway/configs"
	"slipway/internal/testutil"
	"slipway/push"
	"slipway/record"
	"slipway/store"
)

// testEnv is a build service on a real SQLite store, real git repositories
// and real bubblewrap, all under one temporary data dir.
type testEnv struct {
	t    testing.TB
	data string
	cfg  *configs.Config
	st   *store.Store
	logs *logs.Store
	svc  *Service
	// metrics, when set before newService, counts the service's builds.
	metrics Metrics
	// debugLog, when set before newService, takes the service's log at
	// debug level in place of the test log's warnings.
	debugLog io.Writer
	// kube, when set before newService, makes the service's Kubernetes
	// executor out of its local one.
	kube func(local executor.Executor) executor.Executor
}

// newEnv parses a server config made of the data dir, a [build] table with
// buildTOML and the extra TOML (repos), and builds a Service. It does not
// start it.
func newEnv(t testing.TB, buildTOML, extra string) *testEnv {
	t.Helper()
	data := t.TempDir()
	text := fmt.Sprintf("data_dir = %q\n[ssh]\nlisten = \"127.0.0.1:2222\"\n[build]\n%s\n%s\n", data, buildTOML, extra)
	cfg, err := configs.Parse([]byte(text), "test.toml")
	if err != nil {
		t.Fatalf("parse config: %v\n%s", err, text)
	}
	st, err := store.Open(t.Context(), filepath.Join(data, "slipway.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := &testEnv{t: t, data: data, cfg: cfg, st: st, logs: logs.NewStore(filepath.Join(data, "logs"))}
	e.svc = e.newService()
	return e
}

func (e *testEnv) newService() *Service {
	e.t.Helper()
	// As the daemon runs it: the allowed /etc files prepared in one folder.
	etc := filepath.Join(e.data, "sandbox-etc")
	if err := sandbox.PrepareEtc(etc); err != nil {
		e.t.Fatal(err)
	}
	var runner sandbox.Runner = &sandbox.Bwrap{EtcDir: etc}
	if e.cfg.Build.Sandbox == "none" {
		runner = sandbox.None{}
	}
	logger := slog.New(slog.NewTextHandler(testWriter{e.t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if e.debugLog != nil {
		logger = slog.New(slog.NewTextHandler(e.debugLog, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	local := &sandbox.Local{Runner: runner, TempDir: filepath.Join(e.data, "work")}
	var kube executor.Executor
	if e.kube != nil {
		kube = e.kube(local)
	}
	svc, err := New(Options{
		Config: e.cfg, Store: e.st, Logs: e.logs,
		Executor:   local,
		Kubernetes: kube,
		Logger:     logger,
		Metrics:    e.metrics,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return svc
}

// start starts the service and stops it at the end of the test.
func (e *testEnv) start() {
	e.t.Helper()
	e.startService(e.svc)
}

func (e *testEnv) startService(svc *Service) {
	e.t.Helper()
	if err := svc.Start(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := svc.Shutdown(ctx); err != nil {
			e.t.Errorf("shutdown: %v", err)
		}
	})
}

// testWriter sends the service's warnings to the test log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// gitRepo is a bare repository in the service's repos dir and a work tree
// to make commits in.
type gitRepo struct {
	t          testing.TB
	name       string
	bare, work string
}

func (e *testEnv) newRepo(name string) *gitRepo {
	e.t.Helper()
	r := &gitRepo{t: e.t, name: name, bare: filepath.Join(e.cfg.ReposDir(), name+".git"), work: e.t.TempDir()}
	if err := os.MkdirAll(filepath.Dir(r.bare), 0o755); err != nil {
		e.t.Fatal(err)
	}
	r.git("", "init", "-q", "--bare", "--initial-branch=main", r.bare)
	r.git(r.work, "init", "-q", "--initial-branch=main")
	return r
}

// gitCmd is a git command in dir with a fixed identity and no system or
// user configuration.
func (r *gitRepo) gitCmd(dir string, args ...string) *exec.Cmd {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + r.work, "GIT_CONFIG_NOSYSTEM=1",
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.org", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.org"}
	return cmd
}

// git runs git in dir, fails the test if it fails, and returns its
// trimmed output.
func (r *gitRepo) git(dir string, args ...string) string {
	r.t.Helper()
	out, err := r.gitCmd(dir, args...).CombinedOutput()
	if err != nil {
		r.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// commit writes files (a nil value removes the file), commits, pushes the
// commit to the bare repo as ref, and returns its id.
func (r *gitRepo) commit(ref string, files map[string]*string) string {
	r.t.Helper()
	sha := r.commitLocal("change", files)
	r.git(r.work, "push", "-q", "-f", r.bare, "HEAD:"+ref)
	return sha
}

// commitLocal writes files in the work tree (a nil value removes the
// file) and commits them with message, without pushing; it returns the
// commit's id.
func (r *gitRepo) commitLocal(message string, files map[string]*string) string {
	r.t.Helper()
	for name, content := range files {
		p := filepath.Join(r.work, name)
		if content == nil {
			_ = os.Remove(p)
			continue
		}
		testutil.WriteFile(r.t, p, *content)
	}
	r.git(r.work, "add", "-A")
	r.git(r.work, "commit", "-q", "--allow-empty", "-m", message)
	return r.git(r.work, "rev-parse", "HEAD")
}

// pipelineCommit commits a .slipway.toml with the given text.
func (r *gitRepo) pipelineCommit(ref, toml string) string {
	return r.commit(ref, map[string]*string{".slipway.toml": &toml})
}

// startApp is newEnv with repository "app" added to extra, started, and
// the "app" repository created.
func startApp(t testing.TB, buildTOML, extra string) (*testEnv, *gitRepo) {
	t.Helper()
	e := newEnv(t, buildTOML, appRepo+extra)
	e.start()
	return e, e.newRepo("app")
}

// pushPipeline commits toml as r's .slipway.toml on ref, hands the service
// the push of ref by alice, and returns the commit.
func (e *testEnv) pushPipeline(r *gitRepo, ref, toml string) string {
	e.t.Helper()
	sha := r.pipelineCommit(ref, toml)
	e.push(e.t.Context(), r.name, nil, update(ref, sha))
	return sha
}

func ptr(s string) *string { return &s }

const zeroID = "0000000000000000000000000000000000000000"

// push hands the service a push of one or more ref updates, like
// post-receive would, and returns the push output.
func (e *testEnv) push(ctx context.Context, repo string, opts []string, refs ...record.RefUpdate) string {
	e.t.Helper()
	var out bytes.Buffer
	if _, err := e.handlePush(ctx, record.Push{Repo: repo, User: "alice", Refs: refs, Options: opts}, &out); err != nil {
		e.t.Fatalf("handle push: %v\n%s", err, out.String())
	}
	return out.String()
}

func update(ref, sha string) record.RefUpdate {
	return record.RefUpdate{Name: ref, Old: zeroID, New: sha}
}

// waitFinal follows build id until it ends and returns its record.
func (e *testEnv) waitFinal(id int64) record.Build {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.t.Context(), 60*time.Second)
	defer cancel()
	if err := e.svc.Follow(ctx, id, io.Discard, true); err != nil {
		e.t.Fatalf("follow build %d: %v", id, err)
	}
	b, err := e.st.GetBuild(ctx, id)
	if err != nil {
		e.t.Fatal(err)
	}
	if !b.State.Final() {
		e.t.Fatalf("build %d is %s after its log ended", id, b.State)
	}
	return b
}

// logOf returns the stored log of a build.
func (e *testEnv) logOf(id int64) string {
	e.t.Helper()
	var buf bytes.Buffer
	if err := e.logs.Follow(e.t.Context(), logID(id), 0, &buf, false); err != nil {
		e.t.Fatalf("read log %d: %v", id, err)
	}
	return buf.String()
}

// lastBuild returns the newest build of repo.
func (e *testEnv) builds(repo string) []record.Build {
	e.t.Helper()
	bs, err := e.st.ListBuilds(e.t.Context(), repo, 0)
	if err != nil {
		e.t.Fatal(err)
	}
	return bs
}

// watcher is an io.Writer that signals once its content contains a string.
type watcher struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	want string
	seen chan struct{}
	once sync.Once
}

func newWatcher(want string) *watcher { return &watcher{want: want, seen: make(chan struct{})} }

func (w *watcher) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if strings.Contains(w.buf.String(), w.want) {
		w.once.Do(func() { close(w.seen) })
	}
	return len(p), nil
}

func (w *watcher) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// waitLog follows build id's log until it contains want.
func (e *testEnv) waitLog(id int64, want string) {
	e.t.Helper()
	ctx, cancel := context.WithCancel(e.t.Context())
	defer cancel()
	w := newWatcher(want)
	go func() { _ = e.svc.Follow(ctx, id, w, true) }()
	w.wait(e.t, 30*time.Second, fmt.Sprintf("log of build %d never contained %q", id, want))
}

// wait returns once w has seen its string, and fails the test with failure
// and what w holds when timeout passes first.
func (w *watcher) wait(t testing.TB, timeout time.Duration, failure string) {
	t.Helper()
	select {
	case <-w.seen:
	case <-time.After(timeout):
		t.Fatalf("%s:\n%s", failure, w.String())
	}
}

// handlePush is post-receive's way of a push with the builds as its only
// part: record, then report to out.
func (e *testEnv) handlePush(ctx context.Context, p record.Push, out io.Writer) (int64, error) {
	h, err := push.New(push.Options{Store: e.st, Parts: []push.Part{e.svc.Pushes()}})
	if err != nil {
		return 0, err
	}
	id, report, err := h.RecordPush(ctx, p)
	if err != nil {
		return 0, err
	}
	report(ctx, out)
	return id, nil
}
