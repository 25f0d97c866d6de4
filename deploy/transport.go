package deploy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slipway/internal/shell"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// session is an open line to one target. The contract:
//   - run executes one of Slipway's own short POSIX sh scripts on the
//     target (sealing, the switch, pruning); stdout goes to the given
//     writer, stderr to the deployment log.
//   - command executes a script that runs the user's commands (activate,
//     health): like run, but on a line of its own, so that cutting it off
//     (its context ends) leaves the session usable for what comes next.
//   - run and command are not safe for concurrent use.
//   - rsync copies a local folder into a folder on the target; what rsync
//     prints on stdout goes to the given writer (the deployment log when
//     that is nil), its errors to the deployment log.
//   - close must be called once, also after a failed run; it releases the
//     connection and never touches the target.
type session interface {
	run(ctx context.Context, script string, stdout io.Writer) error
	command(ctx context.Context, script string, stdout io.Writer) error
	rsync(ctx context.Context, args []string, src, dst string, stdout io.Writer) error
	close() error
}

// readyLine ends the state report that opens every session. Over ssh it also
// tells us the multiplexing master is up (the control socket is created
// before the first session channel is opened).
const readyLine = "slipway-ready"

// open starts a session and runs the opening script, whose stdout (up to
// readyLine) is returned.
func (s *Shipper) open(ctx context.Context, t Target, log io.Writer, script string) (session, []byte, error) {
	if t.IsLocal() {
		l := &localSession{s: s, log: log}
		var out bytes.Buffer
		if err := l.run(ctx, "set -e\n"+script+"\necho "+readyLine+"\n", &out); err != nil {
			return nil, nil, fmt.Errorf("inspect %s: %w", t.Local, err)
		}
		return l, out.Bytes(), nil
	}
	return s.openSSH(ctx, t, log, script)
}

// childEnv is the whole environment of ssh, rsync and local scripts: an
// allow-list, so nothing of the daemon's (tokens, keys) leaks to a target.
// LC_ALL=C keeps ssh's messages in the words errors are classified by.
func childEnv() []string {
	env := []string{"LC_ALL=C"}
	for _, k := range []string{"PATH", "HOME", "USER", "LOGNAME", "TMPDIR"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	if _, ok := os.LookupEnv("PATH"); !ok {
		env = append(env, "PATH=/usr/local/bin:/usr/bin:/bin")
	}
	return env
}

// command builds a child in its own process group, so that cancelling kills
// rsync's helpers and an activate's children too, not just the direct child.
func command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = childEnv()
	// Pdeathsig: if the daemon is killed mid-transfer, an orphaned rsync or
	// ssh master must not keep writing into the partial release that the
	// restarted daemon's retry resumes into.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error {
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	}
	// A grandchild holding a pipe must not hang the deployment forever.
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// exitCode returns the exit status of a finished command, or -1.
func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// tail keeps the last bytes written, for error messages.
type tail struct{ buf []byte }

func (t *tail) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if len(t.buf) > 4096 {
		t.buf = t.buf[len(t.buf)-4096:]
	}
	return len(p), nil
}

// lastLine is the last non-empty line, trimmed.
func (t *tail) lastLine() string {
	lines := strings.Split(strings.TrimSpace(string(t.buf)), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); l != "" {
			return l
		}
	}
	return ""
}

// ExitError is a script or command on the target that exited non-zero.
type ExitError struct {
	Code   int
	Stderr string // last line of its error output
}

func (e *ExitError) Error() string {
	if e.Stderr != "" {
		return fmt.Sprintf("exit %d: %s", e.Code, e.Stderr)
	}
	return fmt.Sprintf("exit %d", e.Code)
}

type localSession struct {
	s   *Shipper
	log io.Writer
}

// readScript is the command line of every script Slipway runs on a line of
// its own: the script itself travels on standard input, read whole before
// it runs (its commands then find end-of-file there), so that nothing of it
// (the secrets an activate is given) is on a command line, where any user
// of the machine could read it, here or on the target.
const readScript = `sh -c 'script=$(cat) && eval "$script"'`

func (l *localSession) run(ctx context.Context, script string, stdout io.Writer) error {
	var errTail tail
	cmd := command(ctx, "sh", "-c", `script=$(cat) && eval "$script"`)
	cmd.Stdin = strings.NewReader(script)
	cmd.Stdout = stdout
	cmd.Stderr = io.MultiWriter(l.log, &errTail)
	err := cmd.Run()
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%w: %w", ErrInterrupted, context.Cause(ctx))
	}
	if code := exitCode(err); code >= 0 {
		return &ExitError{Code: code, Stderr: errTail.lastLine()}
	}
	return fmt.Errorf("run sh: %w", err)
}

func (l *localSession) command(ctx context.Context, script string, stdout io.Writer) error {
	return l.run(ctx, script, stdout)
}

func (l *localSession) rsync(ctx context.Context, args []string, src, dst string, stdout io.Writer) error {
	return l.s.runRsync(ctx, l.log, stdout, append(args, src, dst))
}

