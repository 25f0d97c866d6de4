package gitserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gliderlabs/ssh"
	gossh "golang.org/x/crypto/ssh"

	"slipway/configs"
)

// PushTokens hands out the token that lets Slipway's hooks know who is
// pushing: git passes it to the hooks in SLIPWAY_PUSH_TOKEN, and the hooks
// present it to the daemon.
type PushTokens interface {
	// Begin registers a receive-pack session and returns the token to hand to
	// its hooks; end must be called when git exits.
	// cfg is the configuration the session started with, for the hooks
	// to decide by.
	Begin(repo, user, keyFingerprint string, cfg *configs.Config) (token string, end func())
}

// Options configure a Server.
type Options struct {
	// Config is required: users, rights and limits, read as each
	// connection and session starts (a reload reaches the next ones);
	// paths and the host key are read once, by New.
	Config configs.Source
	Logger *slog.Logger // nil discards
	// GitPath is the git binary; default: "git" looked up in PATH.
	GitPath string
	// Tokens is required: every receive-pack gets a token for its hooks.
	Tokens PushTokens
	// Commands are extra SSH commands by name, listed in `help`. They may
	// not reuse the name of a built-in command or a git service.
	Commands map[string]Command
	// GitEnv is added to the minimal environment git and its hooks run
	// with ("NAME=value" each); nothing a client sends ever is.
	GitEnv []string
	// Metrics counts connections and git operations; nil counts nothing.
	Metrics Metrics
}

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = ssh.ErrServerClosed

// closeGrace is how long Shutdown lets clients close their connections
// after their last session ended, before closing them: closing at once could
// cut off the exit status on its way.
const closeGrace = time.Second

// Server is the SSH git host. It is safe for concurrent use.
type Server struct {
	cfg      configs.Source
	log      *slog.Logger
	git      string
	tokens   PushTokens
	commands map[string]Command
	gitEnv   []string
	metrics  Metrics

	reposDir     string // absolute
	hooksDir     string // absolute; repositories' core.hooksPath
	pushHooksDir string // absolute; core.hooksPath of pushes
	home         string // empty HOME for git, so no user config applies
	template     string // the config new repositories get (writeTemplate)
	seed         string // the empty repository new ones are copies of (writeSeed)
	path         string // PATH for git: the daemon's

	signer gossh.Signer
	srv    *ssh.Server

	// stop is cancelled when Shutdown's deadline passes; every session's
	// context derives from it, so cancelling it terminates every git.
	stop     context.Context
	stopNow  context.CancelFunc
	sessions tracker

	// startups are the connections not authenticated yet; connLog reports
	// those refused or closed before authentication. closing is set once
	// Shutdown closes connections, whose ends are then no client's failure.
	startups *startups
	connLog  *connLog
	closing  atomic.Bool

	mu      sync.Mutex // guards authed, perUser and conns
	authed  int        // connections holding a session slot (ssh.max_sessions)
	perUser map[string]int
	conns   map[*connState]struct{} // the connections holding a slot
	// authedNow mirrors authed for readers that must not take mu.
	authedNow atomic.Int64

	createMu sync.Mutex // serialises creation of repositories
}

