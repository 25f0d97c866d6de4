package manifest

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func tree(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range map[string]string{"bin/app": "binary v1", "static/a b\n.css": "body{}", "README": "hi"} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(dir, "bin/app"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("bin/app", filepath.Join(dir, "app")); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestManifestIsCanonicalAndDescribesEveryEntry(t *testing.T) {
	dir := tree(t)
	text, err := Compute(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := "slipway-manifest 1\n" +
		"f 0644 2 8f434346648f6b96df89dda901c5176b10a6d83961dd3c1ac88b59b2dc327aa4 \"README\"\n" +
		"l - 7 - \"app\" \"bin/app\"\n" +
		"d 0755 - - \"bin\"\n" +
		"f 0755 9 " + sha("binary v1") + " \"bin/app\"\n" +
		"d 0755 - - \"static\"\n" +
		"f 0644 6 " + sha("body{}") + " \"static/a b\\n.css\"\n"
	if string(text) != want {
		t.Fatalf("manifest:\n%s\nwant:\n%s", text, want)
	}
	// The same content elsewhere, written in another order and at another
	// time, has the same digest.
	other := t.TempDir()
	for _, name := range []string{"static/a b\n.css", "bin/app", "README"} {
		b, _ := os.ReadFile(filepath.Join(dir, name))
		os.MkdirAll(filepath.Dir(filepath.Join(other, name)), 0o755)
		os.WriteFile(filepath.Join(other, name), b, 0o644)
	}
	os.Chmod(filepath.Join(other, "bin/app"), 0o755)
	os.Symlink("bin/app", filepath.Join(other, "app"))
	d1, err := Write(dir)
	if err != nil {
		t.Fatal(err)
	}
	d2, err := Write(other)
	if err != nil {
		t.Fatal(err)
	}
	if d1 != d2 || !Valid(d1) || d1 != Digest(text) {
		t.Fatalf("digests %s and %s of one content (valid %v)", d1, d2, Valid(d1))
	}
	// The manifest file is not part of what it describes.
	if again, _ := Compute(dir); string(again) != string(text) {
		t.Fatalf("the written manifest changed the manifest:\n%s", again)
	}
	if got := Short(d1); got != d1[:15] || !strings.HasPrefix(got, "sha256:") {
		t.Fatalf("Short = %q", got)
	}
}

func sha(s string) string { return strings.TrimPrefix(Digest([]byte(s)), Prefix) }

func TestCheckFindsEveryKindOfChange(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(dir string) error
		want   string
	}{
		{"same-size swap", func(d string) error { return os.WriteFile(filepath.Join(d, "bin/app"), []byte("binary v2"), 0o755) }, "bin/app differs"},
		{"mode", func(d string) error { return os.Chmod(filepath.Join(d, "README"), 0o600) }, "README differs"},
		{"extra file", func(d string) error { return os.WriteFile(filepath.Join(d, "bin/evil"), nil, 0o644) }, "bin/evil is not in the manifest"},
		{"missing file", func(d string) error { return os.Remove(filepath.Join(d, "README")) }, "README is missing"},
		{"link target", func(d string) error {
			os.Remove(filepath.Join(d, "app"))
			return os.Symlink("/etc/passwd", filepath.Join(d, "app"))
		}, "app differs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := tree(t)
			digest, err := Write(dir)
			if err != nil {
				t.Fatal(err)
			}
			if err := Check(dir, digest); err != nil {
				t.Fatalf("unchanged folder: %v", err)
			}
			if err := tc.change(dir); err != nil {
				t.Fatal(err)
			}
			err = Check(dir, digest)
			if !errors.Is(err, ErrMismatch) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Check after %s: %v, want a mismatch saying %q", tc.name, err, tc.want)
			}
		})
	}
	t.Run("manifest rewritten", func(t *testing.T) {
		dir := tree(t)
		digest, _ := Write(dir)
		os.WriteFile(filepath.Join(dir, "README"), []byte("ho"), 0o644)
		Write(dir) // someone re-writes the manifest to match the swap
		if err := Check(dir, digest); !errors.Is(err, ErrMismatch) || !strings.Contains(err.Error(), "not the recorded") {
			t.Fatalf("Check with a rewritten manifest: %v", err)
		}
	})
}