func (l *localSession) close() error { return nil }

// sshSession multiplexes every command of a deployment over one SSH
// connection (ControlMaster), so a deployment pays for one key exchange and
// login however many steps it has.
type sshSession struct {
	s       *Shipper
	t       Target
	log     io.Writer
	ctlDir  string
	ctlPath string
	master  *exec.Cmd
	stdin   io.WriteCloser
	errTail *syncTail
	stopCtx func() bool
	sh      *remoteShell // the master's own shell, for run
}

// sshOptions are the options every ssh invocation gets, master or not.
func (s *Shipper) sshOptions(t Target) []string {
	strict := "yes"
	if t.AcceptNewHostKey {
		strict = "accept-new"
	}
	// -F none: the daemon user's ~/.ssh/config must not silently change
	// where or how deployments connect; everything comes from Slipway's
	// config.
	opts := []string{"-F", "none"}
	if t.KeyFile != "" {
		opts = append(opts, "-i", t.KeyFile)
	}
	opts = append(opts,
		"-o", "IdentitiesOnly=yes",
		"-o", "BatchMode=yes",
		"-o", "StrictHostKeyChecking="+strict,
		"-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "ConnectTimeout="+strconv.Itoa(seconds(s.connectTimeout())),
		"-o", "ServerAliveInterval="+strconv.Itoa(seconds(s.aliveInterval())),
		"-o", "ServerAliveCountMax=3",
		"-o", "LogLevel=ERROR",
		"-p", strconv.Itoa(t.port()),
	)
	if t.KnownHostsFile != "" {
		opts = append(opts, "-o", "UserKnownHostsFile="+t.KnownHostsFile)
	}
	if t.User != "" {
		opts = append(opts, "-l", t.User)
	}
	return opts
}

func seconds(d time.Duration) int {
	if n := int((d + time.Second - 1) / time.Second); n > 0 {
		return n
	}
	return 1
}

// clientOptions are for the commands that ride on the master.
func (ss *sshSession) clientOptions() []string {
	return append(ss.s.sshOptions(ss.t), "-S", ss.ctlPath, "-o", "ControlMaster=no")
}

func (s *Shipper) openSSH(ctx context.Context, t Target, log io.Writer, script string) (session, []byte, error) {
	// Unix socket paths are short (108 bytes): keep the control socket in
	// its own small temp folder rather than under the data dir.
	dir, err := os.MkdirTemp("", "slipway-ssh-")
	if err != nil {
		return nil, nil, fmt.Errorf("create ssh control folder: %w", err)
	}
	ss := &sshSession{s: s, t: t, log: log, ctlDir: dir, ctlPath: filepath.Join(dir, "c"), errTail: &syncTail{}}
	// The master's own command reports the target's state, then becomes a
	// shell reading scripts from its stdin (see remoteShell): closing stdin
	// is how we end the connection.
	remote := "sh -c " + shell.Quote("set -e\n"+script+"\necho "+readyLine+"\n") + " </dev/null && exec sh"
	args := append(s.sshOptions(t), "-M", "-S", ss.ctlPath, "-o", "ControlPersist=no", t.Host, "sh -c "+shell.Quote(remote))
	cmd := command(context.WithoutCancel(ctx), s.sshPath(), args...)
	ss.sh = newRemoteShell(io.MultiWriter(log, ss.errTail))
	cmd.Stderr = ss.sh.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, fmt.Errorf("ssh stdout: %w", err)
	}
	if ss.stdin, err = cmd.StdinPipe(); err != nil {
		os.RemoveAll(dir)
		return nil, nil, fmt.Errorf("ssh stdin: %w", err)
	}
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, nil, fmt.Errorf("start ssh: %w", err)
	}
	ss.master = cmd
	// The master outlives single steps but not the deployment's context.
	stop := context.AfterFunc(ctx, func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) })

	var out bytes.Buffer
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	ready := false
	for sc.Scan() {
		if sc.Text() == readyLine {
			ready = true
			break
		}
		out.Write(sc.Bytes())
		out.WriteByte('\n')
	}
	if !ready {
		stop()
		werr := cmd.Wait()
		os.RemoveAll(dir)
		if ctx.Err() != nil {
			return nil, nil, fmt.Errorf("%w: %w", ErrInterrupted, context.Cause(ctx))
		}
		if code := exitCode(werr); code != 255 && code > 0 {
			return nil, nil, fmt.Errorf("inspect %s: %w", t, &ExitError{Code: code, Stderr: ss.errTail.lastLine()})
		}
		return nil, nil, classifySSH(t, ss.errTail.lastLine(), werr)
	}
	// From here on the master's stdout carries what the scripts given to
	// its shell print; it is always read, so the master never blocks.
	ss.sh.start(ss.stdin, sc, stdout)
	ss.stopCtx = stop
	return ss, out.Bytes(), nil
}

