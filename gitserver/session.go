package gitserver

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gliderlabs/ssh"

	"slipway/configs"
	"slipway/record"
)

// sessionRecord is what the session log line reports.
type sessionRecord struct {
	command string
	repo    string
	code    int
}

func builtin(name string) bool {
	switch name {
	case "help", "whoami", "repos", UploadPack, ReceivePack, UploadArchive, "git":
		return true
	}
	return false
}

// handleSession runs one SSH session: a login, a git service or a command.
func (s *Server) handleSession(sess ssh.Session) {
	start := time.Now()
	rec := sessionRecord{code: 1}
	entered := false
	caller, overLimit, ok := callerOf(sess.Context())
	log := s.log.With("user", caller.User, "key", caller.KeyFingerprint, "remote", sess.RemoteAddr().String())
	defer func() {
		if r := recover(); r != nil {
			// One bad session must not take the daemon down.
			log.Error("panic in ssh session", "panic", r, "stack", string(debug.Stack()))
			fmt.Fprintln(sess.Stderr(), "slipway: internal error")
			rec.code = 1
		}
		log.Info("ssh session", "command", rec.command, "repo", rec.repo, "exit", rec.code, "duration", time.Since(start))
		_ = sess.Exit(rec.code)
		// Only now may Shutdown consider the session over: the client
		// has its exit status.
		if entered {
			s.sessions.leave()
		}
	}()
	stderr := sess.Stderr()
	switch {
	case !ok:
		// Unreachable with public key auth, kept so that a configuration
		// mistake can never run a command without a user.
		fmt.Fprintln(stderr, "slipway: not authenticated")
		return
	case overLimit == overUserLimit:
		fmt.Fprintf(stderr, "slipway: too many connections for user %s (ssh.max_sessions_per_user is %d); close one and try again\n", caller.User, s.cfg.Current().SSH.MaxSessionsPerUser)
		return
	case overLimit == overServerLimit:
		fmt.Fprintf(stderr, "slipway: the server is at its limit of %d connections (ssh.max_sessions); try again shortly\n", s.cfg.Current().SSH.MaxSessions)
		return
	case !s.sessions.enter():
		fmt.Fprintln(stderr, "slipway: the server is shutting down; try again shortly")
		return
	}
	entered = true

	// The session keeps the configuration it started with, whatever a
	// reload does meanwhile (CloseRevoked ends it if its key goes).
	ctx, cancel := context.WithCancel(configs.WithSnapshot(sess.Context(), s.cfg.Current()))
	defer cancel()
	defer context.AfterFunc(s.stop, cancel)()
	rec.code = s.dispatch(ctx, sess, caller, &rec)
}

func (s *Server) dispatch(ctx context.Context, sess ssh.Session, caller Caller, rec *sessionRecord) int {
	stdout, stderr := io.Writer(sess), sess.Stderr()
	raw := sess.RawCommand()
	if strings.TrimSpace(raw) == "" {
		rec.command = "(login)"
		fmt.Fprintf(stdout, "Hi %s! You are authenticated to Slipway. There is no shell here; these commands are.\n\n", caller.User)
		s.help(stdout, sess.LocalAddr())
		return 0
	}
	cl, err := ParseCommand(raw)
	if err != nil {
		rec.command = "(unparsable)"
		fmt.Fprintf(stderr, "slipway: %v\n", err)
		return 1
	}
	rec.command = cl.Name
	if cl.IsGit() {
		return s.serveGit(ctx, sess, caller, cl, rec)
	}
	switch cl.Name {
	case "help":
		s.help(stdout, sess.LocalAddr())
		return 0
	case "whoami":
		return s.whoami(ctx, caller, cl.Args, stdout, stderr)
	case "repos":
		return s.repos(ctx, caller, cl.Args, stdout, stderr)
	}
	if c, ok := s.commands[cl.Name]; ok {
		return c.Run(ctx, caller, cl.Args, stdout, stderr)
	}
	rec.command = "(unknown)"
	fmt.Fprintf(stderr, "slipway: unknown command %q; try \"help\"\n", clip(cl.Name))
	return 1
}

