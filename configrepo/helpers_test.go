package configrepo

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"slipway/configs"
	"slipway/internal/testutil"
)

// key is a user's public key: its authorized_keys line and fingerprint.
type key = testutil.Key

func newKey(t testing.TB) key { return testutil.NewKey(t) }

// git runs git in gitDir with env added and returns its trimmed output.
func git(t testing.TB, gitDir string, env []string, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"--git-dir", gitDir}, args...)...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=/nonexistent", "GIT_CONFIG_NOSYSTEM=1",
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@t", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@t"}, env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, stderr.String())
	}
	return strings.TrimSpace(out.String())
}

// bareRepo makes an empty bare repository, as the daemon makes
// slipway-config.
func bareRepo(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), configs.ConfigRepoName+".git")
	cmd := exec.Command("git", "init", "-q", "--bare", "--initial-branch=main", dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git init: %v\n%s", err, out)
	}
	return dir
}

// file is one file of a commit: a blob with its mode, or a symbolic link.
type file struct {
	mode, body string
}

// commit makes a commit of files (name → text, mode 100644) with parent
// (may be "") without moving any ref, writing its objects where env says
// (GIT_OBJECT_DIRECTORY for a quarantine), and returns its id.
func commit(t testing.TB, gitDir string, env []string, parent string, files map[string]string) string {
	t.Helper()
	fs := map[string]file{}
	for n, b := range files {
		fs[n] = file{"100644", b}
	}
	return commitFiles(t, gitDir, env, parent, fs)
}

func commitFiles(t testing.TB, gitDir string, env []string, parent string, files map[string]file) string {
	t.Helper()
	var tree strings.Builder
	for name, f := range files {
		kind := "blob"
		id := git(t, gitDir, env, f.body, "hash-object", "-w", "--stdin")
		if f.mode == "040000" {
			kind = "tree"
			inner := git(t, gitDir, env, "", "hash-object", "-w", "--stdin")
			id = git(t, gitDir, env, fmt.Sprintf("100644 blob %s\tinner\n", inner), "mktree")
		}
		fmt.Fprintf(&tree, "%s %s %s\t%s\n", f.mode, kind, id, name)
	}
	treeID := git(t, gitDir, env, tree.String(), "mktree")
	args := []string{"commit-tree", treeID, "-m", "change"}
	if parent != "" {
		args = append(args, "-p", parent)
	}
	return git(t, gitDir, env, "", args...)
}

// setMain moves main to id.
func setMain(t testing.TB, gitDir, id string) {
	t.Helper()
	git(t, gitDir, nil, "", "update-ref", "refs/heads/main", id)
}

// reloads records the reloads a Repo asked for.
type reloads struct {
	mu      sync.Mutex
	reasons []string
	files   []string // the file's text at each reload
	path    string
}

func (rl *reloads) reload(_ context.Context, reason string, out io.Writer) {
	data, _ := os.ReadFile(rl.path)
	rl.mu.Lock()
	rl.reasons = append(rl.reasons, reason)
	rl.files = append(rl.files, string(data))
	rl.mu.Unlock()
	fmt.Fprintf(out, "reloaded: %s\n", reason)
}

// newRepo returns a Repo on a fresh repository whose configuration file
// holds initial (mode 0640), parsing as `config check` does without a
// machine to read from.
func newRepo(t testing.TB, initial string) (*Repo, *reloads) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "slipway.toml")
	if err := os.WriteFile(file, []byte(initial), 0o640); err != nil {
		t.Fatal(err)
	}
	rl := &reloads{path: file}
	r, err := New(Options{
		File:   file,
		GitDir: bareRepo(t),
		Parse:  configs.Loader{}.Parse,
		Reload: rl.reload,
		Host:   "testhost",
	})
	if err != nil {
		t.Fatal(err)
	}
	return r, rl
}

// configOf renders a configuration: admins and others as users with one
// key each, then extra.
func configOf(admins map[string]key, others map[string]key, extra string) string {
	var b strings.Builder
	b.WriteString("data_dir = \"/srv/slipway\"\nconfig_repo = true\n\n")
	for _, set := range []struct {
		users map[string]key
		admin bool
	}{{admins, true}, {others, false}} {
		for _, name := range slices.Sorted(maps.Keys(set.users)) {
			fmt.Fprintf(&b, "[[user]]\nname = %q\nkeys = [%q]\n", name, set.users[name].Line)
			if set.admin {
				b.WriteString("admin = true\n")
			}
			b.WriteString("\n")
		}
	}
	b.WriteString(extra)
	return b.String()
}
