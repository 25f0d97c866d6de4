package e2e

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	osuser "os/user"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"slipway/internal/testutil"
	"slipway/store"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// slipwayBin is the binary under test, built once by TestMain.
var slipwayBin string

// defaultParallel is how many tests of this package run at once when the
// run does not say (-parallel N, which always wins). Go's default is
// GOMAXPROCS, 2 on the CI machines, but these tests spend most of their
// time waiting: for a daemon, a build in a sandbox, ssh, git and rsync.
// More than that at once makes the run shorter on 2 cores; much more makes
// the waits long enough to press the tests' deadlines.
const defaultParallel = 4

func TestMain(m *testing.M) {
	flag.Parse()
	given := false
	flag.Visit(func(f *flag.Flag) { given = given || f.Name == "test.parallel" })
	if !given && runtime.GOMAXPROCS(0) < defaultParallel {
		if err := flag.Set("test.parallel", strconv.Itoa(defaultParallel)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	dir, err := os.MkdirTemp("", "slipway-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// The quick start runs the binary as an ordinary account too.
	if err := os.Chmod(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	slipwayBin = filepath.Join(dir, "slipway")
	// The binary is built the way the tests are: with -race when the run
	// is (go test -race), without it when not, so that a quick run without
	// -race does not pay for the race detector in every daemon.
	args := []string{"build", "-o", slipwayBin}
	if raceEnabled {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, "slipway/cmd/slipway")...)
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build slipway:", err)
		os.Exit(1)
	}
	code := m.Run()
	kubeClose()
	os.RemoveAll(dir)
	os.Exit(code)
}

// user is a person with an SSH key.
type user struct {
	name    string
	key     string // private key file
	pub     string // authorized_keys line
	sshHome string // HOME for git and ssh runs of this user
}

func newUser(t testing.TB, name string) *user {
	t.Helper()
	dir := t.TempDir()
	key := filepath.Join(dir, "id_ed25519")
	run(t, "", nil, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", key)
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	return &user{name: name, key: key, pub: strings.TrimSpace(string(pub)), sshHome: dir}
}

// env is the environment for this user's git and ssh runs: no global or
// system git configuration, a fixed identity, and ssh with only this key.
func (u *user) env() []string {
	return []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + u.sshHome,
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_AUTHOR_NAME=" + u.name, "GIT_AUTHOR_EMAIL=" + u.name + "@example.invalid",
		"GIT_COMMITTER_NAME=" + u.name, "GIT_COMMITTER_EMAIL=" + u.name + "@example.invalid",
		"GIT_SSH_COMMAND=" + u.sshCommand(),
	}
}

// sshArgs are the options of this user's ssh runs: only this key, no
// agent, no host key to check or keep, quiet, and never a prompt.
func (u *user) sshArgs() []string {
	return []string{"-i", u.key, "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none", "-o", "StrictHostKeyChecking=no",
		"-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "BatchMode=yes"}
}

// sshCommand is ssh with sshArgs, as a command line (GIT_SSH_COMMAND).
func (u *user) sshCommand() string { return "ssh " + strings.Join(u.sshArgs(), " ") }

// daemon is a running `slipway serve`.
type daemon struct {
	t      testing.TB
	root   string   // holds the config file and data dir
	env    []string // added to the daemon's environment
	config string
	addr   string // host:port of the SSH server
	proc   *proc
	logs   *testutil.Buffer // stderr
	stdout *testutil.Buffer
	// stopWith is the signal that stops the daemon at the end of the
	// test; nil means SIGTERM.
	stopWith os.Signal
	// bin is the binary to run; empty: slipwayBin.
	bin string

	dbMu sync.Mutex
	db   *store.Store // the test's own handle on the database; see store
}

// proc is a child process of the test, such as a daemon, that dies with
// the test process however that ends: a panic, -timeout, a SIGKILL.
//
// The kernel sends the child Pdeathsig (SIGKILL) when the *thread* that
// forked it exits, not the process. Go's runtime ends an OS thread when a
// goroutine locked to it returns, and otherwise lets any goroutine run on
// any thread, so a child started from an ordinary goroutine could be killed
// early by a thread exit elsewhere, or not at all. So each child is started
// and waited for by one goroutine locked to its thread for the child's whole
// life: that thread ends only after the child has been reaped, or with the
// test process. It costs one blocked thread per running daemon.
//
// The child also gets a process group of its own, and the group is killed
// once the child has been reaped, so that whatever it left in its group
// goes with it. That happens right after the reaping, not later in a
// Cleanup: pids are reused (pid_max is 32768 here), and by the end of a
// test the group's number may be another test's daemon.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once the child has exited and been reaped
	err  error         // cmd.Wait's result, set before done is closed
}

// startProc starts cmd as a proc. SysProcAttr, when set, is kept (say, a
// Credential), with Setpgid and Pdeathsig added.
func startProc(cmd *exec.Cmd) (*proc, error) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	// A grandchild that holds the output pipes open must not keep Wait,
	// and so the group's end, waiting for ever.
	cmd.WaitDelay = 10 * time.Second
	p := &proc{cmd: cmd, done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		// Never unlocked: the thread ends with this goroutine, after the
		// child is gone.
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		p.err = cmd.Wait()
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		close(p.done)
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return p, nil
}

// exited says whether the child has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// startDaemon writes config (with %DATA% replaced by a fresh data dir) and
// starts slipway serve on it, with env added to its environment.
//
// The test's temporary folders are made searchable by others first, as a
// real data dir under /var/lib is: the daemon runs as root and build steps
// as an unprivileged uid, which must reach the build folder in the data dir.
// (Where it cannot, the daemon puts that folder under /tmp instead; the quick
// start test covers that.)
func startDaemon(t testing.TB, config string, env ...string) *daemon {
	t.Helper()
	return startDaemonBin(t, "", config, env...)
}

// startDaemonBin is startDaemon running bin (empty: slipwayBin).
func startDaemonBin(t testing.TB, bin, config string, env ...string) *daemon {
	t.Helper()
	root := t.TempDir()
	searchable(t, root)
	return startDaemonIn(t, bin, root, config, env...)
}

// startDaemonIn is startDaemonBin on a root the test prepared: root must
// hold (or be about to hold) root/data, for instance a mount, and be
// reachable by the build steps' uid.
func startDaemonIn(t testing.TB, bin, root, config string, env ...string) *daemon {
	t.Helper()
	cfg := filepath.Join(root, "slipway.toml")
	config = strings.ReplaceAll(config, "%DATA%", filepath.Join(root, "data"))
	if err := os.WriteFile(cfg, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	d := &daemon{t: t, root: root, config: cfg, env: env, bin: bin}
	d.start()
	t.Cleanup(d.stop)
	return d
}

// searchable makes the folders from dir up to the system's temporary
// folder searchable by others (mode 0711), as a real data dir under
// /var/lib is: build steps run as an unprivileged uid that must reach the
// build folder in the data dir.
func searchable(t testing.TB, dir string) {
	t.Helper()
	for d := dir; strings.HasPrefix(d, os.TempDir()+string(filepath.Separator)); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
}

var listenRE = regexp.MustCompile(`listening on ssh://(\S+)`)

func (d *daemon) start() {
	d.t.Helper()
	bin := d.bin
	if bin == "" {
		bin = slipwayBin
	}
	cmd := exec.Command(bin, "serve", "--config", d.config)
	cmd.Dir = d.root
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + d.root, noExitSleep}, d.env...)
	d.launch(cmd, "slipway serve to start", nil)
}

// launch starts cmd as the daemon's process, its stdout and stderr going
// to fresh d.stdout and d.logs, and waits until its stdout names its
// address and, when ready is not nil, satisfies ready.
func (d *daemon) launch(cmd *exec.Cmd, what string, ready func(stdout string) bool) {
	t := d.t
	t.Helper()
	d.logs, d.stdout = &testutil.Buffer{}, &testutil.Buffer{}
	cmd.Stdout, cmd.Stderr = d.stdout, d.logs
	p, err := startProc(cmd)
	if err != nil {
		t.Fatal(err)
	}
	d.proc = p
	d.eventually(t, time.Minute, what, func() bool {
		out := d.stdout.String()
		m := listenRE.FindStringSubmatch(out)
		if m != nil {
			d.addr = m[1]
		}
		return m != nil && (ready == nil || ready(out))
	})
}

// stop sends SIGTERM and waits for a clean exit.
func (d *daemon) stop() {
	if d.proc == nil || d.proc.exited() {
		return
	}
	sig := d.stopWith
	if sig == nil {
		sig = syscall.SIGTERM
	}
	_ = d.proc.cmd.Process.Signal(sig)
	select {
	case <-d.proc.done:
	case <-time.After(45 * time.Second):
		_ = d.proc.cmd.Process.Kill()
		<-d.proc.done
		d.t.Errorf("slipway serve did not stop on %v\n%s", sig, d.logs)
	}
	if d.proc.err != nil {
		d.t.Errorf("slipway serve exited with %v on %v\n%s", d.proc.err, sig, d.logs)
	}
	if strings.Contains(d.logs.String(), "WARNING: DATA RACE") {
		d.t.Errorf("the race detector fired in slipway serve:\n%s", d.logs)
	}
}

// kill stops the daemon with SIGKILL, as a crash would.
func (d *daemon) kill() {
	_ = d.proc.cmd.Process.Kill()
	<-d.proc.done
}

// eventually is testutil.Eventually for a condition that needs the daemon: when
// the daemon has exited it fails at once with the daemon's log, instead of
// asking a dead daemon until the deadline.
func (d *daemon) eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	poll(t, timeout, what, d.proc.done, func() string {
		return fmt.Sprintf("slipway serve exited (%v) while waiting for %s\n%s%s", d.proc.err, what, d.stdout, d.logs)
	}, cond)
}

