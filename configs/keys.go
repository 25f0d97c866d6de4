package configs

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// LoginPlaceholder, as a user's name, stands for the login name of the user
// running Slipway (lowercased, reduced to the characters user names allow;
// "admin" when nothing is left). The embedded default's admin is named so.
const LoginPlaceholder = "{login}"

// AuthorizedKey is one public key of a user, with the authorized_keys
// options Slipway honours.
type AuthorizedKey struct {
	Key         ssh.PublicKey
	Fingerprint string // SHA256, as ssh prints it
	// Source is where the key was read: "FILE:LINE" of the config file,
	// of a key file, or "$VARIABLE:LINE".
	Source string
	// From is the key's from= option: the client addresses it may connect
	// from, as OpenSSH patterns ("10.0.0.0/8,192.168.1.*,!192.168.1.9").
	// Empty: any address.
	From string
	// Expires is the key's expiry-time= option; zero: never.
	Expires time.Time

	from    []addrPattern
	options string // the options as written, to tell duplicates apart
}

// Errors of Authorize; the returned error wraps one of them.
var (
	ErrUnknownKey = errors.New("unknown key")
	ErrKeyExpired = errors.New("key expired")
	ErrKeyFrom    = errors.New("key not allowed from this address")
)

// Authorize returns the user a verified public key belongs to, and the key's
// entry, when the key may be used from the remote address at now.
func (c *Config) Authorize(key ssh.PublicKey, remote net.Addr, now time.Time) (*User, *AuthorizedKey, error) {
	fp := ssh.FingerprintSHA256(key)
	u, ok := c.byKey[fp]
	if !ok {
		return nil, nil, ErrUnknownKey
	}
	for i := range u.keys {
		if k := &u.keys[i]; k.Fingerprint == fp {
			if err := k.Check(remote, now); err != nil {
				return u, k, fmt.Errorf("user %s, key %s: %w", u.Name, fp, err)
			}
			return u, k, nil
		}
	}
	return nil, nil, ErrUnknownKey
}

// Check reports why the key may not be used by a client at remote at now,
// or nil when it may.
func (k *AuthorizedKey) Check(remote net.Addr, now time.Time) error {
	if !k.Expires.IsZero() && now.After(k.Expires) {
		return fmt.Errorf("%w at %s (expiry-time in %s)", ErrKeyExpired, k.Expires.Format(time.RFC3339), k.Source)
	}
	if k.from != nil {
		addr, ok := remoteAddr(remote)
		if !ok || !matchFrom(k.from, addr) {
			return fmt.Errorf("%w: %v is not in from=%q (%s)", ErrKeyFrom, remote, k.From, k.Source)
		}
	}
	return nil
}

func remoteAddr(a net.Addr) (netip.Addr, bool) {
	if a == nil {
		return netip.Addr{}, false
	}
	if t, ok := a.(*net.TCPAddr); ok {
		ip, ok := netip.AddrFromSlice(t.IP)
		return ip.Unmap(), ok
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}, false
	}
	return ap.Addr().Unmap(), true
}

// addrPattern is one entry of a from= list: an address, a CIDR block, or a
// pattern with * and ? over the address as text; "!" in front negates it.
type addrPattern struct {
	negate bool
	prefix netip.Prefix // an address or CIDR block, when valid
	glob   string
}

// parseFrom parses a from= list the way OpenSSH reads it, without host
// names: Slipway never resolves the client's address to a name.
func parseFrom(list string) ([]addrPattern, error) {
	var pats []addrPattern
	for _, s := range strings.Split(list, ",") {
		p := addrPattern{}
		s = strings.TrimSpace(s)
		if rest, ok := strings.CutPrefix(s, "!"); ok {
			p.negate, s = true, rest
		}
		if s == "" {
			return nil, errors.New("empty entry")
		}
		if a, err := netip.ParseAddr(s); err == nil {
			a = a.Unmap()
			p.prefix = netip.PrefixFrom(a, a.BitLen())
		} else if pr, err := netip.ParsePrefix(s); err == nil {
			if pr != pr.Masked() {
				return nil, fmt.Errorf("%q has bits set beyond its /%d (write %s)", s, pr.Bits(), pr.Masked())
			}
			p.prefix = pr
		} else if addressGlob(s) {
			p.glob = strings.ToLower(s)
		} else {
			return nil, fmt.Errorf("%q is not an address, CIDR block or address pattern (host names are not supported: Slipway does not resolve addresses)", truncate(s))
		}
		pats = append(pats, p)
	}
	return pats, nil
}

// addressGlob reports whether s is a wildcard pattern over addresses, such
// as "192.168.1.*" or "*": digits, hex letters, '.', ':' and wildcards.
func addressGlob(s string) bool {
	if !strings.ContainsAny(s, "*?") {
		return false
	}
	sep := strings.Trim(s, "*?") == ""
	for _, r := range s {
		switch {
		case r == '.' || r == ':':
			sep = true
		case r == '*' || r == '?', r >= '0' && r <= '9', r >= 'a' && r <= 'f', r >= 'A' && r <= 'F':
		default:
			return false
		}
	}
	return sep
}

