package checkout

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestCheckoutQuarantined: a commit that only a push's quarantine holds is
// checked out from it, with the files it shares with the repository read
// from the repository's objects; Checkout, which reads the repository
// alone, cannot find it; the bare repository is left as it was.
func TestCheckoutQuarantined(t *testing.T) {
	t.Parallel()
	bare, _ := newRepo(t, false)
	work := filepath.Join(filepath.Dir(bare), "work")
	saved := filepath.Join(t.TempDir(), "quarantine")
	hooks := t.TempDir()
	script := "#!/bin/sh\ncp -r \"$GIT_QUARANTINE_PATH\" '" + saved + "'\nexit 1\n"
	must(t, os.WriteFile(filepath.Join(hooks, "pre-receive"), []byte(script), 0o755))
	gitT(t, bare, "config", "core.hooksPath", hooks)
	must(t, os.WriteFile(filepath.Join(work, "new.txt"), []byte("only in the quarantine\n"), 0o644))
	gitT(t, work, "add", "new.txt")
	gitT(t, work, "commit", "-q", "-m", "pushed, not accepted")
	commit := gitT(t, work, "rev-parse", "HEAD")
	push := exec.Command("git", "push", "-q", bare, "main")
	push.Dir = work
	push.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + work, "GIT_CONFIG_NOSYSTEM=1"}
	if out, err := push.CombinedOutput(); err == nil {
		t.Fatalf("the quarantining hook let the push in:\n%s", out)
	}
	gitT(t, bare, "config", "--unset", "core.hooksPath")
	before := snapshot(t, bare)

	if _, err := Checkout(t.Context(), bare, commit, t.TempDir(), testOptions()); err == nil {
		t.Fatal("Checkout found a commit that only the quarantine holds")
	}
	dst := t.TempDir()
	res, err := CheckoutQuarantined(t.Context(), bare, saved, commit, dst, Options{})
	if err != nil {
		t.Fatalf("CheckoutQuarantined: %v", err)
	}
	if res.Files != 7 || !slices.Equal(res.Submodules, []string{"vendor/lib"}) {
		t.Errorf("Result = %+v, want 7 files and the submodule", res)
	}
	for name, want := range map[string]string{"new.txt": "only in the quarantine\n", "README": "hello\n", "a/b/c/deep.txt": "deep\n"} {
		if b, err := os.ReadFile(filepath.Join(dst, name)); err != nil || string(b) != want {
			t.Errorf("%s = %q, %v; want %q", name, b, err, want)
		}
	}
	if fi, err := os.Stat(filepath.Join(dst, "build.sh")); err != nil || fi.Mode().Perm()&0o111 == 0 {
		t.Errorf("build.sh: %v, %v; want an executable", fi, err)
	}
	if after := snapshot(t, bare); !slices.Equal(before, after) {
		t.Errorf("bare repository changed:\nbefore %q\nafter  %q", before, after)
	}
	if _, err := CheckoutQuarantined(t.Context(), bare, saved, "main", t.TempDir(), Options{}); err == nil || !strings.Contains(err.Error(), "not a full commit id") {
		t.Errorf("a branch name: %v", err)
	}
}