func (d *daemon) dataDir() string { return filepath.Join(d.root, "data") }

// store is the test's own handle on the daemon's database, opened at the
// first call and closed at the end of the test. Waiting for a build or a
// deployment to end reads it: polling the daemon with `ssh ... builds`
// instead costs an SSH handshake and a session of the race-built daemon
// every few milliseconds, CPU that the other tests running at the same
// time need. What the user is shown is still asked over SSH once the
// wait is over.
func (d *daemon) store(t testing.TB) *store.Store {
	t.Helper()
	d.dbMu.Lock()
	defer d.dbMu.Unlock()
	if d.db != nil {
		return d.db
	}
	path := filepath.Join(d.dataDir(), "slipway.db")
	// store.Open would create a missing file: a daemon whose data dir is
	// elsewhere must not get an empty database to wait on for ever.
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the daemon's database: %v", err)
	}
	db, err := store.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	d.db = db
	d.t.Cleanup(func() { db.Close() })
	return db
}

func (d *daemon) port() string { return d.addr[strings.LastIndex(d.addr, ":")+1:] }

// url is the clone URL of a repository.
func (d *daemon) url(repo string) string { return "ssh://git@" + d.addr + "/" + repo }

// ssh runs an SSH command on the daemon as u and returns stdout, stderr and
// the exit code.
func (d *daemon) ssh(u *user, args ...string) (string, string, int) {
	d.t.Helper()
	cmd := d.sshCmd(u, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			d.t.Fatalf("ssh %v: %v", args, err)
		}
		code = ee.ExitCode()
	}
	return stdout.String(), stderr.String(), code
}

