package kubetest

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// sandbox is one container's process tree: bwrap with a private pid
// namespace, so that killing the namespace's first process (the sandbox's
// init) kills every process of the container, background children too.
type sandbox struct {
	container string
	cmd       *exec.Cmd
	initPID   int    // the namespace's pid 1, as the host sees it
	pidNS     string // "pid:[inode]", as /proc/PID/ns/pid reads
	started   time.Time
	finished  time.Time
	exited    chan struct{}
	code      int32

	mu     sync.Mutex
	killed bool
}

// startSandbox starts spec's command in bwrap with its output appended to
// logPath. The options, environment included, reach bwrap through a pipe
// (--args), so that Secret values do not show in the host's process list;
// the command line does, which is how tests find a container's processes.
func startSandbox(bwrap, logPath, container string, spec sandboxSpec) (*sandbox, error) {
	var opts []string
	add := func(o ...string) { opts = append(opts, o...) }
	add("--die-with-parent", "--new-session", "--unshare-pid", "--clearenv", "--info-fd", "4")
	for _, kv := range spec.env {
		k, v, _ := strings.Cut(kv, "=")
		add("--setenv", k, v)
	}
	for _, b := range spec.image.Binds {
		dst := b.Path
		if dst == "" {
			dst = b.Host
		}
		if fi, err := os.Lstat(b.Host); err == nil && fi.Mode()&os.ModeSymlink != 0 {
			target, err := os.Readlink(b.Host)
			if err != nil {
				return nil, fmt.Errorf("read image link %s: %w", b.Host, err)
			}
			add("--symlink", target, dst)
			continue
		}
		add("--ro-bind", b.Host, dst)
	}
	add("--proc", "/proc", "--dev", "/dev")
	if !spec.readOnlyRoot {
		add("--tmpfs", "/tmp")
	}
	for _, m := range spec.mounts {
		if m.readOnly {
			add("--ro-bind", m.src, m.dst)
		} else {
			add("--bind", m.src, m.dst)
		}
	}
	if spec.workDir != "" {
		if !underMount(spec, spec.workDir) {
			add("--dir", spec.workDir)
		}
		add("--chdir", spec.workDir)
	}
	add("--remount-ro", "/")
	var args strings.Builder
	for _, o := range opts {
		args.WriteString(o)
		args.WriteByte(0)
	}

	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open container log: %w", err)
	}
	defer logFile.Close()
	argsR, argsW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("pipe for bwrap options: %w", err)
	}
	defer argsR.Close()
	infoR, infoW, err := os.Pipe()
	if err != nil {
		argsW.Close()
		return nil, fmt.Errorf("pipe for bwrap info: %w", err)
	}
	defer infoR.Close()

	cmd := exec.Command(bwrap, append([]string{"--args", "3", "--"}, spec.argv...)...)
	cmd.Env = []string{} // the container's environment comes by --setenv
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.ExtraFiles = []*os.File{argsR, infoW}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if spec.uid != 0 || spec.gid != 0 {
		// bwrap, not setuid, makes a user namespace for a user that is not
		// root; the processes run as uid:gid on the host too.
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: spec.uid, Gid: spec.gid, Groups: []uint32{}}
	}
	waited, err := startLocked(cmd)
	if err != nil {
		argsW.Close()
		infoW.Close()
		return nil, fmt.Errorf("start bwrap: %w", err)
	}
	infoW.Close()
	s := &sandbox{container: container, cmd: cmd, started: time.Now(), exited: make(chan struct{})}
	go func() {
		argsW.WriteString(args.String())
		argsW.Close()
	}()
	var info struct {
		ChildPID int    `json:"child-pid"`
		PIDNS    uint64 `json:"pid-namespace"`
	}
	if err := json.NewDecoder(infoR).Decode(&info); err == nil {
		s.initPID = info.ChildPID
		s.pidNS = fmt.Sprintf("pid:[%d]", info.PIDNS)
	}
	// Otherwise bwrap failed to set up; its message is in the log and
	// wait reports its exit.
	go func() {
		err := <-waited
		s.finished = time.Now()
		s.code = exitCode(cmd, err)
		close(s.exited)
	}()
	return s, nil
}

func underMount(spec sandboxSpec, dir string) bool {
	for _, m := range spec.mounts {
		if rel, err := filepath.Rel(m.dst, dir); err == nil && !strings.HasPrefix(rel, "..") {
			return true
		}
	}
	return false
}

// exitCode is the container's exit code: the command's, or 128+signal
// when a signal ended it (bwrap reports both that way).
func exitCode(cmd *exec.Cmd, err error) int32 {
	st := cmd.ProcessState
	if st == nil {
		return 128
	}
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int32(ws.Signal())
	}
	return int32(st.ExitCode())
}

// wait returns the exit code once every process of the container is gone.
func (s *sandbox) wait() int32 {
	<-s.exited
	return s.code
}

// pids lists the host pids of the container's processes.
func (s *sandbox) pids() []int {
	if s.pidNS == "" {
		return nil
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ns, err := os.Readlink("/proc/" + e.Name() + "/ns/pid"); err == nil && ns == s.pidNS {
			pids = append(pids, pid)
		}
	}
	return pids
}

// signalAll sends sig to every process of the container.
func (s *sandbox) signalAll(sig syscall.Signal) {
	select {
	case <-s.exited:
		return
	default:
	}
	for _, pid := range s.pids() {
		syscall.Kill(pid, sig)
	}
}

// kill ends the container at once: SIGKILL to the namespace's init takes
// every process in it along, and to bwrap's group for a sandbox that never
// got that far.
func (s *sandbox) kill() {
	select {
	case <-s.exited:
		return
	default:
	}
	s.mu.Lock()
	s.killed = true
	s.mu.Unlock()
	if s.initPID > 0 {
		syscall.Kill(s.initPID, syscall.SIGKILL)
	}
	syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
}
