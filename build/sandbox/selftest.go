package sandbox

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"slipway/build/executor"
)

// Finding is one property of the sandbox that SelfTest checked.
type Finding struct {
	// Name is what was checked: "sandbox", "namespaces", "network",
	// "limits" or "memory".
	Name string
	// Holds says whether it is in force as builds need it.
	Holds bool
	// Detail says what was seen, for people.
	Detail string
}

func (f Finding) String() string { return f.Name + ": " + f.Detail }

// SetupError says why the sandbox cannot run builds on this host, and what
// an administrator does about it, in one line.
type SetupError struct {
	// Problem is what is missing.
	Problem string
	// Fix is what to do about it.
	Fix string
	// Err is the error behind Problem, if any, for the log.
	Err error
}

func (e *SetupError) Error() string { return e.Problem + "; " + e.Fix }

func (e *SetupError) Unwrap() error { return e.Err }

// ErrFolderUnreachable is behind a SetupError when the build uid cannot
// reach the folder builds are made in.
var ErrFolderUnreachable = errors.New("build folder not reachable by the build uid")

// probeAddr is where the self-test tries to connect from a step without
// network: TEST-NET-1 (RFC 5737), never routed. The attempt is made only
// when the step sees no interface but loopback, so nothing is ever sent.
const probeAddr = "192.0.2.1"

// failsAtOnce is how quickly a lookup or a connection must fail in a step
// without network: a tool that waits longer on each of many requests makes
// an offline build take minutes to say so.
const failsAtOnce = time.Second

// probeScript is the self-test's step. It prints lines "key value...",
// and tries the network only when it sees nothing but loopback.
const probeScript = `for n in user pid mnt net ipc uts cgroup; do echo "ns $n $(readlink /proc/self/ns/$n)"; done
ifs=$(sed -n '3,$s/^ *\([^:]*\):.*/\1/p' /proc/net/dev | tr '\n' ' ')
echo "ifs $ifs"
sed 's/^/limit /' /proc/self/limits
echo "tmp $(stat -f -c '%b %S' /tmp)"
for d in / /dev; do (: > "$d/.slipway-probe") 2>/dev/null && echo "writable $d"; done
if [ "$ifs" = "lo " ]; then
	if command -v bash >/dev/null; then
		t0=$(date +%s%N)
		msg=$(bash -c 'exec 3<>/dev/tcp/` + probeAddr + `/80' 2>&1 | head -n 1)
		t1=$(date +%s%N)
		echo "tcp $(( (t1 - t0) / 1000000 )) ${msg##*: }"
	fi
	t0=$(date +%s%N)
	getent hosts example.com >/dev/null 2>&1 && echo "dns-resolved"
	t1=$(date +%s%N)
	echo "dns $(( (t1 - t0) / 1000000 ))"
fi
echo done
`

// SelfTestOptions say how builds run, for SelfTest to run its step the
// same way.
type SelfTestOptions struct {
	// Dir is the folder build workspaces are made in.
	Dir string
	// Limits are those of every step; MaxArtifactBytes the artifacts' cap.
	Limits           Limits
	MaxArtifactBytes int64
	// IDs, if set, are the uids builds run as (Local.IDs): the step runs
	// as one of them, and the findings name the range.
	IDs *IDPool
}