// sshCmd prepares the ssh run of an SSH command on the daemon as u.
func (d *daemon) sshCmd(u *user, args ...string) *exec.Cmd {
	host := d.addr[:strings.LastIndex(d.addr, ":")]
	cmd := exec.Command("ssh", append(append(u.sshArgs(), "-p", d.port(), "git@"+strings.Trim(host, "[]")), args...)...)
	cmd.Env = u.env()
	return cmd
}

// git runs git as u in dir and returns its output (stdout, then stderr)
// and error. The two streams go to separate pipes: ssh, run by git, makes
// its stderr non-blocking, and were that the pipe git writes its stdout to,
// git would lose output whenever the pipe is full.
func (u *user) git(dir string, args ...string) (string, error) {
	return u.gitEnv(nil, dir, args...)
}

// mustGit is git that fails the test on error.
func (u *user) mustGit(t testing.TB, dir string, args ...string) string {
	t.Helper()
	out, err := u.git(dir, args...)
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// newProject makes a work tree with one commit on main.
func (u *user) newProject(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	u.mustGit(t, dir, "init", "-q", "-b", "main")
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	u.mustGit(t, dir, "add", "-A")
	u.mustGit(t, dir, "commit", "-q", "-m", "first")
	return dir
}

// commit adds a commit that changes one file.
func (u *user) commit(t testing.TB, dir, file, body string) string {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, file), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	u.mustGit(t, dir, "add", file)
	u.mustGit(t, dir, "commit", "-q", "-m", "change "+file)
	return u.head(t, dir)
}