// New builds a server from opts, loading the host key or generating it on
// first start. It does not listen; call Serve.
func New(opts Options) (*Server, error) {
	if opts.Config == nil {
		return nil, errors.New("gitserver: no config")
	}
	if opts.Tokens == nil {
		return nil, errors.New("gitserver: no push token registry")
	}
	cfg := opts.Config.Current()
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	git := opts.GitPath
	if git == "" {
		git = "git"
	}
	git, err := exec.LookPath(git)
	if err != nil {
		return nil, fmt.Errorf("gitserver: find git: %w", err)
	}
	if git, err = filepath.Abs(git); err != nil {
		return nil, fmt.Errorf("gitserver: find git: %w", err)
	}
	for name, c := range opts.Commands {
		if name == "" || strings.ContainsAny(name, " \t'\"\\") || builtin(name) || c.Run == nil {
			return nil, fmt.Errorf("gitserver: invalid extra command %q", name)
		}
	}
	s := &Server{
		cfg:      opts.Config,
		log:      log,
		git:      git,
		tokens:   opts.Tokens,
		commands: opts.Commands,
		gitEnv:   slices.Clone(opts.GitEnv),
		metrics:  opts.Metrics,
		perUser:  map[string]int{},
		conns:    map[*connState]struct{}{},
		path:     os.Getenv("PATH"),
		startups: newStartups(cfg.SSH),
		connLog:  newConnLog(log),
	}
	if s.path == "" {
		s.path = "/usr/local/bin:/usr/bin:/bin"
	}
	if s.metrics == nil {
		s.metrics = noMetrics{}
	}
	s.connLog.count = func(why refusal) { s.metrics.SSHRefused(why.String()) }
	if s.reposDir, err = filepath.Abs(cfg.ReposDir()); err != nil {
		return nil, fmt.Errorf("gitserver: repos dir: %w", err)
	}
	if s.hooksDir, err = filepath.Abs(cfg.HooksDir()); err != nil {
		return nil, fmt.Errorf("gitserver: hooks dir: %w", err)
	}
	if s.pushHooksDir, err = filepath.Abs(cfg.PushHooksDir()); err != nil {
		return nil, fmt.Errorf("gitserver: hooks dir: %w", err)
	}
	if s.home, err = filepath.Abs(filepath.Join(cfg.DataDir, "run", "home")); err != nil {
		return nil, fmt.Errorf("gitserver: home dir: %w", err)
	}
	if err := os.MkdirAll(s.home, 0o700); err != nil {
		return nil, fmt.Errorf("gitserver: create git home: %w", err)
	}
	s.template = filepath.Join(filepath.Dir(s.home), "repo-template")
	if err := writeTemplate(s.template, s.hooksDir); err != nil {
		return nil, fmt.Errorf("gitserver: %w", err)
	}
	s.seed = filepath.Join(filepath.Dir(s.home), "repo-seed.git")
	if err := s.writeSeed(); err != nil {
		return nil, fmt.Errorf("gitserver: %w", err)
	}
	if err := os.MkdirAll(s.reposDir, 0o755); err != nil {
		return nil, fmt.Errorf("gitserver: create repos dir: %w", err)
	}
	if s.signer, err = loadOrCreateHostKey(cfg.SSH.HostKey, log); err != nil {
		return nil, fmt.Errorf("gitserver: %w", err)
	}
	s.stop, s.stopNow = context.WithCancel(context.Background())

	s.srv = &ssh.Server{
		Version:     "Slipway",
		HostSigners: []ssh.Signer{s.signer},
		Handler:     s.handleSession,
		// Offered keys are only checked here; identity is decided in
		// verifiedKey, after the signature, because this handler also runs
		// for keys the client merely asks about.
		PublicKeyHandler:     s.knownKey,
		ServerConfigCallback: s.serverConfig,
		ConnCallback:         s.acceptConn,
		ConnectionFailedCallback: func(c net.Conn, err error) {
			if errors.Is(err, net.ErrClosed) {
				return // closed by the server, which counted why
			}
			s.connLog.detail("ssh connection failed", "remote", c.RemoteAddr().String(), "err", err)
		},
		IdleTimeout: cfg.SSH.IdleTimeout.Duration,
	}
	return s, nil
}

// Serve accepts SSH connections on ln until Shutdown; it then returns
// ErrServerClosed.
func (s *Server) Serve(ln net.Listener) error {
	return s.srv.Serve(ln)
}

// Shutdown stops accepting connections and waits for running sessions (and
// their git processes) to finish; connections left idle are then closed and
// it returns nil. When ctx ends first, it stops every git process (stdin
// closed, then SIGTERM to its process group, then SIGKILL; see stopGently),
// closes all connections, waits for the sessions to end and returns ctx's
// error. New sessions on open connections are refused meanwhile.
func (s *Server) Shutdown(ctx context.Context) error {
	drained := s.sessions.drain()
	// Connections still authenticating would only be refused a session.
	s.closing.Store(true)
	s.startups.dropAll()
	defer s.connLog.flush()
	shut := make(chan error, 1)
	go func() { shut <- s.srv.Shutdown(ctx) }() // closes the listeners at once
	select {
	case <-drained:
		// Connections without a running session (an idle client) must not
		// hold the daemon up.
		select {
		case err := <-shut:
			return err
		case <-time.After(closeGrace):
		case <-ctx.Done():
		}
		s.srv.Close()
		<-shut
		return nil
	case <-ctx.Done():
	}
	s.log.Warn("shutdown deadline passed; stopping running git processes")
	s.stopNow()
	s.srv.Close()
	select {
	case <-drained:
	case <-time.After(eofGrace + termGrace + 2*time.Second):
		s.log.Error("ssh sessions still running after kill")
	}
	<-shut
	return ctx.Err()
}

