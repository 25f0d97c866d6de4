package gitserver

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slipway/internal/testutil"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"slipway/configs"
)

func TestConnectionLimits(t *testing.T) {
	t.Parallel()
	ts := startServer(t, serverOpt{sshTOML: "max_sessions = 2\nmax_sessions_per_user = 1"})
	held, err := ts.dial("alice")
	if err != nil {
		t.Fatal(err)
	}
	r := ts.ssh("alice", "", "whoami")
	if r.code != 1 || !strings.Contains(r.stderr, "too many connections for user alice (ssh.max_sessions_per_user is 1)") {
		t.Errorf("second connection of alice: exit %d, stderr %q", r.code, r.stderr)
	}
	// Others are not affected by alice's limit, and her refused
	// connection held no slot: bob takes the last one at once.
	heldBob, err := ts.dial("bob")
	if err != nil {
		t.Fatalf("bob, while alice is at her limit: %v", err)
	}
	// Over max_sessions, carol is let in only to read why.
	r = ts.ssh("carol", "", "whoami")
	if r.code != 1 || !strings.Contains(r.stderr, "the server is at its limit of 2 connections (ssh.max_sessions); try again shortly") {
		t.Errorf("third connection with max_sessions = 2: exit %d, stderr %q", r.code, r.stderr)
	}
	heldBob.Close()
	held.Close()
	// The slots are given back when the connections close.
	testutil.Eventually(t, 20*time.Second, "alice's slot to be released", func() bool {
		return ts.ssh("alice", "", "whoami").code == 0
	})
	testutil.Eventually(t, 20*time.Second, "a free slot for carol", func() bool {
		return ts.ssh("carol", "", "whoami").code == 0
	})
}

func TestHandshakeAndIdleTimeouts(t *testing.T) {
	t.Parallel()
	ts := startServer(t, serverOpt{sshTOML: `handshake_timeout = "300ms"` + "\n" + `idle_timeout = "400ms"`})

	// A client that connects and says nothing is dropped.
	c, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(15 * time.Second))
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("silent client was not disconnected by the handshake timeout: %v", err)
	}
	if !bytes.HasPrefix(got, []byte("SSH-2.0-Slipway")) {
		t.Errorf("server banner %q", got)
	}

	// A client that trickles bytes (one every 100ms, within the idle
	// timeout) is dropped too: the handshake has a deadline of its own.
	c2, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	closed := make(chan struct{})
	go func() {
		io.Copy(io.Discard, c2)
		close(closed)
	}()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(15 * time.Second)
trickle:
	for {
		select {
		case <-closed:
			break trickle
		case <-deadline:
			t.Fatal("trickling client still connected after 15s")
		case <-tick.C:
			c2.Write([]byte("S"))
		}
	}

	// An authenticated connection that stays silent is closed by the idle
	// timeout.
	client, err := ts.dial("bob")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- client.Wait() }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		client.Close()
		t.Fatal("idle connection not closed")
	}
}

