package gitserver

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"
	"slipway/internal/testutil"

	"slipway/configs"
)

// mapTokens is a PushTokens backed by a map, as the hooks registry would be.
type mapTokens struct {
	mu     sync.Mutex
	live   map[string]string // token -> "repo user fingerprint"
	begun  int
	ended  int
	tokens []string
}

func (m *mapTokens) Begin(repo, user, fp string, _ *configs.Config) (string, func()) {
	b := make([]byte, 32)
	rand.Read(b)
	tok := hex.EncodeToString(b)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.live == nil {
		m.live = map[string]string{}
	}
	m.live[tok] = repo + " " + user + " " + fp
	m.begun++
	m.tokens = append(m.tokens, tok)
	var once sync.Once
	return tok, func() {
		once.Do(func() {
			m.mu.Lock()
			defer m.mu.Unlock()
			delete(m.live, tok)
			m.ended++
		})
	}
}

func (m *mapTokens) counts() (begun, ended int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.begun, m.ended
}

type key struct {
	path string // private key file
	pub  string // authorized_keys line
}

func keygen(t testing.TB, dir, name string) key {
	t.Helper()
	p := filepath.Join(dir, name)
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", p).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
	pub, err := os.ReadFile(p + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	return key{path: p, pub: strings.TrimSpace(string(pub))}
}

func (k key) signer(t testing.TB) gossh.Signer {
	t.Helper()
	b, err := os.ReadFile(k.path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := gossh.ParsePrivateKey(b)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// testServer is a Slipway SSH server running in-process on 127.0.0.1:0 with
// three users: alice (admin), bob and carol. Repo "app" is readable by all
// and writable by carol; "secret" is readable by carol only.
type testServer struct {
	t       testing.TB
	srv     *Server
	cfg     *configs.Config
	text    string // cfg's TOML
	addr    string
	port    string
	dataDir string
	keys    map[string]key
	tokens  *mapTokens
	log     *testutil.Buffer
	served  chan error
}

type serverOpt struct {
	sshTOML    string            // extra keys in [ssh]
	keyOptions map[string]string // authorized_keys options in front of a user's key
	commands   map[string]Command
	metrics    Metrics
	setup      func(*Server) // runs after New, before Serve
}

func startServer(t testing.TB, o serverOpt) *testServer {
	t.Helper()
	dir := t.TempDir()
	ts := &testServer{t: t, dataDir: filepath.Join(dir, "data"), keys: map[string]key{}, tokens: &mapTokens{}, log: &testutil.Buffer{}}
	keyDir := filepath.Join(dir, "keys")
	if err := os.Mkdir(keyDir, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"alice", "bob", "carol"} {
		ts.keys[u] = keygen(t, keyDir, u)
	}
	toml := fmt.Sprintf(`data_dir = %q
[ssh]
listen = "127.0.0.1:0"
%s
[[user]]
name = "alice"
keys = [%q]
admin = true
[[user]]
name = "bob"
keys = [%q]
[[user]]
name = "carol"
keys = [%q]
[[repo]]
name = "app"
read = ["*"]
write = ["carol"]
[[repo]]
name = "secret"
read = ["carol"]
`, ts.dataDir, o.sshTOML, withOptions(o.keyOptions["alice"], ts.keys["alice"].pub),
		withOptions(o.keyOptions["bob"], ts.keys["bob"].pub), withOptions(o.keyOptions["carol"], ts.keys["carol"].pub))
	cfg, err := configs.Parse([]byte(toml), "test.toml")
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	ts.cfg, ts.text = cfg, toml
	// An empty hooks dir: the hooks themselves are the hooks package's.
	if err := os.MkdirAll(cfg.HooksDir(), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server log:\n%s", ts.log.String())
		}
	})
	ts.srv, err = New(Options{
		Config:   cfg,
		Logger:   slog.New(slog.NewTextHandler(ts.log, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Tokens:   ts.tokens,
		Commands: o.commands,
		Metrics:  o.metrics,
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if o.setup != nil {
		o.setup(ts.srv)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts.addr = ln.Addr().String()
	_, ts.port, _ = net.SplitHostPort(ts.addr)
	ts.served = make(chan error, 1)
	go func() { ts.served <- ts.srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if err := ts.srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-ts.served; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return ts
}

func withOptions(options, pub string) string {
	if options == "" {
		return pub
	}
	return options + " " + pub
}

func (ts *testServer) url(repo string) string {
	return "ssh://git@" + ts.addr + "/" + repo
}

// sshArgs are the options of every ssh client run in these tests.
func (ts *testServer) sshArgs(user string) []string {
	return []string{
		"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
		"-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR",
		"-i", ts.keys[user].path, "-p", ts.port,
	}
}

// startWithApp starts a server and pushes a work tree of alice's, one
// commit on main, to app; it returns the server, alice's git environment
// and the work tree.
func startWithApp(t *testing.T) (ts *testServer, env []string, work string) {
	t.Helper()
	ts = startServer(t, serverOpt{})
	env = ts.gitEnv("alice")
	work = newWork(t, env, "one")
	must(t, work, env, "git", "push", "-q", ts.url("app"), "main")
	return ts, env, work
}

// gitEnv is a clean environment for a git client acting as user.
func (ts *testServer) gitEnv(user string) []string {
	home := filepath.Join(ts.t.TempDir())
	return []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + home,
		"LANG=C",
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_AUTHOR_NAME=" + user, "GIT_AUTHOR_EMAIL=" + user + "@example.com",
		"GIT_COMMITTER_NAME=" + user, "GIT_COMMITTER_EMAIL=" + user + "@example.com",
		"GIT_SSH_COMMAND=ssh " + strings.Join(ts.sshArgs(user), " "),
	}
}

type result struct {
	stdout, stderr string
	code           int
}

func run(t testing.TB, dir string, env []string, stdin string, name string, args ...string) result {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("%s %q: %v", name, args, err)
		}
		code = ee.ExitCode()
	}
	return result{stdout.String(), stderr.String(), code}
}

// must runs a command that has to succeed and returns its trimmed stdout.
func must(t testing.TB, dir string, env []string, name string, args ...string) string {
	t.Helper()
	r := run(t, dir, env, "", name, args...)
	if r.code != 0 {
		t.Fatalf("%s %q in %s: exit %d\nstdout: %s\nstderr: %s", name, args, dir, r.code, r.stdout, r.stderr)
	}
	return strings.TrimSpace(r.stdout)
}

// ssh runs a command on the server as user.
func (ts *testServer) ssh(user, stdin string, command ...string) result {
	ts.t.Helper()
	args := append(ts.sshArgs(user), "git@127.0.0.1")
	args = append(args, command...)
	return run(ts.t, "", []string{"PATH=" + os.Getenv("PATH"), "HOME=" + ts.t.TempDir()}, stdin, "ssh", args...)
}

// newWork makes a local repository with one commit per message.
func newWork(t testing.TB, env []string, msgs ...string) string {
	t.Helper()
	dir := t.TempDir()
	must(t, dir, env, "git", "init", "-q", "-b", "main")
	for i, m := range msgs {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%d.txt", i)), []byte(m+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		must(t, dir, env, "git", "add", ".")
		must(t, dir, env, "git", "commit", "-q", "-m", m)
	}
	return dir
}

func commit(t testing.TB, dir string, env []string, file, content string) string {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, file), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	must(t, dir, env, "git", "add", ".")
	must(t, dir, env, "git", "commit", "-q", "-m", "change "+file)
	return must(t, dir, env, "git", "rev-parse", "HEAD")
}

// repoDir is the bare repository of name on the server.
func (ts *testServer) repoDir(name string) string {
	return filepath.Join(ts.cfg.ReposDir(), name+".git")
}

// serverRef returns the id a ref has in the server's repository, or "".
func (ts *testServer) serverRef(name, ref string) string {
	ts.t.Helper()
	r := run(ts.t, "", ts.gitEnv("alice"), "", "git", "--git-dir="+ts.repoDir(name), "rev-parse", "--verify", "-q", ref)
	return strings.TrimSpace(r.stdout)
}

func (ts *testServer) fsck(name string) {
	ts.t.Helper()
	must(ts.t, "", ts.gitEnv("alice"), "git", "--git-dir="+ts.repoDir(name), "fsck", "--strict", "--no-dangling")
}

// gitProcesses counts running processes whose command line contains all of
// the given strings.
func gitProcesses(t testing.TB, parts ...string) int {
	return len(testutil.ProcessesWith(parts...))
}

// dial opens an authenticated x/crypto connection as user.
func (ts *testServer) dial(user string) (*gossh.Client, error) {
	return gossh.Dial("tcp", ts.addr, &gossh.ClientConfig{
		User:            "git",
		Auth:            []gossh.AuthMethod{gossh.PublicKeys(ts.keys[user].signer(ts.t))},
		HostKeyCallback: gossh.FixedHostKey(ts.srv.HostPublicKey()),
		Timeout:         10 * time.Second,
	})
}
