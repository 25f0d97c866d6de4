package hooks

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"slipway/record"
)

// exchange sends raw bytes to the daemon and returns all it answered.
func exchange(t *testing.T, socket string, data []byte) string {
	t.Helper()
	c, err := net.Dial("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(data); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	br := bufio.NewReader(c)
	for {
		line, err := br.ReadString('\n')
		b.WriteString(line)
		if err != nil || strings.Contains(line, `"exit"`) {
			return b.String()
		}
	}
}

func TestDaemonAnswersBadRequestsAndKeepsServing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	repo := e.bareRepo("app")

	got := exchange(t, e.socket, []byte(`{"v":9,"hook":"pre-receive"}`+"\n"))
	if !strings.Contains(got, "unsupported hook protocol version 9 (this daemon speaks 1); restart the Slipway daemon") ||
		!strings.HasSuffix(got, `{"exit":1}`+"\n") {
		t.Errorf("version mismatch answered %q", got)
	}
	got = exchange(t, e.socket, []byte("\x00garbage\n"))
	if !strings.Contains(got, "the hook's request was malformed") || !strings.HasSuffix(got, `{"exit":1}`+"\n") {
		t.Errorf("garbage answered %q", got)
	}
	// A git dir outside the repositories folder is never a repository,
	// even for an admin's valid token.
	req := request{Hook: PreReceive, Token: e.token("app", "admin"), GitDir: filepath.Dir(repo) + "/../app.git",
		Refs: []record.RefUpdate{{Name: "refs/heads/main", Old: zero, New: strings.Repeat("1", 40)}}}
	got = exchange(t, e.socket, encode(t, req))
	if !strings.Contains(got, "which is not a repository of this Slipway server; push refused") || !strings.HasSuffix(got, `{"exit":1}`+"\n") {
		t.Errorf("foreign git dir answered %q", got)
	}
	// Still serving a real client.
	var stderr strings.Builder
	code := RunClient(t.Context(), PreReceive, e.socket,
		strings.NewReader(zero+" "+strings.Repeat("1", 40)+" refs/heads/main\n"), &stderr,
		[]string{"GIT_DIR=" + repo, EnvPushToken + "=" + e.token("app", "alice")})
	if code != 0 {
		t.Errorf("valid pre-receive refused (%d): %s", code, stderr.String())
	}
}

