package gitserver

import (
	"path/filepath"
	"strconv"
	"testing"
)

// Opt-in (go test -bench): what a user waits for on loopback, measured with
// the real git and ssh clients against the in-process server. The ratios to
// stock OpenSSH + git-shell are measured by the bench/ package.

func BenchmarkSSHCommand(b *testing.B) {
	ts := startServer(b, serverOpt{})
	for b.Loop() {
		if r := ts.ssh("bob", "", "whoami"); r.code != 0 {
			b.Fatalf("whoami: %d %s", r.code, r.stderr)
		}
	}
}

func BenchmarkPushOneCommit(b *testing.B) {
	ts := startServer(b, serverOpt{})
	env := ts.gitEnv("alice")
	work := newWork(b, env, "one")
	must(b, work, env, "git", "push", "-q", ts.url("app"), "main")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		must(b, work, env, "git", "commit", "-q", "--allow-empty", "-m", "next")
		b.StartTimer()
		must(b, work, env, "git", "push", "-q", ts.url("app"), "main")
	}
}

func BenchmarkCloneSmallRepo(b *testing.B) {
	ts := startServer(b, serverOpt{})
	env := ts.gitEnv("alice")
	work := newWork(b, env, "one", "two", "three", "four", "five")
	must(b, work, env, "git", "push", "-q", ts.url("app"), "main")
	dir := b.TempDir()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		must(b, "", env, "git", "clone", "-q", "--bare", ts.url("app"), filepath.Join(dir, strconv.Itoa(i)))
	}
}

// BenchmarkHandshake is one connection, authentication and `whoami` with
// the Go client, without the ssh binary's own start-up.
func BenchmarkHandshake(b *testing.B) {
	ts := startServer(b, serverOpt{})
	for b.Loop() {
		c, err := ts.dial("bob")
		if err != nil {
			b.Fatal(err)
		}
		s, err := c.NewSession()
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.Output("whoami"); err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
}
