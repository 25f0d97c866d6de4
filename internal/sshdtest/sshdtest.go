// Package sshdtest runs a real OpenSSH sshd on a loopback port for tests.
//
// The harness owns the listening socket (127.0.0.1:0, so the kernel picks
// the port and nobody can take it between "pick" and "use") and hands each
// accepted connection to `/usr/sbin/sshd -i`, which serves exactly one
// session on its stdin/stdout the way inetd would. The server is therefore the
// real OpenSSH code path, with its own host key and one authorized deploy key,
// while the test keeps full control of when the host is reachable: Stop closes
// the listener and kills every session (the host "vanishes"), Start listens
// again on the same port.
package sshdtest

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// SSHDPath is where the OpenSSH server is installed on the CI images.
const SSHDPath = "/usr/sbin/sshd"

// Server is one sshd "host" on loopback.
type Server struct {
	Host           string // always 127.0.0.1
	Port           int
	User           string // the user the deploy key logs in as (the test's own user)
	Dir            string // holds keys and config
	KeyFile        string // private deploy key accepted by the server
	KnownHostsFile string // "[127.0.0.1]:PORT ssh-ed25519 ..." for this server's host key
	HostPublicKey  string // "ssh-ed25519 AAAA..." of the server

	t      testing.TB
	config string

	mu       sync.Mutex
	ln       net.Listener
	sessions map[*exec.Cmd]struct{}
	stderr   bytes.Buffer // sshd -e output, shown when the test fails
	wg       sync.WaitGroup
}

// New starts a server and stops it when the test ends. It fails the test
// (never skips) when sshd or ssh-keygen are missing: CI installs them.
func New(t testing.TB) *Server {
	t.Helper()
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Fatalf("create sshd privilege separation dir: %v", err)
	}
	dir := t.TempDir()
	s := &Server{
		Host:     "127.0.0.1",
		Dir:      dir,
		KeyFile:  filepath.Join(dir, "deploy_key"),
		t:        t,
		config:   filepath.Join(dir, "sshd_config"),
		sessions: map[*exec.Cmd]struct{}{},
	}
	u := os.Getenv("USER")
	if out, err := exec.Command("id", "-un").Output(); err == nil {
		u = strings.TrimSpace(string(out))
	}
	s.User = u

	hostKey := filepath.Join(dir, "ssh_host_ed25519_key")
	keygen(t, hostKey, "sshdtest-host")
	keygen(t, s.KeyFile, "sshdtest-deploy")
	pub, err := os.ReadFile(hostKey + ".pub")
	if err != nil {
		t.Fatalf("read host public key: %v", err)
	}
	fields := strings.Fields(string(pub))
	s.HostPublicKey = fields[0] + " " + fields[1]

	cfg := strings.Join([]string{
		"HostKey " + hostKey,
		"AuthorizedKeysFile " + s.KeyFile + ".pub",
		"PubkeyAuthentication yes",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"PermitRootLogin prohibit-password",
		"StrictModes no",
		"UsePAM no",
		"PidFile none",
		"PrintMotd no",
		"LogLevel ERROR",
		"Subsystem sftp internal-sftp",
		// bash, root's login shell here, sources ~/.bashrc for every ssh
		// command when it thinks it is a top-level shell, and this
		// machine's .bashrc runs slow tools (pyenv init): seconds per
		// command under load. A deploy host's shell start-up is not what
		// these tests measure, so make bash a second-level shell.
		"SetEnv SHLVL=1",
		"",
	}, "\n")
	if err := os.WriteFile(s.config, []byte(cfg), 0o600); err != nil {
		t.Fatalf("write sshd config: %v", err)
	}
	// sshd -t checks the config and keys once, so a broken setup fails here
	// with sshd's own words instead of as a refused login later.
	if out, err := exec.Command(SSHDPath, "-t", "-f", s.config).CombinedOutput(); err != nil {
		t.Fatalf("sshd -t: %v\n%s", err, out)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen for sshd: %v", err)
	}
	s.Port = ln.Addr().(*net.TCPAddr).Port
	s.KnownHostsFile = filepath.Join(dir, "known_hosts")
	line := fmt.Sprintf("[%s]:%d %s\n", s.Host, s.Port, s.HostPublicKey)
	if err := os.WriteFile(s.KnownHostsFile, []byte(line), 0o600); err != nil {
		t.Fatalf("write known_hosts: %v", err)
	}
	s.serve(ln)
	t.Cleanup(func() {
		s.Stop()
		s.wg.Wait()
		if t.Failed() {
			s.mu.Lock()
			t.Logf("sshd stderr:\n%s", s.stderr.String())
			s.mu.Unlock()
		}
	})
	return s
}