func TestRepoOf(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	real := filepath.Join(dir, "real")
	if err := os.MkdirAll(filepath.Join(real, "team", "app.git"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"app.git", "App.git", "x.git.git", "plain", "team/.hidden.git"} {
		if err := os.MkdirAll(filepath.Join(real, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	e := prepareEnv(t)
	// The daemon may be configured with the symlink while git reports
	// the real path, and the other way round.
	for _, reposDir := range []string{real, link} {
		s := NewServer(ServerOptions{Config: e.cfg, Registry: NewRegistry(), Recorder: &countingRecorder{}, ReposDir: reposDir})
		for in, want := range map[string]string{
			real + "/app.git":          "app",
			link + "/team/app.git":     "team/app",
			real + "/team/../app.git":  "app",
			real + "/App.git":          "",
			real + "/x.git.git":        "",
			real + "/plain":            "",
			real + "/team/.hidden.git": "",
			real:                       "",
			dir:                        "",
			real + "/missing.git":      "",
			"/etc":                     "",
		} {
			got, err := s.repoOf(in)
			if got != want || (want == "") != (err != nil) {
				t.Errorf("ReposDir %s: repoOf(%q) = %q, %v; want %q", reposDir, in, got, err, want)
			}
		}
	}
}

// blockingListener writes, waits to be let go, writes again, then waits for
// its context to end if told to.
type blockingListener struct {
	proceed  chan struct{}
	hold     bool
	finished chan error // context.Cause when hold, nil otherwise
}

func (l *blockingListener) PushRecorded(ctx context.Context, p record.Push, out io.Writer) {
	io.WriteString(out, "build 1 started\n")
	select {
	case <-l.proceed:
	case <-ctx.Done():
		l.finished <- context.Cause(ctx)
		return
	}
	io.WriteString(out, "build 1 passed\n")
	if l.hold {
		<-ctx.Done()
		l.finished <- context.Cause(ctx)
		return
	}
	l.finished <- nil
}

// watchWriter records what is written and signals when want has appeared.
type watchWriter struct {
	mu   sync.Mutex
	b    strings.Builder
	want string
	seen chan struct{}
	once sync.Once
}

func newWatchWriter(want string) *watchWriter {
	return &watchWriter{want: want, seen: make(chan struct{})}
}

func (w *watchWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.b.Write(p)
	if strings.Contains(w.b.String(), w.want) {
		w.once.Do(func() { close(w.seen) })
	}
	return len(p), nil
}

func (w *watchWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// newListenerEnv is an env whose pushes go to a blockingListener, and its
// bare repository app.
func newListenerEnv(t *testing.T) (*testEnv, *blockingListener, string) {
	t.Helper()
	l := &blockingListener{proceed: make(chan struct{}), finished: make(chan error, 1)}
	e := newEnv(t, func(o *ServerOptions) { o.Recorder.(*countingRecorder).listeners = []listener{l} })
	return e, l, e.bareRepo("app")
}

func postReceiveInput(repo, token string) (io.Reader, []string) {
	return strings.NewReader(zero + " " + strings.Repeat("1", 40) + " refs/heads/main\n"),
		[]string{"GIT_DIR=" + repo, EnvPushToken + "=" + token, "GIT_PUSH_OPTION_COUNT=1", "GIT_PUSH_OPTION_0=wait"}
}

// TestListenerOutputStreams proves the pusher sees a listener's output while
// the listener still runs, not when it ends.
func TestListenerOutputStreams(t *testing.T) {
	t.Parallel()
	e, l, repo := newListenerEnv(t)
	stdin, env := postReceiveInput(repo, e.token("app", "alice"))
	stderr := newWatchWriter("build 1 started\n")
	done := make(chan int, 1)
	go func() { done <- RunClient(t.Context(), PostReceive, e.socket, stdin, stderr, env) }()

	select {
	case <-stderr.seen:
	case <-time.After(10 * time.Second):
		t.Fatalf("listener output not streamed while it runs; client has %q", stderr.String())
	}
	close(l.proceed)
	if code := <-done; code != 0 {
		t.Errorf("post-receive exit %d", code)
	}
	if err := <-l.finished; err != nil {
		t.Errorf("listener: %v", err)
	}
	want := "slipway: recorded push #1 (1 ref)\nbuild 1 started\nbuild 1 passed\n"
	if got := stderr.String(); got != want {
		t.Errorf("pusher saw %q, want %q", got, want)
	}
	if p, ok := e.lastPush("app"); !ok || len(p.Options) != 1 || p.Options[0] != "wait" {
		t.Errorf("push recorded as %+v", p)
	}
}

// TestClientGoneCancelsListener: when the pusher goes away while a listener
// streams, the listener's context is cancelled, and the push stays recorded.
func TestClientGoneCancelsListener(t *testing.T) {
	t.Parallel()
	e, l, repo := newListenerEnv(t)
	stdin, env := postReceiveInput(repo, e.token("app", "alice"))
	stderr := newWatchWriter("build 1 started\n")
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan int, 1)
	go func() { done <- RunClient(ctx, PostReceive, e.socket, stdin, stderr, env) }()
	<-stderr.seen
	cancel()
	<-done
	select {
	case err := <-l.finished:
		if !errors.Is(err, errClientGone) {
			t.Errorf("listener context ended with %v, want %v", err, errClientGone)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("listener not cancelled after the client went away")
	}
	if _, ok := e.lastPush("app"); !ok {
		t.Error("push not recorded")
	}
}

// TestShutdownCancelsStragglers: Shutdown waits for running hooks until its
// context ends, then cancels them.
func TestShutdownCancelsStragglers(t *testing.T) {
	t.Parallel()
	l := &blockingListener{proceed: make(chan struct{}), hold: true, finished: make(chan error, 1)}
	close(l.proceed)
	e := newEnv(t, func(o *ServerOptions) { o.Recorder.(*countingRecorder).listeners = []listener{l} })
	repo := e.bareRepo("app")
	stdin, env := postReceiveInput(repo, e.token("app", "alice"))
	stderr := newWatchWriter("build 1 passed\n")
	go RunClient(t.Context(), PostReceive, e.socket, stdin, stderr, env)
	<-stderr.seen

	ctx, cancel := context.WithCancel(t.Context())
	cancel() // no grace at all: the hook is still running
	if err := e.srv.Shutdown(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Shutdown = %v, want context.Canceled", err)
	}
	select {
	case err := <-l.finished:
		if !errors.Is(err, ErrServerClosed) {
			t.Errorf("listener context ended with %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("listener not cancelled by Shutdown")
	}
	if _, err := net.Dial("unix", e.socket); err == nil {
		t.Error("socket still accepts after Shutdown")
	}
}

func TestListen(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "run")
	sock := filepath.Join(dir, "hook.sock")
	ln, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]os.FileMode{dir: 0o700 | os.ModeDir, sock: 0o600 | os.ModeSocket} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("%s has mode %v, want %v", path, fi.Mode(), want)
		}
	}
	if _, err := Listen(sock); err == nil || !strings.Contains(err.Error(), "another Slipway daemon is already listening") {
		t.Errorf("second Listen beside a live one: %v", err)
	}

	// A socket left behind by a daemon that died is replaced.
	stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock + "2", Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	stale.SetUnlinkOnClose(false)
	stale.Close()
	ln2, err := Listen(sock + "2")
	if err != nil {
		t.Errorf("stale socket not replaced: %v", err)
	} else {
		ln2.Close()
	}

	// Something that is not a socket is never removed.
	file := filepath.Join(dir, "notes")
	if err := os.WriteFile(file, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(file); err == nil || !strings.Contains(err.Error(), "is not a socket") {
		t.Errorf("Listen over a file: %v", err)
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "keep" {
		t.Errorf("file touched: %q, %v", b, err)
	}
	if _, err := Listen("/" + strings.Repeat("x", 120)); err == nil || !strings.Contains(err.Error(), "shorter data_dir") {
		t.Errorf("overlong path: %v", err)
	}
	ln.Close()
}

// TestPostReceiveWithStaleTokenStillRecords: git has updated the refs by
// post-receive, so a push whose token the daemon no longer knows is recorded
// all the same, as the unknown user, and the pusher is warned.
func TestPostReceiveWithStaleTokenStillRecords(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	repo := e.bareRepo("app")
	tok, end := e.reg.Begin("app", "alice", e.fps["alice"], nil)
	end()
	stdin, env := postReceiveInput(repo, tok)
	var stderr strings.Builder
	if code := RunClient(t.Context(), PostReceive, e.socket, stdin, &stderr, env); code != 0 {
		t.Errorf("exit %d", code)
	}
	if !strings.Contains(stderr.String(), "slipway: WARNING: this push's token is not known") ||
		!strings.Contains(stderr.String(), "slipway: recorded push #1 (1 ref)") {
		t.Errorf("pusher saw %q", stderr.String())
	}
	if p, ok := e.lastPush("app"); !ok || p.User != UnknownUser || p.KeyFingerprint != "" {
		t.Errorf("recorded %+v (found %v)", p, ok)
	}
}

// TestClientWithoutVerdict: a daemon that hangs up without a verdict
// refuses the push (pre-receive) and warns (post-receive).
func TestClientWithoutVerdict(t *testing.T) {
	t.Parallel()
	sock := filepath.Join(t.TempDir(), "s")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			// Read the request, say something, hang up.
			_, _ = readRequest(c)
			_, _ = io.WriteString(c, `{"out":"thinking...\n"}`+"\n")
			c.Close()
		}
	}()
	stdin := func() io.Reader {
		return strings.NewReader(zero + " " + strings.Repeat("1", 40) + " refs/heads/main\n")
	}
	var stderr strings.Builder
	if code := RunClient(t.Context(), PreReceive, sock, stdin(), &stderr, []string{"GIT_DIR=/r.git"}); code != 1 {
		t.Errorf("pre-receive exit %d, want 1", code)
	}
	if want := "thinking...\nslipway: the Slipway daemon closed the connection without a verdict; push refused\n"; stderr.String() != want {
		t.Errorf("pre-receive said %q, want %q", stderr.String(), want)
	}
	stderr.Reset()
	if code := RunClient(t.Context(), PostReceive, sock, stdin(), &stderr, []string{"GIT_DIR=/r.git"}); code != 0 {
		t.Errorf("post-receive exit %d, want 0", code)
	}
	if !strings.Contains(stderr.String(), "this push may NOT have been recorded") {
		t.Errorf("post-receive said %q", stderr.String())
	}
}
