package configs

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

const (
	keyA = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMHVGCVEtr5qxn1dYi/5xpqoXWVgHqsmnZ0Dwt0eBXYT alice@laptop"
	keyB = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEK5ZPWdR0HSt4JUcmgH4a8lDYp/Jpe8CXn1l80kwVUb bob@desk"
)

func TestEmbeddedFilesParse(t *testing.T) {
	home := t.TempDir()
	writeFile(t, filepath.Join(home, ".ssh", "id_ed25519.pub"), keyA+"\n")
	l := Loader{Home: home, Login: "me"}
	for name, data := range map[string][]byte{"default.toml": DefaultTOML(), "example.toml": ExampleTOML()} {
		if _, err := l.Parse(data, name); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestExampleAccess(t *testing.T) {
	c, err := Parse(ExampleTOML(), "example.toml")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		user, repo string
		want       Access
	}{
		{"alice", "app", Admin},
		{"alice", "unlisted", Admin},
		{"bob", "app", Read | Release},
		{"ci-bot", "app", Read | Write},
		{"ci-bot", "team/website", 0},
		{"bob", "unlisted", 0},
		{"mallory", "app", 0},
	}
	for _, tc := range cases {
		if got := c.Access(tc.user, tc.repo); got != tc.want {
			t.Errorf("Access(%q, %q) = %b, want %b", tc.user, tc.repo, got, tc.want)
		}
	}
	pk, _, _, _, err := ssh.ParseAuthorizedKey([]byte(keyB))
	if err != nil {
		t.Fatal(err)
	}
	if u, ok := c.UserForKey(pk); !ok || u.Name != "bob" {
		t.Errorf("UserForKey(bob's key) = %v, %v", u, ok)
	}
	if c.SSH.HostKey != "/var/lib/slipway/ssh_host_ed25519_key" {
		t.Errorf("host key default = %q", c.SSH.HostKey)
	}
}

func TestProblemsCarryLines(t *testing.T) {
	src := `data_dir = "d"
bogus = 1

[ssh]
listen = "127.0.0.1:0"
idel_timeout = "1m"

[[user]]
name = "alice"
keys = ["` + keyA + `"]

[[user]]
name = "alice"
keys = ["` + keyB + `"]

[[user]]
name = "carol"
keys = ["ssh-ed25519 notbase64"]

[[repo]]
name = "app"
read = ["*"]
write = ["dave"]

[[repo]]
name = "../escape"
`
	_, err := Parse([]byte(src), "bad.toml")
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("want ValidationError, got %v", err)
	}
	want := []string{
		`bad.toml:2: unknown key "bogus"`,
		`bad.toml:6: unknown key "idel_timeout" in [ssh] (did you mean "idle_timeout"?)`,
		`bad.toml:13: duplicate user "alice"`,
		`bad.toml:18: user "carol": bad public key`,
		`bad.toml:23: repo "app": write lists unknown user "dave"`,
		`bad.toml:26: invalid repository name "../escape"`,
	}
	got := err.Error()
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("missing %q in:\n%s", w, got)
		}
	}
	if len(ve.Problems) != len(want) {
		t.Errorf("got %d problems, want %d:\n%s", len(ve.Problems), len(want), got)
	}
}

func TestSyntaxErrorHasLine(t *testing.T) {
	_, err := Parse([]byte("data_dir = \"x\"\n[ssh]\nlisten = \n"), "broken.toml")
	if err == nil || !strings.HasPrefix(err.Error(), "broken.toml:3:") {
		t.Fatalf("got %v, want an error at broken.toml:3", err)
	}
	_, err = Parse([]byte("[ssh]\nidle_timeout = \"soon\"\n"), "dur.toml")
	if err == nil || !strings.HasPrefix(err.Error(), "dur.toml:2:") || !strings.Contains(err.Error(), "invalid duration") {
		t.Fatalf("got %v, want an invalid duration at line 2", err)
	}
}

