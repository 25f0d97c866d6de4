package configs

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
)

// MaxRepoDepth is the number of path segments a repository name may have
// ("team/sub/app").
const MaxRepoDepth = 3

// maxSegment bounds one segment of a repository name; file systems allow 255
// bytes and the ".git" suffix is added on disk.
const maxSegment = 100

// ErrRepoName is wrapped by every error of CleanRepoName.
var ErrRepoName = errors.New("invalid repository name")

// CleanRepoName turns a repository path as clients send it ("app.git",
// "/team/app", "team/app.git") into its canonical name ("app", "team/app"),
// or refuses it. A canonical name is one to three segments of
// [a-z0-9][a-z0-9._-]*, none of them "..", none ending in ".git" once the
// optional suffix of the whole name is removed; so it can never name a path
// outside the folder it is joined to.
func CleanRepoName(s string) (string, error) {
	name := strings.TrimPrefix(s, "/")
	name = strings.TrimSuffix(name, ".git")
	if name == "" {
		return "", fmt.Errorf("%w: empty", ErrRepoName)
	}
	segs := strings.Split(name, "/")
	if len(segs) > MaxRepoDepth {
		return "", fmt.Errorf("%w %q: more than %d levels", ErrRepoName, truncate(s), MaxRepoDepth)
	}
	for _, seg := range segs {
		if err := checkSegment(seg); err != nil {
			return "", fmt.Errorf("%w %q: %v", ErrRepoName, truncate(s), err)
		}
	}
	return name, nil
}

func checkSegment(seg string) error {
	switch {
	case seg == "":
		return errors.New("empty path segment")
	case len(seg) > maxSegment:
		return fmt.Errorf("segment longer than %d characters", maxSegment)
	case strings.HasSuffix(seg, ".git"):
		return errors.New(`only the whole name may end in ".git"`)
	case strings.Contains(seg, ".."):
		return errors.New(`".." is not allowed`)
	}
	for i := 0; i < len(seg); i++ {
		c := seg[i]
		lower := c >= 'a' && c <= 'z'
		digit := c >= '0' && c <= '9'
		if lower || digit {
			continue
		}
		if i > 0 && (c == '.' || c == '_' || c == '-') {
			continue
		}
		if i == 0 {
			return fmt.Errorf("segment %q must start with a lowercase letter or digit", seg)
		}
		return fmt.Errorf("character %q is not allowed (use a-z, 0-9, '.', '_', '-')", c)
	}
	return nil
}

// truncate keeps hostile input short in messages.
func truncate(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}

// validUserName reports whether s is acceptable as a user name: the same
// alphabet as a repository segment, so names are safe in logs and paths.
func validUserName(s string) bool {
	return s != "*" && checkSegment(s) == nil
}

// DisplayAddr derives the host and port people reach the SSH server on
// from its listen address, for the commands the daemon prints ("ssh -p 2222
// host log 12 -f"); a wildcard address becomes the machine's name.
func DisplayAddr(listen string) (host string, port int) {
	host, portStr, err := net.SplitHostPort(listen)
	if err != nil {
		return "localhost", 22
	}
	port, err = strconv.Atoi(portStr)
	if err != nil || port <= 0 {
		port = 22
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "localhost"
		if name, err := os.Hostname(); err == nil && name != "" {
			host = name
		}
	}
	return host, port
}

// CheckName checks the name of an environment or a schedule, which is one
// segment of a repository name (lowercase letters, digits, '.', '_', '-').
func CheckName(s string) error {
	if s == "" {
		return errors.New("empty name")
	}
	if err := checkSegment(s); err != nil {
		return fmt.Errorf("name %q: %v", truncate(s), err)
	}
	return nil
}
