package gitserver

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestInteractiveLoginGreetsAndExits(t *testing.T) {
	t.Parallel()
	ts := startServer(t, serverOpt{commands: map[string]Command{
		"builds": {Usage: "builds [REPO]", Summary: "recent builds", Run: func(context.Context, Caller, []string, io.Writer, io.Writer) int { return 0 }},
	}})
	for _, flag := range []string{"-T", "-tt"} {
		r := ts.ssh("carol", "", flag)
		if r.code != 0 {
			t.Errorf("ssh %s: exit %d, stderr %q", flag, r.code, r.stderr)
		}
		for _, want := range []string{"Hi carol!", "no shell", "whoami [--json]", "builds [REPO]", "recent builds", "git clone ssh://" + ts.addr + "/REPO"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("ssh %s: greeting lacks %q:\n%s", flag, want, r.stdout)
			}
		}
	}
}

func TestCommandsAndExitCodes(t *testing.T) {
	t.Parallel()
	var gotCaller Caller
	var gotArgs []string
	ts := startServer(t, serverOpt{commands: map[string]Command{
		"three": {Summary: "exits 3", Run: func(_ context.Context, c Caller, args []string, stdout, stderr io.Writer) int {
			gotCaller, gotArgs = c, args
			fmt.Fprintln(stdout, "out")
			fmt.Fprintln(stderr, "err")
			return 3
		}},
	}})
	r := ts.ssh("bob", "", "frobnicate", "--now")
	if r.code != 1 || r.stderr != "slipway: unknown command \"frobnicate\"; try \"help\"\n" || r.stdout != "" {
		t.Errorf("unknown command: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	r = ts.ssh("bob", "", "three 'a b' c")
	if r.code != 3 || r.stdout != "out\n" || r.stderr != "err\n" {
		t.Errorf("extra command: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if gotCaller.User != "bob" || !strings.HasPrefix(gotCaller.KeyFingerprint, "SHA256:") || !slices.Equal(gotArgs, []string{"a b", "c"}) {
		t.Errorf("extra command got caller %+v, args %q", gotCaller, gotArgs)
	}
	r = ts.ssh("bob", "", "help")
	if r.code != 0 || !strings.Contains(r.stdout, "exits 3") {
		t.Errorf("help: exit %d, stdout %q", r.code, r.stdout)
	}
	r = ts.ssh("bob", "", "whoami 'unterminated")
	if r.code != 1 || !strings.Contains(r.stderr, "unterminated") {
		t.Errorf("unparsable command: exit %d, stderr %q", r.code, r.stderr)
	}

	// git's own exit code reaches the client: upload-pack dies on a
	// protocol error with 128.
	env := ts.gitEnv("alice")
	work := newWork(t, env, "one")
	must(t, work, env, "git", "push", "-q", ts.url("app"), "main")
	r = ts.ssh("bob", "garbage that is not a pkt-line\n", "git-upload-pack 'app.git'")
	if r.code != 128 || !strings.Contains(r.stderr, "protocol error") {
		t.Errorf("upload-pack with garbage: exit %d, stderr %q", r.code, r.stderr)
	}
	if !strings.Contains(r.stdout, "refs/heads/main") {
		t.Errorf("upload-pack's advertisement did not reach the client: %q", r.stdout)
	}
}

func TestWhoami(t *testing.T) {
	t.Parallel()
	ts := startServer(t, serverOpt{})
	r := ts.ssh("alice", "", "whoami")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "alice (admin)\nkey SHA256:") {
		t.Errorf("whoami: exit %d, %q", r.code, r.stdout)
	}
	r = ts.ssh("bob", "", "whoami", "--json")
	var who struct {
		User           string `json:"user"`
		Admin          bool   `json:"admin"`
		KeyFingerprint string `json:"key_fingerprint"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &who); err != nil || r.code != 0 {
		t.Fatalf("whoami --json: exit %d, %q: %v", r.code, r.stdout, err)
	}
	wantFP := strings.Fields(must(t, "", nil, "ssh-keygen", "-l", "-f", ts.keys["bob"].path+".pub"))[1]
	if who.User != "bob" || who.Admin || who.KeyFingerprint != wantFP {
		t.Errorf("whoami --json = %+v, want bob, not admin, %s", who, wantFP)
	}
	if r := ts.ssh("bob", "", "whoami", "--yaml"); r.code != 1 || !strings.Contains(r.stderr, "usage: whoami [--json]") {
		t.Errorf("whoami --yaml: exit %d, stderr %q", r.code, r.stderr)
	}
}

// TestDiskListsTheRepositoriesPushed: the repositories on disk, for the
// `repos` listing (package views filters them by rights): the ones pushed
// to, nested ones included, and nothing that is not a repository.
func TestDiskListsTheRepositoriesPushed(t *testing.T) {
	t.Parallel()
	ts := startServer(t, serverOpt{})
	env := ts.gitEnv("alice")
	work := newWork(t, env, "one")
	for _, name := range []string{"app", "secret", "team/tools"} {
		must(t, work, env, "git", "push", "-q", ts.url(name), "main")
	}
	// Junk in the repos folder is not a repository.
	for _, junk := range []string{"Bad Name.git", "half.git", "team/x.git.git"} {
		if err := os.MkdirAll(filepath.Join(ts.cfg.ReposDir(), junk), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	names, err := Disk{ReposDir: ts.cfg.ReposDir()}.Repos(t.Context())
	if err != nil || !slices.Equal(names, []string{"app", "secret", "team/tools"}) {
		t.Errorf("Disk.Repos = %q, %v; want app, secret, team/tools", names, err)
	}
	// `repos` is no longer the SSH server's own: console gives it.
	if r := ts.ssh("bob", "", "repos"); r.code != 1 || !strings.Contains(r.stderr, `unknown command "repos"`) {
		t.Errorf("repos without the console: exit %d, %q", r.code, r.stderr)
	}
}

func TestPanicInSessionIsContained(t *testing.T) {
	t.Parallel()
	ts := startServer(t, serverOpt{commands: map[string]Command{
		"boom": {Run: func(context.Context, Caller, []string, io.Writer, io.Writer) int { panic("boom") }},
	}})
	r := ts.ssh("bob", "", "boom")
	if r.code != 1 || !strings.Contains(r.stderr, "slipway: internal error") {
		t.Errorf("panicking command: exit %d, stderr %q", r.code, r.stderr)
	}
	if !strings.Contains(ts.log.String(), "panic in ssh session") || !strings.Contains(ts.log.String(), "goroutine") {
		t.Errorf("panic not logged with its stack:\n%s", ts.log.String())
	}
	if r := ts.ssh("bob", "", "whoami"); r.code != 0 || !strings.HasPrefix(r.stdout, "bob") {
		t.Errorf("after a panic: whoami exit %d, %q", r.code, r.stdout)
	}
}

// The hook sees exactly the environment the contract allows, whatever the
// client sends, and a token that is live while git runs.
func TestGitEnvironmentIsMinimal(t *testing.T) {
	t.Parallel()
	ts := startServer(t, serverOpt{})
	out := filepath.Join(t.TempDir(), "env")
	hook := fmt.Sprintf("#!/bin/sh\nenv > '%s'\ncat >/dev/null\n", out)
	if err := os.MkdirAll(ts.cfg.PushHooksDir(), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ts.cfg.PushHooksDir(), "pre-receive"), []byte(hook), 0o755); err != nil {
		t.Fatal(err)
	}
	env := ts.gitEnv("alice")
	env = append(env, "EVIL=1", "LD_PRELOAD=/nonexistent.so")
	work := newWork(t, env, "one")
	// ssh sends these with SetEnv, as a hostile client would.
	env[len(env)-3] = env[len(env)-3] + " -o SetEnv=EVIL=1 -o SendEnv=LD_PRELOAD"
	must(t, work, env, "git", "push", "-q", "-o", "wait", ts.url("newapp"), "main")

	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("pre-receive did not run: %v", err)
	}
	vars := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		k, v, _ := strings.Cut(l, "=")
		vars[k] = v
	}
	begun, ended := ts.tokens.counts()
	if begun != 1 || ended != 1 {
		t.Errorf("tokens begun %d, ended %d; want 1, 1", begun, ended)
	}
	if vars["SLIPWAY_PUSH_TOKEN"] != ts.tokens.tokens[0] {
		t.Errorf("hook got token %q, want %q", vars["SLIPWAY_PUSH_TOKEN"], ts.tokens.tokens[0])
	}
	if vars["GIT_PUSH_OPTION_0"] != "wait" {
		t.Errorf("push option not passed: %q", vars["GIT_PUSH_OPTION_0"])
	}
	// git puts its exec path in front of PATH for hooks.
	if vars["HOME"] != ts.srv.home || !strings.HasSuffix(vars["PATH"], ":"+os.Getenv("PATH")) {
		t.Errorf("HOME %q PATH %q", vars["HOME"], vars["PATH"])
	}
	for k := range vars {
		// git itself adds GIT_* variables for its hooks, and the shell a
		// few of its own.
		if !strings.HasPrefix(k, "GIT_") && !slices.Contains([]string{"HOME", "PATH", "SLIPWAY_PUSH_TOKEN", "PWD", "SHLVL", "_", "OLDPWD"}, k) {
			t.Errorf("hook environment has %s=%q", k, vars[k])
		}
	}
}
