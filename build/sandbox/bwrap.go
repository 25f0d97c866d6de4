package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"slipway/build/executor"
)

// Bwrap runs steps in bubblewrap. The zero value runs bwrap from PATH as the
// daemon's own user. Its fields are read-only once Run has been called.
type Bwrap struct {
	// Path is the bwrap binary; empty means "bwrap" looked up in PATH.
	Path string
	// UID and GID are the host ids steps run as when the daemon is root
	// and their Spec names none (Spec.UID): the self-test's, or every
	// build's with the deprecated single build uid. Zero keeps the
	// daemon's ids, but then the process limit cannot hold (the kernel
	// exempts root from RLIMIT_NPROC) and every process of the step is
	// host root inside a user namespace. Use a uid no other process on the
	// host uses.
	UID, GID int
	// Cgroups, if set, holds steps' memory (Limits.Memory) in a cgroup of
	// their own; nil: a memory limit is reported as unenforced.
	Cgroups *Cgroups
	// EtcDir, if set, is a folder written by PrepareEtc, mounted as the
	// sandbox's /etc in one mount. Empty: the allowed files of the host's
	// /etc are mounted one by one.
	EtcDir string

	// features is what the bwrap binary offers, looked up once.
	featuresOnce sync.Once
	features     bwrapFeatures
}

// bwrapFeatures are the options of bubblewrap that not every version has.
type bwrapFeatures struct {
	size bool // --size before --tmpfs (0.8.0)
}

// shmDir is where POSIX shared memory lives, and, in a Bwrap sandbox, what
// /tmp links to.
const shmDir = "/dev/shm"

// feature returns what the bwrap at bin offers. --help lists --size in
// the versions that have it; a bwrap that cannot say is taken to have
// none, and the limits that need them are reported unenforced.
func (r *Bwrap) feature(bin string) bwrapFeatures {
	r.featuresOnce.Do(func() {
		cmd := exec.Command(bin, "--help")
		cmd.Env = []string{}
		out, _ := cmd.CombinedOutput()
		r.features.size = bytes.Contains(out, []byte("--size"))
	})
	return r.features
}

var _ Runner = (*Bwrap)(nil)

// offlineResolvConf is the sandbox's /etc/resolv.conf when the step has no
// network. In the step's own network namespace nothing listens on
// 127.0.0.1:53, so every lookup is refused at once, whatever resolvers and
// timeouts the host's file names; a tool then says "could not resolve"
// instead of waiting on a resolver it can never reach.
const offlineResolvConf = "# slipway: this build step has no network\nnameserver 127.0.0.1\noptions timeout:1 attempts:1\n"

// Descriptors bwrap reads, as numbered in the child: ExtraFiles[i] is fd 3+i.
const (
	fdArgs   = "3"
	fdStatus = "4"
	fdResolv = "5"
)

// etcAllowed are the files of /etc a build may see: user and group names,
// name resolution, TLS roots, the dynamic linker's cache, time zone and the
// alternatives links that /usr/bin points through. Everything else of /etc
// (ssh host keys, shadow, sudoers, the server's own config) stays out.
var etcAllowed = []string{
	"passwd", "group", "hosts", "resolv.conf", "nsswitch.conf", "host.conf",
	"gai.conf", "services", "protocols", "ssl", "ca-certificates",
	"ca-certificates.conf", "ld.so.cache", "ld.so.conf", "ld.so.conf.d",
	"localtime", "timezone", "alternatives", "os-release", "debian_version",
	"mime.types",
}

// systemDirs are mounted read-only when they are real folders, or recreated
// as the same symlink on merged-/usr systems.
var systemDirs = []string{"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"}

