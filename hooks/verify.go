package hooks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"slipway/configs"
	"slipway/record"
)

// VerifyOption is the push option (`git push -o verify`) that makes a push
// land only when the build of each branch it updates passes. A repository's
// verify_branches makes it the rule for those branches.
const VerifyOption = "verify"

// Verifier builds a push's revisions in pre-receive, before git moves any
// ref; the build service implements it. Its methods are called concurrently.
type Verifier interface {
	// Verify builds the revisions refs (branch updates of p, none a
	// deletion) would get, reading the pushed objects from quarantine,
	// a quarantine folder of p's repository. What it writes to out reaches
	// the pusher as it is written. It returns nil when every build passed;
	// then the branches p updates stay held until release is called, once
	// the push's session has ended. Otherwise err is one line naming the
	// ref and why, and nothing is held. ctx ends when the pusher goes away.
	Verify(ctx context.Context, p record.Push, refs []record.RefUpdate, quarantine string, out io.Writer) (release func(), err error)
	// Holder says why ref of repo cannot be pushed now (a push updating it
	// is being verified), or "".
	Holder(repo, ref string) string
}

// verify builds, through the Verifier, the branch updates of an allowed push
// that must pass first, and refuses the push unless all of them pass. It
// returns the exit code of pre-receive.
func (s *Server) verify(ctx context.Context, req request, id identity, out io.Writer) int {
	asked := slices.Contains(req.Options, VerifyOption)
	if s.o.ConfigRepo != nil && s.o.ConfigRepo.Owns(id.Repo) {
		if asked {
			fmt.Fprintf(out, "slipway: -o verify: %s is never built; its pushes are checked as configurations instead\n", id.Repo)
		}
		return 0
	}
	repo := configs.Snapshot(ctx, s.o.Config).RepoOrDefault(id.Repo)
	var refs []record.RefUpdate
	for _, u := range req.Refs {
		if strings.HasPrefix(u.Name, "refs/heads/") && !record.ZeroID(u.New) && (asked || repo.Verifies(u.Name)) {
			refs = append(refs, u)
		}
	}
	if len(refs) == 0 {
		if asked {
			fmt.Fprintln(out, "slipway: -o verify: this push updates no branch, so there is nothing to verify")
		}
		return 0
	}
	refuse := func(format string, args ...any) int {
		fmt.Fprintf(out, format+"\n", args...)
		fmt.Fprintln(out, "slipway: push refused; no ref was updated")
		return 1
	}
	why := fmt.Sprintf("%s must pass its build first", refs[0].Name)
	if !asked {
		why += " (verify_branches)"
	}
	switch {
	case s.o.Verifier == nil:
		return refuse("%s, and this server cannot build pushes before they land", why)
	case id.local:
		return refuse("%s, which only a push through Slipway's SSH server can do", why)
	}
	q, err := s.quarantineOf(id.Repo, req.Quarantine)
	if err != nil {
		s.log.Warn("verified push refused: bad quarantine", "repo", id.Repo, "user", id.User, "quarantine", req.Quarantine, "err", err)
		return refuse("%s, but %v", why, err)
	}
	p := record.Push{Repo: id.Repo, User: id.User, KeyFingerprint: id.KeyFingerprint, Refs: req.Refs, Options: req.Options}
	release, err := s.o.Verifier.Verify(ctx, p, refs, q, out)
	if err != nil {
		return refuse("%v", err)
	}
	if !s.o.Registry.OnEnd(req.Token, release) {
		release()
		return refuse("slipway: this push's SSH session ended while it was verified")
	}
	return 0
}

// quarantineOf checks the quarantine folder a hook client names for a push
// to repo and returns its real path. Only a folder directly inside the
// repository's own objects folder, named as git names them
// ("tmp_objdir-incoming-XXXXXX", "incoming-XXXXXX" before git 2.35), is
// accepted: the client is run by git, but what it sends is input, and a
// build must never read objects from anywhere else.
func (s *Server) quarantineOf(repo, dir string) (string, error) {
	if dir == "" {
		return "", errors.New("git gave the hook no quarantine folder (GIT_QUARANTINE_PATH; git 2.13 or later sets it)")
	}
	notOurs := fmt.Errorf("the hook's quarantine folder %q is not one of repository %s", truncate(dir), repo)
	base, err := filepath.Abs(s.o.ReposDir)
	if err != nil {
		return "", fmt.Errorf("find the repositories folder: %w", err)
	}
	objects, err := filepath.EvalSymlinks(filepath.Join(base, filepath.FromSlash(repo)+".git", "objects"))
	if err != nil {
		return "", fmt.Errorf("find the objects folder of repository %s: %w", repo, err)
	}
	real, err := filepath.EvalSymlinks(dir)
	if err != nil || filepath.Dir(real) != objects || !quarantineName(filepath.Base(real)) {
		return "", notOurs
	}
	if fi, err := os.Lstat(real); err != nil || !fi.IsDir() {
		return "", notOurs
	}
	return real, nil
}

// quarantineName reports whether name is one git gives a quarantine folder:
// a prefix and the letters, digits or '_' that mkdtemp fills in.
func quarantineName(name string) bool {
	rest, ok := strings.CutPrefix(name, "tmp_objdir-incoming-")
	if !ok {
		rest, ok = strings.CutPrefix(name, "incoming-")
	}
	if !ok || rest == "" {
		return false
	}
	for _, c := range rest {
		if c != '_' && (c < '0' || c > '9') && (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') {
			return false
		}
	}
	return true
}
