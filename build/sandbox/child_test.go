package sandbox

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
)

// otherUID is the unprivileged uid tests run as when they must not be root
// (root reads every file and may make namespaces whatever the sysctls say).
// It need not have a passwd entry.
const otherUID = 1001

// childEnv names the test a child process started by inChild is to run.
const childEnv = "SLIPWAY_SANDBOX_TEST_CHILD"

// asNonRoot reports whether the calling test is to run its body here: yes
// in a process that is not root. As root it runs the test again as
// otherUID in a child process, fails the test if the child failed, and
// says no.
func asNonRoot(t *testing.T) bool {
	t.Helper()
	if os.Getenv(childEnv) == t.Name() || os.Geteuid() != 0 {
		return true
	}
	inChild(t, &syscall.SysProcAttr{
		Credential: &syscall.Credential{Uid: otherUID, Gid: otherUID, Groups: []uint32{}},
	})
	return false
}

// inOwnUserNamespace reports whether the calling test is to run its body
// here: yes in the child, which runs as root of a user namespace of its
// own (mapped to otherUID, or to the caller when that is not root), where
// it may change the namespace's sysctls without touching the host's.
func inOwnUserNamespace(t *testing.T) bool {
	t.Helper()
	if os.Getenv(childEnv) == t.Name() {
		return true
	}
	host := os.Getuid()
	if host == 0 {
		host = otherUID
	}
	gid := os.Getgid()
	if gid == 0 {
		gid = otherUID
	}
	inChild(t, &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: host, Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: gid, Size: 1}},
		// Ids of the new namespace: the child becomes its root, which
		// keeps its capabilities there across exec.
		Credential: &syscall.Credential{Uid: 0, Gid: 0, NoSetGroups: true},
	})
	return false
}

// inChild runs the calling test (not a subtest) in a copy of the test
// binary that attr lets other users run, and fails t unless it passed.
func inChild(t *testing.T, attr *syscall.SysProcAttr) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// go test keeps the binary in a folder only its user may enter.
	dir := t.TempDir()
	searchable(t, dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "sandbox.test")
	if err := os.Link(self, bin); err != nil {
		copyBinary(t, self, bin)
	} else if fi, err := os.Stat(bin); err != nil || fi.Mode().Perm()&0o005 != 0o005 {
		os.Remove(bin)
		copyBinary(t, self, bin)
	}
	cmd := exec.Command(bin, "-test.run=^"+regexp.QuoteMeta(t.Name())+"$", "-test.count=1", "-test.v", "-test.timeout=5m")
	cmd.Env = []string{childEnv + "=" + t.Name(), "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "TMPDIR=/tmp"}
	cmd.Dir = dir
	cmd.SysProcAttr = attr
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatalf("the test in a child process (%+v): %v\n%s", attr.Credential, err, out)
	}
	t.Logf("child process:\n%s", out)
}

func copyBinary(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}