func keygen(t testing.TB, path, comment string) {
	t.Helper()
	out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", path).CombinedOutput()
	if err != nil {
		t.Fatalf("ssh-keygen %s: %v\n%s", path, err, out)
	}
}

// Addr is "127.0.0.1:PORT".
func (s *Server) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// Stop makes the host vanish: new connections are refused and running
// sessions are killed mid-stream. Safe to call twice.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		s.ln.Close()
		s.ln = nil
	}
	for cmd := range s.sessions {
		_ = cmd.Process.Kill()
	}
}

// Start brings a stopped host back on the same port, so known_hosts and
// targets written earlier stay valid.
func (s *Server) Start() {
	s.t.Helper()
	s.mu.Lock()
	running := s.ln != nil
	s.mu.Unlock()
	if running {
		return
	}
	ln, err := net.Listen("tcp", s.Addr())
	if err != nil {
		s.t.Fatalf("listen again on %s: %v", s.Addr(), err)
	}
	s.serve(ln)
}

// Sessions reports how many sshd processes are running now.
func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

func (s *Server) serve(ln net.Listener) {
	s.mu.Lock()
	s.ln = ln
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return // closed by Stop
			}
			if err := s.session(conn); err != nil {
				s.mu.Lock()
				fmt.Fprintf(&s.stderr, "sshdtest: %v\n", err)
				s.mu.Unlock()
			}
		}
	}()
}

// spawns reaches the one spawner of the test process.
//
// sshd gets SIGKILL when the test process dies (Pdeathsig), so that no
// session outlives a test binary killed by -timeout or a signal. The kernel
// sends that signal when the *thread* that started the child exits, and
// Go's runtime ends a thread when a goroutine locked to it returns. So one
// goroutine, locked to its thread for the life of the process, starts every
// sshd of every Server. A spawner per Server, ending with its test, took
// its thread down with it, and with that thread every child any goroutine
// had started on it before (an ssh client of another test's deployment,
// with Pdeathsig too): parallel tests killed each other's connections.
var spawns = sync.OnceValue(func() chan<- spawn {
	ch := make(chan spawn)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread lives as long as the process
		for sp := range ch {
			sp.started <- sp.cmd.Start()
		}
	}()
	return ch
})

// spawn is one sshd for the spawner to start.
type spawn struct {
	cmd     *exec.Cmd
	started chan error
}

// session execs sshd -i with the accepted socket as its stdin and stdout;
// the spawner starts it.
func (s *Server) session(conn net.Conn) error {
	defer conn.Close()
	f, err := conn.(*net.TCPConn).File() // a dup, in blocking mode, as sshd expects
	if err != nil {
		return fmt.Errorf("socket file: %w", err)
	}
	defer f.Close()
	cmd := exec.Command(SSHDPath, "-i", "-e", "-f", s.config)
	cmd.Stdin = f
	cmd.Stdout = f
	cmd.Stderr = &lockedWriter{mu: &s.mu, w: &s.stderr}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	started := make(chan error, 1)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.mu.Lock()
		if s.ln == nil {
			s.mu.Unlock()
			started <- errors.New("stopped before session start")
			return
		}
		sp := spawn{cmd: cmd, started: make(chan error, 1)}
		spawns() <- sp
		if err := <-sp.started; err != nil {
			s.mu.Unlock()
			started <- fmt.Errorf("start sshd -i: %w", err)
			return
		}
		s.sessions[cmd] = struct{}{}
		s.mu.Unlock()
		started <- nil
		_ = cmd.Wait()
		s.mu.Lock()
		delete(s.sessions, cmd)
		s.mu.Unlock()
	}()
	return <-started
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
