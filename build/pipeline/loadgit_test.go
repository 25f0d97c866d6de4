package pipeline

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slipway/internal/testutil"
	"strings"
	"testing"
)

// quarantined pushes files as a new commit to branch of r's bare
// repository through a pre-receive hook that keeps a copy of git's
// quarantine folder and then refuses the push: the copy holds the pushed
// objects as the hook saw them, and the repository never gets them.
func (r *repo) quarantined(branch string, files map[string]*string) (commit, quarantine string) {
	r.t.Helper()
	saved := filepath.Join(r.t.TempDir(), "quarantine")
	hooks := filepath.Join(r.t.TempDir(), "hooks")
	if err := os.MkdirAll(hooks, 0o755); err != nil {
		r.t.Fatal(err)
	}
	script := "#!/bin/sh\ncp -r \"$GIT_QUARANTINE_PATH\" '" + saved + "'\nexit 1\n"
	if err := os.WriteFile(filepath.Join(hooks, "pre-receive"), []byte(script), 0o755); err != nil {
		r.t.Fatal(err)
	}
	testutil.Git(r.t, r.bare, "config", "core.hooksPath", hooks)
	defer testutil.Git(r.t, r.bare, "config", "--unset", "core.hooksPath")
	r.write(files)
	testutil.Git(r.t, r.work, "add", "-A")
	testutil.Git(r.t, r.work, "commit", "-q", "--allow-empty", "-m", "quarantined")
	commit = testutil.Git(r.t, r.work, "rev-parse", "HEAD")
	cmd := testutil.GitCmd(r.work, "push", "-q", r.bare, "HEAD:refs/heads/"+branch)
	if out, err := cmd.CombinedOutput(); err == nil {
		r.t.Fatalf("the quarantining hook let the push in:\n%s", out)
	}
	if _, err := os.Stat(saved); err != nil {
		r.t.Fatalf("the hook saved no quarantine: %v", err)
	}
	return commit, saved
}

func quarantineEnv(bare, q string) []string {
	return []string{"GIT_OBJECT_DIRECTORY=" + q, "GIT_ALTERNATE_OBJECT_DIRECTORIES=" + filepath.Join(bare, "objects")}
}

// TestLoadGitReadsAQuarantine: a commit that exists only in a push's
// quarantine is invisible to Load and read by LoadGit with the quarantine's
// environment; a tree that reuses objects of the repository (the unchanged
// files) is read through the repository's objects.
func TestLoadGitReadsAQuarantine(t *testing.T) {
	r := newRepo(t)
	first := r.commit("main", map[string]*string{FileName: ptr("[build]\nsteps = [\"make\"]\n"), "big": ptr(strings.Repeat("x", 4096))})
	c, q := r.quarantined("main", map[string]*string{FileName: ptr("[build]\nsteps = [\"make quarantined\"]\n")})
	if _, err := Load(t.Context(), testPool(), r.bare, c); err == nil {
		t.Fatal("Load found a commit that only the quarantine holds")
	}
	if _, err := LoadGit(t.Context(), r.bare, c, nil); err == nil || errors.Is(err, ErrNoFile) {
		t.Fatalf("LoadGit without the quarantine: %v, want a read error", err)
	}
	f, err := LoadGit(t.Context(), r.bare, c, quarantineEnv(r.bare, q))
	if err != nil {
		t.Fatalf("LoadGit from the quarantine: %v", err)
	}
	if p, _, ok := f.Section("build", ""); !ok || p.Steps[0] != "make quarantined" {
		t.Fatalf("LoadGit read %+v", p)
	}
	// An unchanged pipeline file: its blob is only in the repository, which
	// git reads as the quarantine's alternate.
	testutil.Git(t, r.work, "reset", "-q", "--hard", first)
	c2, q2 := r.quarantined("main", map[string]*string{"other": ptr("y")})
	f, err = LoadGit(t.Context(), r.bare, c2, quarantineEnv(r.bare, q2))
	if err != nil {
		t.Fatalf("LoadGit of a commit reusing the repository's blob: %v", err)
	}
	if p, _, _ := f.Section("build", ""); p.Steps[0] != "make" {
		t.Fatalf("LoadGit read %+v", p)
	}
}

// TestLoadGitAgreesWithLoad: for every case Load judges, LoadGit says the
// same.
func TestLoadGitAgreesWithLoad(t *testing.T) {
	r := newRepo(t)
	good := r.commit("good", map[string]*string{FileName: ptr("[build]\nsteps = [\"make\"]\n")})
	missing := r.commit("missing", map[string]*string{FileName: nil, "sub/" + FileName: ptr("[build]\nsteps = [\"make\"]\n")})
	broken := r.commit("broken", map[string]*string{"sub/" + FileName: nil, FileName: ptr("[build]\nsteps = [\"make\"]\ntimeout = \"soon\"\n")})
	link, dir, big := r.oddEntries()

	for name, tc := range map[string]struct {
		commit string
		check  func(error) bool
	}{
		"good":    {good, func(err error) bool { return err == nil }},
		"missing": {missing, func(err error) bool { return errors.Is(err, ErrNoFile) }},
		"broken": {broken, func(err error) bool {
			var pe *Error
			return errors.As(err, &pe) && pe.Line == 3 && pe.Col == 1
		}},
		"link":    {link, func(err error) bool { return err != nil && strings.Contains(err.Error(), "symbolic link") }},
		"dir":     {dir, func(err error) bool { return err != nil && strings.Contains(err.Error(), "not a regular file") }},
		"big":     {big, func(err error) bool { return err != nil && strings.Contains(err.Error(), "the limit is") }},
		"unknown": {strings.Repeat("ab", 20), func(err error) bool { return err != nil && !errors.Is(err, ErrNoFile) }},
	} {
		_, lerr := Load(t.Context(), testPool(), r.bare, tc.commit)
		_, gerr := LoadGit(context.Background(), r.bare, tc.commit, nil)
		if !tc.check(lerr) || !tc.check(gerr) {
			t.Errorf("%s: Load: %v; LoadGit: %v", name, lerr, gerr)
		}
	}
	if _, err := LoadGit(t.Context(), r.bare, "main", nil); err == nil {
		t.Error("LoadGit took a branch name; it wants a full commit id")
	}
}
