package sandbox

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"slipway/internal/testutil"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// buildUID is the unprivileged host uid steps run as when the tests run as
// root, as they do in CI.
const buildUID = 65534

func newBwrap() *Bwrap { return &Bwrap{UID: buildUID, GID: buildUID} }

// layout makes <base>/data/host_key (a secret) and <base>/work/ws (the
// workspace), with the folders above the workspace searchable by the build
// uid as the contract of Spec.Workspace asks.
func layout(t *testing.T) (ws, secretPath string) {
	t.Helper()
	base := t.TempDir()
	searchable(t, base)
	data := filepath.Join(base, "data")
	ws = filepath.Join(base, "work", "ws")
	for _, d := range []string{data, ws} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	secretPath = filepath.Join(data, "host_key")
	if err := os.WriteFile(secretPath, []byte("SECRET-HOST-KEY"), 0o644); err != nil {
		t.Fatal(err)
	}
	return ws, secretPath
}

// searchable makes dir and the folders above it searchable by the build uid.
func searchable(tb testing.TB, dir string) {
	tb.Helper()
	for d := dir; d != "/"; d = filepath.Dir(d) {
		if fi, err := os.Stat(d); err == nil && fi.Mode().Perm()&0o001 == 0 {
			if err := os.Chmod(d, fi.Mode().Perm()|0o011); err != nil {
				tb.Fatal(err)
			}
		}
	}
}

// searchableTemp is the path name in a fresh temporary folder that every
// uid may pass through (the path itself is not created).
func searchableTemp(t *testing.T, name string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	searchable(t, filepath.Dir(p))
	return p
}

// needRoot skips the test, saying why, unless it runs as root.
func needRoot(t *testing.T, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip(why)
	}
}

func run(t *testing.T, r Runner, spec Spec, command string) (Result, string) {
	t.Helper()
	var out testutil.Buffer
	spec.Stdout, spec.Stderr = &out, &out
	if spec.Timeout == 0 {
		spec.Timeout = time.Minute
	}
	res, err := r.Run(t.Context(), spec, command)
	if err != nil {
		t.Fatalf("Run(%q): %v\noutput: %s", command, err, out.String())
	}
	return res, out.String()
}

// hostProcs returns the host pids whose command line contains marker.
func hostProcs(t *testing.T, marker string) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		// Count the sleepers, not the shells whose script names them.
		if err == nil && bytes.HasPrefix(cmdline, []byte("sleep\x00")) && bytes.Contains(cmdline, []byte(marker)) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func TestEnvIsExactlySpecEnvAndExitCodePropagates(t *testing.T) {
	t.Setenv("SLIPWAY_DAEMON_SECRET", "must-not-leak")
	ws, _ := layout(t)
	env := []string{"PATH=/usr/bin:/bin", "HOME=" + HomeDir, "CI=true", "MULTI=a b\nc"}
	res, out := run(t, newBwrap(), Spec{Workspace: ws, Env: env}, "env -0; exit 7")
	if res.ExitCode != 7 {
		t.Errorf("exit code %d, want 7", res.ExitCode)
	}
	got := strings.Split(strings.TrimSuffix(out, "\x00"), "\x00")
	// sh itself adds PWD; nothing else may appear.
	want := append(slices.Clone(env), "PWD="+WorkspaceDir)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("environment in sandbox:\n got %q\nwant %q", got, want)
	}
}

