package gitserver

import (
	"strings"
	"testing"
	"time"

	"slipway/configs"
)

// TestConfiguredRepoIsMadeOnFirstUse: a repository the configuration names
// and nobody made yet is made when one of its users first reaches it, with
// Slipway's hooks, and EnsureRepos makes the rest; neither touches one that
// exists.
func TestConfiguredRepoIsMadeOnFirstUse(t *testing.T) {
	t.Parallel()
	ts := startServer(t, serverOpt{})
	dst := t.TempDir() + "/clone"
	r := run(t, "", ts.gitEnv("bob"), "", "git", "clone", ts.url("app"), dst)
	if r.code != 0 || !strings.Contains(r.stderr, "empty repository") {
		t.Fatalf("a reader's clone of a configured repository nobody made: exit %d\n%s", r.code, r.stderr)
	}
	ts.fsck("app")
	if got := must(t, "", ts.gitEnv("alice"), "git", "--git-dir="+ts.repoDir("app"), "config", "core.hooksPath"); got != ts.cfg.HooksDir() {
		t.Errorf("core.hooksPath of a repository made on first use is %q, want %q", got, ts.cfg.HooksDir())
	}
	if head := must(t, "", ts.gitEnv("alice"), "git", "--git-dir="+ts.repoDir("app"), "symbolic-ref", "HEAD"); head != "refs/heads/main" {
		t.Errorf("HEAD of a repository made on first use is %q", head)
	}
	// Still not found for who may not read it, and never made for them.
	if r := run(t, "", ts.gitEnv("bob"), "", "git", "ls-remote", ts.url("secret")); r.code == 0 || !strings.Contains(r.stderr, `repository "secret" not found`) {
		t.Errorf("bob reached secret: exit %d\n%s", r.code, r.stderr)
	}
	if isRepo(ts.repoDir("secret")) {
		t.Error("a user who may not read secret made it")
	}

	made, err := ts.srv.EnsureRepos(t.Context(), ts.cfg)
	if err != nil || strings.Join(made, " ") != "secret" {
		t.Errorf("EnsureRepos made %v (%v), want only secret", made, err)
	}
	if made, err := ts.srv.EnsureRepos(t.Context(), ts.cfg); err != nil || len(made) != 0 {
		t.Errorf("EnsureRepos again made %v (%v), want nothing", made, err)
	}
}

// TestCloseRevoked: the connections of a key the new configuration does not
// admit are closed, the others stay open.
func TestCloseRevoked(t *testing.T) {
	t.Parallel()
	ts := startServer(t, serverOpt{})
	bob, err := ts.dial("bob")
	if err != nil {
		t.Fatal(err)
	}
	defer bob.Close()
	carol, err := ts.dial("carol")
	if err != nil {
		t.Fatal(err)
	}
	defer carol.Close()
	closed := make(chan error, 1)
	go func() { closed <- carol.Wait() }()

	// carol's key is replaced by a new one; bob keeps his.
	fresh := keygen(t, t.TempDir(), "carol-new")
	next, err := configs.Parse([]byte(strings.Replace(ts.text, ts.keys["carol"].pub, fresh.pub, 1)), "test.toml")
	if err != nil {
		t.Fatal(err)
	}
	if n := ts.srv.CloseRevoked(next); n != 1 {
		t.Errorf("CloseRevoked closed %d connections, want carol's 1", n)
	}
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("carol's connection is still open")
	}
	sess, err := bob.NewSession()
	if err != nil {
		t.Fatalf("bob's connection was closed too: %v", err)
	}
	out, err := sess.Output("whoami")
	if err != nil || !strings.HasPrefix(string(out), "bob\n") {
		t.Errorf("whoami on bob's connection after the revocation: %q, %v", out, err)
	}
}
