package e2e

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

func TestConfigCheck(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.toml")
	os.WriteFile(bad, []byte("data_dir = \"d\"\n[[user]]\nname = \"x\"\nkeys = [\"not a key\"]\n[[repo]]\nname = \"../up\"\nwrite = [\"nobody\"]\n"), 0o600)
	cmd := exec.Command(slipwayBin, "config", "check", bad)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("config check of a bad file: %v\n%s", err, out)
	}
	for _, want := range []string{"bad.toml:4:", "bad.toml:6:", "bad.toml:7:"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("config check output lacks %q:\n%s", want, out)
		}
	}
	// serve refuses the same file and says why.
	serve := exec.Command(slipwayBin, "serve", "--config", bad)
	serve.Dir = dir
	out, err = serve.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "bad.toml:4:") {
		t.Fatalf("serve on a bad config: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "d")); err == nil {
		t.Fatal("serve created its data dir despite a bad config")
	}

	good := filepath.Join(dir, "good.toml")
	example, err := os.ReadFile("../configs/example.toml")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(good, example, 0o600)
	if out, err := exec.Command(slipwayBin, "config", "check", good).CombinedOutput(); err != nil || !strings.Contains(string(out), "ok") {
		t.Fatalf("config check of the example: %v\n%s", err, out)
	}
}

func TestHostKeyIsKeptAndNeverReplaced(t *testing.T) {
	t.Parallel()
	alice := newUser(t, "alice")
	d := startDaemon(t, configFor("", []*user{alice}))
	first := hostKey(t, d)
	keyFile := filepath.Join(d.dataDir(), "ssh_host_ed25519_key")
	info, err := os.Stat(keyFile)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("host key file: %v, mode %v", err, info.Mode())
	}
	d.stop()
	d.start()
	if again := hostKey(t, d); again != first {
		t.Fatalf("host key changed across a restart: %s -> %s", first, again)
	}
	d.stop()

	// A damaged key stops the daemon instead of being silently replaced.
	os.WriteFile(keyFile, []byte("garbage"), 0o600)
	cmd := exec.Command(slipwayBin, "serve", "--config", d.config)
	cmd.Dir = d.root
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "host key") {
		t.Fatalf("serve with a damaged host key: %v\n%s", err, out)
	}
	if b, _ := os.ReadFile(keyFile); string(b) != "garbage" {
		t.Fatal("the damaged host key was overwritten")
	}
}

// hostKey returns the SSH host key the daemon presents.
func hostKey(t *testing.T, d *daemon) string {
	t.Helper()
	var got string
	cfg := &ssh.ClientConfig{
		User: "git",
		Auth: []ssh.AuthMethod{ssh.Password("x")},
		HostKeyCallback: func(_ string, _ net.Addr, key ssh.PublicKey) error {
			got = ssh.FingerprintSHA256(key)
			return nil
		},
		Timeout: 10 * time.Second,
	}
	c, err := ssh.Dial("tcp", d.addr, cfg)
	if err == nil {
		c.Close()
	}
	if got == "" {
		t.Fatalf("no host key seen: %v", err)
	}
	return got
}

// TestQuickStart runs the README's first command as a newcomer would: no
// config file, a key in ~/.ssh, then a git push.
func TestQuickStart(t *testing.T) {
	t.Parallel()
	alice := newUser(t, "alice")
	home := ctHome(t, alice)
	work := t.TempDir()

	d := quickStart(t, home, work, nil)
	addr, banner := d.addr, d.stdout.String()
	fp := alice.fingerprint(t)
	for _, want := range []string{"ssh://" + addr, "ssh://" + addr + "/myproject.git", fp, "id_ed25519.pub"} {
		if !strings.Contains(banner, want) {
			t.Errorf("banner lacks %q:\n%s", want, banner)
		}
	}
	if _, err := os.Stat(filepath.Join(work, "slipway-data", "slipway.db")); err != nil {
		t.Errorf("default data dir not in ./slipway-data: %v", err)
	}

	src := alice.newProject(t, map[string]string{"main.go": "package main\n"})
	alice.mustGit(t, src, "remote", "add", "slipway", "ssh://"+addr+"/myproject.git")
	out := alice.mustGit(t, src, "push", "slipway", "HEAD")
	if !strings.Contains(out, "main") {
		t.Fatalf("quick start push:\n%s", out)
	}
}

// fingerprint is the SHA256 fingerprint of u's key.
func (u *user) fingerprint(t *testing.T) string {
	t.Helper()
	pk, _, _, _, err := ssh.ParseAuthorizedKey([]byte(u.pub))
	if err != nil {
		t.Fatal(err)
	}
	return ssh.FingerprintSHA256(pk)
}

// TestOfferedKeyIsNotIdentity replays the attack behind CVE-2024-45337: the
// client offers alice's public key (which it cannot sign with) and then
// authenticates with mallory's. The session must be mallory's, never alice's.
func TestOfferedKeyIsNotIdentity(t *testing.T) {
	t.Parallel()
	alice, mallory := newUser(t, "alice"), newUser(t, "mallory")
	d := startDaemon(t, configFor("", []*user{alice}, mallory))
	alicePub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(alice.pub))
	if err != nil {
		t.Fatal(err)
	}
	malloryKey, err := os.ReadFile(mallory.key)
	if err != nil {
		t.Fatal(err)
	}
	mallorySigner, err := ssh.ParsePrivateKey(malloryKey)
	if err != nil {
		t.Fatal(err)
	}
	fake := &cannotSign{pub: alicePub}
	step := 0
	cfg := &ssh.ClientConfig{
		User: "git",
		// One key per attempt: first alice's, which the client can only
		// offer, then mallory's, which it signs with.
		AuthCallback: func(*ssh.ClientAuthContext) (ssh.AuthMethod, error) {
			step++
			switch step {
			case 1:
				return ssh.PublicKeys(fake), nil
			case 2:
				return ssh.PublicKeys(mallorySigner), nil
			}
			return nil, errors.New("out of keys")
		},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(),
		Timeout:         10 * time.Second,
	}
	c, err := ssh.Dial("tcp", d.addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	if !fake.offered {
		t.Fatal("alice's key was never offered: the attack was not attempted")
	}
	var out bytes.Buffer
	sess.Stdout = &out
	if err := sess.Run("whoami"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "mallory") || strings.Contains(out.String(), "alice") {
		t.Fatalf("offered alice's key, signed with mallory's: whoami says %q", out.String())
	}
}

// cannotSign offers a public key without holding its private half.
type cannotSign struct {
	pub     ssh.PublicKey
	offered bool // the server accepted the offer and asked for a signature
}

func (c *cannotSign) PublicKey() ssh.PublicKey { return c.pub }
func (c *cannotSign) Sign(_ io.Reader, _ []byte) (*ssh.Signature, error) {
	c.offered = true
	return nil, errors.New("no private key")
}
