package build

import (
	"fmt"
	"os"
	"path/filepath"

	"slipway/internal/manifest"
)

// sealArtifacts checks the artifacts an executor copied into dst and writes
// the set's manifest into it (manifest.FileName). It returns the set's
// digest, which the build is recorded with: deployments ship exactly the
// bytes of that digest or fail. The copying itself, and the rules that keep
// it inside the workspace, are executor.CopyArtifacts'.
func sealArtifacts(dst string) (string, error) {
	// Slipway's own files at the top of a release (the manifest, package
	// deploy's marker and activate files): an artifact of the same name
	// would be overwritten or left out on the target.
	for _, name := range []string{manifest.FileName, ".slipway-release", ".slipway-activate"} {
		if _, err := os.Lstat(filepath.Join(dst, name)); err == nil {
			return "", fmt.Errorf("%q is a name Slipway keeps for itself at the top of a release; rename that artifact", name)
		}
	}
	digest, err := manifest.Write(dst)
	if err != nil {
		return "", fmt.Errorf("write the manifest: %w", err)
	}
	return digest, nil
}