func TestHostKeyGeneratedOnceAndNeverReplaced(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	keyPath := filepath.Join(dir, "keys", "host")
	cfg, err := configs.Parse([]byte(`data_dir = "`+filepath.Join(dir, "data")+`"
[ssh]
host_key = "`+keyPath+`"
`), "t.toml")
	if err != nil {
		t.Fatal(err)
	}
	newServer := func() (*Server, error) {
		return New(Options{Config: cfg, Tokens: &mapTokens{}, Logger: slog.New(slog.DiscardHandler)})
	}
	s1, err := newServer()
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(keyPath)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("host key file: %v, mode %v", err, fi.Mode())
	}
	if di, err := os.Stat(filepath.Dir(keyPath)); err != nil || di.Mode().Perm() != 0o700 {
		t.Fatalf("host key dir: %v, mode %v", err, di.Mode())
	}
	pem, _ := os.ReadFile(keyPath)
	if !bytes.HasPrefix(pem, []byte("-----BEGIN OPENSSH PRIVATE KEY-----")) {
		t.Errorf("host key is not in OpenSSH format: %.40q", pem)
	}
	// ssh-keygen reads it and agrees on the fingerprint.
	out := must(t, "", nil, "ssh-keygen", "-l", "-f", keyPath)
	if !strings.Contains(out, s1.HostKeyFingerprint()) || !strings.Contains(out, "ED25519") {
		t.Errorf("ssh-keygen -l: %q, server says %s", out, s1.HostKeyFingerprint())
	}
	s2, err := newServer()
	if err != nil {
		t.Fatal(err)
	}
	if s1.HostKeyFingerprint() != s2.HostKeyFingerprint() {
		t.Fatalf("host key changed between starts")
	}

	// A damaged key is an error, and stays as it is.
	if err := os.WriteFile(keyPath, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := newServer(); err == nil || !strings.Contains(err.Error(), "host key") {
		t.Fatalf("New with a damaged host key: %v", err)
	}
	if b, _ := os.ReadFile(keyPath); string(b) != "garbage" {
		t.Fatalf("damaged host key was replaced")
	}
	// So is an unreadable one (a directory in its place).
	os.Remove(keyPath)
	os.Mkdir(keyPath, 0o700)
	if _, err := newServer(); err == nil {
		t.Fatalf("New with a directory as host key succeeded")
	}
}

// openReceivePack starts, through plain ssh as user, a receive-pack of app
// that advertises its refs and then waits for commands on the returned
// stdin; the client is killed when the test ends.
func (ts *testServer) openReceivePack(t *testing.T, user string) (*exec.Cmd, io.WriteCloser) {
	t.Helper()
	args := append(ts.sshArgs(user), "git@127.0.0.1", "git-receive-pack 'app.git'")
	cmd := exec.Command("ssh", args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd, stdin
}

func TestShutdownWaitsForGitThenKills(t *testing.T) {
	t.Parallel()
	ts, _, _ := startWithApp(t)

	// receive-pack advertises its refs and waits for commands on stdin,
	// which this client keeps open.
	startPush := func() (*exec.Cmd, io.WriteCloser) { return ts.openReceivePack(t, "carol") }
	repo := ts.repoDir("app")
	running := func() int { return gitProcesses(t, "receive-pack", repo) }

	cmd, stdin := startPush()
	testutil.Eventually(t, 20*time.Second, "git receive-pack to start", func() bool { return running() == 1 })
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		shut <- ts.srv.Shutdown(ctx)
	}()
	testutil.Eventually(t, 20*time.Second, "the listener to close", func() bool {
		c, err := net.Dial("tcp", ts.addr)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v while git was running", err)
	default:
	}
	// The client ends the push with nothing to update: receive-pack exits 0.
	if _, err := io.WriteString(stdin, "0000"); err != nil {
		t.Fatal(err)
	}
	stdin.Close()
	if err := <-shut; err != nil {
		t.Fatalf("graceful Shutdown: %v", err)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("client of the session that finished during shutdown did not get exit 0: %v", err)
	}
}

func TestShutdownDeadlineKillsGit(t *testing.T) {
	t.Parallel()
	ts, _, _ := startWithApp(t)
	cmd, stdin := ts.openReceivePack(t, "carol")
	defer stdin.Close()
	repo := ts.repoDir("app")
	testutil.Eventually(t, 20*time.Second, "git receive-pack to start", func() bool { return gitProcesses(t, "receive-pack", repo) == 1 })

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := ts.srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown past its deadline returned %v", err)
	}
	if n := gitProcesses(t, "receive-pack", repo); n != 0 {
		t.Fatalf("%d git processes still running after Shutdown returned", n)
	}
	if err := cmd.Wait(); err == nil {
		t.Errorf("client of a killed session exited 0")
	}
	if err := <-ts.served; !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve: %v", err)
	}
	ts.served <- ErrServerClosed // for the cleanup's check
}

// stallingProxy forwards one TCP connection to target, but stops passing the
// client's bytes on after limit of them, and tells the test so. When the
// client goes away it drops the server side, as the network would.
type stallingProxy struct {
	ln      net.Listener
	stalled chan struct{}
}