func TestDataDirIsInvisible(t *testing.T) {
	t.Parallel()
	ws, secret := layout(t)
	res, out := run(t, newBwrap(), Spec{Workspace: ws, Env: []string{"PATH=/usr/bin:/bin"}},
		fmt.Sprintf(`cat %q; cat ../data/host_key; cat /workspace/../data/host_key; ls -a /; pwd`, secret))
	if strings.Contains(out, "SECRET-HOST-KEY") {
		t.Fatalf("step read the host key:\n%s", out)
	}
	if !strings.Contains(out, "No such file") || res.ExitCode != 0 || !strings.HasSuffix(out, WorkspaceDir+"\n") {
		t.Errorf("exit %d, output:\n%s", res.ExitCode, out)
	}
	// The sandbox root holds only what Run mounts.
	for _, name := range []string{"root", "var", "srv", "work", "mnt"} {
		if strings.Contains(out, "\n"+name+"\n") {
			t.Errorf("/%s is visible in the sandbox:\n%s", name, out)
		}
	}
	// /home holds the step's home and no one else's.
	res, out = run(t, newBwrap(), Spec{Workspace: ws, Env: []string{"PATH=/usr/bin:/bin"}}, "ls -A /home")
	if res.ExitCode != 0 || out != filepath.Base(HomeDir)+"\n" {
		t.Errorf("/home in the sandbox: exit %d, %q", res.ExitCode, out)
	}
	res, out = run(t, newBwrap(), Spec{Workspace: ws, Env: []string{"PATH=/usr/bin:/bin"}}, "ls /etc/ssh /etc/shadow")
	if res.ExitCode == 0 {
		t.Errorf("/etc/ssh or /etc/shadow visible:\n%s", out)
	}
}

func TestNetwork(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var accepted atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	connect := fmt.Sprintf(`exec bash -c 'exec 3<>/dev/tcp/127.0.0.1/%d && echo connected'`, port)
	ws, _ := layout(t)
	env := []string{"PATH=/usr/bin:/bin"}

	res, out := run(t, newBwrap(), Spec{Workspace: ws, Env: env}, connect)
	if res.ExitCode == 0 || strings.Contains(out, "connected") || accepted.Load() != 0 {
		t.Errorf("without Network the step reached the host's listener: exit %d, %q", res.ExitCode, out)
	}
	res, out = run(t, newBwrap(), Spec{Workspace: ws, Env: env, Network: true}, connect)
	if res.ExitCode != 0 || !strings.Contains(out, "connected") {
		t.Errorf("with Network the step could not connect: exit %d, %q", res.ExitCode, out)
	}
	testutil.Eventually(t, 10*time.Second, "the connection to be accepted", func() bool { return accepted.Load() == 1 })
}

// A step without network learns so at once: name lookups (glibc's and
// node's) and connections to any address but loopback fail within a
// second, instead of waiting on resolvers it can never reach. Nothing here
// leaves the step's own network namespace.
func TestOfflineFailsAtOnce(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatalf("node is not installed (CI must install nodejs): %v", err)
	}
	hostResolv, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		t.Fatal(err)
	}
	etc := searchableTemp(t, "etc")
	if err := PrepareEtc(etc); err != nil {
		t.Fatal(err)
	}
	// Should the step see more than loopback, it tries nothing.
	const step = `[ "$(sed -n '3,$s/^ *\([^:]*\):.*/\1/p' /proc/net/dev)" = lo ] || { echo "not offline"; exit 1; }
t0=$(date +%s%N); getent hosts registry.npmjs.org; echo "getent $? $(( ($(date +%s%N) - t0) / 1000000 ))"
node -e "const t = Date.now(); require('dns').lookup('registry.npmjs.org', e => { console.log('node', e && e.code, Date.now() - t); process.exit(e ? 1 : 0) })"
for addr in 192.0.2.1 2001:db8::1; do
	t0=$(date +%s%N); bash -c "exec 3<>/dev/tcp/$addr/443" 2>/dev/null; echo "tcp $? $(( ($(date +%s%N) - t0) / 1000000 )) $addr"
done`
	for _, r := range []*Bwrap{newBwrap(), {UID: buildUID, GID: buildUID, EtcDir: etc}} {
		ws, _ := layout(t)
		_, out := run(t, r, Spec{Workspace: ws, Env: []string{"PATH=/usr/bin:/bin"}}, "cat /etc/resolv.conf; "+step)
		t.Logf("EtcDir %q:\n%s", r.EtcDir, out)
		if !strings.Contains(out, "\nnameserver 127.0.0.1\n") || strings.Contains(out, string(hostResolv)) {
			t.Errorf("EtcDir %q: the step's resolv.conf is not the offline one:\n%s", r.EtcDir, out)
		}
		var checks int
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			if len(f) < 3 || (f[0] != "getent" && f[0] != "node" && f[0] != "tcp") {
				continue
			}
			checks++
			ms, err := strconv.Atoi(f[2])
			if f[1] == "0" || f[1] == "null" || err != nil || ms >= 1000 {
				t.Errorf("EtcDir %q: %q: want a failure within 1 s", r.EtcDir, line)
			}
		}
		if checks != 4 {
			t.Errorf("EtcDir %q: %d of 4 checks reported:\n%s", r.EtcDir, checks, out)
		}

		// With network, the host's resolver settings apply.
		_, out = run(t, r, Spec{Workspace: ws, Env: []string{"PATH=/usr/bin:/bin"}, Network: true}, "cat /etc/resolv.conf")
		if out != string(hostResolv) {
			t.Errorf("EtcDir %q: resolv.conf of a step with network:\n%s\nwant the host's:\n%s", r.EtcDir, out, hostResolv)
		}
	}
}

