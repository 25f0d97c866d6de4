package gitrev

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slipway/internal/testutil"
	"strings"
	"testing"
)

func git(t *testing.T, dir string, env []string, args ...string) string {
	t.Helper()
	cmd := testutil.GitCmd(dir, args...)
	cmd.Env = append(cmd.Env, env...)
	return testutil.RunGit(t, cmd)
}

func TestPeel(t *testing.T) {
	dir := t.TempDir()
	git(t, dir, nil, "init", "-q", "--bare", "repo.git")
	gitDir := filepath.Join(dir, "repo.git")
	tree := git(t, gitDir, nil, "mktree")
	commit := git(t, gitDir, nil, "commit-tree", "-m", "one", tree)
	git(t, gitDir, nil, "tag", "-a", "-m", "v1", "v1", commit)
	tag := git(t, gitDir, nil, "rev-parse", "refs/tags/v1")
	git(t, gitDir, nil, "tag", "-a", "-m", "of a tag", "v1-again", "v1")
	tagOfTag := git(t, gitDir, nil, "rev-parse", "refs/tags/v1-again")
	git(t, gitDir, nil, "tag", "-a", "-m", "of a tree", "treetag", tree)
	treeTag := git(t, gitDir, nil, "rev-parse", "refs/tags/treetag")
	if tag == commit || tagOfTag == tag {
		t.Fatalf("annotated tags should be objects of their own")
	}

	for _, tc := range []struct {
		name, id, want string
	}{
		{"commit", commit, commit},
		{"annotated tag", tag, commit},
		{"tag of a tag", tagOfTag, commit},
	} {
		got, err := Peel(t.Context(), gitDir, tc.id, nil)
		if err != nil || got != tc.want {
			t.Errorf("%s: Peel = %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
	for _, tc := range []struct{ name, id string }{
		{"tree", tree},
		{"tag of a tree", treeTag},
		{"missing object", strings.Repeat("1", 40)},
		{"not an id", "HEAD"},
		{"option", "--output=/tmp/x"},
	} {
		if got, err := Peel(t.Context(), gitDir, tc.id, nil); !errors.Is(err, ErrNotCommit) {
			t.Errorf("%s: Peel = %q, %v; want ErrNotCommit", tc.name, got, err)
		}
	}
}

// A tag that exists only in a push's quarantine is peeled when the
// quarantine environment is given, and unknown without it.
func TestPeelInQuarantine(t *testing.T) {
	dir := t.TempDir()
	git(t, dir, nil, "init", "-q", "--bare", "repo.git")
	gitDir := filepath.Join(dir, "repo.git")
	objects := filepath.Join(gitDir, "objects")
	quarantine := filepath.Join(objects, "tmp_objdir-incoming-test")
	if err := os.Mkdir(quarantine, 0o755); err != nil {
		t.Fatal(err)
	}
	qenv := []string{"GIT_OBJECT_DIRECTORY=" + quarantine, "GIT_ALTERNATE_OBJECT_DIRECTORIES=" + objects}
	tree := git(t, gitDir, qenv, "mktree")
	commit := git(t, gitDir, qenv, "commit-tree", "-m", "one", tree)
	cmd := exec.Command("git", "--git-dir", gitDir, "mktag")
	cmd.Env = append(os.Environ(), qenv...)
	cmd.Stdin = strings.NewReader("object " + commit + "\ntype commit\ntag v1\ntagger t <t@t> 0 +0000\n\nv1\n")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("mktag: %v", err)
	}
	tag := strings.TrimSpace(string(out))

	if got, err := Peel(t.Context(), gitDir, tag, qenv); err != nil || got != commit {
		t.Errorf("Peel in quarantine = %q, %v; want %q", got, err, commit)
	}
	if got, err := Peel(t.Context(), gitDir, tag, nil); !errors.Is(err, ErrNotCommit) {
		t.Errorf("Peel without the quarantine = %q, %v; want ErrNotCommit", got, err)
	}
}
