package sandbox

import (
	"io/fs"
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

// The resolver that decides which links of /etc stay links must agree
// with filepath.EvalSymlinks on every path: chains of links, relative
// links with "..", a ".." after a link, links to links to folders, a
// dangling link and a loop.
func TestResolverAgreesWithEvalSymlinks(t *testing.T) {
	t.Parallel()
	base, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"usr/share/certs", "etc/ssl/certs", "etc/alt", "opt/x/y", "opt/share/certs"} {
		if err := os.MkdirAll(filepath.Join(base, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"usr/share/certs/a.crt", "opt/share/certs/a.crt"} {
		if err := os.WriteFile(filepath.Join(base, f), []byte("A"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	links := map[string]string{
		"etc/ssl/certs/a.pem":  filepath.Join(base, "usr/share/certs/a.crt"), // absolute
		"etc/ssl/certs/1234.0": "a.pem",                                      // to a link beside it
		"etc/ssl/certs/up.pem": "../../../usr/share/certs/a.crt",             // leading ..
		"etc/ssl/share":        "../../usr/share",                            // a link to a folder
		"etc/ssl/via.pem":      "share/certs/a.crt",                          // through it
		"etc/alt/hop":          "../../opt/x/y",                              // a folder elsewhere
		"etc/alt/back.pem":     "hop/../../share/certs/a.crt",                // ".." after a link
		"etc/alt/dangling":     "nowhere/at/all",
		"etc/alt/loop1":        "loop2",
		"etc/alt/loop2":        "loop1",
		"etc/alt/dot":          ".",
		"etc/alt/chain":        "../ssl/certs/1234.0",
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(base, name)); err != nil {
			t.Fatal(err)
		}
	}
	var paths []string
	for name := range links {
		paths = append(paths, filepath.Join(base, name))
	}
	paths = append(paths, filepath.Join(base, "etc/ssl/share/certs/a.crt"), filepath.Join(base, "usr"))
	// The host's /etc too, as PrepareEtc walks it.
	_ = filepath.WalkDir("/etc", func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type()&fs.ModeSymlink != 0 {
			paths = append(paths, p)
		}
		return nil
	})
	r := newResolver()
	for _, p := range paths {
		want, wantErr := filepath.EvalSymlinks(p)
		got, err := r.resolve(p)
		if (err != nil) != (wantErr != nil) || got != want {
			t.Errorf("resolve %s = %q, %v; EvalSymlinks: %q, %v", p, got, err, want, wantErr)
		}
	}
	// Lexically, back.pem would name etc/share/certs/a.crt, which is not there.
	if got, err := r.resolve(filepath.Join(base, "etc/alt/back.pem")); got != filepath.Join(base, "opt/share/certs/a.crt") {
		t.Errorf("back.pem resolved to %q, %v", got, err)
	}
}