// matchFrom applies a from= list as OpenSSH does: a negated entry that
// matches refuses, otherwise any matching entry admits.
func matchFrom(pats []addrPattern, addr netip.Addr) bool {
	admitted := false
	for _, p := range pats {
		var m bool
		if p.prefix.IsValid() {
			m = p.prefix.Contains(addr)
		} else {
			m = wildcard(p.glob, addr.String())
		}
		if m && p.negate {
			return false
		}
		admitted = admitted || m
	}
	return admitted
}

// wildcard matches s against a pattern of literal bytes, '*' (any run) and
// '?' (any one byte).
func wildcard(pat, s string) bool {
	for len(pat) > 0 {
		switch pat[0] {
		case '*':
			for i := len(s); i >= 0; i-- {
				if wildcard(pat[1:], s[i:]) {
					return true
				}
			}
			return false
		case '?':
			if s == "" {
				return false
			}
		default:
			if s == "" || s[0] != pat[0] {
				return false
			}
		}
		pat, s = pat[1:], s[1:]
	}
	return s == ""
}

// parseExpiry reads an expiry-time= value: YYYYMMDD or YYYYMMDDHHMM[SS],
// in the system's zone, or in UTC with a Z at the end (OpenSSH's forms).
func parseExpiry(s string, loc *time.Location) (time.Time, error) {
	v := s
	if rest, ok := strings.CutSuffix(v, "Z"); ok {
		v, loc = rest, time.UTC
	}
	layout := map[int]string{8: "20060102", 12: "200601021504", 14: "20060102150405"}[len(v)]
	if layout == "" {
		return time.Time{}, fmt.Errorf("%q: use YYYYMMDD or YYYYMMDDHHMM[SS], with Z at the end for UTC", truncate(s))
	}
	t, err := time.ParseInLocation(layout, v, loc)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q: use YYYYMMDD or YYYYMMDDHHMM[SS], with Z at the end for UTC", truncate(s))
	}
	return t, nil
}

// parseKey reads one authorized_keys line with its options. The error is a
// sentence about the line, for a Problem.
func parseKey(text string, loc *time.Location) (AuthorizedKey, error) {
	pk, _, opts, rest, err := ssh.ParseAuthorizedKey([]byte(text))
	if err != nil {
		// x/crypto's message ("no key found; last parsing error for
		// ignored line: ...") says less than the expected form.
		return AuthorizedKey{}, fmt.Errorf("bad public key %q (want an authorized_keys line: [OPTIONS] TYPE BASE64 [COMMENT])", truncate(text))
	}
	if strings.TrimSpace(string(rest)) != "" {
		return AuthorizedKey{}, fmt.Errorf("bad public key %q: more than one key (write one key per string or line)", truncate(text))
	}
	k := AuthorizedKey{Key: pk, Fingerprint: ssh.FingerprintSHA256(pk), options: strings.Join(opts, ",")}
	seen := map[string]bool{}
	for _, o := range opts {
		name, value, hasValue := strings.Cut(o, "=")
		name = strings.ToLower(name)
		if seen[name] {
			return k, fmt.Errorf("key option %s is given twice", name)
		}
		seen[name] = true
		value = strings.TrimSuffix(strings.TrimPrefix(value, `"`), `"`)
		switch {
		case name == "from" && hasValue:
			if k.from, err = parseFrom(value); err != nil {
				return k, fmt.Errorf("key option from=%q: %v", truncate(value), err)
			}
			k.From = value
		case name == "expiry-time" && hasValue:
			if k.Expires, err = parseExpiry(value, loc); err != nil {
				return k, fmt.Errorf("key option expiry-time=%v", err)
			}
		default:
			return k, fmt.Errorf("key option %q is not supported (Slipway honours only from= and expiry-time=, and runs nothing but git and its own commands); remove it", truncate(o))
		}
	}
	return k, nil
}

// keyLine is one authorized_keys line of a user and where it was read.
type keyLine struct {
	text string
	file string
	line int
}

