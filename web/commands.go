package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"slipway/configs"
	"slipway/gitserver"
	"slipway/internal/sshcmd"
	"slipway/internal/termsafe"
	"slipway/record"
)

// Commands are the web side's SSH commands: `login` and `token`. The
// daemon adds them to the SSH server's.
func (s *Server) Commands() map[string]gitserver.Command {
	return map[string]gitserver.Command{
		"login": {
			Usage:   "login",
			Summary: "print a one-time link (2 minutes) that signs you in to the dashboard",
			Run:     s.loginCommand,
		},
		"token": {
			Usage:   "token create NAME [--scope read|write|release|admin] [--expires 90d|never] | token list [--user U] [--json] | token revoke NAME [--user U]",
			Summary: "API tokens for the web side: made (printed once), listed, revoked; admins list and revoke anyone's with --user",
			Run:     s.tokenCommand,
		},
	}
}

// baseURL is where people reach the web side: public_url, else the
// address it listens on; "" when it is off.
func (s *Server) baseURL(cfg *configs.Config) string {
	if cfg.HTTP.PublicURL != "" {
		return strings.TrimSuffix(cfg.HTTP.PublicURL, "/")
	}
	if s.o.Addr == "" {
		return ""
	}
	scheme := "http"
	if cfg.HTTP.TLSCert != "" {
		scheme = "https"
	}
	// The host people know it by is the configured one (a name, not the
	// address it resolved to), the port the one actually bound (the
	// configured one may be 0).
	listen := cfg.HTTP.Listen
	if listen == "" {
		listen = s.o.Addr
	}
	host, _ := configs.DisplayAddr(listen)
	_, port, err := net.SplitHostPort(s.o.Addr)
	if err != nil {
		return ""
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

// loginCommand prints a one-time sign-in link: the link alone on stdout
// (so that `xdg-open $(ssh HOST login)` works), what it is on stderr.
func (s *Server) loginCommand(ctx context.Context, c gitserver.Caller, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		return sshcmd.Fail(stderr, "usage: login")
	}
	base := s.baseURL(configs.Snapshot(ctx, s.o.Config))
	if base == "" || s.o.Sessions == nil {
		return sshcmd.Fail(stderr, "login: the web side is off ([http] listen is empty), so there is nothing to sign in to")
	}
	secret, err := s.links.issue(c.User, c.KeyFingerprint, s.now())
	if err != nil {
		s.log.Error("make a login link", "err", err)
		return sshcmd.Fail(stderr, "login: could not make a link; try again")
	}
	fmt.Fprintf(stderr, "Open this link within 2 minutes to sign in as %s (it works once):\n", c.User)
	fmt.Fprintln(stdout, base+"/login/"+secret)
	return 0
}

const tokenUsage = "usage: token create NAME [--scope read|write|release|admin] [--expires 90d|never] | token list [--user U] [--json] | token revoke NAME [--user U]"

// Token lifetimes: the default when --expires is not given, and the
// longest one that may be asked for (--expires never is the way to more).
const (
	defaultTokenLifetime = 90 * 24 * time.Hour
	maxTokenLifetime     = 10 * 365 * 24 * time.Hour
)

// tokenName is what a token may be called: short, and safe to print.
var tokenName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

type tokenFlags struct {
	scope, expires, user string
	json                 bool
	args                 []string
}

// parseTokenFlags parses the flags of a token subcommand; flags may
// follow the arguments ("token revoke ci --user bob").
func parseTokenFlags(args []string, create, list bool) (tokenFlags, error) {
	var f tokenFlags
	fs := sshcmd.NewFlags("token")
	if create {
		fs.StringVar(&f.scope, "scope", record.ScopeRead, "")
		fs.StringVar(&f.expires, "expires", "", "")
	} else {
		fs.StringVar(&f.user, "user", "", "")
	}
	if list {
		fs.BoolVar(&f.json, "json", false, "")
	}
	var err error
	f.args, err = sshcmd.Parse(fs, args)
	return f, err
}

func (s *Server) tokenCommand(ctx context.Context, c gitserver.Caller, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		return sshcmd.Fail(stderr, "%s", tokenUsage)
	}
	if s.o.Tokens == nil {
		return sshcmd.Fail(stderr, "token: API tokens are not available on this server")
	}
	sub := args[0]
	f, err := parseTokenFlags(args[1:], sub == "create", sub == "list")
	if err != nil {
		return sshcmd.Fail(stderr, "token %s: %v; %s", clip(sub), err, tokenUsage)
	}
	switch sub {
	case "create":
		if len(f.args) != 1 {
			return sshcmd.Fail(stderr, "%s", tokenUsage)
		}
		return s.tokenCreate(ctx, c, f, stdout, stderr)
	case "list":
		if len(f.args) != 0 {
			return sshcmd.Fail(stderr, "%s", tokenUsage)
		}
		return s.tokenList(ctx, c, f, stdout, stderr)
	case "revoke":
		if len(f.args) != 1 {
			return sshcmd.Fail(stderr, "%s", tokenUsage)
		}
		return s.tokenRevoke(ctx, c, f, stdout, stderr)
	}
	return sshcmd.Fail(stderr, "token: unknown subcommand %q; %s", clip(sub), tokenUsage)
}