func newStallingProxy(t *testing.T, target string, limit int64) *stallingProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &stallingProxy{ln: ln, stalled: make(chan struct{})}
	t.Cleanup(func() { ln.Close() })
	go func() {
		client, err := ln.Accept()
		if err != nil {
			return
		}
		defer client.Close()
		server, err := net.Dial("tcp", target)
		if err != nil {
			return
		}
		defer server.Close()
		go io.Copy(client, server)
		io.CopyN(server, client, limit)
		close(p.stalled)
		io.Copy(io.Discard, client) // until the client dies
	}()
	return p
}

func TestClientDisconnectMidPush(t *testing.T) {
	t.Parallel()
	ts, env, work := startWithApp(t)
	before := must(t, "", env, "git", "--git-dir="+ts.repoDir("app"), "for-each-ref")

	big := make([]byte, 8<<20) // incompressible, so the pack is as big
	rand.Read(big)
	if err := os.WriteFile(filepath.Join(work, "big.bin"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	must(t, work, env, "git", "add", ".")
	must(t, work, env, "git", "commit", "-q", "-m", "big")

	proxy := newStallingProxy(t, ts.addr, 2<<20)
	_, proxyPort, _ := net.SplitHostPort(proxy.ln.Addr().String())
	pidFile := filepath.Join(t.TempDir(), "ssh.pid")
	wrapper := filepath.Join(t.TempDir(), "ssh-wrapper")
	script := "#!/bin/sh\necho $$ > '" + pidFile + "'\nexec ssh \"$@\"\n"
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	args := ts.sshArgs("alice")
	args[len(args)-1] = proxyPort
	pushEnv := append(env[:len(env):len(env)], "GIT_SSH_COMMAND="+wrapper+" "+strings.Join(args, " "))
	push := exec.Command("git", "push", "git@127.0.0.1:app.git", "main")
	push.Dir, push.Env = work, pushEnv
	var pushErr bytes.Buffer
	push.Stderr = &pushErr
	if err := push.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { push.Process.Kill(); push.Wait() }) })

	select {
	case <-proxy.stalled:
	case <-time.After(30 * time.Second):
		t.Fatal("the push never sent 2 MiB")
	}
	testutil.Eventually(t, 20*time.Second, "git receive-pack on the server", func() bool { return gitProcesses(t, "receive-pack", ts.repoDir("app")) > 0 })
	pid, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	var sshPID int
	for _, c := range strings.TrimSpace(string(pid)) {
		sshPID = sshPID*10 + int(c-'0')
	}
	if err := syscall.Kill(sshPID, syscall.SIGKILL); err != nil {
		t.Fatalf("kill ssh %d: %v", sshPID, err)
	}
	var waitErr error
	once.Do(func() { waitErr = push.Wait() })
	if waitErr == nil {
		t.Fatal("push succeeded although its ssh was killed")
	}

	// The server notices, ends git, and the repository is as before.
	testutil.Eventually(t, 20*time.Second, "git on the server to end", func() bool { return gitProcesses(t, "receive-pack", ts.repoDir("app")) == 0 })
	if after := must(t, "", env, "git", "--git-dir="+ts.repoDir("app"), "for-each-ref"); after != before {
		t.Errorf("refs changed by an interrupted push:\n%s\n---\n%s", before, after)
	}
	ts.fsck("app")
	testutil.Eventually(t, 20*time.Second, "the quarantine of the interrupted push to be removed", func() bool {
		m, _ := filepath.Glob(filepath.Join(ts.repoDir("app"), "objects", "tmp_objdir-incoming-*"))
		return len(m) == 0
	})
	if r := ts.ssh("bob", "", "whoami"); r.code != 0 {
		t.Fatalf("daemon not answering after the interrupted push: %d %q", r.code, r.stderr)
	}
	// And a complete push of the same commit works.
	must(t, work, env, "git", "push", "-q", ts.url("app"), "main")
	ts.fsck("app")
}
