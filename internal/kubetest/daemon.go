package kubetest

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"time"
)

// daemon is one control-plane process. It runs in its own process group and
// gets SIGKILL when the test process dies (Pdeathsig), so that no etcd or
// API server outlives its test.
type daemon struct {
	name string
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited and its output is in the log
	err  error         // the exit, once done is closed
}

// startDaemon runs path with args, its stdout and stderr appended to
// logPath; each output line is also given to line (when not nil), from one
// goroutine.
func startDaemon(name, logPath, path string, args []string, line func(string)) (*daemon, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open %s log: %w", name, err)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		logFile.Close()
		return nil, fmt.Errorf("pipe for %s output: %w", name, err)
	}
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = pw, pw
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	waited, err := startLocked(cmd)
	if err != nil {
		pr.Close()
		pw.Close()
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	pw.Close()
	d := &daemon{name: name, cmd: cmd, done: make(chan struct{})}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		r := bufio.NewReader(pr)
		for {
			s, err := r.ReadString('\n')
			if s != "" {
				io.WriteString(logFile, s)
				if line != nil {
					line(s)
				}
			}
			if err != nil {
				return
			}
		}
	}()
	go func() {
		err := <-waited
		<-copied
		pr.Close()
		logFile.Close()
		d.err = err
		close(d.done)
	}()
	return d, nil
}

// stop sends SIGTERM to the process group, and SIGKILL after grace. It
// returns once the process has exited.
func (d *daemon) stop(grace time.Duration) {
	select {
	case <-d.done:
		return
	default:
	}
	syscall.Kill(-d.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(grace):
		syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
		<-d.done
	}
	// Children that left the group die with it too.
	syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
}

// startLocked starts cmd from a goroutine locked to its OS thread until cmd
// has been waited for, and returns the channel Wait's result arrives on.
// The kernel sends a child its Pdeathsig when the thread that forked it
// ends, and Go ends a thread when a goroutine locked to it returns, as the
// e2e harness's do each time a daemon of theirs exits: a child started
// from an ordinary goroutine's thread could be killed whenever that thread
// is later locked and let go by someone else (a CI run lost its API server
// so).
func startLocked(cmd *exec.Cmd) (<-chan error, error) {
	started := make(chan error, 1)
	waited := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread goes with the child
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		waited <- cmd.Wait()
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return waited, nil
}