// run sends the script to the master's shell; once that shell cannot be
// trusted (a script there was cut off) or the master has ended (the
// deployment's context ended; undoing a switch goes on without it), on a
// session of its own, which connects anew when the master is gone.
func (ss *sshSession) run(ctx context.Context, script string, stdout io.Writer) error {
	if !ss.sh.usable() {
		return ss.command(ctx, script, stdout)
	}
	err := ss.sh.run(ctx, script, stdout)
	if errors.Is(err, errShellGone) {
		return classifySSH(ss.t, ss.errTail.lastLine(), err)
	}
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("%w: %w", ErrInterrupted, context.Cause(ctx))
	}
	return err
}

func (ss *sshSession) command(ctx context.Context, script string, stdout io.Writer) error {
	var errTail tail
	args := append(ss.clientOptions(), ss.t.Host, readScript)
	cmd := command(ctx, ss.s.sshPath(), args...)
	cmd.Stdin = strings.NewReader(script)
	cmd.Stdout = stdout
	cmd.Stderr = io.MultiWriter(ss.log, &errTail)
	err := cmd.Run()
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%w: %w", ErrInterrupted, context.Cause(ctx))
	}
	code := exitCode(err)
	if code == 255 {
		// ssh's own failure (the connection), not the script's.
		return classifySSH(ss.t, errTail.lastLine(), err)
	}
	if code >= 0 {
		return &ExitError{Code: code, Stderr: errTail.lastLine()}
	}
	return fmt.Errorf("run ssh: %w", err)
}

func (ss *sshSession) rsync(ctx context.Context, args []string, src, dst string, stdout io.Writer) error {
	rsh := make([]string, 0, 40)
	for _, a := range append([]string{ss.s.sshPath()}, ss.clientOptions()...) {
		rsh = append(rsh, shell.Quote(a))
	}
	full := append(append([]string{}, args...), "-e", strings.Join(rsh, " "), src, ss.t.Host+":"+dst)
	return ss.s.runRsync(ctx, ss.log, stdout, full)
}

// closeGrace is how long close waits for the master to end by itself: it
// ends once its own command has read its closed stdin and every session
// riding on it has ended. A command Slipway gave up on (a health check cut
// off here, on a host without timeout(1)) may still run there: the master
// is then ended, which ends the connection and with it that command's
// session.
const closeGrace = 5 * time.Second

func (ss *sshSession) close() error {
	defer os.RemoveAll(ss.ctlDir)
	_ = ss.stdin.Close()
	done := make(chan error, 1)
	go func() { done <- ss.master.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(closeGrace):
		_ = syscall.Kill(-ss.master.Process.Pid, syscall.SIGTERM)
		err = <-done
	}
	ss.sh.flush()
	if ss.stopCtx != nil {
		ss.stopCtx()
	}
	if err != nil && exitCode(err) != 0 {
		// The deployment's outcome is already decided; a master that did not
		// exit cleanly only matters for the log.
		return fmt.Errorf("close ssh connection to %s: %w", ss.t, err)
	}
	return nil
}

// syncTail is a tail shared with exec's stderr copying goroutine.
type syncTail struct {
	mu sync.Mutex
	t  tail
}

func (s *syncTail) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.t.Write(p)
}

func (s *syncTail) lastLine() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.t.lastLine()
}

// classifySSH turns ssh's last words into one clear sentence with a
// sentinel callers can branch on.
func classifySSH(t Target, msg string, err error) error {
	switch {
	case strings.Contains(msg, "Host key verification failed"),
		strings.Contains(msg, "REMOTE HOST IDENTIFICATION HAS CHANGED"),
		strings.Contains(msg, "No ED25519 host key is known"),
		strings.Contains(msg, "host key is known"):
		return fmt.Errorf("%w for %s", ErrHostKey, t.addr())
	case strings.Contains(msg, "Permission denied"):
		return fmt.Errorf("%w: %s", ErrAuth, msg)
	case msg != "":
		return fmt.Errorf("%w: %s", ErrUnreachable, msg)
	default:
		return fmt.Errorf("%w: ssh to %s: %w", ErrUnreachable, t.addr(), err)
	}
}

func (s *Shipper) runRsync(ctx context.Context, log, stdout io.Writer, args []string) error {
	var errTail tail
	cmd := command(ctx, s.rsyncPath(), args...)
	cmd.Stdout = stdout
	if stdout == nil {
		cmd.Stdout = log
	}
	cmd.Stderr = io.MultiWriter(log, &errTail)
	err := cmd.Run()
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%w: %w", ErrInterrupted, context.Cause(ctx))
	}
	code := exitCode(err)
	last := errTail.lastLine()
	switch code {
	case 20:
		return fmt.Errorf("%w: rsync was stopped by a signal", ErrInterrupted)
	case 10, 12, 30, 35, 255:
		// Socket I/O, protocol stream, timeouts and ssh's own exit: the
		// connection went away under the transfer.
		return fmt.Errorf("%w: connection to the target was lost (rsync exit %d: %s)", ErrInterrupted, code, last)
	case -1:
		return fmt.Errorf("%w: %w", ErrTransfer, err)
	}
	return fmt.Errorf("%w with exit %d: %s", ErrTransfer, code, last)
}
