package gitserver

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"slipway/internal/testutil"
	"strings"
	"testing"
)

func runGit(t *testing.T, dir string, args ...string) (string, error) {
	t.Helper()
	out, err := testutil.GitCmd(dir, args...).CombinedOutput()
	return string(out), err
}

func mustGit(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, err := runGit(t, dir, args...)
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func quarantines(t *testing.T, bare string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(bare, "objects", quarantinePrefix+"*"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestSweepQuarantinesRemovesWhatACutOffPushLeft: a receive-pack killed
// while its pre-receive hook runs (as a daemon's death kills it) leaves its
// quarantine folder; the sweep at start removes it and those of nested
// repositories, touches nothing else, and the repositories stay sound.
func TestSweepQuarantinesRemovesWhatACutOffPushLeft(t *testing.T) {
	t.Parallel()
	repos := t.TempDir()
	hooks := t.TempDir()
	if err := os.WriteFile(filepath.Join(hooks, "pre-receive"), []byte("#!/bin/sh\nkill -9 $PPID\nsleep 5\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	mustGit(t, work, "init", "-q", "--initial-branch=main")
	if err := os.WriteFile(filepath.Join(work, "a"), []byte("a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mustGit(t, work, "add", "a")
	mustGit(t, work, "commit", "-q", "-m", "a")

	names := []string{"app", "team/app", "a/b/c"}
	for _, name := range names {
		bare := filepath.Join(repos, filepath.FromSlash(name)+".git")
		mustGit(t, repos, "init", "-q", "--bare", bare)
		mustGit(t, bare, "config", "core.hooksPath", hooks)
		if out, err := runGit(t, work, "push", bare, "HEAD:refs/heads/main"); err == nil {
			t.Fatalf("push to %s with a killed receive-pack succeeded:\n%s", name, out)
		}
		if len(quarantines(t, bare)) != 1 {
			t.Fatalf("%s: no quarantine folder left by the cut-off push", name)
		}
	}
	// Look-alikes that are not a repository's quarantine stay.
	decoy := filepath.Join(repos, "team", quarantinePrefix+"decoy")
	if err := os.MkdirAll(decoy, 0o755); err != nil {
		t.Fatal(err)
	}

	var buf bytes.Buffer
	if n := SweepQuarantines(repos, slog.New(slog.NewTextHandler(&buf, nil))); n != len(names) {
		t.Errorf("removed %d, want %d", n, len(names))
	}
	if !strings.Contains(buf.String(), "removed leftover quarantine folders") || !strings.Contains(buf.String(), "count=3") {
		t.Errorf("log:\n%s", buf.String())
	}
	if _, err := os.Stat(decoy); err != nil {
		t.Errorf("a folder outside any repository's objects was removed: %v", err)
	}
	for _, name := range names {
		bare := filepath.Join(repos, filepath.FromSlash(name)+".git")
		if q := quarantines(t, bare); len(q) != 0 {
			t.Errorf("%s: left %v", name, q)
		}
		mustGit(t, bare, "fsck", "--no-progress")
		mustGit(t, bare, "config", "--unset", "core.hooksPath")
		mustGit(t, work, "push", "-q", bare, "HEAD:refs/heads/main")
	}
	// A missing repositories folder (first start) is nothing to sweep.
	if n := SweepQuarantines(filepath.Join(repos, "none"), slog.New(slog.DiscardHandler)); n != 0 {
		t.Errorf("missing folder: %d", n)
	}
}
