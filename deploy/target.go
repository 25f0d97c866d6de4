package deploy

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"slipway/internal/remote"
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
// config keys are set on the result by the caller. A remote target is held
// to the rules of package remote, which configs checked the file with.
func ParseTarget(s string) (Target, error) {
	if s == "" {
		return Target{}, errors.New("target is empty")
	}
	if hasControl(s) {
		return Target{}, fmt.Errorf("target %q contains control characters", s)
	}
	if strings.HasPrefix(s, "/") {
		if err := remote.CheckFolder(s); err != nil {
			return Target{}, fmt.Errorf("target %q: %w", s, err)
		}
		return Target{Local: s}, nil
	}
	r, err := remote.Parse(s)
	if err != nil {
		return Target{}, fmt.Errorf("target %q: %w", s, err)
	}
	return Target{User: r.User, Host: r.Host, Port: r.Port, Path: r.Path}, nil
}

// Validate checks a target built by hand or completed by the config.
func (t Target) Validate() error {
	if t.IsLocal() {
		return remote.CheckFolder(t.Local)
	}
	if err := remote.CheckUser(t.User); err != nil {
		return err
	}
	if err := remote.CheckHost(t.Host); err != nil {
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
	return remote.CheckPath(t.Path)
}

func hasControl(s string) bool { return remote.HasControl(s) }

// checkReleaseID keeps release names to one safe path element that cannot
// be mistaken for a partial release or the current link.
func checkReleaseID(id string) error {
	if id == "" {
		return errors.New("release id is empty")
	}
	if len(id) > 128 {
		return fmt.Errorf("release id %q is longer than 128 characters", id)
	}
	if !remote.OnlyChars(id, "._-") || strings.HasPrefix(id, ".") || strings.HasPrefix(id, "-") ||
		strings.HasSuffix(id, partialSuffix) || strings.Contains(id, "..") {
		return fmt.Errorf("release id %q: want letters, digits, '.', '_' and '-', not starting with '.' or '-' nor ending in %q", id, partialSuffix)
	}
	return nil
}
