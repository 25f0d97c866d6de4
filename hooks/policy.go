package hooks

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"slipway/configs"
	"slipway/internal/gitrev"
	"slipway/record"
)

// identity is who a hook speaks for and in which repository.
type identity struct {
	Pusher
	local bool  // no token: a push made on the server's disk
	err   error // why the hook may not speak for anyone; Repo/User may still be set
}

// identify works out the pusher from the token and checks that the hook runs
// in the repository the token was issued for.
func (s *Server) identify(req request) identity {
	repo, repoErr := s.repoOf(req.GitDir)
	if req.Token == "" {
		id := identity{Pusher: Pusher{Repo: repo, User: LocalUser}, local: true}
		if repoErr != nil {
			id.err = repoErr
		}
		return id
	}
	p, ok := s.o.Registry.Lookup(req.Token)
	switch {
	case !ok:
		return identity{Pusher: Pusher{Repo: repo, User: UnknownUser},
			err: errors.New("this push's token is not known to the Slipway daemon (was it restarted during the push?)")}
	case repoErr != nil:
		return identity{err: repoErr}
	case repo != p.Repo:
		// The token has strayed into another repository's push; the refs
		// that change are this repository's, but whose they are is unknown.
		return identity{Pusher: Pusher{Repo: repo, User: UnknownUser},
			err: fmt.Errorf("the push was opened on repository %q but its hook runs in %q", p.Repo, repo)}
	}
	return identity{Pusher: p}
}

// repoOf maps the git dir a client sent to the canonical name of a
// repository under ReposDir, or refuses it. Both sides are resolved through
// symlinks, since git reports the directory it runs in as the kernel sees it.
func (s *Server) repoOf(gitDir string) (string, error) {
	notOurs := fmt.Errorf("the hook runs in %q, which is not a repository of this Slipway server", truncate(gitDir))
	real, err := filepath.EvalSymlinks(gitDir)
	if err != nil {
		return "", notOurs
	}
	base, err := filepath.Abs(s.o.ReposDir)
	if err != nil {
		return "", fmt.Errorf("find the repositories folder: %w", err)
	}
	if b, err := filepath.EvalSymlinks(base); err == nil {
		base = b
	}
	rel, err := filepath.Rel(base, real)
	if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", notOurs
	}
	rel = filepath.ToSlash(rel)
	name, ok := strings.CutSuffix(rel, ".git")
	if !ok {
		return "", notOurs
	}
	// Only a canonical name maps back to this very folder; anything the
	// cleaning would change ("App.git", "a.git.git") is not a Slipway repo.
	if clean, err := configs.CleanRepoName(name); err != nil || clean != name {
		return "", notOurs
	}
	return name, nil
}

// preReceive checks every ref update and refuses the whole push if any one
// is not allowed, listing each refusal on its own line.
func (s *Server) preReceive(ctx context.Context, req request, id identity, out io.Writer) int {
	if id.err != nil {
		fmt.Fprintf(out, "slipway: %v; push refused\n", id.err)
		return 1
	}
	var access configs.Access
	if !id.local {
		access = configs.Snapshot(ctx, s.o.Config).Access(id.User, id.Repo)
	}
	var refusals []string
	for _, u := range req.Refs {
		if reason := s.checkRef(ctx, id, access, u, req.Quarantine); reason != "" {
			refusals = append(refusals, u.Name+": "+reason)
		}
	}
	if len(refusals) == 0 {
		if code := s.checkConfig(ctx, req, id, out); code != 0 {
			return code
		}
		if code := s.verify(ctx, req, id, out); code != 0 {
			return code
		}
		// The last word: git moves the refs once this says yes.
		return s.prepare(ctx, req, id, out)
	}
	var b strings.Builder
	for _, r := range refusals {
		b.WriteString(r)
		b.WriteByte('\n')
	}
	fmt.Fprintf(&b, "slipway: push refused (%d of %s not allowed)\n", len(refusals), plural(len(req.Refs), "ref update"))
	_, _ = io.WriteString(out, b.String())
	return 1
}

// checkRef returns why the update u may not be made, or "".
func (s *Server) checkRef(ctx context.Context, id identity, access configs.Access, u record.RefUpdate, quarantine string) string {
	if gitrev.DaemonOwned(u.Name) {
		// Whoever pushes, admins and the server's own disk included: the
		// notes are what the builds said, not what a pusher says.
		return "Slipway alone writes this ref (its build and deployment results); fetch it, do not push it"
	}
	env, release := strings.CutPrefix(u.Name, gitrev.ReleasePrefix)
	if !release {
		if !id.local && !access.Has(configs.Write) {
			return fmt.Sprintf("user %s has no write access to repository %s", id.User, id.Repo)
		}
		if record.ZeroID(u.Old) && !record.ZeroID(u.New) {
			if why := s.confusingName(ctx, id.Repo, u.Name); why != "" {
				return why
			}
		}
		if s.o.Verifier != nil && strings.HasPrefix(u.Name, "refs/heads/") {
			return s.o.Verifier.Holder(id.Repo, u.Name)
		}
		return ""
	}
	switch {
	case id.local:
		return "release refs can only be pushed through Slipway's SSH server"
	case record.ZeroID(u.New):
		return "release refs cannot be deleted"
	case !access.Has(configs.Release):
		why := fmt.Sprintf("user %s may not release repository %s (needs the release right)", id.User, id.Repo)
		s.releaseRefused(ctx, id, u.Name, env, u.New, why)
		return why
	case s.o.ReleaseGate != nil:
		commit, why := s.peel(ctx, id.Repo, u.New, quarantine)
		if why != "" {
			return why
		}
		if err := s.o.ReleaseGate.CheckRelease(ctx, id.Repo, env, commit, id.User); err != nil {
			s.releaseRefused(ctx, id, u.Name, env, commit, err.Error())
			return err.Error()
		}
	}
	return ""
}