func TestCannotSignalHost(t *testing.T) {
	t.Parallel()
	ws, _ := layout(t)
	self := os.Getpid()
	res, out := run(t, newBwrap(), Spec{Workspace: ws, Env: []string{"PATH=/usr/bin:/bin"}},
		fmt.Sprintf("kill -9 %d && echo killed; ls /proc | grep -c '^[0-9]'", self))
	if strings.Contains(out, "killed") {
		t.Fatalf("step signalled a process: %q", out)
	}
	// Only the step's own processes are visible: sh, ls, grep and pid 1.
	n, err := strconv.Atoi(strings.TrimSpace(out[strings.LastIndexByte(strings.TrimSpace(out), '\n')+1:]))
	if err != nil || n > 6 || res.ExitCode != 0 {
		t.Errorf("exit %d; pids visible in sandbox: %q", res.ExitCode, out)
	}
}

func TestOutputIsStreamed(t *testing.T) {
	t.Parallel()
	ws, _ := layout(t)
	first := make(chan struct{})
	var once sync.Once
	out := &notifyBuffer{onWrite: func(s string) {
		if strings.Contains(s, "first") {
			once.Do(func() { close(first) })
		}
	}}
	done := make(chan Result, 1)
	go func() {
		res, err := newBwrap().Run(t.Context(), Spec{Workspace: ws, Env: []string{"PATH=/usr/bin:/bin"},
			Stdout: out, Stderr: out, Timeout: time.Minute},
			"echo first; while [ ! -e /workspace/go ]; do sleep 0.02; done; echo second")
		if err != nil {
			t.Error(err)
		}
		done <- res
	}()
	select {
	case <-first:
	case <-time.After(30 * time.Second):
		t.Fatal("first line not seen while the step runs")
	}
	select {
	case <-done:
		t.Fatal("step ended before it was told to")
	default:
	}
	if err := os.WriteFile(filepath.Join(ws, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	res := <-done
	if res.ExitCode != 0 || out.String() != "first\nsecond\n" {
		t.Errorf("exit %d, output %q", res.ExitCode, out.String())
	}
}

type notifyBuffer struct {
	testutil.Buffer
	onWrite func(string)
}

func (n *notifyBuffer) Write(p []byte) (int, error) {
	n.Buffer.Write(p)
	n.onWrite(n.String())
	return len(p), nil
}

// treeStep starts background, setsid'd and double-forked sleepers, each
// carrying marker in its command line, and then blocks.
func treeStep(marker string) string {
	return fmt.Sprintf(`sleep %[1]s & setsid sleep %[1]s & (sleep %[1]s &) ; sh -c 'sleep %[1]s' & echo started; sleep %[1]s`, marker)
}

func uniqueMarker() string {
	return fmt.Sprintf("%d.%d", 900000+time.Now().UnixNano()%99999, os.Getpid()%1000)
}

func TestTimeoutAndCancelKillEveryProcess(t *testing.T) {
	t.Parallel()
	for _, tc := range []string{"timeout", "cancel"} {
		t.Run(tc, func(t *testing.T) {
			ws, _ := layout(t)
			marker := uniqueMarker()
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			spec := Spec{Workspace: ws, Env: []string{"PATH=/usr/bin:/bin"}, Timeout: time.Minute}
			if tc == "timeout" {
				spec.Timeout = 5 * time.Second
			}
			done := make(chan Result, 1)
			go func() {
				res, err := newBwrap().Run(ctx, spec, treeStep(marker))
				if err != nil {
					t.Error(err)
				}
				done <- res
			}()
			testutil.Eventually(t, 30*time.Second, "five sleepers on the host", func() bool { return len(hostProcs(t, marker)) >= 5 })
			if tc == "cancel" {
				cancel()
			}
			var res Result
			select {
			case res = <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("Run did not return after kill")
			}
			if tc == "timeout" && (!res.TimedOut || res.Cancelled) || tc == "cancel" && (!res.Cancelled || res.TimedOut) {
				t.Errorf("result %+v", res)
			}
			if res.ExitCode != -1 {
				t.Errorf("exit code %d, want -1", res.ExitCode)
			}
			// Run promises that nothing is left when it returns.
			if left := hostProcs(t, marker); len(left) != 0 {
				t.Errorf("processes left after Run returned: %v", left)
			}
		})
	}
}

func TestNoProcessLeftAfterNormalExit(t *testing.T) {
	t.Parallel()
	ws, _ := layout(t)
	marker := uniqueMarker()
	res, _ := run(t, newBwrap(), Spec{Workspace: ws, Env: []string{"PATH=/usr/bin:/bin"}},
		fmt.Sprintf(`setsid sleep %[1]s & sleep %[1]s & (sleep %[1]s &); while [ $(pgrep -c -f %[1]s) -lt 3 ]; do sleep 0.02; done; exit 0`, marker))
	if res.ExitCode != 0 {
		t.Fatalf("exit %d", res.ExitCode)
	}
	if left := hostProcs(t, marker); len(left) != 0 {
		t.Errorf("processes left after Run returned: %v", left)
	}
}

// A fork bomb under Limits.Procs stays at the limit and ends by itself; the
// host keeps working.
// Not parallel: it counts every process of the build uid on the host.
func TestForkBombIsContained(t *testing.T) {
	ws, _ := layout(t)
	const procs = 40
	countBuildProcs := func() int {
		n := 0
		entries, _ := os.ReadDir("/proc")
		for _, e := range entries {
			b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "status"))
			if err == nil && bytes.Contains(b, []byte(fmt.Sprintf("\nUid:\t%d\t", buildUID))) {
				n++
			}
		}
		return n
	}
	before := countBuildProcs()
	var peak atomic.Int64
	stop := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			if n := int64(countBuildProcs()); n > peak.Load() {
				peak.Store(n)
			}
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	// Every shell of this bomb waits for its pipeline, so the step's own
	// shell cannot end before a fork has failed somewhere below it: a
	// shell ends only when a fork of its own failed or both its children
	// ended. (A bomb that backgrounds itself lets the step's shell return
	// at once; the sandbox then ends, and kills the bomb, before it may
	// have reached the limit.)
	res, out := run(t, newBwrap(), Spec{Workspace: ws, Env: []string{"PATH=/usr/bin:/bin"},
		Timeout: 30 * time.Second, Limits: Limits{Procs: procs}}, `bomb() { bomb | bomb; }; bomb`)
	close(stop)
	<-watched
	// The bomb burns out on failed forks within a second or so; the
	// timeout only bounds a test that went wrong.
	t.Logf("fork bomb: %+v", res)
	if !strings.Contains(out, "Cannot fork") {
		t.Errorf("no fork failure in output, was the limit in force? %.300q", out)
	}
	// bwrap itself runs outside the limit: one more process.
	if p := peak.Load(); p > int64(before+procs+1) {
		t.Errorf("peak %d processes of uid %d (had %d before), limit %d", p, buildUID, before, procs)
	}
	if len(res.Unenforced) != 0 {
		t.Errorf("Unenforced = %q", res.Unenforced)
	}
	testutil.Eventually(t, 30*time.Second, "build uid processes to be gone", func() bool { return countBuildProcs() <= before })
	// The host still forks.
	if _, out := run(t, newBwrap(), Spec{Workspace: ws}, "echo alive"); out != "alive\n" {
		t.Errorf("after the bomb: %q", out)
	}
}

