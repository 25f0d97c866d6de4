package hooks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"
	"unicode/utf8"

	"slipway/configs"
	"slipway/internal/termsafe"
	"slipway/record"
)

// Recorder records an accepted push durably, with the work it asks for, in
// one transaction (package push does), and returns its id and its report.
//
// report tells the pusher about the recorded work on out, which reaches the
// pusher as "remote:" lines as it is written, while the push waits for
// report to return. out is safe for concurrent use, fails once the pusher
// has gone and must not be used after report returns. Nothing flows while
// report is silent, so one that waits long should write a line now and then
// to keep the pusher's SSH connection from idling out. report's ctx is
// cancelled when the pusher goes away (or the daemon stops), so work that
// must outlive the push, such as a build, must not be bound to it.
type Recorder interface {
	RecordPush(ctx context.Context, p record.Push) (id int64, report func(ctx context.Context, out io.Writer), err error)
}

// Ledger records ref updates as git's reference-transaction hook reports
// them, keyed by the session of the git process making them: a prepared
// update is written durably (opening the session's push) before git moves
// the ref, a committed one marked made, an aborted one withdrawn.
// OpenPushID returns the id of the session's open push (an error wrapping
// record.ErrNotFound if there is none), which post-receive then records
// with its work.
type Ledger interface {
	PreparePush(ctx context.Context, p record.Push, session string) (int64, error)
	CommitRefs(ctx context.Context, p record.Push, session string) error
	AbortRefs(ctx context.Context, repo, session string, us []record.RefUpdate) error
	OpenPushID(ctx context.Context, repo, session string) (int64, error)
}

// ReleaseGate decides whether commit may be released to environment env of
// repo by user (the rights check has already passed). Its error, one
// sentence, is shown to the pusher after the ref name.
type ReleaseGate interface {
	CheckRelease(ctx context.Context, repo, env, commit, user string) error
}

// Events adds an event to the outbox that no record's change carries.
type Events interface {
	AddEvent(ctx context.Context, e record.Event) (int64, error)
}

// ServerOptions configures a Server. Config, Registry and Recorder are
// required.
type ServerOptions struct {
	Config   configs.Source
	Registry *Registry
	Recorder Recorder
	Logger   *slog.Logger // nil: discard
	// ReposDir is where the bare repositories live; default
	// Config.ReposDir(). A hook may only speak for a repository under it.
	ReposDir string
	// ReleaseGate, if set, is asked about every release ref that passes
	// the rights check in pre-receive.
	ReleaseGate ReleaseGate
	// Ledger, if set, writes every ref update's record before git makes
	// it (reference-transaction), so that no ref moves without one; a
	// push it cannot record is refused. Without it, pushes are recorded
	// in post-receive only, after git moved the refs.
	Ledger Ledger
	// Verifier, if set, builds the pushes that must pass first
	// (`git push -o verify`, verify_branches) in pre-receive, and tells
	// which branches such a push holds. Without it those pushes are
	// refused.
	Verifier Verifier
	// Events, if set, is told of every release push the rights or the
	// release gate refused (a release.refused event for webhooks).
	Events Events
	// ConfigRepo, if set, checks the pushes to the configuration
	// repository as configurations before they land, and applies them
	// after (config_repo = true).
	ConfigRepo ConfigRepo
}

// LocalUser is the user a hook run without a push token acts as: someone
// pushing on the server's own disk.
const LocalUser = "local"

// UnknownUser is the user recorded for a push whose token the daemon did not
// know by post-receive (git has updated the refs by then, so the push is
// recorded all the same).
const UnknownUser = "unknown"

const (
	// requestTimeout bounds reading a request: git has all the data at
	// hand before it starts the hook.
	requestTimeout = time.Minute
	// writeTimeout treats a pusher that reads nothing for this long as gone.
	writeTimeout = 2 * time.Minute
	// recordTimeout bounds recording a push. The record is made even if
	// the pusher goes away meanwhile: git has already updated the refs.
	recordTimeout = 30 * time.Second
)

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("hook server closed")

// errClientGone is the cause of a hook's context when the client hung up.
var errClientGone = errors.New("the pusher went away")