// clip keeps hostile input short in messages.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// parseLifetime reads --expires: "never", days ("30d"), weeks ("2w") or
// a Go duration ("12h").
func parseLifetime(s string) (time.Duration, bool, error) {
	switch {
	case s == "":
		return defaultTokenLifetime, true, nil
	case s == "never":
		return 0, false, nil
	}
	var d time.Duration
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil {
			return 0, false, fmt.Errorf("--expires %q: use days (30d), weeks (2w), hours (12h) or never", clip(s))
		}
		d = time.Duration(days) * 24 * time.Hour
	} else if n, ok := strings.CutSuffix(s, "w"); ok {
		weeks, err := strconv.Atoi(n)
		if err != nil {
			return 0, false, fmt.Errorf("--expires %q: use days (30d), weeks (2w), hours (12h) or never", clip(s))
		}
		d = time.Duration(weeks) * 7 * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, false, fmt.Errorf("--expires %q: use days (30d), weeks (2w), hours (12h) or never", clip(s))
		}
	}
	if d < time.Minute || d > maxTokenLifetime {
		return 0, false, fmt.Errorf("--expires %q: between a minute and 10 years (3650d), or never", clip(s))
	}
	return d, true, nil
}

func (s *Server) tokenCreate(ctx context.Context, c gitserver.Caller, f tokenFlags, stdout, stderr io.Writer) int {
	name := f.args[0]
	if !tokenName.MatchString(name) {
		return sshcmd.Fail(stderr, "token create: the name %q: use up to 64 letters, digits, '.', '_' or '-', beginning with a letter or digit", clip(name))
	}
	if _, ok := scopeAccess(f.scope); !ok {
		return sshcmd.Fail(stderr, "token create: --scope %q: one of read, write, release, admin", clip(f.scope))
	}
	life, expires, err := parseLifetime(f.expires)
	if err != nil {
		return sshcmd.Fail(stderr, "token create: %v", err)
	}
	token, hash, err := newToken()
	if err != nil {
		s.log.Error("make a token", "err", err)
		return sshcmd.Fail(stderr, "token create: could not make a token; try again")
	}
	now := s.now().UTC()
	t := record.APIToken{User: c.User, Name: name, Hash: hash, Scope: f.scope, KeyFingerprint: c.KeyFingerprint, Created: now}
	if expires {
		t.Expires = now.Add(life)
	}
	if _, err := s.o.Tokens.CreateToken(ctx, t); err != nil {
		if errors.Is(err, record.ErrConflict) {
			return sshcmd.Fail(stderr, "token create: you have a token named %q already; revoke it first (token revoke %s) or choose another name", name, name)
		}
		s.log.Error("record a token", "user", c.User, "err", err)
		return sshcmd.Fail(stderr, "token create: could not record the token; try again")
	}
	until := "never expires"
	if expires {
		until = "expires " + t.Expires.Format(time.DateTime) + " UTC"
	}
	fmt.Fprintf(stderr, "Token %s of %s, scope %s (within your rights in the configuration in force), %s.\n", name, c.User, f.scope, until)
	fmt.Fprintln(stderr, "It is shown this once; send it as: Authorization: Bearer <token>")
	fmt.Fprintln(stdout, token)
	return 0
}