// Run runs `sh -c command` in a fresh bubblewrap sandbox. See Runner.
func (r *Bwrap) Run(ctx context.Context, spec Spec, command string) (Result, error) {
	start := time.Now()
	if err := checkDir(spec.Workspace); err != nil {
		return Result{}, fmt.Errorf("sandbox workspace: %w", err)
	}
	if spec.Cache != "" {
		if err := checkDir(spec.Cache); err != nil {
			return Result{}, fmt.Errorf("sandbox cache: %w", err)
		}
	}
	if spec.Home != "" {
		if err := checkDir(spec.Home); err != nil {
			return Result{}, fmt.Errorf("sandbox home: %w", err)
		}
	}
	path := r.Path
	if path == "" {
		path = "bwrap"
	}
	bin, err := exec.LookPath(path)
	if err != nil {
		return Result{}, fmt.Errorf("find bwrap: %w", err)
	}

	uid, gid := r.UID, r.GID
	if spec.UID > 0 {
		uid, gid = spec.UID, spec.GID
	}
	dropRoot := os.Geteuid() == 0 && uid > 0
	if dropRoot {
		if err := chownTree(spec.Workspace, uid, gid); err != nil {
			return Result{}, fmt.Errorf("hand workspace to uid %d: %w", uid, err)
		}
		if spec.Cache != "" {
			if err := handOver(spec.Cache, uid, gid); err != nil {
				return Result{}, fmt.Errorf("hand cache to uid %d: %w", uid, err)
			}
		}
		if spec.Home != "" {
			if err := chownTree(spec.Home, uid, gid); err != nil {
				return Result{}, fmt.Errorf("hand home to uid %d: %w", uid, err)
			}
		}
	}
	procsHold := !(os.Geteuid() == 0 && !dropRoot)
	feat := r.feature(bin)
	unenforced := r.unenforced(spec, feat)
	var cg *stepCgroup
	if spec.Limits.Memory > 0 && r.Cgroups != nil {
		if cg, err = r.Cgroups.create(spec.Limits.Memory); err != nil {
			return Result{}, fmt.Errorf("sandbox memory limit: %w", err)
		}
		defer cg.remove()
	}

	// The options go through a pipe (--args), not the command line, so
	// that environment values (secrets) never show in the host's ps. bwrap
	// takes only options there; the command follows on the command line.
	args, offlineDNS := r.args(spec, feat)
	var argBuf bytes.Buffer
	for _, a := range args {
		if strings.IndexByte(a, 0) >= 0 {
			return Result{}, fmt.Errorf("sandbox argument %q contains a NUL byte", a)
		}
		argBuf.WriteString(a)
		argBuf.WriteByte(0)
	}

	var extra []*os.File
	if offlineDNS {
		resolv, err := dataPipe(offlineResolvConf)
		if err != nil {
			return Result{}, fmt.Errorf("sandbox resolv.conf: %w", err)
		}
		defer resolv.Close()
		extra = append(extra, resolv)
	}
	argsR, argsW, err := os.Pipe()
	if err != nil {
		return Result{}, fmt.Errorf("sandbox args pipe: %w", err)
	}
	statusR, statusW, err := os.Pipe()
	if err != nil {
		argsR.Close()
		argsW.Close()
		return Result{}, fmt.Errorf("sandbox status pipe: %w", err)
	}
	defer statusR.Close()
	extra = append([]*os.File{argsR, statusW}, extra...)

	argv := append([]string{"--args", fdArgs, "--json-status-fd", fdStatus, "--"}, rlimitArgs(spec.Limits, procsHold)...)
	argv = append(argv, "/bin/sh", "-c", command)
	cmd := exec.Command(bin, argv...)
	cmd.ExtraFiles = extra
	cmd.Env = []string{} // bwrap needs none; the step's comes via --setenv
	cmd.Dir = "/"
	cmd.Stdout, cmd.Stderr = spec.Stdout, spec.Stderr
	cmd.WaitDelay = waitDelay
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid: true,
		// If the daemon dies, bwrap dies, and --die-with-parent takes the
		// sandbox with it.
		Pdeathsig: syscall.SIGKILL,
	}
	if dropRoot {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}
	}
	err = cmd.Start()
	argsR.Close()
	statusW.Close()
	if err != nil {
		argsW.Close()
		return Result{}, fmt.Errorf("start bwrap: %w", err)
	}
	// bwrap waits for its options on fd 3 before it does anything, so it
	// joins the cgroup before any process of the step exists: every one of
	// them inherits the limit.
	if cg != nil {
		if err := cg.add(cmd.Process.Pid); err != nil {
			argsW.Close()
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			_ = cmd.Wait()
			return Result{}, fmt.Errorf("sandbox memory limit: %w", err)
		}
	}
	go func() {
		// A write error means bwrap died early; its exit tells why.
		_, _ = argsW.Write(argBuf.Bytes())
		argsW.Close()
	}()

	// bwrap reports the host pid of the sandbox's pid 1. When pid 1 exits,
	// the kernel has already killed and reaped every other process of the
	// PID namespace, so a pidfd on it tells when the step is truly gone.
	type status struct {
		pidfd   int
		started bool
	}
	statusCh := make(chan status, 1)
	go func() {
		st := status{pidfd: -1}
		dec := json.NewDecoder(statusR)
		for {
			var msg struct {
				ChildPid int `json:"child-pid"`
			}
			if err := dec.Decode(&msg); err != nil {
				break
			}
			if msg.ChildPid > 0 && !st.started {
				st.started = true
				if fd, err := unix.PidfdOpen(msg.ChildPid, 0); err == nil {
					st.pidfd = fd
				}
			}
		}
		statusCh <- st
	}()

	killInit := func() {} // the group kill reaches bwrap; pid 1 follows by pdeathsig
	res, waitErr := supervise(ctx, cmd, spec.Timeout, killInit)
	// bwrap is gone, so the status pipe reaches EOF (pid 1 does not hold it).
	st := <-statusCh
	if st.pidfd >= 0 {
		_ = unix.PidfdSendSignal(st.pidfd, unix.SIGKILL, nil, 0)
		waitGone(st.pidfd)
		unix.Close(st.pidfd)
	}
	res.Duration = time.Since(start)
	res.Unenforced = unenforced
	res.OutOfMemory = cg != nil && cg.oomKilled()
	if waitErr != nil {
		return res, waitErr
	}
	if !st.started && !res.TimedOut && !res.Cancelled {
		return res, fmt.Errorf("bwrap could not set up the sandbox (exit %d; its message is in the step's stderr)", res.ExitCode)
	}
	return res, nil
}