// releaseRefused adds the release.refused event of a refused release
// push. A failure to add it is logged: the push is refused either way.
func (s *Server) releaseRefused(ctx context.Context, id identity, ref, env, commit, why string) {
	if s.o.Events == nil {
		return
	}
	_, err := s.o.Events.AddEvent(context.WithoutCancel(ctx), record.Event{Kind: record.EventReleaseRefused,
		Repo: id.Repo, Ref: ref, Env: env, Commit: commit, User: id.User, State: "refused", Reason: why})
	if err != nil {
		s.log.Warn("add the release.refused event", "repo", id.Repo, "env", env, "err", err)
	}
}

// peel returns the commit that a pushed object names (an annotated tag
// pushed for a rollback names the commit it points at), reading the push's
// quarantine, where a tag sent with this very push still is. why is the
// pusher's one line when there is none.
func (s *Server) peel(ctx context.Context, repo, id, quarantine string) (commit, why string) {
	gitDir := filepath.Join(s.o.ReposDir, filepath.FromSlash(repo)+".git")
	var env []string
	if quarantine != "" {
		q, err := s.quarantineOf(repo, quarantine)
		if err != nil {
			s.log.Warn("release push with a quarantine folder not its own", "repo", repo, "err", err)
			return "", "the hook's quarantine folder is not this repository's; push refused"
		}
		env = []string{"GIT_OBJECT_DIRECTORY=" + q, "GIT_ALTERNATE_OBJECT_DIRECTORIES=" + filepath.Join(gitDir, "objects")}
	}
	commit, err := gitrev.Peel(ctx, gitDir, id, env)
	switch {
	case errors.Is(err, gitrev.ErrNotCommit):
		return "", fmt.Sprintf("%.7s is not a commit or an annotated tag of one", id)
	case err != nil:
		s.log.Error("release gate: peel the pushed object", "repo", repo, "id", id, "err", err)
		return "", "the release gate could not read the pushed revision; nothing was released, try again"
	}
	return commit, ""
}

// confusingName returns why a new branch or tag may not be called ref, or
// "". A branch called refs/release/prod (refs/heads/refs/release/prod)
// makes a releaser's `git push slipway X:refs/release/prod` ambiguous, and
// one called release/prod shadows the release ref in git's short names:
// either would let a writer stand in for a release. Existing refs of such
// names may still be updated or deleted, so that they can be cleaned up.
func (s *Server) confusingName(ctx context.Context, repo, ref string) string {
	var short, kind string
	switch {
	case strings.HasPrefix(ref, "refs/heads/"):
		short, kind = ref[len("refs/heads/"):], "branch"
	case strings.HasPrefix(ref, "refs/tags/"):
		short, kind = ref[len("refs/tags/"):], "tag"
	default:
		return ""
	}
	if strings.HasPrefix(short, "refs/") || short == "HEAD" {
		return fmt.Sprintf("a %s may not be called %q: git would confuse it with the ref of that full name", kind, short)
	}
	if env, ok := strings.CutPrefix(short, "release/"); ok {
		for _, e := range configs.Snapshot(ctx, s.o.Config).EnvironmentsOf(repo) {
			if e.Name == env {
				return fmt.Sprintf("a %s may not be called %q: it would shadow the release ref %s%s", kind, short, gitrev.ReleasePrefix, env)
			}
		}
	}
	return ""
}

