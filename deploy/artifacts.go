package deploy

import (
	"context"
	"errors"
	"fmt"

	"slipway/build/logs"
	"slipway/internal/manifest"
	"slipway/record"
)

// checkArtifacts makes sure the artifacts kept for d's build are exactly
// the set the build recorded, before anything is shipped, and returns the
// set's digest. A build from before digests has its manifest written and
// its digest recorded now, from what is kept. Any difference (a file
// changed on Slipway's side, a manifest rewritten) fails the deployment:
// nothing of another content is ever shipped under a build's name.
func (s *Service) checkArtifacts(ctx context.Context, d record.Deployment, w *logs.Writer) (string, error) {
	dir := s.artifactDir(d.BuildID)
	if d.Digest == "" {
		// Queued before the build had a digest; another deployment of the
		// build may have recorded it since.
		b, err := s.o.Store.GetBuild(ctx, d.BuildID)
		if err != nil {
			return "", fmt.Errorf("read build %d: %w", d.BuildID, err)
		}
		d.Digest = b.ArtifactsDigest
	}
	if d.Digest == "" {
		digest, err := manifest.Write(dir)
		if err != nil {
			return "", fmt.Errorf("compute the manifest of build %d: %w", d.BuildID, err)
		}
		if err := s.o.Store.SetArtifactsDigest(ctx, d.BuildID, digest); err != nil {
			return "", fmt.Errorf("record the digest of build %d: %w", d.BuildID, err)
		}
		w.Printf("== build #%d is from before artifact digests: its kept artifacts are %s from now on", d.BuildID, digest)
		return digest, nil
	}
	if err := manifest.Check(dir, d.Digest); err != nil {
		if errors.Is(err, manifest.ErrMismatch) {
			return "", fmt.Errorf("the artifacts kept for build %d are not the ones it recorded (%s): %w", d.BuildID, manifest.Short(d.Digest), err)
		}
		return "", fmt.Errorf("check the artifacts kept for build %d: %w", d.BuildID, err)
	}
	w.Printf("== artifacts of build #%d match %s", d.BuildID, d.Digest)
	return d.Digest, nil
}