// SelfTest runs a trivial step in the sandbox exactly as builds run it: as
// a build uid, in a workspace with a cache and a home made under o.Dir,
// with no network and under the limits. o.Dir should be the folder build
// workspaces are made in, because whether the build uid can reach it is
// part of the test; the step's folders are removed again. It reports what holds: the
// namespaces, that the network is off and fails at once, the limits (the
// rlimits and the size of /tmp as the step saw them, the memory cgroup,
// the workspace's and the artifacts' caps, which Local holds), in the
// words every build log uses (executor.DescribeLimits), and whether a
// memory cgroup limits the step.
//
// When steps cannot run here, or run without their namespaces or with the
// host's network, the error is a *SetupError; the findings are then the
// ones made before it.
func (r *Bwrap) SelfTest(ctx context.Context, o SelfTestOptions) ([]Finding, error) {
	dir, limits, maxArtifacts := o.Dir, o.Limits, o.MaxArtifactBytes
	path := r.Path
	if path == "" {
		path = "bwrap"
	}
	bin, err := exec.LookPath(path)
	if err != nil {
		problem := "bubblewrap is not installed (no bwrap in PATH)"
		if r.Path != "" {
			problem = "bubblewrap is not installed at " + r.Path
		}
		return nil, &SetupError{Problem: problem, Fix: "install it: apt-get install bubblewrap", Err: err}
	}
	uid, gid := r.UID, r.GID
	runAs := fmt.Sprintf("steps run as host uid %d", uid)
	if os.Geteuid() == 0 && o.IDs != nil {
		id, release, err := o.IDs.Lease(ctx, "", -1)
		if err != nil {
			return nil, err
		}
		defer release()
		uid, gid = id, id
		first, count := o.IDs.Range()
		runAs = fmt.Sprintf("steps run as host uids %d-%d, one per running build (this one as %d)", first, first+count-1, uid)
	}
	dropRoot := os.Geteuid() == 0 && uid > 0
	if !dropRoot {
		uid = os.Geteuid()
		runAs = fmt.Sprintf("steps run as host uid %d", uid)
	}
	var findings []Finding
	findings = append(findings, Finding{Name: "sandbox", Holds: true,
		Detail: fmt.Sprintf("%s (%s), %s", bin, bwrapVersion(ctx, bin), runAs)})
	if dropRoot {
		if blocked, mode := UnreachableBy(dir, uid, gid); blocked != "" {
			return findings, &SetupError{
				Problem: fmt.Sprintf("build uid %d cannot reach the build folder %s: %s is mode %04o", uid, dir, blocked, mode),
				Fix:     "let others search it: chmod o+x " + blocked,
				Err:     ErrFolderUnreachable,
			}
		}
	}

	base, err := os.MkdirTemp(dir, "selftest-")
	if err != nil {
		return findings, &SetupError{Problem: "cannot make a step's folders in " + dir, Fix: "check that the daemon may write there", Err: err}
	}
	defer removeTree(base)
	if err := os.Chmod(base, 0o711); err != nil {
		return findings, fmt.Errorf("self-test folder: %w", err)
	}
	spec := Spec{Limits: limits, Timeout: 30 * time.Second}
	if dropRoot {
		spec.UID, spec.GID = uid, gid
	}
	for _, d := range []struct {
		field *string
		name  string
	}{{&spec.Workspace, "workspace"}, {&spec.Cache, "cache"}, {&spec.Home, "home"}} {
		*d.field = filepath.Join(base, d.name)
		if err := os.Mkdir(*d.field, 0o700); err != nil {
			return findings, fmt.Errorf("self-test folder: %w", err)
		}
	}
	l := r.Layout(spec)
	spec.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + l.Home, "TMPDIR=" + l.Tmp}
	var out syncWriter
	spec.Stdout, spec.Stderr = &out, &out
	res, err := r.Run(ctx, spec, probeScript)
	text := out.String()
	if err != nil || res.TimedOut || res.Cancelled {
		if err == nil {
			err = fmt.Errorf("the step did not end within %s", spec.Timeout)
		}
		return findings, setupFailure(err, text, dropRoot, uid, dir, readSysctl)
	}
	if res.ExitCode != 0 || !strings.HasSuffix(text, "done\n") {
		return findings, &SetupError{
			Problem: fmt.Sprintf("a trivial step failed in the sandbox (exit %d): %s", res.ExitCode, firstLine(text)),
			Fix:     "run the daemon with a debug log and report it",
			Err:     errors.New(strings.TrimSpace(text)),
		}
	}
	seen := parseProbe(text)

	ns, err := namespaceFinding(seen)
	findings = append(findings, ns)
	if err != nil {
		return findings, err
	}
	netF, err := networkFinding(seen)
	findings = append(findings, netF)
	if err != nil {
		return findings, err
	}
	findings = append(findings, limitsFinding(seen, limits, maxArtifacts, res.Unenforced), r.memoryFinding(limits, res.Unenforced))
	return findings, nil
}

