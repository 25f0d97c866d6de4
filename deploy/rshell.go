package deploy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"slipway/internal/shell"
)

// remoteShell runs Slipway's own short scripts (sealing a release, the
// switch, pruning) through the shell that the master connection already
// holds open on the target, instead of a new ssh client, session and login
// shell for each: that is most of what a short script costs, and the switch
// of many hosts is made of short scripts.
//
// Each script is sent on the master's stdin as one line,
//
//	( eval 'SCRIPT' ) </dev/null; printf '%s %d\n' TOKEN $?; printf '%s\n' TOKEN >&2
//
// so it runs in a subshell (its cd, set -e and exit stay there, a syntax
// error ends only it), cannot read the commands that follow, and is followed
// on stdout by a line with a random token and its exit status and on stderr
// by the token alone: both streams are read up to the script's end, and
// nothing a script prints can pass for the end of another.
//
// A script cut off by its context leaves the shell busy with it: the shell
// is then not used again (usable reports false) and the session runs later
// scripts on sessions of their own.
type remoteShell struct {
	stderr *shellStderr

	mu     sync.Mutex
	in     io.Writer
	cur    *shellRun
	broken bool
	gone   chan struct{} // closed when the master's stdout has ended
}

// shellRun is one script on its way through the shell.
type shellRun struct {
	token   string
	stdout  io.Writer
	errTail tail
	code    int
	outDone chan struct{}
	errDone chan struct{}
	// outEnded is under remoteShell.mu, errEnded under shellStderr.mu:
	// once the token has come, nothing more goes to the script's writer
	// or tail.
	outEnded, errEnded bool
}

// errGrace is how long the stderr token may lag behind the stdout one.
const errGrace = 5 * time.Second

// errShellGone: the master ended while a script was running.
var errShellGone = errors.New("the connection to the target ended")

func newRemoteShell(log io.Writer) *remoteShell {
	sh := &remoteShell{gone: make(chan struct{})}
	sh.stderr = newShellStderr(sh, log)
	return sh
}

// start begins reading the master's stdout (sc, which has read up to the
// ready line, over r) and sending scripts to in.
func (sh *remoteShell) start(in io.Writer, sc *bufio.Scanner, r io.Reader) {
	sh.mu.Lock()
	sh.in = in
	sh.mu.Unlock()
	go func() {
		defer close(sh.gone)
		for sc.Scan() {
			sh.stdoutLine(sc.Text())
		}
		// A line too long for the scanner: nothing of ours can be trusted
		// any more, but the master must never block on a full pipe.
		if sc.Err() != nil {
			sh.mu.Lock()
			sh.broken = true
			sh.mu.Unlock()
			_, _ = io.Copy(io.Discard, r)
		}
	}()
}

