package sandbox

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"slipway/build/executor"
)

// None runs steps as plain processes of the daemon's user, for servers whose
// config explicitly says sandbox = "none". It still clears the environment,
// runs in the workspace, applies the file size and open file limits, and
// kills the step's process group on timeout, on cancel and when the step
// ends. It gives no isolation: the step sees the whole host, the data dir
// included, and a process that leaves the group (setsid) survives.
//
// Its Layout names the host folders themselves, and nothing in the host's
// shared /tmp: the step's Tmp is Spec.Home/.tmp, made empty by Run at the
// start of every step and removed at its end, so what one build leaves in
// its temporary folder cannot be read or planted by another.
type None struct{}

var _ Runner = None{}

// noneTmp is the step's temporary folder under Spec.Home.
const noneTmp = ".tmp"

// Layout returns the host folders of spec. See Runner.
func (None) Layout(spec Spec) Layout {
	l := Layout{Workspace: spec.Workspace, Cache: spec.Cache, Home: spec.Home}
	if spec.Home != "" {
		l.Tmp = filepath.Join(spec.Home, noneTmp)
	}
	return l
}

// Unenforced lists what None cannot hold. See Runner.
func (None) Unenforced(spec Spec) []string {
	var u []string
	if spec.Limits.Procs > 0 {
		u = append(u, executor.LimitProcesses+": no sandbox, RLIMIT_NPROC would count the daemon's own processes")
	}
	if spec.Limits.Memory > 0 {
		u = append(u, executor.LimitMemory+": unsandboxed steps get no memory cgroup")
	}
	if spec.Limits.Tmp > 0 {
		u = append(u, executor.LimitTmp+": no sandbox, the step's temporary folder is in its home, on disk (the workspace limit counts it)")
	}
	if !spec.Network {
		u = append(u, executor.Network+": no sandbox, the step has the host's network")
	}
	return u
}

// Run runs `sh -c command` in spec.Workspace. See Runner.
func (None) Run(ctx context.Context, spec Spec, command string) (Result, error) {
	start := time.Now()
	if err := checkDir(spec.Workspace); err != nil {
		return Result{}, fmt.Errorf("workspace: %w", err)
	}
	if spec.Cache != "" {
		if err := checkDir(spec.Cache); err != nil {
			return Result{}, fmt.Errorf("cache: %w", err)
		}
	}
	if spec.Home != "" {
		if err := checkDir(spec.Home); err != nil {
			return Result{}, fmt.Errorf("home: %w", err)
		}
		tmp := filepath.Join(spec.Home, noneTmp)
		if err := removeTree(tmp); err != nil {
			return Result{}, fmt.Errorf("clear the step's temporary folder: %w", err)
		}
		if err := os.Mkdir(tmp, 0o700); err != nil {
			return Result{}, fmt.Errorf("make the step's temporary folder: %w", err)
		}
		defer removeTree(tmp)
	}
	unenforced := None{}.Unenforced(spec)
	argv := append(rlimitArgs(spec.Limits, false), "/bin/sh", "-c", command)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = spec.Workspace
	cmd.Env = append([]string{}, spec.Env...)
	cmd.Stdout, cmd.Stderr = spec.Stdout, spec.Stderr
	cmd.WaitDelay = waitDelay
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return Result{}, fmt.Errorf("start step: %w", err)
	}
	pgid := cmd.Process.Pid
	res, err := supervise(ctx, cmd, spec.Timeout, nil)
	// Background children left in the group go with the step.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	res.Duration = time.Since(start)
	res.Unenforced = unenforced
	return res, err
}
