package gitserver

import (
	"bytes"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"slipway/configs"
	"slipway/record"
)

func TestGenOldRepos(t *testing.T) {
	keyA := "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMHVGCVEtr5qxn1dYi/5xpqoXWVgHqsmnZ0Dwt0eBXYT a"
	keyB := "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEK5ZPWdR0HSt4JUcmgH4a8lDYp/Jpe8CXn1l80kwVUb b"
	cfg, err := configs.Parse([]byte(`
[[user]]
name = "alice"
keys = ["`+keyA+`"]
admin = true
[[user]]
name = "bob"
keys = ["`+keyB+`"]
[[repo]]
name = "app"
read = ["bob"]
release = ["bob"]
[[repo]]
name = "secret"
[[repo]]
name = "team/tools"
`), "test.toml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, n := range []string{"app", "old", "secret", "team/tools"} {
		if out, err := exec.Command("git", "init", "-q", "--bare", filepath.Join(dir, n+".git")).CombinedOutput(); err != nil {
			t.Fatal(err, string(out))
		}
	}
	t0 := time.Date(2026, 11, 25, 18, 40, 0, 0, time.UTC)
	c1, c3, zero := strings.Repeat("1", 40), strings.Repeat("3", 40), strings.Repeat("0", 40)
	pushes := mapPushes{
		"app": {ID: 3, Repo: "app", User: "bob", KeyFingerprint: "SHA256:bob", Time: t0.Add(5 * time.Minute), Options: []string{"nowait"},
			Refs: []record.RefUpdate{{Name: "refs/release/prod", Old: zero, New: c1}}},
		"team/tools": {ID: 4, Repo: "team/tools", User: "alice", KeyFingerprint: "SHA256:alice", Time: t0.Add(6 * time.Minute),
			Refs: []record.RefUpdate{{Name: "refs/heads/main", Old: zero, New: c3}, {Name: "refs/tags/v1", Old: c3, New: zero}}},
	}
	s := &Server{reposDir: dir, pushes: pushes, cfg: cfg, log: slog.New(slog.DiscardHandler)}
	for _, c := range []struct{ golden, user, args string }{
		{"repos-alice.json", "alice", "--json"}, {"repos-bob.json", "bob", "--json"}, {"repos-alice.txt", "alice", ""},
	} {
		var out, errb bytes.Buffer
		var args []string
		if c.args != "" {
			args = []string{c.args}
		}
		if code := s.repos(t.Context(), Caller{User: c.user}, args, &out, &errb); code != 0 {
			t.Fatal(errb.String())
		}
		if err := os.WriteFile(filepath.Join("../console/testdata", c.golden), out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
