package hooks

import (
	"context"
	"fmt"
	"io"

	"slipway/record"
)

// ConfigRepo is the configuration as a repository (config_repo = true):
// pushes to its repository are checked as configurations in pre-receive,
// before any ref moves, and applied in post-receive once they have. The
// daemon's configrepo.Repo implements it. Its methods are called
// concurrently.
type ConfigRepo interface {
	// Owns reports whether repo is the configuration repository.
	Owns(repo string) bool
	// Check returns why the updates refs, pushed by user with the key
	// keyFingerprint ("" for a push on the server's disk), may not be
	// made, one line each: every problem of the configuration they
	// would put in force, or one reason. nil: they may. quarantine is
	// the push's quarantine folder, already checked to be the
	// repository's own ("": the objects are in the repository).
	Check(ctx context.Context, user, keyFingerprint string, refs []record.RefUpdate, quarantine string) []string
	// Apply puts in force what the accepted updates refs made, and
	// tells the pusher how that went on out. ctx is not the pusher's:
	// an apply goes on if the pusher hangs up.
	Apply(ctx context.Context, user string, refs []record.RefUpdate, out io.Writer)
}

// checkConfig checks a push to the configuration repository. It returns the
// exit code of pre-receive.
func (s *Server) checkConfig(ctx context.Context, req request, id identity, out io.Writer) int {
	if s.o.ConfigRepo == nil || !s.o.ConfigRepo.Owns(id.Repo) {
		return 0
	}
	var q string
	if req.Quarantine != "" {
		var err error
		if q, err = s.quarantineOf(id.Repo, req.Quarantine); err != nil {
			s.log.Warn("configuration push refused: bad quarantine", "repo", id.Repo, "user", id.User, "err", err)
			fmt.Fprintf(out, "slipway: %v; push refused\n", err)
			return 1
		}
	}
	lines := s.o.ConfigRepo.Check(ctx, id.User, id.KeyFingerprint, req.Refs, q)
	if len(lines) == 0 {
		return 0
	}
	for _, l := range lines {
		fmt.Fprintln(out, l)
	}
	fmt.Fprintln(out, "slipway: push refused; no ref was updated and the configuration in force is unchanged")
	return 1
}

// applyConfig applies an accepted push to the configuration repository,
// after post-receive has recorded it. A push whose pusher the daemon does
// not know (its pre-receive was not this daemon's) is left alone: the
// file on disk stays the source, and the next reload commits it.
func (s *Server) applyConfig(ctx context.Context, id identity, req request, out io.Writer) {
	if s.o.ConfigRepo == nil || id.err != nil || !s.o.ConfigRepo.Owns(id.Repo) {
		return
	}
	s.o.ConfigRepo.Apply(context.WithoutCancel(ctx), id.User, req.Refs, out)
}