// postReceive records the push, and only then tells the pusher about it.
func (s *Server) postReceive(ctx context.Context, req request, id identity, out io.Writer) int {
	if id.Repo == "" {
		s.log.Error("push not recorded: hook outside the repositories folder", "git_dir", req.GitDir, "err", id.err)
		fmt.Fprintf(out, "slipway: WARNING: %v; git updated the refs but this push was NOT recorded by Slipway\n", id.err)
		return 1
	}
	if id.err != nil {
		// git has updated the refs whatever we say now, and every
		// accepted ref must have its record: keep it, with what is known.
		s.log.Warn("recording push of uncertain origin", "repo", id.Repo, "user", id.User, "err", id.err)
		fmt.Fprintf(out, "slipway: WARNING: %v\n", id.err)
	}
	p := record.Push{
		Repo:           id.Repo,
		User:           id.User,
		KeyFingerprint: id.KeyFingerprint,
		Refs:           req.Refs,
		Options:        req.Options,
		Time:           time.Now().UTC(),
	}
	// Not bound to the pusher: the refs are updated, so the record must be
	// made even if the pusher hangs up now.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	if s.o.Ledger != nil {
		// The reference transactions opened this push's record before
		// git moved the refs; recording its work finishes it.
		id, err := s.o.Ledger.OpenPushID(rctx, p.Repo, sessionOf(req))
		switch {
		case err == nil:
			p.ID = id
		case !errors.Is(err, record.ErrNotFound):
			s.log.Warn("find the open push", "repo", p.Repo, "err", err)
		}
	}
	pid, report, err := s.o.Recorder.RecordPush(rctx, p)
	cancel()
	if err != nil {
		s.log.Error("push not recorded with its work", "repo", p.Repo, "user", p.User, "push", p.ID, "refs", len(p.Refs), "err", err)
		if p.ID != 0 {
			fmt.Fprintf(out, "slipway: WARNING: push #%d is recorded, but its builds could not be queued yet (%v); Slipway queues them as soon as it can\n", p.ID, err)
			return 0
		}
		fmt.Fprintf(out, "slipway: WARNING: git updated the refs but Slipway could NOT record this push; tell the administrator\n")
		return 1
	}
	fmt.Fprintf(out, "slipway: recorded push #%d (%s)\n", pid, plural(len(p.Refs), "ref"))
	s.report(ctx, pid, report, out)
	return 0
}

// prepare writes the record of the updates git is about to make, durably,
// before it makes them: at the end of pre-receive for a push (all its refs
// in one transaction), in a prepared reference transaction for any other
// update on the server's disk. When the record cannot be written (a full
// disk, a database that does not answer in time) the updates are refused,
// with the reason, and nothing moves.
func (s *Server) prepare(ctx context.Context, req request, id identity, out io.Writer) int {
	if s.o.Ledger == nil {
		return 0
	}
	p := record.Push{Repo: id.Repo, User: id.User, KeyFingerprint: id.KeyFingerprint, Refs: req.Refs,
		Options: req.Options, Time: time.Now().UTC()}
	// Not bound to the pusher: a push whose pusher left may still land.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	if _, err := s.o.Ledger.PreparePush(rctx, p, sessionOf(req)); err != nil {
		s.log.Error("ref updates refused: their record could not be written", "repo", p.Repo, "user", p.User, "refs", len(p.Refs), "err", err)
		fmt.Fprintf(out, "slipway: could not record the update of %s, so it is refused and nothing changed: %v\n", refNames(p.Refs), err)
		return 1
	}
	return 0
}

// refTransaction takes part in a reference transaction of git on the
// server's disk (pushes through the SSH server run without this hook: their
// pre-receive wrote the record): prepared updates are recorded before git
// makes them, or refused; committed and aborted ones settle the record.
// Only a failed prepared record changes what git does.
func (s *Server) refTransaction(ctx context.Context, req request, id identity, out io.Writer) int {
	if s.o.Ledger == nil {
		return 0
	}
	if id.Repo == "" {
		if req.State == StatePrepared {
			fmt.Fprintf(out, "slipway: %v; the ref update is refused\n", id.err)
			return 1
		}
		return 0
	}
	if req.State == StatePrepared {
		return s.prepare(ctx, req, id, out)
	}
	p := record.Push{Repo: id.Repo, User: id.User, KeyFingerprint: id.KeyFingerprint, Refs: req.Refs, Time: time.Now().UTC()}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	var err error
	if req.State == StateCommitted {
		err = s.o.Ledger.CommitRefs(rctx, p, sessionOf(req))
	} else {
		err = s.o.Ledger.AbortRefs(rctx, p.Repo, sessionOf(req), p.Refs)
	}
	if err != nil {
		// git has decided; the open push is settled from the refs
		// themselves (post-receive, or reconciliation).
		s.log.Warn("settle a reference transaction", "state", req.State, "repo", p.Repo, "err", err)
	}
	return 0
}

// sessionOf names the git process a hook runs for: the push's token (its
// digest: the token itself stays in memory), or the pid the client sent.
func sessionOf(req request) string {
	if req.Token == "" {
		return "local:" + req.Session
	}
	sum := sha256.Sum256([]byte(req.Token))
	return "push:" + hex.EncodeToString(sum[:12])
}

// refNames lists a few ref names for a message.
func refNames(us []record.RefUpdate) string {
	names := make([]string, 0, 3)
	for i, u := range us {
		if i == 3 {
			return strings.Join(names, ", ") + fmt.Sprintf(" and %d more", len(us)-3)
		}
		names = append(names, u.Name)
	}
	return strings.Join(names, ", ")
}

// report tells the pusher about a recorded push, keeping a panic in it from
// taking the hook connection (and its "recorded" answer) down.
func (s *Server) report(ctx context.Context, pid int64, report func(context.Context, io.Writer), out io.Writer) {
	if report == nil {
		return
	}
	defer func() {
		if v := recover(); v != nil {
			s.log.Error("push report panicked", "push", pid, "panic", v)
			fmt.Fprintf(out, "slipway: internal error after recording push #%d (see the daemon's log)\n", pid)
		}
	}()
	report(ctx, out)
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