// syncWriter collects a step's stdout and stderr, which two goroutines
// may write at once.
type syncWriter struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// probeOutput is what the self-test's step printed.
type probeOutput struct {
	ns         map[string]string // namespace name: "user:[4026531837]"
	interfaces []string
	limits     map[string][2]string // "Max processes": soft, hard
	tcpTried   bool
	tcpMillis  int
	tcpMsg     string
	dnsTried   bool
	dnsMillis  int
	dnsResolve bool
	tmpBytes   int64    // size of the step's /tmp
	writable   []string // of "/" and "/dev", those a step could write
}

func parseProbe(text string) probeOutput {
	p := probeOutput{ns: map[string]string{}, limits: map[string][2]string{}}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		key, rest, _ := strings.Cut(sc.Text(), " ")
		switch key {
		case "ns":
			name, id, _ := strings.Cut(rest, " ")
			p.ns[name] = id
		case "ifs":
			p.interfaces = strings.Fields(rest)
		case "limit":
			// "Max open files            1024                 1024                 files"
			if len(rest) > 26 && strings.HasPrefix(rest, "Max ") {
				f := strings.Fields(rest[26:])
				if len(f) >= 2 {
					p.limits[strings.TrimSpace(rest[:26])] = [2]string{f[0], f[1]}
				}
			}
		case "tcp":
			ms, msg, _ := strings.Cut(rest, " ")
			p.tcpTried = true
			p.tcpMillis, _ = strconv.Atoi(ms)
			p.tcpMsg = msg
		case "dns":
			p.dnsTried = true
			p.dnsMillis, _ = strconv.Atoi(rest)
		case "dns-resolved":
			p.dnsResolve = true
		case "tmp":
			f := strings.Fields(rest)
			if len(f) == 2 {
				blocks, _ := strconv.ParseInt(f[0], 10, 64)
				size, _ := strconv.ParseInt(f[1], 10, 64)
				p.tmpBytes = blocks * size
			}
		case "writable":
			p.writable = append(p.writable, rest)
		}
	}
	return p
}

// namespaceFinding compares the step's namespaces with the daemon's. The
// user, PID, mount and network namespaces are what keeps a step from the
// host; without any of them the sandbox is refused.
func namespaceFinding(p probeOutput) (Finding, error) {
	names := []struct{ ns, label string }{
		{"user", "user"}, {"pid", "pid"}, {"mnt", "mount"}, {"net", "network"},
		{"ipc", "ipc"}, {"uts", "uts"}, {"cgroup", "cgroup"},
	}
	var own, shared []string
	var missing []string
	for _, n := range names {
		host, err := os.Readlink("/proc/self/ns/" + n.ns)
		step := p.ns[n.ns]
		if err == nil && step != "" && step != host {
			own = append(own, n.label)
			continue
		}
		shared = append(shared, n.label)
		if slices.Contains([]string{"user", "pid", "mnt", "net"}, n.ns) {
			missing = append(missing, n.label)
		}
	}
	f := Finding{Name: "namespaces", Holds: len(shared) == 0, Detail: "own " + strings.Join(own, ", ")}
	if len(shared) > 0 {
		f.Detail += "; shared with the host: " + strings.Join(shared, ", ")
	}
	if len(missing) > 0 {
		return f, &SetupError{
			Problem: "build steps share the host's " + strings.Join(missing, ", ") + " namespace",
			Fix:     "update bubblewrap (apt-get install bubblewrap) and allow it to create namespaces",
		}
	}
	return f, nil
}

