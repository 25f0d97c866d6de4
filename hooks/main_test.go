package hooks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"slipway/configs"
	"slipway/internal/testutil"
	"slipway/record"
	"slipway/store"
)

// TestMain lets the test binary be the hook client: the hook scripts the
// tests write exec it as `<test binary> hook --socket PATH NAME [STATE]`, which is
// exactly what they exec in production with the slipway binary.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "hook" {
		os.Exit(clientMain(os.Args[2:]))
	}
	os.Exit(m.Run())
}

// clientMain is the little that cmd/slipway does around RunClient.
func clientMain(args []string) int {
	if len(args) < 3 || len(args) > 4 || args[0] != "--socket" {
		fmt.Fprintln(os.Stderr, "usage: hook --socket PATH NAME [STATE]")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return RunClient(ctx, args[2], args[1], os.Stdin, os.Stderr, os.Environ(), args[3:]...)
}

// testEnv is a daemon-side hook server with a real store, real hook scripts
// and a configuration with four users:
//
//	admin: admin; alice: write on app; bob: write and release on app;
//	carol: read on app.
type testEnv struct {
	t       testing.TB
	cfg     *configs.Config
	cfgText string // what cfg was parsed from; app's [[repo]] comes last
	store   *store.Store
	rec     *countingRecorder
	reg     *Registry
	srv     *Server
	socket  string
	gitHome string
	fps     map[string]string // user -> key fingerprint
	served  chan error
	stop    func() // stops the daemon side; once
}

type envOption func(*ServerOptions)

func newEnv(t testing.TB, opts ...envOption) *testEnv {
	t.Helper()
	e := prepareEnv(t)
	e.start(opts...)
	return e
}

// prepareEnv sets everything up but does not start the daemon.
func prepareEnv(t testing.TB) *testEnv {
	t.Helper()
	dir := t.TempDir()
	e := &testEnv{t: t, fps: map[string]string{}, gitHome: filepath.Join(dir, "home")}
	var users strings.Builder
	for _, name := range []string{"admin", "alice", "bob", "carol"} {
		key := testutil.NewKey(t)
		e.fps[name] = key.Fingerprint
		fmt.Fprintf(&users, "[[user]]\nname = %q\nkeys = [%q]\nadmin = %v\n\n", name, key.Line, name == "admin")
	}
	text := fmt.Sprintf("data_dir = %q\n\n%s[[environment]]\nname = \"prod\"\ntarget = \"environments/{repo}/prod\"\n\n"+
		"[[repo]]\nname = \"app\"\nread = [\"carol\"]\nwrite = [\"alice\", \"bob\"]\nrelease = [\"bob\"]\n",
		filepath.Join(dir, "data"), users.String())
	cfg, err := configs.Parse([]byte(text), "test.toml")
	if err != nil {
		t.Fatalf("parse test config: %v", err)
	}
	e.cfg, e.cfgText = cfg, text
	e.socket = cfg.HookSocket()
	for _, d := range []string{cfg.DataDir, cfg.ReposDir(), e.gitHome} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteScripts(cfg.HooksDir(), cfg.PushHooksDir(), exe, e.socket); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *testEnv) start(opts ...envOption) {
	t := e.t
	st, err := store.Open(t.Context(), e.cfg.DatabasePath())
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	e.store = st
	e.rec = &countingRecorder{r: st}
	e.reg = NewRegistry()
	o := ServerOptions{
		Config:   e.cfg,
		Registry: e.reg,
		Recorder: e.rec,
		Ledger:   st,
		Logger:   slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	for _, f := range opts {
		f(&o)
	}
	ln, err := Listen(e.socket)
	if err != nil {
		t.Fatal(err)
	}
	e.srv = NewServer(o)
	e.served = make(chan error, 1)
	go func() { e.served <- e.srv.Serve(ln) }()
	e.stop = sync.OnceFunc(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := e.srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-e.served; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
		if err := st.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	t.Cleanup(e.stop)
}

// newAppEnv is newEnv with bare repository app and a work tree with one
// commit on main to push from.
func newAppEnv(t *testing.T) (e *testEnv, repo, work string) {
	t.Helper()
	e = newEnv(t)
	return e, e.bareRepo("app"), e.workRepo()
}

// token registers a receive-pack session for user on repo, as gitserver
// does, and ends it when the test ends.
func (e *testEnv) token(repo, user string) string {
	tok, end := e.reg.Begin(repo, user, e.fps[user], nil)
	e.t.Cleanup(end)
	return tok
}

// gitEnv is a clean environment for git: nothing from the test's own.
func (e *testEnv) gitEnv(extra ...string) []string {
	return append([]string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + e.gitHome,
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_AUTHOR_NAME=Test", "GIT_AUTHOR_EMAIL=test@example.com",
		"GIT_COMMITTER_NAME=Test", "GIT_COMMITTER_EMAIL=test@example.com",
		"LC_ALL=C",
	}, extra...)
}

// git runs git in dir and fails the test if it fails.
func (e *testEnv) git(dir string, args ...string) string {
	e.t.Helper()
	out, err := e.gitErr(dir, nil, args...)
	if err != nil {
		e.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(out)
}

func (e *testEnv) gitErr(dir string, env []string, args ...string) (string, error) {
	cmd := e.gitCmd(dir, args...)
	cmd.Env = e.gitEnv(env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// gitCmd is git in dir with the clean environment of gitEnv.
func (e *testEnv) gitCmd(dir string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(e.t.Context(), "git", args...)
	cmd.Dir = dir
	cmd.Env = e.gitEnv()
	return cmd
}

// createRefs creates, in the repository at dir, branches b0000… and tags
// t0000… at its HEAD, in one update-ref.
func (e *testEnv) createRefs(dir string, branches, tags int) {
	e.t.Helper()
	head := e.git(dir, "rev-parse", "HEAD")
	var refs strings.Builder
	for i := range branches {
		fmt.Fprintf(&refs, "create refs/heads/b%04d %s\n", i, head)
	}
	for i := range tags {
		fmt.Fprintf(&refs, "create refs/tags/t%04d %s\n", i, head)
	}
	cmd := e.gitCmd(dir, "update-ref", "--stdin")
	cmd.Stdin = strings.NewReader(refs.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		e.t.Fatalf("update-ref: %v\n%s", err, out)
	}
}

// bareRepo creates the bare repository of canonical name as gitserver does.
func (e *testEnv) bareRepo(name string) string {
	e.t.Helper()
	path := filepath.Join(e.cfg.ReposDir(), filepath.FromSlash(name)+".git")
	e.git("", "init", "--bare", "-q", "--initial-branch=main", path)
	e.git(path, "config", "core.hooksPath", e.cfg.HooksDir())
	e.git(path, "config", "receive.advertisePushOptions", "true")
	return path
}

// workRepo creates a non-bare repository with one commit on main.
func (e *testEnv) workRepo() string {
	e.t.Helper()
	dir := filepath.Join(e.t.TempDir(), "work")
	e.git("", "init", "-q", "--initial-branch=main", dir)
	if err := os.WriteFile(filepath.Join(dir, "README"), []byte("hello\n"), 0o644); err != nil {
		e.t.Fatal(err)
	}
	e.git(dir, "add", "README")
	e.git(dir, "commit", "-q", "-m", "first")
	return dir
}

// push runs git push from dir with the token in git's environment and the
// push hooks (none if token is "": a push on the server's disk, through the
// repository's own hooks), as gitserver would run receive-pack.
func (e *testEnv) push(dir, token string, args ...string) (string, error) {
	var env []string
	git := []string{"push"}
	if token != "" {
		env = append(env, EnvPushToken+"="+token)
		// git clears -c for a local receive-pack; gitserver passes it so.
		git = []string{"push", "--receive-pack=git -c core.hooksPath=" + e.cfg.PushHooksDir() + " receive-pack"}
	}
	return e.gitErr(dir, env, append(git, args...)...)
}

// mustPush is push that fails the test, saying what was refused, when git
// push fails; it returns git's output.
func (e *testEnv) mustPush(what, dir, token string, args ...string) string {
	e.t.Helper()
	out, err := e.push(dir, token, args...)
	if err != nil {
		e.t.Fatalf("%s: %v\n%s", what, err, out)
	}
	return out
}

// refExists reports whether the bare repo has ref.
func (e *testEnv) refExists(repo, ref string) bool {
	_, err := e.gitErr(repo, nil, "rev-parse", "--verify", "-q", ref)
	return err == nil
}

// pushes returns how many pushes the store holds.
func (e *testEnv) lastPush(repo string) (record.Push, bool) {
	e.t.Helper()
	last, err := e.store.LastPushes(e.t.Context())
	if err != nil {
		e.t.Fatal(err)
	}
	p, ok := last[repo]
	if !ok {
		return record.Push{}, false
	}
	full, err := e.store.GetPush(e.t.Context(), p.ID)
	if err != nil {
		e.t.Fatal(err)
	}
	return full, true
}

// countingRecorder records pushes in the real store, counted and timed;
// its report runs the test's listeners in order.
type countingRecorder struct {
	r         *store.Store
	listeners []listener
	mu        sync.Mutex
	calls     int
	last      time.Duration
}

// listener stands for the parts whose reports reach the pusher.
type listener interface {
	PushRecorded(ctx context.Context, p record.Push, out io.Writer)
}

func (c *countingRecorder) RecordPush(ctx context.Context, p record.Push) (int64, func(context.Context, io.Writer), error) {
	start := time.Now()
	id, err := c.r.RecordPush(ctx, p)
	c.mu.Lock()
	c.calls++
	c.last = time.Since(start)
	c.mu.Unlock()
	p.ID = id
	return id, func(ctx context.Context, out io.Writer) {
		for _, l := range c.listeners {
			l.PushRecorded(ctx, p, out)
		}
	}, err
}

func (c *countingRecorder) stats() (int, time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls, c.last
}