func TestFileSizeLimit(t *testing.T) {
	t.Parallel()
	ws, _ := layout(t)
	res, _ := run(t, newBwrap(), Spec{Workspace: ws, Env: []string{"PATH=/usr/bin:/bin"}, Limits: Limits{FileSize: 1 << 20, Files: 32}},
		"head -c 3000000 /dev/zero > big")
	fi, err := os.Stat(filepath.Join(ws, "big"))
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode == 0 || fi.Size() > 1<<20 {
		t.Errorf("exit %d, file %d bytes; want failure at 1 MiB", res.ExitCode, fi.Size())
	}
}

func TestCacheAndUnenforcedMemory(t *testing.T) {
	t.Parallel()
	ws, _ := layout(t)
	cache := filepath.Join(filepath.Dir(ws), "cache")
	if err := os.Mkdir(cache, 0o755); err != nil {
		t.Fatal(err)
	}
	res, _ := run(t, newBwrap(), Spec{Workspace: ws, Cache: cache, Env: []string{"PATH=/usr/bin:/bin"},
		Limits: Limits{Memory: 1 << 30}}, "echo kept > /cache/f && echo made > out")
	if b, err := os.ReadFile(filepath.Join(cache, "f")); err != nil || string(b) != "kept\n" || res.ExitCode != 0 {
		t.Errorf("cache file %q, %v; exit %d", b, err, res.ExitCode)
	}
	if len(res.Unenforced) != 1 || !strings.HasPrefix(res.Unenforced[0], "memory:") {
		t.Errorf("Unenforced = %q, want the memory limit listed", res.Unenforced)
	}
}

