package sandbox

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// An ordinary account cannot read all of /etc (on Debian, /etc/ssl/private
// is drwx--x--- root ssl-cert). PrepareEtc leaves out what it cannot read,
// says what, and the sandbox built on the copy runs steps.
func TestPrepareEtcSkipsWhatItCannotRead(t *testing.T) {
	t.Parallel()
	if !asNonRoot(t) {
		return
	}
	base := t.TempDir()
	src := filepath.Join(base, "etc")
	elsewhere := filepath.Join(base, "run")
	files := map[string]string{
		"etc/passwd":           "root:x:0:0:root:/root:/bin/sh\n",
		"etc/ssl/certs/ok.pem": "CERT",
		"etc/ssl/locked.pem":   "LOCKED",
		"etc/ssl/private/key":  "KEY",
		"etc/ssl/deep/open/x":  "X",
		"etc/ssl/deep/shut/y":  "Y",
		"run/stub-resolv.conf": "nameserver 127.0.0.53\n",
		"etc/hosts":            "127.0.0.1 localhost\n",
		"etc/shadow":           "root:SECRET:19000::::::\n",
	}
	for name, content := range files {
		p := filepath.Join(base, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Ubuntu's resolv.conf points into /run, which the sandbox does not
	// mount: the copy holds the file, not the link.
	if err := os.Symlink(filepath.Join(elsewhere, "stub-resolv.conf"), filepath.Join(src, "resolv.conf")); err != nil {
		t.Fatal(err)
	}
	// A link the sandbox can follow stays a link.
	if err := os.Symlink("certs/ok.pem", filepath.Join(src, "ssl", "link.pem")); err != nil {
		t.Fatal(err)
	}
	closed := []string{
		filepath.Join(src, "ssl", "private"),
		filepath.Join(src, "ssl", "locked.pem"),
		filepath.Join(src, "ssl", "deep", "shut"),
	}
	for _, p := range closed {
		if err := os.Chmod(p, 0); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Chmod(p, 0o755) })
	}

	dst := filepath.Join(base, "copy")
	skipped, err := prepareEtc(src, dst, nil)
	if err != nil {
		t.Fatalf("prepare /etc as uid %d: %v", os.Geteuid(), err)
	}
	slices.Sort(skipped)
	want := slices.Sorted(slices.Values(closed))
	if !slices.Equal(skipped, want) {
		t.Errorf("skipped %q, want %q", skipped, want)
	}
	for name, content := range map[string]string{
		"passwd": files["etc/passwd"], "hosts": files["etc/hosts"], "ssl/certs/ok.pem": "CERT",
		"ssl/deep/open/x": "X", "resolv.conf": "nameserver 127.0.0.53\n", "ssl/link.pem": "CERT",
	} {
		if b, err := os.ReadFile(filepath.Join(dst, name)); err != nil || string(b) != content {
			t.Errorf("copy of %s: %q, %v", name, b, err)
		}
	}
	for _, name := range []string{"ssl/private", "ssl/locked.pem", "ssl/deep/shut", "shadow"} {
		if _, err := os.Lstat(filepath.Join(dst, name)); !os.IsNotExist(err) {
			t.Errorf("%s is in the copy (%v)", name, err)
		}
	}
	if fi, err := os.Lstat(filepath.Join(dst, "resolv.conf")); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("resolv.conf in the copy is not a file: %v, %v", fi, err)
	}
	if target, err := os.Readlink(filepath.Join(dst, "ssl", "link.pem")); err != nil || target != "certs/ok.pem" {
		t.Errorf("ssl/link.pem in the copy: %q, %v", target, err)
	}

	// The host's own /etc, and a build on it, as this uid.
	etc := filepath.Join(base, "sandbox-etc")
	skipped, err = PrepareEtcSkipped(etc)
	if err != nil {
		t.Fatalf("prepare the host's /etc as uid %d: %v", os.Geteuid(), err)
	}
	t.Logf("left out of the host's /etc: %q", skipped)
	if f, err := os.Open("/etc/ssl/private"); err != nil && os.IsPermission(err) && !slices.Contains(skipped, "/etc/ssl/private") {
		t.Errorf("/etc/ssl/private is closed to uid %d but not listed in %q", os.Geteuid(), skipped)
	} else if err == nil {
		f.Close()
	}
	ws := filepath.Join(base, "ws")
	if err := os.Mkdir(ws, 0o755); err != nil {
		t.Fatal(err)
	}
	res, out := run(t, &Bwrap{EtcDir: etc}, Spec{Workspace: ws, Env: []string{"PATH=/usr/bin:/bin"}},
		`grep -q '^root:' /etc/passwd && test ! -e /etc/ssl/private && echo built`)
	if res.ExitCode != 0 || strings.TrimSpace(out) != "built" {
		t.Errorf("a step on the prepared /etc: exit %d, %q", res.ExitCode, out)
	}
}