// Server answers the hook client on a Unix socket. It is safe for concurrent
// use; each connection is one hook invocation.
type Server struct {
	o      ServerOptions
	log    *slog.Logger
	base   context.Context
	cancel context.CancelCauseFunc

	mu        sync.Mutex
	closed    bool
	listeners map[net.Listener]struct{}
	conns     map[net.Conn]struct{}
	active    sync.WaitGroup
}

// NewServer returns a server; it panics if a required option is missing,
// which is a wiring mistake.
func NewServer(o ServerOptions) *Server {
	if o.Config == nil || o.Registry == nil || o.Recorder == nil {
		panic("hooks.NewServer: Config, Registry and Recorder are required")
	}
	if o.ReposDir == "" {
		o.ReposDir = o.Config.Current().ReposDir()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	base, cancel := context.WithCancelCause(context.Background())
	return &Server{
		o: o, log: o.Logger, base: base, cancel: cancel,
		listeners: make(map[net.Listener]struct{}),
		conns:     make(map[net.Conn]struct{}),
	}
}

// Listen opens the daemon's Unix socket at path. It creates the socket's
// folder with mode 0700 (and makes an existing one 0700: the folder is the
// daemon's), removes a socket left behind by a daemon that died, refuses to
// start beside a daemon that still answers on it, and leaves the socket
// itself with mode 0600.
func Listen(path string) (net.Listener, error) {
	// sun_path holds 108 bytes including the terminating NUL.
	if len(path) > 107 {
		return nil, fmt.Errorf("hook socket %q is %d bytes long; Unix sockets allow 107, so choose a shorter data_dir", path, len(path))
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create hook socket folder %q: %w", dir, err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("restrict hook socket folder %q: %w", dir, err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("hook socket %q exists and is not a socket; not removing it", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			_ = c.Close()
			return nil, fmt.Errorf("another Slipway daemon is already listening on %q", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove stale hook socket %q: %w", path, err)
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on hook socket %q: %w", path, err)
	}
	// The folder is 0700 already; this keeps the socket private even if
	// someone loosens the folder later.
	if err := os.Chmod(path, 0o600); err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("restrict hook socket %q: %w", path, err)
	}
	return ln, nil
}

// Serve answers hook clients on ln until Shutdown, then returns
// ErrServerClosed; any other error of Accept ends it too.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
	}()

	var backoff time.Duration
	for {
		conn, err := ln.Accept()
		if err != nil {
			if s.isClosed() {
				return ErrServerClosed
			}
			// Out of file descriptors and the like: wait and go on
			// rather than stop answering hooks for good.
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded) || isTemporary(err) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log.Warn("hook socket accept failed; retrying", "err", err, "retry_in", backoff)
				time.Sleep(backoff)
				continue
			}
			return fmt.Errorf("accept hook connection: %w", err)
		}
		backoff = 0
		if !s.track(conn) {
			_ = conn.Close()
			return ErrServerClosed
		}
		go s.serveConn(conn)
	}
}

func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// Shutdown stops accepting hook connections and waits for the running ones
// to end. When ctx ends first it cancels them (their listeners see their
// context cancelled), closes their connections and returns ctx's error.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	var errs []error
	for ln := range s.listeners {
		if err := ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, fmt.Errorf("close hook socket: %w", err))
		}
		delete(s.listeners, ln)
	}
	s.mu.Unlock()

	done := make(chan struct{})
	go func() {
		s.active.Wait()
		close(done)
	}()
	select {
	case <-done:
		s.cancel(ErrServerClosed)
		return errors.Join(errs...)
	case <-ctx.Done():
	}
	s.cancel(ErrServerClosed)
	s.mu.Lock()
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	return errors.Join(append(errs, ctx.Err())...)
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	s.active.Add(1)
	return true
}

func (s *Server) untrack(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.active.Done()
}