func TestRunErrors(t *testing.T) {
	t.Parallel()
	if _, err := newBwrap().Run(t.Context(), Spec{Workspace: filepath.Join(t.TempDir(), "missing")}, "true"); err == nil {
		t.Error("missing workspace accepted")
	}
	ws, _ := layout(t)
	if _, err := (&Bwrap{Path: "/nonexistent/bwrap"}).Run(t.Context(), Spec{Workspace: ws}, "true"); err == nil {
		t.Error("missing bwrap accepted")
	}
}

func TestNone(t *testing.T) {
	t.Parallel()
	ws := t.TempDir()
	marker := uniqueMarker()
	env := []string{"PATH=/usr/bin:/bin", "ONLY=this"}
	res, out := run(t, None{}, Spec{Workspace: ws, Env: env}, "env; pwd; exit 3")
	if res.ExitCode != 3 || !strings.Contains(out, "ONLY=this\n") || strings.Contains(out, "GOROOT") && !slices.ContainsFunc(env, func(s string) bool { return strings.HasPrefix(s, "GOROOT") }) || !strings.HasSuffix(out, ws+"\n") {
		t.Errorf("exit %d, output %q", res.ExitCode, out)
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if strings.Contains(line, "=") && !slices.Contains(append(env, "PWD="+ws), line) {
			t.Errorf("unexpected variable %q", line)
		}
	}
	res, _ = run(t, None{}, Spec{Workspace: ws, Env: env, Timeout: time.Second},
		fmt.Sprintf("sleep %[1]s & (sleep %[1]s &); sleep %[1]s", marker))
	if !res.TimedOut {
		t.Errorf("result %+v", res)
	}
	if left := hostProcs(t, marker); len(left) != 0 {
		t.Errorf("processes left: %v", left)
	}
}