// networkFinding checks that a step without network sees only loopback and
// that connections and name lookups fail at once.
func networkFinding(p probeOutput) (Finding, error) {
	f := Finding{Name: "network"}
	if len(p.interfaces) != 1 || p.interfaces[0] != "lo" {
		f.Detail = "on: a step without network sees the interfaces " + strings.Join(p.interfaces, ", ")
		return f, &SetupError{Problem: "build steps without network see the host's network", Fix: "update bubblewrap (apt-get install bubblewrap)"}
	}
	f.Holds = true
	parts := []string{"off (only loopback)"}
	switch {
	case !p.tcpTried:
		parts = append(parts, "connections not tried (no bash)")
	case p.tcpMsg == "":
		f.Holds = false
		parts = append(parts, "a connection to "+probeAddr+" did not fail")
	default:
		parts = append(parts, fmt.Sprintf("a connection to %s fails in %d ms (%s)", probeAddr, p.tcpMillis, p.tcpMsg))
		if time.Duration(p.tcpMillis)*time.Millisecond > failsAtOnce {
			f.Holds = false
		}
	}
	switch {
	case !p.dnsTried:
	case p.dnsResolve:
		f.Holds = false
		parts = append(parts, "a name lookup succeeded")
	default:
		parts = append(parts, fmt.Sprintf("name lookups fail in %d ms", p.dnsMillis))
		if time.Duration(p.dnsMillis)*time.Millisecond > failsAtOnce {
			f.Holds = false
		}
	}
	f.Detail = strings.Join(parts, "; ")
	return f, nil
}

// limitsFinding checks the limits the step saw (its rlimits, the size of
// its /tmp, and that it could not write where no limit holds) against
// those asked for, and says them as every build log does.
func limitsFinding(p probeOutput, l Limits, maxArtifacts int64, unenforced []string) Finding {
	unenforced = slices.Clone(unenforced)
	has := func(name string) bool {
		return slices.ContainsFunc(unenforced, func(u string) bool { return strings.HasPrefix(u, name+":") })
	}
	check := func(name, row string, want int64) {
		if want <= 0 || has(name) {
			return
		}
		got := p.limits[row]
		if w := strconv.FormatInt(want, 10); got[0] != w || got[1] != w {
			unenforced = append(unenforced, fmt.Sprintf("%s: the step had %s", name, got[0]))
		}
	}
	check(executor.LimitProcesses, "Max processes", int64(l.Procs))
	check(executor.LimitFileSize, "Max file size", l.FileSize)
	check(executor.LimitOpenFiles, "Max open files", int64(l.Files))
	if l.Tmp > 0 && !has(executor.LimitTmp) {
		// tmpfs rounds its size up to whole pages.
		if p.tmpBytes < l.Tmp || p.tmpBytes >= l.Tmp+int64(os.Getpagesize()) {
			unenforced = append(unenforced, fmt.Sprintf("%s: the step's /tmp holds %s", executor.LimitTmp, executor.FormatBytes(p.tmpBytes)))
		}
	}
	if len(p.writable) > 0 && !has(executor.LimitTmp) {
		unenforced = append(unenforced, fmt.Sprintf("%s: the step could write to %s, which no size holds", executor.LimitTmp, strings.Join(p.writable, " and ")))
	}
	detail := executor.DescribeLimits(executor.Limits{
		Procs: l.Procs, FileSize: l.FileSize, Files: l.Files, Memory: l.Memory, Tmp: l.Tmp, Workspace: l.Workspace,
	}, maxArtifacts, unenforced)
	return Finding{Name: "limits", Holds: !strings.Contains(detail, "NOT in force"), Detail: detail}
}

func (r *Bwrap) memoryFinding(l Limits, unenforced []string) Finding {
	f := Finding{Name: "memory"}
	switch {
	case r.Cgroups == nil:
		f.Detail = "no memory cgroup the daemon may use on this host (it needs root, or a delegated cgroup v2 with the memory controller): steps have no memory limit"
		f.Holds = l.Memory == 0
	case l.Memory == 0:
		f.Holds = true
		f.Detail = r.Cgroups.String() + " available; no limit set"
	case slices.ContainsFunc(unenforced, func(u string) bool { return strings.HasPrefix(u, executor.LimitMemory+":") }):
		f.Detail = "limit not in force"
	default:
		f.Holds = true
		f.Detail = fmt.Sprintf("limit %s in force (%s)", executor.FormatBytes(l.Memory), r.Cgroups)
	}
	return f
}