// clip keeps hostile input short in messages.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

func (s *Server) help(w io.Writer, local net.Addr) {
	base := "ssh://HOST:PORT"
	if a, ok := local.(*net.TCPAddr); ok {
		base = "ssh://" + net.JoinHostPort(a.IP.String(), fmt.Sprint(a.Port))
	}
	fmt.Fprintf(w, "Git:\n  git clone %s/REPO\n  git push %s/REPO main    (admins create a repository by pushing to a new name)\n\n", base, base)
	fmt.Fprintln(w, "Commands (ssh ... COMMAND):")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  help\tthis text")
	fmt.Fprintln(tw, "  whoami [--json]\twho you are authenticated as")
	fmt.Fprintln(tw, "  repos [--json]\tthe repositories you can read, with their last push")
	names := make([]string, 0, len(s.commands))
	for n := range s.commands {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		c := s.commands[n]
		usage := c.Usage
		if usage == "" {
			usage = n
		}
		fmt.Fprintf(tw, "  %s\t%s\n", usage, c.Summary)
	}
	tw.Flush()
}

// jsonFlag accepts no arguments or exactly --json.
func jsonFlag(name string, args []string, stderr io.Writer) (asJSON, ok bool) {
	switch {
	case len(args) == 0:
		return false, true
	case len(args) == 1 && args[0] == "--json":
		return true, true
	}
	fmt.Fprintf(stderr, "slipway: usage: %s [--json]\n", name)
	return false, false
}

func (s *Server) whoami(ctx context.Context, c Caller, args []string, stdout, stderr io.Writer) int {
	asJSON, ok := jsonFlag("whoami", args, stderr)
	if !ok {
		return 1
	}
	admin := false
	if u, ok := configs.Snapshot(ctx, s.cfg).User(c.User); ok {
		admin = u.Admin
	}
	if asJSON {
		return writeJSON(stdout, stderr, struct {
			User           string `json:"user"`
			Admin          bool   `json:"admin"`
			KeyFingerprint string `json:"key_fingerprint"`
		}{c.User, admin, c.KeyFingerprint})
	}
	role := ""
	if admin {
		role = " (admin)"
	}
	fmt.Fprintf(stdout, "%s%s\nkey %s\n", c.User, role, c.KeyFingerprint)
	return 0
}

func writeJSON(stdout, stderr io.Writer, v any) int {
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		fmt.Fprintf(stderr, "slipway: %v\n", err)
		return 1
	}
	return 0
}

type repoJSON struct {
	Name   string   `json:"name"`
	Access []string `json:"access"`
	// Configured is false for a repository the configuration does not
	// name (created by an admin's push, or removed from the file):
	// only admins see it.
	Configured bool      `json:"configured"`
	LastPush   *pushJSON `json:"last_push,omitempty"`
}

type pushJSON struct {
	ID   int64              `json:"id"`
	Time time.Time          `json:"time"`
	User string             `json:"user"`
	Refs []record.RefUpdate `json:"refs"`
}

