package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// selfTestDir is a build folder the build uid can reach.
func selfTestDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "work")
	if err := os.Mkdir(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	searchable(t, dir)
	return dir
}

// findingsByName checks that the self-test reported each of its checks
// once, and returns them by name.
func findingsByName(t *testing.T, fs []Finding) map[string]Finding {
	t.Helper()
	m := map[string]Finding{}
	for _, f := range fs {
		t.Logf("%v %s", f.Holds, f)
		if _, dup := m[f.Name]; dup {
			t.Errorf("finding %q reported twice", f.Name)
		}
		m[f.Name] = f
	}
	for _, name := range []string{"sandbox", "namespaces", "network", "limits", "memory"} {
		if _, ok := m[name]; !ok {
			t.Errorf("no finding %q in %v", name, fs)
		}
	}
	return m
}

// checkIsolation asserts what every working sandbox reports, and that the
// self-test cleaned up after itself.
func checkIsolation(t *testing.T, m map[string]Finding, dir string, uid int) {
	t.Helper()
	if f := m["sandbox"]; !strings.Contains(f.Detail, fmt.Sprintf("steps run as host uid %d", uid)) {
		t.Errorf("sandbox finding %q does not name uid %d", f.Detail, uid)
	}
	ns := m["namespaces"]
	for _, name := range []string{"user", "pid", "mount", "network"} {
		if !ns.Holds || !strings.Contains(ns.Detail, name) {
			t.Errorf("namespaces finding %+v lacks its own %s namespace", ns, name)
		}
	}
	if n := m["network"]; !n.Holds || !strings.Contains(n.Detail, "only loopback") ||
		!strings.Contains(n.Detail, "Network is unreachable") || !strings.Contains(n.Detail, "name lookups fail") {
		t.Errorf("network finding %+v", n)
	}
	left, err := os.ReadDir(dir)
	if err != nil || len(left) != 0 {
		t.Errorf("the self-test left %v in the build folder (%v)", left, err)
	}
}

func TestSelfTestReportsWhatHolds(t *testing.T) {
	t.Parallel()
	needRoot(t, "the build uid and a memory cgroup need root; TestSelfTestAsNonRoot covers the rest")
	cg, err := DetectCgroups()
	if err != nil {
		t.Fatalf("this host offers no memory cgroup (CI must): %v", err)
	}
	dir := selfTestDir(t)
	r := &Bwrap{UID: buildUID, GID: buildUID, Cgroups: cg}
	fs, err := r.SelfTest(t.Context(), SelfTestOptions{Dir: dir, Limits: Limits{Procs: 100, FileSize: 3 << 20, Files: 200, Memory: 256 << 20,
		Tmp: 5 << 20, Workspace: 7 << 20}, MaxArtifactBytes: 9 << 20})
	m := findingsByName(t, fs)
	if err != nil {
		t.Fatal(err)
	}
	checkIsolation(t, m, dir, buildUID)
	// The words every build log uses, each limit as the step saw it.
	if l := m["limits"]; !l.Holds || l.Detail != "in force: processes 100, file size 3 MiB, open files 200, memory 256 MiB, /tmp 5 MiB, workspace 7 MiB, artifacts 9 MiB" {
		t.Errorf("limits finding %+v", l)
	}
	if mem := m["memory"]; !mem.Holds || !strings.HasPrefix(mem.Detail, "limit 256 MiB in force (cgroup") {
		t.Errorf("memory finding %+v", mem)
	}

	// The same sandbox with host root in it: the process limit cannot hold,
	// and without a cgroup the memory limit cannot either.
	fs, err = (&Bwrap{}).SelfTest(t.Context(), SelfTestOptions{Dir: dir, Limits: Limits{Procs: 100, FileSize: 3 << 20, Memory: 256 << 20}})
	m = findingsByName(t, fs)
	if err != nil {
		t.Fatal(err)
	}
	checkIsolation(t, m, dir, 0)
	if l := m["limits"]; l.Holds || !strings.Contains(l.Detail, "NOT in force: processes 100 (steps run as host root") ||
		!strings.Contains(l.Detail, "memory 256 MiB (no memory cgroup") ||
		!strings.Contains(l.Detail, "in force: file size 3 MiB") || !strings.Contains(l.Detail, "not set: open files, /tmp, workspace, artifacts") {
		t.Errorf("limits finding as host root %+v", l)
	}
	if mem := m["memory"]; mem.Holds || !strings.Contains(mem.Detail, "no memory cgroup") {
		t.Errorf("memory finding without cgroups %+v", mem)
	}
}

// A daemon on an ordinary account, as a newcomer runs it: steps run as the
// daemon's own uid, in namespaces that uid may make.
func TestSelfTestAsNonRoot(t *testing.T) {
	t.Parallel()
	if !asNonRoot(t) {
		return
	}
	dir := selfTestDir(t)
	fs, err := (&Bwrap{}).SelfTest(t.Context(), SelfTestOptions{Dir: dir, Limits: Limits{Procs: 100, FileSize: 3 << 20, Tmp: 5 << 20}})
	m := findingsByName(t, fs)
	if err != nil {
		t.Fatal(err)
	}
	checkIsolation(t, m, dir, os.Geteuid())
	if l := m["limits"]; !l.Holds || l.Detail != "in force: processes 100, file size 3 MiB, /tmp 5 MiB; not set: open files, memory, workspace, artifacts" {
		t.Errorf("limits finding %+v", l)
	}
	if mem := m["memory"]; !mem.Holds || !strings.Contains(mem.Detail, "no memory cgroup") {
		t.Errorf("memory finding with no limit asked and no cgroup given %+v", mem)
	}
}

