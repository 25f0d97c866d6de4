package gitserver

import (
	"context"
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
	"slipway/internal/sshcmd"
)

// sessionRecord is what the session log line reports.
type sessionRecord struct {
	command string
	repo    string
	code    int
}

func builtin(name string) bool {
	switch name {
	case "help", "whoami", UploadPack, ReceivePack, UploadArchive, "git":
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
		return sshcmd.WriteJSON(stdout, stderr, struct {
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
