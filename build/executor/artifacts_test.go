package executor

import (
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slipway/internal/testutil"
	"strings"
	"testing"
)

// FuzzArtifactsStayInWorkspace plants a symbolic link with a fuzzed target
// in a workspace, next to a secret file outside it, and copies a fuzzed
// artifact path: whatever it copies must hold nothing from outside the
// workspace, and every link it keeps must stay inside the artifacts.
func FuzzArtifactsStayInWorkspace(f *testing.F) {
	for _, seed := range [][2]string{
		{"../secret", "l"}, {"../secret", "a"}, {"/etc/hostname", "a/link"}, {"file", "a"},
		{"../a/file", "l"}, {"a/../../secret", "."}, {"..", "a"}, {".", "l"}, {"../../..", "."},
		{"a", "l"}, {"a/link", "l"}, {"nowhere", "a"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, target, artifact string) {
		if strings.ContainsRune(target, 0) || target == "" {
			return
		}
		// The pipeline parser only lets clean relative paths through.
		artifact = path.Clean(artifact)
		if path.IsAbs(artifact) || artifact == ".." || strings.HasPrefix(artifact, "../") || strings.ContainsRune(artifact, 0) {
			return
		}
		root := t.TempDir()
		ws, dst := filepath.Join(root, "ws"), filepath.Join(root, "dst")
		const secret = "TOPSECRET-7f3a"
		testutil.WriteFile(t, filepath.Join(root, "secret"), secret)
		testutil.WriteFile(t, filepath.Join(ws, "a", "file"), "ok")
		if err := os.Symlink(target, filepath.Join(ws, "a", "link")); err != nil {
			t.Skip()
		}
		if err := os.Symlink(target, filepath.Join(ws, "l")); err != nil {
			t.Skip()
		}
		_, _ = CopyArtifacts(ws, dst, []string{artifact}, 0)
		_ = filepath.WalkDir(dst, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			rel, _ := filepath.Rel(dst, p)
			switch {
			case d.Type()&fs.ModeSymlink != 0:
				tgt, _ := os.Readlink(p)
				j := path.Join(path.Dir(filepath.ToSlash(rel)), tgt)
				if path.IsAbs(tgt) || j == ".." || strings.HasPrefix(j, "../") {
					t.Errorf("kept link %s -> %s leads out of the artifacts", rel, tgt)
				}
			case d.Type().IsRegular():
				b, _ := os.ReadFile(p)
				if strings.Contains(string(b), secret) {
					t.Errorf("artifact %s holds the file from outside the workspace", rel)
				}
			}
			return nil
		})
	})
}

func TestCopyArtifactsKeepsModesAndInsideLinks(t *testing.T) {
	ws, dst := t.TempDir(), filepath.Join(t.TempDir(), "out")
	testutil.WriteFile(t, filepath.Join(ws, "bin", "app"), "#!/bin/sh\n")
	if err := os.Chmod(filepath.Join(ws, "bin", "app"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("app", filepath.Join(ws, "bin", "current")); err != nil {
		t.Fatal(err)
	}
	n, err := CopyArtifacts(ws, dst, []string{"bin"}, 0)
	if err != nil || n != 2 {
		t.Fatalf("copied %d, %v", n, err)
	}
	if fi, err := os.Stat(filepath.Join(dst, "bin", "app")); err != nil || fi.Mode().Perm()&0o100 == 0 {
		t.Errorf("bin/app lost its executable bit: %v %v", fi, err)
	}
	if tgt, err := os.Readlink(filepath.Join(dst, "bin", "current")); err != nil || tgt != "app" {
		t.Errorf("bin/current: %q, %v", tgt, err)
	}
	if _, err := CopyArtifacts(ws, filepath.Join(t.TempDir(), "x"), []string{"missing"}, 0); err == nil || !strings.Contains(err.Error(), `"missing" does not exist`) {
		t.Errorf("missing artifact: %v", err)
	}
}