// serveConn handles one hook invocation.
func (s *Server) serveConn(conn net.Conn) {
	defer s.untrack(conn)
	defer conn.Close()
	out := &outWriter{conn: conn}
	defer func() {
		// One bad request must not take the daemon down; the push is
		// refused (pre-receive) or warned about (post-receive).
		if v := recover(); v != nil {
			s.log.Error("hook handler panicked", "panic", v)
			_, _ = io.WriteString(out, "slipway: internal error in the Slipway daemon (see its log)\n")
			out.exit(1)
		}
	}()

	start := time.Now()
	_ = conn.SetReadDeadline(start.Add(requestTimeout))
	req, err := readRequest(conn)
	if err != nil {
		s.log.Warn("bad hook request", "err", err)
		if errors.Is(err, errVersion) {
			fmt.Fprintf(out, "slipway: %v; restart the Slipway daemon after upgrading it\n", err)
		} else {
			fmt.Fprintf(out, "slipway: the hook's request was malformed: %v\n", err)
		}
		out.exit(1)
		return
	}
	_ = conn.SetReadDeadline(time.Time{})

	ctx, cancel := context.WithCancelCause(s.base)
	defer cancel(nil)
	go func() {
		// The client sends nothing after its request; end of file (or any
		// error) means it has gone, and so has the pusher.
		var b [64]byte
		for {
			if _, err := conn.Read(b[:]); err != nil {
				cancel(errClientGone)
				return
			}
		}
	}()

	id := s.identify(req)
	if id.Config != nil {
		ctx = configs.WithSnapshot(ctx, id.Config)
	}
	var code int
	switch req.Hook {
	case PreReceive:
		code = s.preReceive(ctx, req, id, out)
	case RefTransaction:
		code = s.refTransaction(ctx, req, id, out)
		out.exit(code)
		// One per ref of a non-atomic push: too many for the info log.
		s.log.Debug("hook", "hook", req.Hook, "state", req.State, "repo", id.Repo, "user", id.User,
			"refs", len(req.Refs), "exit", code, "duration", time.Since(start))
		return
	default:
		code = s.postReceive(ctx, req, id, out)
		// The refs moved, recorded or not: the configuration follows.
		s.applyConfig(ctx, id, req, out)
	}
	out.exit(code)
	s.log.Info("hook", "hook", req.Hook, "repo", id.Repo, "user", id.User,
		"refs", len(req.Refs), "exit", code, "duration", time.Since(start))
}

// outWriter frames what is written into output messages for the client. It
// is shared by the handler and the push listeners.
//
// Everything goes through a termsafe filter first: it reaches the pusher's
// terminal (as git's "remote:" lines), and holds what builds, deployments
// and targets printed, streamed with `-o wait`, `-o verify` and release
// pushes. Slipway's own lines pass unchanged.
type outWriter struct {
	mu     sync.Mutex
	conn   net.Conn
	err    error // sticky: once the client is gone, every write fails
	safe   termsafe.Filter
	render []byte // reused
}

func (w *outWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for n := 0; n < len(p); {
		// Rendering can grow the text up to sixfold; bound each piece.
		k := min(len(p)-n, outChunk)
		w.render = w.safe.Append(w.render[:0], p[n:n+k])
		if err := w.sendOut(w.render); err != nil {
			return n, err
		}
		n += k
	}
	return len(p), nil
}

// sendOut sends b in messages of at most outChunk bytes; the caller holds
// mu.
func (w *outWriter) sendOut(b []byte) error {
	for n := 0; n < len(b); {
		end := min(n+outChunk, len(b))
		// Cut on a rune boundary so that a multi-byte character is
		// not turned into two replacement characters.
		for end < len(b) && end > n+1 && !utf8.RuneStart(b[end]) {
			end--
		}
		if err := w.send(response{Out: string(b[n:end])}); err != nil {
			return err
		}
		n = end
	}
	return nil
}

// exit ends the output (what the filter held, escaped; a colour left on,
// reset) and sends the hook's exit code.
func (w *outWriter) exit(code int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.render = w.safe.End(w.render[:0])
	_ = w.sendOut(w.render)
	_ = w.send(response{Exit: &code})
}

// send writes one message; the caller holds mu.
func (w *outWriter) send(m response) error {
	if w.err != nil {
		return w.err
	}
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	_ = w.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	if _, err := w.conn.Write(append(b, '\n')); err != nil {
		w.err = fmt.Errorf("send to hook client: %w", err)
		return w.err
	}
	return nil
}