// usable says whether scripts can go to the shell: it was started, has
// not been given up on, and the master is still there.
func (sh *remoteShell) usable() bool {
	select {
	case <-sh.gone:
		return false
	default:
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.in != nil && !sh.broken
}

// run sends script to the shell and waits for its end. The error is an
// *ExitError for a non-zero status, errShellGone when the master ended,
// or the context's error when ctx ended first (the shell is then broken).
func (sh *remoteShell) run(ctx context.Context, script string, stdout io.Writer) error {
	if stdout == nil {
		stdout = io.Discard
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	r := &shellRun{
		token:   "slipway-end-" + hex.EncodeToString(b[:]),
		stdout:  stdout,
		outDone: make(chan struct{}),
		errDone: make(chan struct{}),
	}
	line := "( eval " + shell.Quote(script) + " ) </dev/null; " +
		"printf '%s %d\\n' " + r.token + " $?; printf '%s\\n' " + r.token + " >&2\n"

	sh.mu.Lock()
	if sh.broken || sh.in == nil {
		sh.mu.Unlock()
		return errors.New("deploy: the target's shell is not usable")
	}
	sh.cur = r
	in := sh.in
	sh.mu.Unlock()
	if _, err := io.WriteString(in, line); err != nil {
		sh.abandon(r)
		return errShellGone
	}
	select {
	case <-r.outDone:
	case <-sh.gone:
		select {
		case <-r.outDone: // it ended just before the master did
		default:
			sh.abandon(r)
			return errShellGone
		}
	case <-ctx.Done():
		sh.abandon(r)
		return ctx.Err()
	}
	// The token on stderr follows at once; a stream that ends without it
	// leaves the shell in doubt, not the script's status.
	select {
	case <-r.errDone:
	case <-time.After(errGrace):
		sh.abandon(r)
	}
	sh.mu.Lock()
	sh.cur = nil
	sh.mu.Unlock()
	if r.code != 0 {
		return &ExitError{Code: r.code, Stderr: r.errTail.lastLine()}
	}
	return nil
}

// abandon gives up on r: what it still prints is dropped, and the shell,
// which may still be running it, is not used again.
func (sh *remoteShell) abandon(r *shellRun) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.cur == r {
		sh.cur = nil
	}
	sh.broken = true
}

// stdoutLine takes one line of the master's stdout: the running script's
// output, or its end. It holds the lock while writing, so that nothing
// reaches the writer of a script that run has given up on (abandon).
func (sh *remoteShell) stdoutLine(l string) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	r := sh.cur
	if r == nil || r.outEnded {
		return
	}
	if i := strings.LastIndex(l, r.token+" "); i >= 0 {
		if code, err := strconv.Atoi(l[i+len(r.token)+1:]); err == nil {
			if i > 0 {
				// The script's last line had no newline of its own.
				_, _ = io.WriteString(r.stdout, l[:i]+"\n")
			}
			r.code, r.outEnded = code, true
			close(r.outDone)
			return
		}
	}
	_, _ = io.WriteString(r.stdout, l+"\n")
}

// flush writes what is left of an unfinished stderr line (the master has
// exited).
func (sh *remoteShell) flush() { sh.stderr.flush() }

// shellStderr is the master's stderr: ssh's own messages and what the
// scripts run by the shell print there, each line to the deployment log
// (and to the running script's tail), up to the running script's token.
type shellStderr struct {
	sh  *remoteShell
	log io.Writer

	mu  sync.Mutex
	out lines
}

// maxPartial bounds an unfinished stderr line held back while looking for
// a token; a longer one is passed on as it is.
const maxPartial = 4096

func newShellStderr(sh *remoteShell, log io.Writer) *shellStderr {
	e := &shellStderr{sh: sh, log: log}
	e.out = lines{max: maxPartial, emit: func(l []byte) {
		if whole := bytes.HasSuffix(l, []byte("\n")); whole {
			e.line(l[:len(l)-1], true)
		} else {
			e.line(l, false)
		}
	}}
	return e
}

func (e *shellStderr) Write(p []byte) (int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.out.write(p)
	return len(p), nil
}

// line handles one stderr line (without its newline; whole is false for a
// piece of an overlong one).
func (e *shellStderr) line(l []byte, whole bool) {
	e.sh.mu.Lock()
	r := e.sh.cur
	e.sh.mu.Unlock()
	if r != nil && r.errEnded {
		r = nil
	}
	if r != nil && whole && bytes.HasSuffix(l, []byte(r.token)) {
		if rest := l[:len(l)-len(r.token)]; len(rest) > 0 {
			e.pass(r, append(rest[:len(rest):len(rest)], '\n'))
		}
		r.errEnded = true
		close(r.errDone)
		return
	}
	if whole {
		l = append(l[:len(l):len(l)], '\n')
	}
	e.pass(r, l)
}

func (e *shellStderr) pass(r *shellRun, b []byte) {
	_, _ = e.log.Write(b)
	if r != nil {
		_, _ = r.errTail.Write(b)
	}
}

func (e *shellStderr) flush() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.out.flush()
}
