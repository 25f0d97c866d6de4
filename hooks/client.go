package hooks

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"slipway/record"
)

// Environment variables the client reads. git sets GIT_DIR and the push
// options for its hooks; gitserver sets the token for git.
const (
	EnvPushToken  = "SLIPWAY_PUSH_TOKEN"
	envGitDir     = "GIT_DIR"
	envOptCount   = "GIT_PUSH_OPTION_COUNT"
	envOptPrefix  = "GIT_PUSH_OPTION_"
	envQuarantine = "GIT_QUARANTINE_PATH"
)

// RunClient is `slipway hook <name> [args]`: it forwards one hook invocation
// of git to the daemon listening on socket and returns the exit code for
// git. args are git's arguments to the hook: for reference-transaction, the
// transaction's state.
//
// It reads the ref updates from stdin and the token, git dir, push options
// and, for pre-receive, the push's quarantine folder from environ (in
// os.Environ form); relative GIT_DIR and, without GIT_DIR, the working
// directory are made absolute, since git runs hooks inside the repository.
// Every message from the daemon is copied to stderr as it arrives. If the
// daemon cannot be reached or the exchange fails, pre-receive refuses the
// push and a prepared reference transaction refuses the ref update (the
// daemon holds the policy and the record, so no answer means no); the
// other calls only warn and exit 0, since git has moved the refs by then.
//
// Cancelling ctx abandons the exchange; the daemon sees the connection close
// and cancels what it was doing for this push.
func RunClient(ctx context.Context, name, socket string, stdin io.Reader, stderr io.Writer, environ []string, args ...string) int {
	c := client{name: name, socket: socket, stderr: stderr}
	switch name {
	case PreReceive, PostReceive:
	case RefTransaction:
		if len(args) == 0 {
			fmt.Fprintf(stderr, "slipway hook: %s needs the transaction's state\n", name)
			return 2
		}
		c.state = args[0]
	default:
		fmt.Fprintf(stderr, "slipway hook: unknown hook %q (want %s, %s or %s)\n", name, PreReceive, PostReceive, RefTransaction)
		return 2
	}
	req, err := c.collect(stdin, environ)
	if err != nil {
		return c.fail(err, false)
	}
	if c.name == RefTransaction && len(req.Refs) == 0 {
		return 0 // nothing Slipway records (HEAD, symbolic refs, no-ops)
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return c.fail(fmt.Errorf("cannot reach the Slipway daemon at %s: %w", socket, unwrapOp(err)), false)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()

	if err := writeRequest(conn, req); err != nil {
		return c.fail(fmt.Errorf("lost the connection to the Slipway daemon at %s: %w", socket, unwrapOp(err)), false)
	}
	code, err := c.relay(conn)
	if err != nil {
		if ctx.Err() != nil {
			err = context.Cause(ctx)
		}
		return c.fail(err, true)
	}
	return code
}

type client struct {
	name, socket string
	state        string // reference-transaction only
	stderr       io.Writer
}

// collect gathers everything the daemon needs from git.
func (c *client) collect(stdin io.Reader, environ []string) (request, error) {
	env := func(key string) string {
		// The last assignment wins, as in exec.Cmd.
		v := ""
		for _, kv := range environ {
			if k, val, ok := strings.Cut(kv, "="); ok && k == key {
				v = val
			}
		}
		return v
	}
	req := request{Hook: c.name, Token: env(EnvPushToken), State: c.state}
	if req.Token == "" {
		// All hooks of one git process are its children (the hook
		// script execs this program): its pid ties them together.
		req.Session = "pid:" + strconv.Itoa(os.Getppid())
	}

	gitDir := env(envGitDir)
	if gitDir == "" {
		gitDir = "."
	}
	abs, err := filepath.Abs(gitDir)
	if err != nil {
		return request{}, fmt.Errorf("find the repository's directory: %w", err)
	}
	req.GitDir = abs
	if q := env(envQuarantine); q != "" && c.name == PreReceive {
		if req.Quarantine, err = filepath.Abs(q); err != nil {
			return request{}, fmt.Errorf("find the push's quarantine folder: %w", err)
		}
	}

	if s := env(envOptCount); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return request{}, fmt.Errorf("git passed a malformed %s=%q", envOptCount, truncate(s))
		}
		if n > MaxPushOptions {
			return request{}, fmt.Errorf("%d push options (Slipway takes at most %d)", n, MaxPushOptions)
		}
		for i := range n {
			req.Options = append(req.Options, env(envOptPrefix+strconv.Itoa(i)))
		}
	}

	sc := bufio.NewScanner(stdin)
	sc.Buffer(make([]byte, 0, 4096), maxLine)
	for sc.Scan() {
		if len(req.Refs) == MaxRefs {
			return request{}, fmt.Errorf("more than %d ref updates in one push", MaxRefs)
		}
		line := sc.Text()
		if c.name == RefTransaction && !recordable(line) {
			continue
		}
		u, err := parseRefLine(line)
		if err != nil {
			return request{}, fmt.Errorf("read ref updates from git: %w", err)
		}
		req.Refs = append(req.Refs, u)
	}
	if err := sc.Err(); err != nil {
		return request{}, fmt.Errorf("read ref updates from git: %w", err)
	}
	return req, nil
}