// waitGone blocks until the process behind pidfd has exited. The kill has
// been sent; the deadline only guards against a kernel that never reports.
func waitGone(pidfd int) {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, 1000)
		if n > 0 || (err != nil && !errors.Is(err, unix.EINTR)) {
			return
		}
	}
}

// Layout returns where the folders of spec appear in the sandbox. See
// Runner.
func (r *Bwrap) Layout(spec Spec) Layout {
	l := Layout{Workspace: WorkspaceDir, Home: HomeDir, Tmp: TmpDir}
	if spec.Cache != "" {
		l.Cache = CacheDir
	}
	return l
}

// Unenforced lists the limits of spec this sandbox cannot hold here. See
// Runner.
func (r *Bwrap) Unenforced(spec Spec) []string {
	path := r.Path
	if path == "" {
		path = "bwrap"
	}
	var feat bwrapFeatures
	if bin, err := exec.LookPath(path); err == nil {
		feat = r.feature(bin)
	}
	return r.unenforced(spec, feat)
}

func (r *Bwrap) unenforced(spec Spec, feat bwrapFeatures) []string {
	var u []string
	uid := r.UID
	if spec.UID > 0 {
		uid = spec.UID
	}
	if spec.Limits.Procs > 0 && os.Geteuid() == 0 && uid <= 0 {
		u = append(u, executor.LimitProcesses+": steps run as host root, which RLIMIT_NPROC exempts; set a build uid")
	}
	if spec.Limits.Memory > 0 && r.Cgroups == nil {
		u = append(u, executor.LimitMemory+": no memory cgroup the daemon may use on this host (it needs root, or a delegated cgroup v2 with the memory controller)")
	}
	if spec.Limits.Tmp > 0 && !feat.size {
		u = append(u, executor.LimitTmp+": this bubblewrap cannot size a tmpfs (--size needs 0.8.0); the memory limit, where it holds, bounds it")
	}
	return u
}