// head is the commit HEAD of the work tree dir points at.
func (u *user) head(t testing.TB, dir string) string {
	t.Helper()
	return strings.TrimSpace(u.mustGit(t, dir, "rev-parse", "HEAD"))
}

func run(t testing.TB, dir string, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	if env != nil {
		cmd.Env = env
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// poll polls cond until it holds or the deadline passes; it fails at once,
// with why(), when exited is closed (a process cond needs has ended) and
// cond still does not hold.
func poll(t testing.TB, timeout time.Duration, what string, exited <-chan struct{}, why func() string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-exited:
			if cond() {
				return
			}
			t.Fatal(why())
		case <-deadline.C:
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		case <-tick.C:
		}
	}
}

// configFor renders a config with the given users; admins get admin = true.
func configFor(extra string, admins []*user, others ...*user) string {
	var b strings.Builder
	b.WriteString("data_dir = \"%DATA%\"\n[ssh]\nlisten = \"127.0.0.1:0\"\n\n")
	for _, u := range admins {
		fmt.Fprintf(&b, "[[user]]\nname = %q\nkeys = [%q]\nadmin = true\n\n", u.name, u.pub)
	}
	for _, u := range others {
		fmt.Fprintf(&b, "[[user]]\nname = %q\nkeys = [%q]\n\n", u.name, u.pub)
	}
	b.WriteString(extra)
	return b.String()
}

// withSSH adds lines to the [ssh] section of a config configFor rendered.
func withSSH(config, lines string) string {
	const listen = "[ssh]\nlisten = \"127.0.0.1:0\"\n"
	if !strings.Contains(config, listen) {
		panic("withSSH: the config has no [ssh] section of configFor's")
	}
	return strings.Replace(config, listen, listen+lines, 1)
}

// execGit prepares a git command with the given environment.
func execGit(dir string, env []string, args ...string) *exec.Cmd {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = env
	return cmd
}

// quickStart runs `slipway serve` as the README's first command does: no
// config, in the empty folder work, with HOME holding keys, and with
// --listen 127.0.0.1:0 so that no test depends on a free fixed port. as,
// when not nil, is the account it runs as (work and home must be its own).
// It waits for the banner and returns the daemon (addr, stdout and logs,
// its stderr); the daemon is stopped with SIGINT at the end of the test,
// failing it if it does not exit cleanly or the race detector fired.
// noExitSleep keeps a race-built slipway (and the hooks, which it passes
// GORACE on to) from sleeping a second as it exits: two hook runs a push.
const noExitSleep = "GORACE=atexit_sleep_ms=0"