// owner is whose tokens a list or revoke is about: the caller's own, or
// with --user, anyone's for an admin.
func (s *Server) owner(ctx context.Context, c gitserver.Caller, f tokenFlags) (string, error) {
	if f.user == "" || f.user == c.User {
		return c.User, nil
	}
	if u, ok := configs.Snapshot(ctx, s.o.Config).User(c.User); !ok || !u.Admin {
		return "", fmt.Errorf("only admins may manage another user's tokens; %s is not one", c.User)
	}
	return f.user, nil
}

type tokenJSON struct {
	Name     string     `json:"name"`
	User     string     `json:"user"`
	Scope    string     `json:"scope"`
	Created  time.Time  `json:"created"`
	Expires  *time.Time `json:"expires,omitempty"`
	LastUsed *time.Time `json:"last_used,omitempty"`
	Expired  bool       `json:"expired"`
}

func (s *Server) tokenList(ctx context.Context, c gitserver.Caller, f tokenFlags, stdout, stderr io.Writer) int {
	user, err := s.owner(ctx, c, f)
	if err != nil {
		return sshcmd.Fail(stderr, "token list: %v", err)
	}
	ts, err := s.o.Tokens.Tokens(ctx, user)
	if err != nil {
		s.log.Error("list tokens", "user", user, "err", err)
		return sshcmd.Fail(stderr, "token list: could not list the tokens; try again")
	}
	now := s.now()
	if f.json {
		out := make([]tokenJSON, 0, len(ts))
		for _, t := range ts {
			out = append(out, tokenJSON{Name: t.Name, User: t.User, Scope: t.Scope, Created: t.Created,
				Expires: timePtr(t.Expires), LastUsed: timePtr(t.LastUsed), Expired: expired(t, now)})
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return 1
		}
		return 0
	}
	if len(ts) == 0 {
		fmt.Fprintf(stdout, "%s has no API token.\n", termsafe.Line(user))
		return 0
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSCOPE\tCREATED\tEXPIRES\tLAST USED")
	for _, t := range ts {
		exp := "never"
		if !t.Expires.IsZero() {
			exp = minute(t.Expires)
			if expired(t, now) {
				exp = "expired " + exp
			}
		}
		used := "never"
		if !t.LastUsed.IsZero() {
			used = minute(t.LastUsed)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", t.Name, t.Scope, minute(t.Created), exp, used)
	}
	tw.Flush()
	return 0
}

func expired(t record.APIToken, now time.Time) bool {
	return !t.Expires.IsZero() && !now.Before(t.Expires)
}

func minute(t time.Time) string { return t.UTC().Format("2006-01-02 15:04") + " UTC" }

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func (s *Server) tokenRevoke(ctx context.Context, c gitserver.Caller, f tokenFlags, stdout, stderr io.Writer) int {
	user, err := s.owner(ctx, c, f)
	if err != nil {
		return sshcmd.Fail(stderr, "token revoke: %v", err)
	}
	name := f.args[0]
	if !tokenName.MatchString(name) {
		return sshcmd.Fail(stderr, "token revoke: %s has no token named %q", termsafe.Line(user), clip(name))
	}
	if err := s.o.Tokens.RevokeToken(ctx, user, name, s.now().UTC()); err != nil {
		if errors.Is(err, record.ErrNotFound) {
			return sshcmd.Fail(stderr, "token revoke: %s has no token named %q", termsafe.Line(user), name)
		}
		s.log.Error("revoke a token", "user", user, "token", name, "err", err)
		return sshcmd.Fail(stderr, "token revoke: could not revoke the token; try again")
	}
	fmt.Fprintf(stdout, "Revoked token %s of %s: it is refused from now on.\n", name, termsafe.Line(user))
	return 0
}
