package configrepo

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Sync commits the file on disk to main as Slipway, once: again with the
// same bytes it commits nothing; a changed file is a new commit on top of
// main that keeps main's other files.
func TestSync(t *testing.T) {
	t.Parallel()
	r, _ := newRepo(t, "")
	first, err := r.Sync(t.Context(), []byte("data_dir = \"a\"\n"), "configuration on disk at start")
	if err != nil || first == "" {
		t.Fatalf("Sync on an empty repository: %q, %v", first, err)
	}
	if head := git(t, r.o.GitDir, nil, "", "rev-parse", "refs/heads/main"); head != first {
		t.Fatalf("main is %s, want the commit %s", head, first)
	}
	show := git(t, r.o.GitDir, nil, "", "show", "-s", "--format=%an <%ae>|%cn <%ce>|%s|%P", first)
	if show != "Slipway <slipway@testhost>|Slipway <slipway@testhost>|configuration on disk at start|" {
		t.Errorf("commit: %q", show)
	}
	body := git(t, r.o.GitDir, nil, "", "show", "-s", "--format=%b", first)
	if !strings.Contains(body, r.o.File) || !strings.Contains(body, "source at start") {
		t.Errorf("the message does not say which file and why:\n%s", body)
	}
	if got := git(t, r.o.GitDir, nil, "", "show", first+":slipway.toml"); got != `data_dir = "a"` {
		t.Errorf("main's file: %q", got)
	}
	if again, err := r.Sync(t.Context(), []byte("data_dir = \"a\"\n"), "configuration reloaded by SIGHUP"); again != "" || err != nil {
		t.Errorf("Sync of the file main holds: %q, %v; want no commit", again, err)
	}

	// main gets a README by a push; the file changes by hand.
	withReadme := commit(t, r.o.GitDir, nil, first, map[string]string{"slipway.toml": "data_dir = \"a\"\n", "README": "ask bob\n"})
	setMain(t, r.o.GitDir, withReadme)
	next, err := r.Sync(t.Context(), []byte("data_dir = \"b\"\n"), "configuration reloaded by SIGHUP")
	if err != nil || next == "" {
		t.Fatalf("Sync of a changed file: %q, %v", next, err)
	}
	if got := git(t, r.o.GitDir, nil, "", "show", "-s", "--format=%P|%s", next); got != withReadme+"|configuration reloaded by SIGHUP" {
		t.Errorf("parent and subject: %q", got)
	}
	if got := git(t, r.o.GitDir, nil, "", "ls-tree", "--name-only", next); got != "README\nslipway.toml" {
		t.Errorf("files of main: %q", got)
	}
}

// Sync moves main with the repository's hooks active: git's
// reference-transaction hook sees the update (the daemon records it as an
// update on the server's disk), and one that refuses it leaves main where
// it was and Sync fails.
func TestSyncRunsTheHooks(t *testing.T) {
	t.Parallel()
	r, _ := newRepo(t, "")
	hooks := t.TempDir()
	seen := filepath.Join(t.TempDir(), "seen")
	script := "#!/bin/sh\necho \"$1\" >> " + seen + "\ncat >> " + seen + "\n[ ! -e " + filepath.Join(hooks, "refuse") + " ] || [ \"$1\" != prepared ]\n"
	if err := os.WriteFile(filepath.Join(hooks, "reference-transaction"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	git(t, r.o.GitDir, nil, "", "config", "core.hooksPath", hooks)
	first, err := r.Sync(t.Context(), []byte("a = 1\n"), "configuration on disk at start")
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(seen)
	zero := strings.Repeat("0", 40)
	for _, want := range []string{"prepared\n" + zero + " " + first + " refs/heads/main\n", "committed\n" + zero + " " + first + " refs/heads/main\n"} {
		if !strings.Contains(string(data), want) {
			t.Errorf("the hook did not see %q:\n%s", want, data)
		}
	}
	if err := os.WriteFile(filepath.Join(hooks, "refuse"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if c, err := r.Sync(t.Context(), []byte("a = 2\n"), "configuration reloaded by SIGHUP"); err == nil {
		t.Errorf("Sync refused by the hook: made %s, no error", c)
	}
	if head := git(t, r.o.GitDir, nil, "", "rev-parse", "refs/heads/main"); head != first {
		t.Errorf("main moved to %s though the hook refused", head)
	}
}