// keyFileLines reads the key files of the i-th user. Problems are reported
// at the key_files line of the config; the lines keep their own file and
// line for what they contain.
func (v *validator) keyFileLines(i int, u *User) []keyLine {
	at := v.loc.keyIn("user", i, "key_files")
	var out []keyLine
	for _, pattern := range u.KeyFiles {
		p := pattern
		switch {
		case p == "~" || strings.HasPrefix(p, "~/"):
			if v.loader.Home == "" {
				v.add(at, "user %q: key_files %q: the running user has no home folder for ~", u.Name, pattern)
				continue
			}
			p = filepath.Join(v.loader.Home, strings.TrimPrefix(p, "~"))
		case strings.HasPrefix(p, "~"):
			v.add(at, "user %q: key_files %q: only ~/ (the running user's home) is supported", u.Name, pattern)
			continue
		case p == "":
			v.add(at, "user %q: key_files lists an empty path", u.Name)
			continue
		}
		globbed := strings.ContainsAny(p, "*?[")
		files := []string{p}
		if globbed {
			var err error
			if files, err = filepath.Glob(p); err != nil {
				v.add(at, "user %q: key_files %q: %v", u.Name, pattern, err)
				continue
			}
		}
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				if info, serr := os.Stat(f); globbed && (errors.Is(err, fs.ErrNotExist) || serr == nil && info.IsDir()) {
					continue // a folder the pattern matched, or a file gone meanwhile
				}
				v.add(at, "user %q: key_files %q: %v", u.Name, pattern, err)
				continue
			}
			out = append(out, authorizedLines(string(data), f)...)
		}
	}
	return out
}

// authorizedLines splits authorized_keys text into its key lines, skipping
// blank lines and # comments.
func authorizedLines(text, file string) []keyLine {
	var out []keyLine
	for n, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		out = append(out, keyLine{text: line, file: file, line: n + 1})
	}
	return out
}

// validEnvVar reports whether s can name an environment variable.
func validEnvVar(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (i > 0 && c >= '0' && c <= '9') {
			continue
		}
		return false
	}
	return true
}

// loginName turns a login name into a valid user name.
func loginName(login string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(login) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r == '.' || r == '_' || r == '-' {
			b.WriteRune(r)
		}
	}
	s := strings.TrimLeft(b.String(), "._-")
	if s == "" || !validUserName(s) {
		return "admin"
	}
	return s
}

// validateKeys gathers, parses and checks the keys of the i-th user, from
// keys, key_files and keys_env in that order.
func (c *Config) validateKeys(v *validator, i int, u *User) {
	header := v.loc.table("user", i)
	keysAt := v.loc.keyIn("user", i, "keys")
	var lines []keyLine
	for _, k := range u.Keys {
		lines = append(lines, keyLine{text: k, file: v.file, line: v.loc.valueLine(keysAt, k)})
	}
	lines = append(lines, v.keyFileLines(i, u)...)
	envAt := v.loc.keyIn("user", i, "keys_env")
	if u.KeysEnv != "" {
		if !validEnvVar(u.KeysEnv) {
			v.add(envAt, "user %q: keys_env %q is not an environment variable name", u.Name, truncate(u.KeysEnv))
		} else if v.loader.Getenv != nil {
			lines = append(lines, authorizedLines(v.loader.Getenv(u.KeysEnv), "$"+u.KeysEnv)...)
		}
	}
	if len(lines) == 0 {
		if len(u.KeyFiles) == 0 && u.KeysEnv == "" {
			v.add(header, "user %q has no keys", u.Name)
			return
		}
		var tried []string
		if len(u.KeyFiles) > 0 {
			tried = append(tried, fmt.Sprintf("key_files %s found none", quoteList(u.KeyFiles)))
		}
		if u.KeysEnv != "" {
			tried = append(tried, fmt.Sprintf("$%s is empty", u.KeysEnv))
		}
		v.add(header, "user %q has no keys: %s (create a key with `ssh-keygen -t ed25519`)", u.Name, strings.Join(tried, ", "))
		return
	}
	for _, l := range lines {
		// Problems in the config file sit at their line; those in a key
		// file or variable name it, and sort with the setting that read it.
		order := l.line
		switch {
		case l.file == v.file:
		case strings.HasPrefix(l.file, "$"):
			order = envAt
		default:
			order = v.loc.keyIn("user", i, "key_files")
		}
		report := func(format string, args ...any) {
			v.problems = append(v.problems, Problem{File: l.file, Line: l.line, Msg: fmt.Sprintf(format, args...), order: order})
		}
		k, err := parseKey(l.text, time.Local)
		if err != nil {
			report("user %q: %v", u.Name, err)
			continue
		}
		k.Source = fmt.Sprintf("%s:%d", l.file, l.line)
		if other := c.byKey[k.Fingerprint]; other != nil && other != u {
			report("user %q: key %s is already the key of user %q (%s)", u.Name, k.Fingerprint, other.Name, other.key(k.Fingerprint).Source)
			continue
		}
		if dup := u.key(k.Fingerprint); dup != nil {
			// The same key in a file and in the environment counts once;
			// with different options it would be unclear which hold.
			if dup.options != k.options {
				report("user %q: key %s is listed twice with different options (also at %s)", u.Name, k.Fingerprint, dup.Source)
			}
			continue
		}
		c.byKey[k.Fingerprint] = u
		u.keys = append(u.keys, k)
	}
}

func (u *User) key(fp string) *AuthorizedKey {
	for i := range u.keys {
		if u.keys[i].Fingerprint == fp {
			return &u.keys[i]
		}
	}
	return nil
}

func quoteList(list []string) string {
	q := make([]string, len(list))
	for i, s := range list {
		q[i] = fmt.Sprintf("%q", s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}
