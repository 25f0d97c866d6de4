package gitserver

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	gossh "golang.org/x/crypto/ssh"
)

// failingSigner offers a real public key but cannot sign, like a client that
// knows someone's public key and not the private one.
type failingSigner struct {
	pub   gossh.PublicKey
	asked atomic.Bool
}

func (f *failingSigner) PublicKey() gossh.PublicKey { return f.pub }
func (f *failingSigner) Sign(io.Reader, []byte) (*gossh.Signature, error) {
	f.asked.Store(true)
	return nil, errors.New("no private key")
}

// replayClient connects offering victim's public key first (the server says
// it would accept it) and then authenticating with signer.
func (ts *testServer) replayClient(victim string, signer gossh.Signer) (*gossh.Client, *failingSigner, error) {
	fake := &failingSigner{pub: ts.keys[victim].signer(ts.t).PublicKey()}
	step := 0
	client, err := gossh.Dial("tcp", ts.addr, &gossh.ClientConfig{
		User:            "git",
		HostKeyCallback: gossh.FixedHostKey(ts.srv.HostPublicKey()),
		AuthCallback: func(*gossh.ClientAuthContext) (gossh.AuthMethod, error) {
			step++
			switch step {
			case 1:
				return gossh.PublicKeys(fake), nil
			case 2:
				return gossh.PublicKeys(signer), nil
			}
			return nil, errors.New("out of keys")
		},
	})
	return client, fake, err
}

// CVE-2024-45337: the identity must be that of the key that signed, not of a
// key that was only offered before.
func TestOfferedKeyDoesNotBecomeIdentity(t *testing.T) {
	t.Parallel()
	ts := startServer(t, serverOpt{})
	client, fake, err := ts.replayClient("alice", ts.keys["bob"].signer(t))
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer client.Close()
	if !fake.asked.Load() {
		t.Fatal("the server did not accept the query for alice's key; the attack was not attempted")
	}
	sess, err := client.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	out, err := sess.Output("whoami")
	if err != nil {
		t.Fatalf("whoami: %v", err)
	}
	if first := strings.Fields(string(out)); len(first) == 0 || first[0] != "bob" {
		t.Fatalf("whoami after offering alice's key and signing with bob's: %q, want bob", out)
	}
	if strings.Contains(string(out), "admin") {
		t.Fatalf("bob got alice's admin role: %q", out)
	}

	// Bob cannot use alice's admin right to create a repository this way.
	sess, err = client.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	sess.Stderr = &stderr
	err = sess.Run("git-receive-pack 'stolen.git'")
	var exit *gossh.ExitError
	if !errors.As(err, &exit) || exit.ExitStatus() != 1 || !strings.Contains(stderr.String(), "not found") {
		t.Fatalf("receive-pack as bob: %v, stderr %q", err, stderr.String())
	}
	if _, err := os.Stat(ts.repoDir("stolen")); !os.IsNotExist(err) {
		t.Fatalf("repository created with a replayed key: %v", err)
	}

	// Offering alice's key and then signing with an unknown key gets nothing.
	stranger := keygen(t, t.TempDir(), "stranger")
	if c, _, err := ts.replayClient("alice", stranger.signer(t)); err == nil {
		c.Close()
		t.Fatal("authenticated with an unknown key after offering alice's")
	}
}

// The same attack with OpenSSH: ssh offers alice's public key (it has no
// private key file for it), the server accepts the offer, ssh moves on and
// signs with bob's key.
func TestOfferedKeyDoesNotBecomeIdentityOpenSSH(t *testing.T) {
	t.Parallel()
	ts := startServer(t, serverOpt{})
	dir := t.TempDir()
	pubOnly := filepath.Join(dir, "alice_pub_only")
	if err := os.WriteFile(pubOnly+".pub", []byte(ts.keys["alice"].pub+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{
		"-v", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
		"-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
		"-i", pubOnly + ".pub", "-i", ts.keys["bob"].path, "-p", ts.port, "git@127.0.0.1", "whoami",
	}
	r := run(t, "", []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}, "", "ssh", args...)
	if r.code != 0 {
		t.Fatalf("ssh: exit %d\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "Server accepts key: "+pubOnly+".pub") {
		t.Fatalf("ssh did not get alice's offered key accepted; the attack was not attempted:\n%s", r.stderr)
	}
	if first := strings.Fields(r.stdout); len(first) == 0 || first[0] != "bob" {
		t.Fatalf("whoami = %q, want bob\n%s", r.stdout, r.stderr)
	}
}

// A key's from= and expiry-time= options hold for OpenSSH clients: the same
// key is refused from one loopback address and admitted from another, and
// an expired key is refused.
func TestKeyOptionsFromAndExpiry(t *testing.T) {
	t.Parallel()
	ts := startServer(t, serverOpt{keyOptions: map[string]string{
		"alice": `from="127.0.0.1"`,
		"bob":   `from="127.0.0.2,10.0.0.0/8"`,
		"carol": `expiry-time="20000101"`,
	}})
	whoami := func(user, bind string) result {
		args := append(ts.sshArgs(user), "-b", bind, "git@127.0.0.1", "whoami")
		return run(t, "", []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, "", "ssh", args...)
	}
	if r := whoami("alice", "127.0.0.1"); r.code != 0 || !strings.HasPrefix(r.stdout, "alice") {
		t.Errorf("alice from 127.0.0.1 (from=127.0.0.1): exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
	if r := whoami("alice", "127.0.0.2"); r.code != 255 || !strings.Contains(r.stderr, "Permission denied (publickey)") {
		t.Errorf("alice from 127.0.0.2 (from=127.0.0.1): exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
	if r := whoami("bob", "127.0.0.1"); r.code != 255 || !strings.Contains(r.stderr, "Permission denied (publickey)") {
		t.Errorf("bob from 127.0.0.1 (from=127.0.0.2): exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
	if r := whoami("bob", "127.0.0.2"); r.code != 0 || !strings.HasPrefix(r.stdout, "bob") {
		t.Errorf("bob from 127.0.0.2 (from=127.0.0.2): exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
	if r := whoami("carol", "127.0.0.1"); r.code != 255 || !strings.Contains(r.stderr, "Permission denied (publickey)") {
		t.Errorf("carol with an expired key: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"key not allowed from this address", "key expired"} {
		if !strings.Contains(ts.log.String(), want) {
			t.Errorf("the server log does not say %q:\n%s", want, ts.log)
		}
	}

	// So does x/crypto's client.
	if c, err := gossh.Dial("tcp", ts.addr, &gossh.ClientConfig{
		User:            "git",
		Auth:            []gossh.AuthMethod{gossh.PublicKeys(ts.keys["bob"].signer(t))},
		HostKeyCallback: gossh.FixedHostKey(ts.srv.HostPublicKey()),
	}); err == nil {
		c.Close()
		t.Error("bob's key was admitted from 127.0.0.1 by the Go client")
	}
}