// HostKeyFingerprint is the SHA256 fingerprint of the host key, as ssh
// prints it on first connection.
func (s *Server) HostKeyFingerprint() string {
	return gossh.FingerprintSHA256(s.signer.PublicKey())
}

// CloseRevoked closes every connection whose key cfg no longer admits
// (its user removed, the key taken from the user or given to another, or
// its options no longer allowing it from where it came), ending its
// sessions: a `log -f` stops, a git command is cut off. It returns how
// many it closed. The daemon calls it once a reload is in force.
func (s *Server) CloseRevoked(cfg *configs.Config) int {
	now := time.Now()
	var revoked []*connState
	s.mu.Lock()
	for cs := range s.conns {
		if u, _, err := cfg.Authorize(cs.key, cs.conn.RemoteAddr(), now); err != nil || u.Name != cs.user {
			revoked = append(revoked, cs)
		}
	}
	s.mu.Unlock()
	for _, cs := range revoked {
		s.log.Info("closing the connection of a key the configuration no longer admits", "user", cs.user,
			"key", gossh.FingerprintSHA256(cs.key), "remote", cs.conn.RemoteAddr().String())
		cs.conn.Close()
	}
	return len(revoked)
}

// Extensions of the connection's ssh.Permissions, set only once a signature
// has been verified.
const (
	extUser        = "slipway-user"
	extFingerprint = "slipway-key-fingerprint"
	extOverLimit   = "slipway-over-limit"
)

type connStateKey struct{}

// connState is what the server knows about one connection before and during
// authentication.
type connState struct {
	startup   *startup
	handshake *time.Timer
	conn      net.Conn
	// user holds a session slot, signed with key; guarded by Server.mu.
	user string
	key  gossh.PublicKey
}

// Reasons in extOverLimit.
const (
	overUserLimit   = "user"
	overServerLimit = "server"
)

// acceptConn admits a new connection as a startup (see startups) and
// starts its handshake timeout, or refuses it.
func (s *Server) acceptConn(ctx ssh.Context, c net.Conn) net.Conn {
	st := s.startups.newStartup(c)
	ok, why, gave := s.startups.admit(st)
	for _, v := range gave {
		s.connLog.note(gaveWay, v.addr)
		v.conn.Close()
	}
	if !ok {
		s.connLog.note(why, st.addr)
		return nil
	}
	s.metrics.SSHConnection("accepted")

	timeout := s.cfg.Current().SSH.HandshakeTimeout.Duration
	if timeout <= 0 {
		timeout = configs.DefaultHandshakeTimeout
	}
	cs := &connState{startup: st, conn: c}
	// A deadline on the conn would not do: gliderlabs moves it forward on
	// every read when an idle timeout is set, so a client trickling bytes
	// could stay in the handshake for ever. The timer runs until the key
	// is verified, so it bounds the banner, the key exchange and every
	// authentication attempt together (sshd's LoginGraceTime).
	cs.handshake = time.AfterFunc(timeout, func() {
		if s.startups.drop(st) {
			s.connLog.note(timedOut, st.addr)
			s.connLog.detail("ssh handshake timed out", "remote", c.RemoteAddr().String(), "timeout", timeout)
			c.Close()
		}
	})
	ctx.SetValue(connStateKey{}, cs)
	return &trackedConn{Conn: c, startup: st, quickAck: quickAcker(c), release: func() {
		cs.handshake.Stop()
		// Still counted: it ended before authenticating, and not because
		// the server closed it.
		if s.startups.drop(st) && !s.closing.Load() {
			s.connLog.note(failed, st.addr)
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if cs.user != "" {
			delete(s.conns, cs)
			s.authed--
			s.authedNow.Store(int64(s.authed))
			if s.perUser[cs.user]--; s.perUser[cs.user] <= 0 {
				delete(s.perUser, cs.user)
			}
		}
	}}
}

// trackedConn releases its connection slot exactly once, when closed, and
// keeps the socket in quick-ack mode (see quickAcker).
type trackedConn struct {
	net.Conn
	startup  *startup
	once     sync.Once
	release  func()
	quickAck func()
}

func (c *trackedConn) Read(p []byte) (int, error) {
	c.quickAck()
	n, err := c.Conn.Read(p)
	if n > 0 && !c.startup.spoke.Load() {
		c.startup.spoke.Store(true)
	}
	return n, err
}

func (c *trackedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// knownKey answers whether a key offered by a client belongs to a user and
// may be used from the client's address now (its from= and expiry-time=
// options). It decides nothing about identity: the client may never sign
// with this key.
func (s *Server) knownKey(ctx ssh.Context, key ssh.PublicKey) (ok bool) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("panic in public key check", "panic", r)
			ok = false
		}
	}()
	_, err := s.authorize(key, ctx.RemoteAddr())
	return err == nil
}