func TestCleanRepoName(t *testing.T) {
	good := map[string]string{
		"app": "app", "app.git": "app", "/app": "app", "/team/app.git": "team/app",
		"a/b/c": "a/b/c", "my-app_2.0": "my-app_2.0",
	}
	for in, want := range good {
		if got, err := CleanRepoName(in); err != nil || got != want {
			t.Errorf("CleanRepoName(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	bad := []string{"", "/", ".git", "../x", "/etc/passwd/", "a/../../b", "a//b", "A", ".hidden",
		"-flag", "a/b/c/d", "x.git/y", "a..b", "a b", "a\x00b", "a\\b", strings.Repeat("a", 300)}
	for _, in := range bad {
		if got, err := CleanRepoName(in); err == nil {
			t.Errorf("CleanRepoName(%q) = %q, want an error", in, got)
		}
	}
}

func FuzzCleanRepoName(f *testing.F) {
	for _, s := range []string{"app", "/team/app.git", "../x", "a/../../b", ".git", "a//b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		name, err := CleanRepoName(s)
		if err != nil {
			return
		}
		if strings.Contains(name, "..") || strings.HasPrefix(name, "/") || strings.HasPrefix(name, ".") ||
			strings.Contains(name, "//") || strings.Count(name, "/") >= MaxRepoDepth {
			t.Fatalf("CleanRepoName(%q) accepted %q", s, name)
		}
		again, err := CleanRepoName(name)
		if err != nil || again != name {
			t.Fatalf("canonical name %q does not map to itself: %q, %v", name, again, err)
		}
	})
}

func TestEnvironmentsAndSchedules(t *testing.T) {
	src := `timezone = "Europe/Berlin"

[[user]]
name = "alice"
keys = ["` + keyA + `"]

[[repo]]
name = "app"
release = ["alice"]
  [[repo.environment]]
  name = "staging"
  target = "deploy@127.0.0.1:/srv/app"
  ssh_key = "/k"
  known_hosts = "/kh"
  auto = "main"
  [[repo.environment]]
  name = "prod"
  target = "/srv/prod"
  requires = "staging"
  approvers = ["alice"]
  [[repo.schedule]]
  name = "nightly"
  cron = "CRON_TZ=UTC 0 2 * * *"
  branch = "main"
  [[repo.schedule]]
  name = "hourly"
  cron = "@every 1h"
  branch = ["main", "dev"]
  catch_up = false
`
	c, err := Parse([]byte(src), "ok.toml")
	if err != nil {
		t.Fatal(err)
	}
	r, _ := c.Repo("app")
	if len(r.Environments) != 2 || !r.Environments[0].Remote() || r.Environments[1].Remote() || r.Environments[1].Keep != DefaultKeepReleases {
		t.Fatalf("environments: %+v", r.Environments)
	}
	if s := r.Schedules[1]; len(s.Branch) != 2 || s.CatchesUp() || s.Pipeline != "nightly" || !r.Schedules[0].CatchesUp() {
		t.Fatalf("schedules: %+v", r.Schedules)
	}
	if c.Location().String() != "Europe/Berlin" {
		t.Fatalf("timezone %v", c.Location())
	}

	bad := `timezone = "Mars/Olympus"
[[user]]
name = "alice"
keys = ["` + keyA + `"]

[[repo]]
name = "app"
  [[repo.environment]]
  name = "staging"
  target = "deploy@host:/srv/app"
  [[repo.environment]]
  name = "prod"
  target = "/srv/prod"
  requires = "qa"
  [[repo.schedule]]
  name = "nightly"
  cron = "0 2 * *"
  branch = "main"
`
	_, err = Parse([]byte(bad), "bad.toml")
	for _, want := range []string{
		`bad.toml:1: unknown time zone "Mars/Olympus"`,
		`bad.toml:10: repo "app": environment "staging": a remote target needs ssh_key and known_hosts`,
		`bad.toml:12: repo "app": environment "prod" requires unknown environment "qa"`,
		`bad.toml:17: repo "app": schedule "nightly": invalid cron spec`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
}

func FuzzParseCron(f *testing.F) {
	for _, s := range []string{"CRON_TZ=UTC", "TZ=UTC", "CRON_TZ=", "CRON_TZ= 0 0 * * *", "@every 0s", "@every -5s",
		"@nightly", "0 2 * * *", "CRON_TZ=Europe/Berlin 30 2 * * *", "@every 1h30m", "* * * * * *"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		s, err := ParseCron(spec, time.UTC)
		if err != nil {
			return
		}
		now := time.Date(2026, 3, 29, 0, 30, 0, 0, time.UTC)
		if next := s.Next(now); !next.IsZero() && !next.After(now) {
			t.Fatalf("%q: next %v is not after %v", spec, next, now)
		}
	})
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
