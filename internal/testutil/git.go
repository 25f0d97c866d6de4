package testutil

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// GitCmd is a git command run in dir with the process's environment less
// its GIT_ variables, no system or global git configuration, and a fixed
// author and committer, t <t@example.org>.
func GitCmd(dir string, args ...string) *exec.Cmd {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GIT_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL="+os.DevNull,
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.org",
		"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.org")
	return cmd
}

// RunGit runs cmd, a GitCmd its caller may have given a standard input or
// more environment, and returns its standard output without surrounding
// space; it fails the test, with git's standard error, when git fails.
func RunGit(t testing.TB, cmd *exec.Cmd) string {
	t.Helper()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(cmd.Args[1:], " "), err, stderr.Bytes())
	}
	return strings.TrimSpace(string(out))
}

// Git runs git in dir (see GitCmd) and returns its output as RunGit does.
func Git(t testing.TB, dir string, args ...string) string {
	t.Helper()
	return RunGit(t, GitCmd(dir, args...))
}