// setupFailure turns a step that could not run into the one thing to fix.
func setupFailure(err error, out string, dropRoot bool, uid int, dir string, sysctl func(string) (string, bool)) *SetupError {
	msg := firstLine(out)
	if msg == "" {
		msg = err.Error()
	}
	lower := strings.ToLower(out)
	switch {
	case strings.Contains(lower, "namespace") || strings.Contains(lower, "uid map") ||
		strings.Contains(lower, "operation not permitted") && strings.Contains(lower, "loopback"):
		return usernsError(msg, err, sysctl)
	case dropRoot && strings.Contains(lower, "permission denied"):
		return &SetupError{
			Problem: fmt.Sprintf("build uid %d cannot use the build folder %s: %s", uid, dir, msg),
			Fix:     "let that uid search every folder above it (chmod o+x) or build in a folder every user may search",
			Err:     fmt.Errorf("%w: %w", ErrFolderUnreachable, err),
		}
	}
	return &SetupError{Problem: "bubblewrap cannot set up the sandbox: " + msg, Fix: "run the daemon with a debug log and report it", Err: err}
}

// usernsError says which setting keeps bwrap from making a user namespace.
// sysctl reads a kernel setting by its dotted name.
func usernsError(msg string, err error, sysctl func(string) (string, bool)) *SetupError {
	const keep = " (and in /etc/sysctl.d/ to keep it)"
	e := &SetupError{Problem: "bubblewrap cannot create user namespaces here (" + msg + ")", Err: err}
	if v, ok := sysctl("kernel.apparmor_restrict_unprivileged_userns"); ok && v == "1" {
		e.Problem = "AppArmor forbids unprivileged user namespaces (Ubuntu 23.10 and later)"
		e.Fix = "allow them: sysctl -w kernel.apparmor_restrict_unprivileged_userns=0" + keep
		return e
	}
	if v, ok := sysctl("kernel.unprivileged_userns_clone"); ok && v == "0" {
		e.Problem = "unprivileged user namespaces are disabled"
		e.Fix = "enable them: sysctl -w kernel.unprivileged_userns_clone=1" + keep
		return e
	}
	if v, ok := sysctl("user.max_user_namespaces"); ok && v == "0" {
		e.Problem = "user namespaces are disabled (user.max_user_namespaces = 0)"
		e.Fix = "allow them: sysctl -w user.max_user_namespaces=10000" + keep
		return e
	}
	e.Fix = "allow unprivileged user namespaces on this host (in a container: let the container create them)"
	return e
}

func readSysctl(name string) (string, bool) {
	b, err := os.ReadFile("/proc/sys/" + strings.ReplaceAll(name, ".", "/"))
	if err != nil {
		return "", false
	}
	return strings.TrimSpace(string(b)), true
}

// UnreachableBy returns the first folder from / down to dir that uid:gid
// (with no supplementary groups, as steps run) may not search, and its
// mode; "" when dir can be reached, or when a folder does not exist yet
// (the daemon creates it later, searchable). uid and gid -1 stand for any
// user who neither owns a folder nor is in its group, as the uids of a
// build.uid_range are.
func UnreachableBy(dir string, uid, gid int) (string, os.FileMode) {
	var chain []string
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		chain = append(chain, d)
		if d == filepath.Dir(d) {
			break
		}
	}
	for i := len(chain) - 1; i >= 0; i-- {
		fi, err := os.Stat(chain[i])
		if err != nil {
			return "", 0
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return "", 0
		}
		perm := fi.Mode().Perm()
		var x os.FileMode
		switch {
		case int(st.Uid) == uid:
			x = perm & 0o100
		case int(st.Gid) == gid:
			x = perm & 0o010
		default:
			x = perm & 0o001
		}
		if x == 0 {
			return chain[i], perm
		}
	}
	return "", 0
}

func bwrapVersion(ctx context.Context, bin string) string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--version")
	cmd.Env = []string{}
	out, err := cmd.Output()
	if err != nil {
		return "version unknown"
	}
	return strings.TrimSpace(string(out))
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	line, _, _ := strings.Cut(s, "\n")
	return line
}