// args returns bwrap's options for spec, without the command, and whether
// they read the offline resolv.conf from fdResolv.
//
// Every mount a step may write to is sized: /dev/shm, which /tmp links to,
// and an unshared home are tmpfs mounts of at most Limits.Tmp (when bwrap
// can size them), and the tmpfs bwrap builds the root and /dev in is made
// read-only once everything is mounted in it, since bwrap cannot size
// those and a step could otherwise fill the host's memory through them.
func (r *Bwrap) args(spec Spec, feat bwrapFeatures) (args []string, offlineDNS bool) {
	a := []string{
		"--unshare-all", "--unshare-user", "--disable-userns",
		"--die-with-parent", "--new-session",
		"--hostname", "slipway-build",
		"--ro-bind", "/usr", "/usr",
	}
	if spec.Network {
		a = append(a, "--share-net")
	}
	for _, d := range systemDirs {
		fi, err := os.Lstat(d)
		switch {
		case err != nil:
		case fi.Mode()&fs.ModeSymlink != 0:
			if target, err := os.Readlink(d); err == nil {
				a = append(a, "--symlink", target, d)
			}
		case fi.IsDir():
			a = append(a, "--ro-bind", d, d)
		}
	}
	if r.EtcDir != "" {
		etc := r.EtcDir
		if !spec.Network {
			// PrepareEtc's offline copy, when there is one: no mount
			// beyond /etc's own.
			if fi, err := os.Stat(etc + offlineSuffix); err == nil && fi.IsDir() {
				etc += offlineSuffix
			} else {
				// A mount point cannot be made in the read-only copy;
				// PrepareEtc always writes one.
				fi, err := os.Lstat(filepath.Join(etc, "resolv.conf"))
				offlineDNS = err == nil && fi.Mode().IsRegular()
			}
		}
		a = append(a, "--ro-bind", etc, "/etc")
	} else {
		a = append(a, "--dir", "/etc")
		for _, name := range etcAllowed {
			p := filepath.Join("/etc", name)
			a = append(a, "--ro-bind-try", p, p)
		}
		offlineDNS = !spec.Network
	}
	if offlineDNS {
		a = append(a, "--ro-bind-data", fdResolv, "/etc/resolv.conf")
	}
	tmpfs := func(size int64, dir string) {
		if size > 0 && feat.size {
			a = append(a, "--size", strconv.FormatInt(size, 10))
		}
		a = append(a, "--tmpfs", dir)
	}
	// /tmp and /dev/shm (POSIX shared memory) are one tmpfs: one budget,
	// and one mount less than two (each costs a start about 0.1 ms).
	// bubblewrap's /dev makes /dev/shm a folder, so /tmp is the link.
	a = append(a, "--proc", "/proc", "--dev", "/dev")
	tmpfs(spec.Limits.Tmp, shmDir)
	a = append(a, "--remount-ro", "/dev", "--symlink", shmDir, TmpDir)
	a = append(a, "--bind", spec.Workspace, WorkspaceDir)
	if spec.Cache != "" {
		a = append(a, "--bind", spec.Cache, CacheDir)
	}
	if spec.Home != "" {
		a = append(a, "--bind", spec.Home, HomeDir)
	} else {
		tmpfs(spec.Limits.Tmp, HomeDir)
	}
	a = append(a, "--remount-ro", "/", "--chdir", WorkspaceDir, "--clearenv")
	for _, kv := range spec.Env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			continue
		}
		a = append(a, "--setenv", k, v)
	}
	return a, offlineDNS
}

// dataPipe returns the read end of a pipe that holds data and then ends.
// data must fit in the pipe's buffer (64 KiB on Linux), which no file the
// sandbox is given this way comes near.
func dataPipe(data string) (*os.File, error) {
	rd, wr, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	_, err = wr.WriteString(data)
	if cerr := wr.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		rd.Close()
		return nil, err
	}
	return rd, nil
}

func checkDir(dir string) error {
	if dir == "" {
		return errors.New("no folder given")
	}
	if !filepath.IsAbs(dir) {
		return fmt.Errorf("%q is not an absolute path", dir)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%q is not a folder", dir)
	}
	return nil
}

// handOver gives a folder kept between builds (a cache) to uid:gid with
// everything in it, unless it is that uid's already. The folder itself is
// handed over last, so that it belongs to uid only once everything in it
// does: a hand-over cut off half-way (the daemon killed) is done again by
// the next build. Later, only steps running as uid write in it, and
// everything they make is theirs.
func handOver(dir string, uid, gid int) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) == uid && int(st.Gid) == gid {
		return nil
	}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == dir {
			return nil
		}
		return lchownIfNot(p, d, uid, gid)
	})
	if err != nil {
		return err
	}
	return os.Lchown(dir, uid, gid)
}

func lchownIfNot(p string, d fs.DirEntry, uid, gid int) error {
	fi, err := d.Info()
	if err != nil {
		return err
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) == uid && int(st.Gid) == gid {
		return nil
	}
	return os.Lchown(p, uid, gid)
}

// chownTree gives dir and everything below it to uid:gid, without following
// symlinks; entries already owned are left alone.
func chownTree(dir string, uid, gid int) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return lchownIfNot(p, d, uid, gid)
	})
}
