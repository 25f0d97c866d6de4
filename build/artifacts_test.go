package build

import (
	"path/filepath"
	"strings"
	"testing"

	"slipway/build/executor"
	"slipway/internal/manifest"
	"slipway/internal/testutil"
)

func TestSealArtifacts(t *testing.T) {
	t.Parallel()
	ws, dst := t.TempDir(), filepath.Join(t.TempDir(), "out")
	testutil.WriteFile(t, filepath.Join(ws, "bin", "app"), "#!/bin/sh\n")
	if _, err := executor.CopyArtifacts(ws, dst, []string{"bin"}, 0); err != nil {
		t.Fatal(err)
	}
	digest, err := sealArtifacts(dst)
	if err != nil {
		t.Fatal(err)
	}
	// The kept set carries its manifest, and the digest recorded with the
	// build is that manifest's.
	if err := manifest.Check(dst, digest); err != nil || !manifest.Valid(digest) {
		t.Errorf("kept artifacts against digest %q: %v", digest, err)
	}
	// A build cannot ship a file named like Slipway's own at the top of a
	// release.
	testutil.WriteFile(t, filepath.Join(ws, ".slipway-manifest"), "forged")
	dst = filepath.Join(t.TempDir(), "y")
	if _, err := executor.CopyArtifacts(ws, dst, []string{"."}, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := sealArtifacts(dst); err == nil || !strings.Contains(err.Error(), `".slipway-manifest" is a name Slipway keeps`) {
		t.Errorf("artifact named like the manifest: %v", err)
	}
}