// authorize returns the user of key when the key may be used from remote
// now, and logs why a user's key was refused.
func (s *Server) authorize(key gossh.PublicKey, remote net.Addr) (*configs.User, error) {
	u, _, err := s.cfg.Current().Authorize(key, remote, time.Now())
	if err != nil {
		if !errors.Is(err, configs.ErrUnknownKey) {
			s.log.Info("ssh key refused", "remote", fmt.Sprint(remote), "err", err)
		}
		return nil, err
	}
	return u, nil
}

// serverConfig runs once per connection; its VerifiedPublicKeyCallback is
// called by x/crypto only after the client proved possession of key, and what
// it returns becomes the connection's Permissions.
func (s *Server) serverConfig(ctx ssh.Context) *gossh.ServerConfig {
	return &gossh.ServerConfig{
		VerifiedPublicKeyCallback: func(conn gossh.ConnMetadata, key gossh.PublicKey, _ *gossh.Permissions, _ string) (perms *gossh.Permissions, err error) {
			defer func() {
				if r := recover(); r != nil {
					s.log.Error("panic in verified key callback", "panic", r)
					perms, err = nil, errors.New("internal error")
				}
			}()
			return s.verifiedKey(ctx, conn.RemoteAddr(), key)
		},
	}
}

func (s *Server) verifiedKey(ctx ssh.Context, remote net.Addr, key gossh.PublicKey) (*gossh.Permissions, error) {
	// Checked again: the options must hold for the key that signed.
	u, err := s.authorize(key, remote)
	if err != nil {
		return nil, err
	}
	ext := map[string]string{
		extUser:        u.Name,
		extFingerprint: gossh.FingerprintSHA256(key),
	}
	cs, _ := ctx.Value(connStateKey{}).(*connState)
	if cs != nil {
		limits := s.cfg.Current().SSH
		stage := "authenticated"
		s.mu.Lock()
		switch {
		case limits.MaxSessions > 0 && s.authed >= limits.MaxSessions:
			// Let the connection in so that the user reads why, instead
			// of a bare "connection closed"; its sessions only say so.
			// It stays a startup, so handshake_timeout still ends it.
			ext[extOverLimit], stage = overServerLimit, "over_limit"
		case limits.MaxSessionsPerUser > 0 && s.perUser[u.Name] >= limits.MaxSessionsPerUser:
			ext[extOverLimit], stage = overUserLimit, "over_limit"
		case !s.startups.authenticated(cs.startup):
			// handshake_timeout closed it a moment ago.
			s.mu.Unlock()
			return nil, errors.New("handshake timed out")
		default:
			s.authed++
			s.authedNow.Store(int64(s.authed))
			s.perUser[u.Name]++
			cs.user, cs.key = u.Name, key
			s.conns[cs] = struct{}{}
			cs.handshake.Stop()
		}
		s.mu.Unlock()
		s.metrics.SSHConnection(stage)
	}
	return &gossh.Permissions{Extensions: ext}, nil
}

// callerOf returns the identity established by verifiedKey for the
// connection of ctx; overLimit is overUserLimit or overServerLimit when the
// connection got no session slot.
func callerOf(ctx ssh.Context) (c Caller, overLimit string, ok bool) {
	conn, _ := ctx.Value(ssh.ContextKeyConn).(*gossh.ServerConn)
	if conn == nil || conn.Permissions == nil {
		return Caller{}, "", false
	}
	ext := conn.Permissions.Extensions
	c = Caller{User: ext[extUser], KeyFingerprint: ext[extFingerprint]}
	return c, ext[extOverLimit], c.User != ""
}

// tracker counts running sessions so that Shutdown can wait for them, and
// refuses new ones once draining.
type tracker struct {
	mu       sync.Mutex
	n        int
	draining bool
	zero     chan struct{}
}

func (t *tracker) enter() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.draining {
		return false
	}
	t.n++
	return true
}

func (t *tracker) leave() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.n--
	if t.n == 0 && t.draining {
		close(t.zero)
	}
}

// drain refuses further sessions and returns a channel closed when the last
// running one has left.
func (t *tracker) drain() <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.draining {
		t.draining = true
		t.zero = make(chan struct{})
		if t.n == 0 {
			close(t.zero)
		}
	}
	return t.zero
}