// oneLine asserts that err is a *SetupError whose message is one line
// holding each of wants.
func oneLine(t *testing.T, err error, wants ...string) {
	t.Helper()
	var se *SetupError
	if !errors.As(err, &se) {
		t.Fatalf("error %v (%T) is not a *SetupError", err, err)
	}
	msg := err.Error()
	t.Logf("message: %s", msg)
	if strings.Contains(msg, "\n") || se.Problem == "" || se.Fix == "" {
		t.Errorf("not one line with a problem and a fix: %q", msg)
	}
	for _, w := range wants {
		if !strings.Contains(msg, w) {
			t.Errorf("message %q does not say %q", msg, w)
		}
	}
}

func TestSelfTestWithoutBwrap(t *testing.T) {
	_, err := (&Bwrap{Path: "/nonexistent/bwrap"}).SelfTest(t.Context(), SelfTestOptions{Dir: selfTestDir(t), Limits: Limits{}})
	oneLine(t, err, "bubblewrap is not installed at /nonexistent/bwrap", "apt-get install bubblewrap")

	t.Setenv("PATH", t.TempDir())
	_, err = (&Bwrap{}).SelfTest(t.Context(), SelfTestOptions{Dir: selfTestDir(t), Limits: Limits{}})
	oneLine(t, err, "bubblewrap is not installed (no bwrap in PATH)", "apt-get install bubblewrap")
}

func TestSelfTestBuildFolderUnreachable(t *testing.T) {
	t.Parallel()
	needRoot(t, "steps run as another uid only when the daemon is root")
	closed := searchableTemp(t, "closed")
	dir := filepath.Join(closed, "build", "work")
	if err := os.MkdirAll(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(closed, 0o700); err != nil {
		t.Fatal(err)
	}
	_, err := newBwrap().SelfTest(t.Context(), SelfTestOptions{Dir: dir, Limits: Limits{}})
	oneLine(t, err, fmt.Sprintf("build uid %d cannot reach the build folder %s", buildUID, dir), "chmod o+x "+closed)
	if !errors.Is(err, ErrFolderUnreachable) {
		t.Errorf("%v is not ErrFolderUnreachable", err)
	}

	// The same folder given to the build uid's group is reachable.
	if err := os.Chown(closed, 0, buildUID); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(closed, 0o710); err != nil {
		t.Fatal(err)
	}
	if _, err := newBwrap().SelfTest(t.Context(), SelfTestOptions{Dir: dir, Limits: Limits{}}); err != nil {
		t.Errorf("folder searchable by the build gid: %v", err)
	}
}

// With user namespaces switched off (here in a user namespace of the test's
// own, so the host's setting stays), the self-test names the sysctl.
func TestSelfTestUserNamespacesDisabled(t *testing.T) {
	t.Parallel()
	if !inOwnUserNamespace(t) {
		return
	}
	if err := os.WriteFile("/proc/sys/user/max_user_namespaces", []byte("0\n"), 0); err != nil {
		t.Fatal(err)
	}
	_, err := (&Bwrap{}).SelfTest(t.Context(), SelfTestOptions{Dir: selfTestDir(t), Limits: Limits{}})
	oneLine(t, err, "user.max_user_namespaces = 0", "sysctl -w user.max_user_namespaces=")
}

// The sysctls of other distributions, which this host does not have.
func TestUsernsAdvice(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		sysctls map[string]string
		want    string
	}{
		{map[string]string{"kernel.apparmor_restrict_unprivileged_userns": "1", "user.max_user_namespaces": "1000"},
			"sysctl -w kernel.apparmor_restrict_unprivileged_userns=0"},
		{map[string]string{"kernel.unprivileged_userns_clone": "0", "user.max_user_namespaces": "1000"},
			"sysctl -w kernel.unprivileged_userns_clone=1"},
		{map[string]string{"kernel.unprivileged_userns_clone": "1", "user.max_user_namespaces": "0"},
			"sysctl -w user.max_user_namespaces="},
		{map[string]string{"user.max_user_namespaces": "1000"}, "allow unprivileged user namespaces"},
	} {
		err := usernsError("bwrap: setting up uid map: Permission denied", errors.New("exit 1"), func(name string) (string, bool) {
			v, ok := tc.sysctls[name]
			return v, ok
		})
		oneLine(t, err, tc.want)
	}
}

// A step with the host's network is what the self-test must refuse to call
// isolated: its report of such a step fails.
func TestSelfTestRefusesSharedNetwork(t *testing.T) {
	t.Parallel()
	host, err := os.ReadFile("/proc/net/dev")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(string(host), ":") < 2 {
		t.Skip("the host has no interface but loopback, like a step without network")
	}
	ws, _ := layout(t)
	_, out := run(t, newBwrap(), Spec{Workspace: ws, Env: []string{"PATH=/usr/bin:/bin"}, Network: true}, probeScript)
	f, err := networkFinding(parseProbe(out))
	if err == nil || f.Holds {
		t.Errorf("a step with the host's network passed as offline: %+v, %v\n%s", f, err, out)
	}
}