// recordable reports whether a line of a reference transaction is an update
// Slipway records: a ref under refs/ moving from one object to another. git
// also reports HEAD and other pseudo-refs, symbolic refs ("ref:<target>",
// git 2.45 on) and updates that change nothing (packing refs).
func recordable(line string) bool {
	old, rest, _ := strings.Cut(line, " ")
	nw, name, _ := strings.Cut(rest, " ")
	return strings.HasPrefix(name, "refs/") && old != nw && record.ValidObjectID(old) && record.ValidObjectID(nw)
}

// relay copies the daemon's messages to stderr and returns its verdict.
func (c *client) relay(conn io.Reader) (int, error) {
	br := bufio.NewReaderSize(conn, maxResponseLine)
	for {
		line, err := readLine(br)
		if errors.Is(err, io.EOF) {
			return 0, errors.New("the Slipway daemon closed the connection without a verdict")
		}
		if err != nil {
			return 0, fmt.Errorf("read the Slipway daemon's answer: %w", unwrapOp(err))
		}
		var m response
		if err := json.Unmarshal(line, &m); err != nil {
			return 0, fmt.Errorf("%w: decode the daemon's answer: %v", ErrProtocol, err)
		}
		if m.Out != "" {
			if _, err := io.WriteString(c.stderr, m.Out); err != nil {
				// Nobody is listening any more; returning closes the
				// connection, which tells the daemon.
				return 1, nil
			}
		}
		if m.Exit != nil {
			return min(max(*m.Exit, 0), 255), nil
		}
	}
}

// fail tells the pusher what went wrong on the client's side and returns the
// exit code: a refusal for pre-receive, a loud warning for post-receive.
// sent says whether the daemon already had the whole request.
func (c *client) fail(err error, sent bool) int {
	switch {
	case c.name == PreReceive:
		fmt.Fprintf(c.stderr, "slipway: %v; push refused\n", err)
		return 1
	case c.name == RefTransaction && c.state == StatePrepared:
		fmt.Fprintf(c.stderr, "slipway: %v; the ref update is refused, nothing changed\n", err)
		return 1
	case c.name == RefTransaction:
		// The daemon finds what git did when it next starts.
		fmt.Fprintf(c.stderr, "slipway: WARNING: %v; Slipway will settle this push's record when it next starts\n", err)
		return 0
	}
	what := "this push was NOT recorded"
	if sent {
		what = "this push may NOT have been recorded"
	}
	fmt.Fprintf(c.stderr, "slipway: WARNING: %v; git updated the refs but %s by Slipway\n", err, what)
	return 0
}

// unwrapOp drops the *net.OpError wrapping ("dial unix /path: connect: ")
// whose details the message already gives.
func unwrapOp(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err
	}
	return err
}