func (s *Server) repos(ctx context.Context, c Caller, args []string, stdout, stderr io.Writer) int {
	asJSON, ok := jsonFlag("repos", args, stderr)
	if !ok {
		return 1
	}
	names, err := listRepos(s.reposDir)
	if err != nil {
		s.log.Error("list repositories", "err", err)
		fmt.Fprintln(stderr, "slipway: could not list repositories")
		return 1
	}
	var last map[string]record.Push
	if s.pushes != nil {
		if last, err = s.pushes.LastPushes(ctx); err != nil {
			s.log.Error("read last pushes", "err", err)
			fmt.Fprintln(stderr, "slipway: could not read the push record")
			return 1
		}
	}
	cfg := configs.Snapshot(ctx, s.cfg)
	out := []repoJSON{}
	for _, n := range names {
		a := cfg.Access(c.User, n)
		if !a.Has(configs.Read) {
			continue
		}
		configured := cfg.Configured(n)
		r := repoJSON{Name: n, Access: accessWords(a), Configured: configured}
		if p, ok := last[n]; ok {
			refs := p.Refs
			if refs == nil {
				refs = []record.RefUpdate{}
			}
			r.LastPush = &pushJSON{ID: p.ID, Time: p.Time.UTC(), User: p.User, Refs: refs}
		}
		out = append(out, r)
	}
	if asJSON {
		return writeJSON(stdout, stderr, out)
	}
	if len(out) == 0 {
		fmt.Fprintln(stdout, "No repositories you can read yet.")
		return 0
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "REPO\tACCESS\tLAST PUSH")
	for _, r := range out {
		lp := "never"
		if p := r.LastPush; p != nil {
			lp = fmt.Sprintf("%s by %s: %s", p.Time.Format("2006-01-02 15:04 MST"), p.User, summarizeRefs(p.Refs))
		}
		name := r.Name
		if !r.Configured {
			name += " (unconfigured)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", name, strings.Join(r.Access, ","), lp)
	}
	tw.Flush()
	return 0
}

func accessWords(a configs.Access) []string {
	var w []string
	for _, x := range []struct {
		bit  configs.Access
		word string
	}{{configs.Read, "read"}, {configs.Write, "write"}, {configs.Release, "release"}, {configs.Create, "create"}} {
		if a.Has(x.bit) {
			w = append(w, x.word)
		}
	}
	return w
}

// summarizeRefs describes a push's refs in a few words: "main 1a2b3c4,
// tag v1 deleted, +3 more".
func summarizeRefs(refs []record.RefUpdate) string {
	if len(refs) == 0 {
		return "no refs"
	}
	const shown = 3
	var parts []string
	for i, r := range refs {
		if i == shown {
			parts = append(parts, fmt.Sprintf("+%d more", len(refs)-shown))
			break
		}
		name := r.Name
		switch {
		case strings.HasPrefix(name, "refs/heads/"):
			name = strings.TrimPrefix(name, "refs/heads/")
		case strings.HasPrefix(name, "refs/tags/"):
			name = "tag " + strings.TrimPrefix(name, "refs/tags/")
		}
		switch {
		case record.ZeroID(r.New):
			parts = append(parts, name+" deleted")
		default:
			parts = append(parts, name+" "+r.New[:min(7, len(r.New))])
		}
	}
	return strings.Join(parts, ", ")
}

// listRepos returns the canonical names of the bare repositories on disk,
// sorted. Directories whose names are not valid repository names (left by
// hand, or a half-created repository) are ignored.
func listRepos(root string) ([]string, error) {
	var names []string
	var walk func(dir, prefix string, depth int) error
	walk = func(dir, prefix string, depth int) error {
		entries, err := os.ReadDir(dir)
		if err != nil {
			if depth == 1 && os.IsNotExist(err) {
				return nil
			}
			return fmt.Errorf("read %q: %w", dir, err)
		}
		for _, e := range entries {
			if !e.IsDir() {
				continue
			}
			n := e.Name()
			if base, ok := strings.CutSuffix(n, ".git"); ok {
				name := prefix + base
				if c, err := configs.CleanRepoName(name); err == nil && c == name && isRepo(filepath.Join(dir, n)) {
					names = append(names, name)
				}
				continue
			}
			if depth < configs.MaxRepoDepth {
				if err := walk(filepath.Join(dir, n), prefix+n+"/", depth+1); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := walk(root, "", 1); err != nil {
		return nil, err
	}
	slices.Sort(names)
	return names, nil
}

// isRepo reports whether path looks like a bare repository.
func isRepo(path string) bool {
	fi, err := os.Stat(filepath.Join(path, "HEAD"))
	return err == nil && fi.Mode().IsRegular()
}
