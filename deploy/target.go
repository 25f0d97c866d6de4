package deploy

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"path"
	"strconv"
	"strings"
)

// Target is where an environment's releases live: a local folder, or a
// folder on a host reached with ssh and rsync.
type Target struct {
	// Local is an absolute folder on this machine. When set, the SSH fields
	// are ignored.
	Local string

	User string // login on the host; empty means ssh's default (the daemon's user)
	Host string // host name or IP address, without brackets
	Port int    // 0 means 22
	Path string // absolute folder on the host

	// KeyFile is the private deploy key. KnownHostsFile holds the host keys
	// that are trusted; host keys are always checked.
	KeyFile, KnownHostsFile string
	// AcceptNewHostKey trusts a host that is not yet in KnownHostsFile on
	// first contact and pins its key there (StrictHostKeyChecking=accept-new).
	// A changed key is still refused. Only when the config says so.
	AcceptNewHostKey bool
}

// IsLocal reports whether the target is a folder on this machine.
func (t Target) IsLocal() bool { return t.Local != "" }

// root is the folder holding releases/ and current on the target.
func (t Target) root() string {
	if t.IsLocal() {
		return t.Local
	}
	return t.Path
}

func (t Target) port() int {
	if t.Port == 0 {
		return 22
	}
	return t.Port
}

// String is the target as a person would write it, for messages.
func (t Target) String() string {
	if t.IsLocal() {
		return t.Local
	}
	host := t.Host
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if t.User != "" {
		host = t.User + "@" + host
	}
	if t.Port != 0 {
		return "ssh://" + host + ":" + strconv.Itoa(t.Port) + t.Path
	}
	return host + ":" + t.Path
}

// addr is "host:port" the way ssh names the host in its messages.
func (t Target) addr() string { return net.JoinHostPort(t.Host, strconv.Itoa(t.port())) }

// ParseTarget reads a target as written in the config: "user@host:/path",
// "host:/path", "user@[::1]:/path", "ssh://user@host:2222/path", or an
// absolute local folder "/srv/app". Key files and the port from separate
// config keys are set on the result by the caller.
func ParseTarget(s string) (Target, error) {
	if s == "" {
		return Target{}, errors.New("target is empty")
	}
	if hasControl(s) {
		return Target{}, fmt.Errorf("target %q contains control characters", s)
	}
	if strings.HasPrefix(s, "/") {
		if err := checkPath(s, false); err != nil {
			return Target{}, fmt.Errorf("target %q: %w", s, err)
		}
		return Target{Local: s}, nil
	}
	var t Target
	if strings.HasPrefix(s, "ssh://") {
		u, err := url.Parse(s)
		if err != nil {
			return Target{}, fmt.Errorf("target %q: %w", s, err)
		}
		if u.User != nil {
			if _, has := u.User.Password(); has {
				return Target{}, fmt.Errorf("target %q: passwords are not supported, use a deploy key", s)
			}
			t.User = u.User.Username()
		}
		t.Host = u.Hostname()
		if p := u.Port(); p != "" {
			n, err := strconv.Atoi(p)
			if err != nil || n < 1 || n > 65535 {
				return Target{}, fmt.Errorf("target %q: port must be 1-65535", s)
			}
			t.Port = n
		}
		if u.RawQuery != "" || u.Fragment != "" {
			return Target{}, fmt.Errorf("target %q: unexpected query or fragment", s)
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
				return Target{}, fmt.Errorf("target %q: want user@[ipv6]:/path", s)
			}
			t.Host, rest = rest[1:end], rest[end+1:]
		} else {
			colon := strings.Index(rest, ":")
			if colon < 0 {
				return Target{}, fmt.Errorf("target %q: want user@host:/path or an absolute folder", s)
			}
			t.Host, rest = rest[:colon], rest[colon:]
		}
		t.Path = strings.TrimPrefix(rest, ":")
	}
	if err := checkUser(t.User); err != nil {
		return Target{}, fmt.Errorf("target %q: %w", s, err)
	}
	if err := checkHost(t.Host); err != nil {
		return Target{}, fmt.Errorf("target %q: %w", s, err)
	}
	if err := checkPath(t.Path, true); err != nil {
		return Target{}, fmt.Errorf("target %q: %w", s, err)
	}
	return t, nil
}

// Validate checks a target built by hand or completed by the config.
func (t Target) Validate() error {
	if t.IsLocal() {
		return checkPath(t.Local, false)
	}
	if err := checkUser(t.User); err != nil {
		return err
	}
	if err := checkHost(t.Host); err != nil {
		return err
	}
	if t.Port < 0 || t.Port > 65535 {
		return fmt.Errorf("port %d out of range", t.Port)
	}
	for _, f := range []string{t.KeyFile, t.KnownHostsFile} {
		if hasControl(f) {
			return fmt.Errorf("file name %q contains control characters", f)
		}
	}
	return checkPath(t.Path, true)
}

func hasControl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}

// checkUser keeps the login from being read as an ssh option.
func checkUser(u string) error {
	if u == "" {
		return nil
	}
	if strings.HasPrefix(u, "-") || !onlyChars(u, "._-") {
		return fmt.Errorf("user %q: only letters, digits, '.', '_' and '-' are allowed", u)
	}
	return nil
}

// checkHost keeps the host from being read as an ssh option or smuggling a
// second argument.
func checkHost(h string) error {
	if h == "" {
		return errors.New("host is missing")
	}
	if net.ParseIP(h) != nil {
		return nil
	}
	if strings.HasPrefix(h, "-") || strings.HasPrefix(h, ".") || !onlyChars(h, ".-") || len(h) > 253 {
		return fmt.Errorf("host %q is not a host name or IP address", h)
	}
	return nil
}

// checkPath wants an absolute, clean folder that is not "/". Remote paths
// are limited to characters that need no quoting in rsync and ssh command
// lines, whichever rsync version runs on the far side.
func checkPath(p string, remote bool) error {
	if p == "" {
		return errors.New("path is missing")
	}
	if !strings.HasPrefix(p, "/") {
		return fmt.Errorf("path %q is not absolute", p)
	}
	if p == "/" {
		return errors.New("path must not be the root folder")
	}
	if path.Clean(p) != p {
		return fmt.Errorf("path %q is not clean (want %q)", p, path.Clean(p))
	}
	if hasControl(p) {
		return fmt.Errorf("path %q contains control characters", p)
	}
	if remote && !onlyChars(p, "/._-+@,=") {
		return fmt.Errorf("path %q: only letters, digits and / . _ - + @ , = are allowed on remote targets", p)
	}
	return nil
}

func onlyChars(s, extra string) bool {
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

// checkReleaseID keeps release names to one safe path element that cannot
// be mistaken for a partial release or the current link.
func checkReleaseID(id string) error {
	if id == "" {
		return errors.New("release id is empty")
	}
	if len(id) > 128 {
		return fmt.Errorf("release id %q is longer than 128 characters", id)
	}
	if !onlyChars(id, "._-") || strings.HasPrefix(id, ".") || strings.HasPrefix(id, "-") ||
		strings.HasSuffix(id, partialSuffix) || strings.Contains(id, "..") {
		return fmt.Errorf("release id %q: want letters, digits, '.', '_' and '-', not starting with '.' or '-' nor ending in %q", id, partialSuffix)
	}
	return nil
}
