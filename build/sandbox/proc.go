package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"syscall"
	"time"
)

// prlimitPath is util-linux's prlimit, at the same path on the host and in
// the sandbox (which sees the host's /usr read-only).
const prlimitPath = "/usr/bin/prlimit"

// waitDelay bounds how long Run waits for output pipes to close once the
// step's main process is gone; every other process is dead by then, so this
// only guards against a stuck writer.
const waitDelay = 5 * time.Second

// rlimitArgs returns the prlimit(1) command that sets l and execs the rest
// of the argument list, or nil when no rlimit is asked for. Soft and hard
// limits are set alike so the step cannot raise them again.
func rlimitArgs(l Limits, procs bool) []string {
	var args []string
	if procs && l.Procs > 0 {
		args = append(args, "--nproc="+strconv.Itoa(l.Procs))
	}
	if l.FileSize > 0 {
		args = append(args, "--fsize="+strconv.FormatInt(l.FileSize, 10))
	}
	if l.Files > 0 {
		args = append(args, "--nofile="+strconv.Itoa(l.Files))
	}
	if args == nil {
		return nil
	}
	return append(append([]string{prlimitPath}, args...), "--")
}

// supervise waits for cmd, started in its own process group, killing the
// group (and calling kill, if not nil) when the timeout expires or ctx ends.
// It returns after cmd.Wait has returned.
func supervise(ctx context.Context, cmd *exec.Cmd, timeout time.Duration, kill func()) (res Result, waitErr error) {
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var expired <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		expired = t.C
	}
	killAll := func() {
		// The group id is the pid: Setpgid with Pgid 0.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		if kill != nil {
			kill()
		}
	}
	select {
	case waitErr = <-done:
	case <-expired:
		res.TimedOut = true
		killAll()
		waitErr = <-done
	case <-ctx.Done():
		res.Cancelled = true
		killAll()
		waitErr = <-done
	}
	res.ExitCode = cmd.ProcessState.ExitCode()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		// Killed by a signal of its own: report it the way shells do.
		res.ExitCode = 128 + int(ws.Signal())
	}
	if res.TimedOut || res.Cancelled {
		res.ExitCode = -1
	}
	var exitErr *exec.ExitError
	if errors.As(waitErr, &exitErr) {
		waitErr = nil // the step's own failure, told by ExitCode
	}
	if errors.Is(waitErr, exec.ErrWaitDelay) {
		waitErr = nil
	}
	if waitErr != nil {
		waitErr = fmt.Errorf("wait for step: %w", waitErr)
	}
	return res, waitErr
}
