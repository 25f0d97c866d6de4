package remote

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
)

// Target is a remote target split into its parts.
type Target struct {
	User string // login on the host; empty means ssh's default
	Host string // host name or IP address, without brackets
	Port int    // from an ssh:// target; 0 when it names none
	Path string // absolute folder on the host
}

// RepoPlaceholder stands for a repository's name in a target of the
// configuration; deploy replaces it before it connects.
const RepoPlaceholder = "{repo}"

// Parse splits s and checks its parts (CheckUser, CheckHost, CheckPath).
func Parse(s string) (Target, error) { return parse(s, func(s string) string { return s }) }

// ParseTemplate is Parse for a target of the configuration, which may hold
// RepoPlaceholder in its login, host or path: each is checked as the name
// "repo" would be. The parts are returned, and quoted in errors, as
// written.
func ParseTemplate(s string) (Target, error) {
	return parse(s, func(s string) string { return strings.ReplaceAll(s, RepoPlaceholder, "repo") })
}

func parse(s string, fill func(string) string) (Target, error) {
	var t Target
	if HasControl(s) {
		return t, errors.New("it contains control characters")
	}
	if strings.HasPrefix(s, "ssh://") {
		u, err := url.Parse(s)
		if err != nil {
			return t, errors.New("not a URL")
		}
		if u.User != nil {
			if _, has := u.User.Password(); has {
				return t, errors.New("passwords are not supported, use a deploy key")
			}
			t.User = u.User.Username()
		}
		t.Host = u.Hostname()
		if p := u.Port(); p != "" {
			n, err := strconv.Atoi(p)
			if err != nil || n < 1 || n > 65535 {
				return t, fmt.Errorf("bad port %s (use 1 to 65535)", p)
			}
			t.Port = n
		}
		if u.RawQuery != "" || u.Fragment != "" {
			return t, errors.New("it has a query or fragment")
		}
		t.Path = u.Path
	} else {
		rest := s
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			t.User, rest = rest[:at], rest[at+1:]
		}
		if strings.HasPrefix(rest, "[") {
			end := strings.Index(rest, "]:")
			if end < 0 {
				return t, errors.New("an IPv6 address is written user@[ADDRESS]:/path")
			}
			t.Host, rest = rest[1:end], rest[end+1:]
		} else {
			colon := strings.Index(rest, ":")
			if colon < 0 {
				return t, errors.New("no ':' between the host and the path")
			}
			t.Host, rest = rest[:colon], rest[colon:]
		}
		t.Path = strings.TrimPrefix(rest, ":")
	}
	if err := checkUser(fill(t.User), t.User); err != nil {
		return t, err
	}
	if err := checkHost(fill(t.Host), t.Host); err != nil {
		return t, err
	}
	if err := checkPath(fill(t.Path), t.Path, true); err != nil {
		return t, err
	}
	return t, nil
}

// CheckUser keeps the login from being read as an ssh option. Empty is
// ssh's default, and allowed.
func CheckUser(u string) error { return checkUser(u, u) }

func checkUser(u, shown string) error {
	if u != "" && (strings.HasPrefix(u, "-") || !OnlyChars(u, "._-")) {
		return fmt.Errorf("user %q: only letters, digits, '.', '_' and '-' are allowed", shown)
	}
	return nil
}

// CheckHost keeps the host from being read as an ssh option or smuggling
// a second argument.
func CheckHost(h string) error { return checkHost(h, h) }

func checkHost(h, shown string) error {
	if h == "" {
		return errors.New("the host is missing")
	}
	if net.ParseIP(h) == nil && (strings.HasPrefix(h, "-") || strings.HasPrefix(h, ".") || !OnlyChars(h, ".-") || len(h) > 253) {
		return fmt.Errorf("host %q is not a host name or IP address", shown)
	}
	return nil
}

// CheckPath wants the folder of a remote target: a CheckFolder one, of
// characters that need no quoting in rsync and ssh command lines,
// whichever rsync version runs on the far side.
func CheckPath(p string) error { return checkPath(p, p, true) }

// CheckFolder wants an absolute, clean folder that is not "/", without
// control characters: a target's folder, on this machine or another.
func CheckFolder(p string) error { return checkPath(p, p, false) }

func checkPath(p, shown string, remote bool) error {
	switch {
	case p == "":
		return errors.New("the path is missing")
	case !strings.HasPrefix(p, "/"):
		return fmt.Errorf("path %q is not absolute", shown)
	case slices.Contains(strings.Split(p, "/"), ".."):
		return fmt.Errorf("path %q may not contain \"..\"", shown)
	case p == "/":
		return errors.New("the path must not be the root folder")
	case path.Clean(p) != p:
		return fmt.Errorf("path %q is not clean (write %q)", shown, path.Clean(shown))
	case HasControl(p):
		return fmt.Errorf("path %q contains control characters", shown)
	case remote && !OnlyChars(p, "/._-+@,="):
		return fmt.Errorf("path %q: only letters, digits and / . _ - + @ , = are allowed on remote targets", shown)
	}
	return nil
}

// HasControl reports whether s holds an ASCII control character.
func HasControl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}

// OnlyChars reports whether s holds nothing but ASCII letters, digits and
// the characters of extra.
func OnlyChars(s, extra string) bool {
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case strings.ContainsRune(extra, r):
		default:
			return false
		}
	}
	return true
}