// A sandbox with a prepared /etc sees the allowed files, and nothing else of
// the host's /etc.
func TestPreparedEtc(t *testing.T) {
	t.Parallel()
	etc := searchableTemp(t, "etc")
	if err := PrepareEtc(etc); err != nil {
		t.Fatal(err)
	}
	// Again, over the first copy: it is replaced, not merged.
	if err := PrepareEtc(etc); err != nil {
		t.Fatal(err)
	}
	ws := t.TempDir()
	searchable(t, ws)
	var out strings.Builder
	r := &Bwrap{UID: buildUID, GID: buildUID, EtcDir: etc}
	res, err := r.Run(t.Context(), Spec{Workspace: ws, Env: []string{"PATH=/usr/bin:/bin"}, Stdout: &out, Stderr: &out},
		`grep -q '^root:' /etc/passwd && test -e /etc/ld.so.cache && test ! -e /etc/shadow && test ! -e /etc/ssh && echo ok`)
	if err != nil || res.ExitCode != 0 || strings.TrimSpace(out.String()) != "ok" {
		t.Fatalf("prepared /etc: %v, exit %d, output %q", err, res.ExitCode, out.String())
	}
}

// A step over its memory limit is killed by the kernel, and the result says
// so; the same step with room passes. The whole process tree counts, not
// each process.
func TestMemoryLimit(t *testing.T) {
	// Not parallel: it checks that no step cgroup of this process is left,
	// and the parallel tests' steps have theirs while they run (a CI run
	// found one). Sequential tests run before any parallel one starts.
	cg, err := DetectCgroups()
	if err != nil {
		t.Fatalf("this host offers no memory cgroup (CI must): %v", err)
	}
	ws := t.TempDir()
	searchable(t, ws)
	r := &Bwrap{UID: buildUID, GID: buildUID, Cgroups: cg}
	// Two shells holding 40 MB each: 80 MB in all.
	step := `hold() { x=$(head -c 40000000 /dev/zero | tr '\0' a); sleep 1; echo ${#x}; }; hold & hold; wait`
	run := func(limit int64) (Result, string) {
		var out strings.Builder
		res, err := r.Run(t.Context(), Spec{Workspace: ws, Env: []string{"PATH=/usr/bin:/bin"}, Stdout: &out, Stderr: &out,
			Timeout: time.Minute, Limits: Limits{Memory: limit}}, step)
		if err != nil {
			t.Fatalf("run with %d bytes: %v", limit, err)
		}
		return res, out.String()
	}
	res, out := run(48 << 20)
	if !res.OutOfMemory || slices.Contains(res.Unenforced, "memory") {
		t.Fatalf("80 MB under a 48 MiB limit: exit %d, out of memory %v, unenforced %v\n%s", res.ExitCode, res.OutOfMemory, res.Unenforced, out)
	}
	res, out = run(512 << 20)
	if res.ExitCode != 0 || res.OutOfMemory || strings.Count(out, "40000000") != 2 {
		t.Fatalf("80 MB under a 512 MiB limit: exit %d, out of memory %v\n%s", res.ExitCode, res.OutOfMemory, out)
	}
	// The step cgroups are gone.
	left, _ := filepath.Glob(filepath.Join(cg.parent, fmt.Sprintf("%s%d-*", stepPrefix, os.Getpid())))
	if len(left) != 0 {
		t.Fatalf("step cgroups left behind: %v", left)
	}
}