func quickStart(t *testing.T, home, work string, as *account) *daemon {
	t.Helper()
	cmd := exec.Command(slipwayBin, "serve", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0")
	cmd.Dir = work
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "USER=newcomer", noExitSleep}
	if as != nil {
		cmd.Env[2] = "USER=" + as.name
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(as.uid), Gid: uint32(as.gid), Groups: []uint32{}}}
	}
	return startServe(t, cmd, func(stdout string) bool { return strings.Contains(stdout, "git push") })
}

// startServe starts cmd, a `slipway serve` the test set up itself, waits
// until its stdout is ready and it names its address, and stops it with
// SIGINT (Ctrl-C, as its user would) at the end of the test.
func startServe(t *testing.T, cmd *exec.Cmd, ready func(stdout string) bool) *daemon {
	t.Helper()
	d := &daemon{t: t, root: cmd.Dir, stopWith: os.Interrupt}
	t.Cleanup(d.stop)
	d.launch(cmd, "the banner", ready)
	return d
}

// account is a local user account of this machine.
type account struct {
	name     string
	uid, gid int
}

// ordinaryAccount returns an ordinary (non-root) account to run the daemon
// as: the test's own when it does not run as root, else slipway-newcomer,
// made here if the machine lacks it (CI runs as root on a fresh machine).
// dirs are handed to it, and the folders above them made searchable.
func ordinaryAccount(t *testing.T, dirs ...string) *account {
	t.Helper()
	a := &account{name: os.Getenv("USER"), uid: os.Getuid(), gid: os.Getgid()}
	if os.Geteuid() == 0 {
		a.name = "slipway-newcomer"
		cmd := exec.Command("useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", a.name)
		if out, err := cmd.CombinedOutput(); err != nil {
			// 9: the account exists already (an earlier run).
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 9 {
				t.Fatalf("useradd %s: %v\n%s", a.name, err, out)
			}
		}
		u, err := osuser.Lookup(a.name)
		if err != nil {
			t.Fatal(err)
		}
		a.uid, _ = strconv.Atoi(u.Uid)
		a.gid, _ = strconv.Atoi(u.Gid)
	}
	for _, d := range dirs {
		if err := filepath.WalkDir(d, func(p string, _ os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			return os.Lchown(p, a.uid, a.gid)
		}); err != nil {
			t.Fatal(err)
		}
		searchable(t, filepath.Dir(d))
	}
	return a
}

// releaseBin is slipway built as it ships, without -race, for the tests
// that hold the daemon to a speed target (the race detector makes it
// several times slower): slipwayBin when the run is not -race, else a
// second build, made once.
var releaseBin = sync.OnceValues(func() (string, error) {
	if !raceEnabled {
		return slipwayBin, nil
	}
	bin := slipwayBin + "-release"
	out, err := exec.Command("go", "build", "-o", bin, "slipway/cmd/slipway").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("build slipway without -race: %v\n%s", err, out)
	}
	return bin, nil
})

// mustReleaseBin is releaseBin that fails the benchmark when the build
// fails.
func mustReleaseBin(b testing.TB) string {
	b.Helper()
	bin, err := releaseBin()
	if err != nil {
		b.Fatal(err)
	}
	return bin
}

// logsContain waits up to 10 s for the daemon's log to hold every one of
// wants, and returns the log and whether it does: the log reaches the test
// through a pipe, possibly after the command that caused a line returned.
func (d *daemon) logsContain(wants ...string) (string, bool) {
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		logs := d.logs.String()
		missing := slices.ContainsFunc(wants, func(w string) bool { return !strings.Contains(logs, w) })
		if !missing || time.Now().After(deadline) {
			return logs, !missing
		}
	}
}
