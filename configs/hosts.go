package configs

import (
	"cmp"
	"fmt"
	"maps"
	"path"
	"path/filepath"
	"slices"
	"slipway/internal/closest"
	"slipway/internal/remote"
	"strconv"
	"strings"
)

// Host is one machine (or local folder) an environment's releases go to.
// In the file it is a target string, or a table with target and any of
// port, ssh_key, known_hosts and accept_new_host_key:
//
//	targets = ["deploy@web1:/srv/app", { target = "deploy@web2:/srv/app", port = 2222 }]
type Host struct {
	// Target is "user@host:/path", "ssh://user@host:2222/path",
	// "host:/path", or a local folder (relative: inside the data dir).
	// "{repo}" in it is replaced by the repository name.
	Target string
	// Port, SSHKey, KnownHosts and AcceptNewHostKey mean what they mean on
	// an Environment. Environment.Hosts fills in the environment's where
	// the host sets none (a port in an ssh:// target wins over Port).
	Port             int
	SSHKey           string
	KnownHosts       string
	AcceptNewHostKey bool
	// Line is the line of the configuration file the host is written on
	// (its target key, for an environment of one); 0 when unknown, as for
	// a Host not read from a file.
	Line int

	// table: written as a table, and printed back as one. acceptSet: the
	// table sets accept_new_host_key, so that false overrides the
	// environment's true.
	table, acceptSet bool
	// problems are what UnmarshalTOML found wrong, kept for validation to
	// report with their lines beside the file's other problems (an error
	// from UnmarshalTOML would stop the decoder at the first).
	problems []hostProblem
}

// hostProblem is one thing wrong with a host as written; key is the key
// of its table it is about ("" for the host as a whole).
type hostProblem struct{ key, msg string }

// hostKeys are the keys of a host table, in the order they are printed.
var hostKeys = []string{"target", "port", "ssh_key", "known_hosts", "accept_new_host_key"}

// UnmarshalTOML implements toml.Unmarshaler. It never fails: what is
// wrong is kept for Parse to report with its line.
func (h *Host) UnmarshalTOML(v any) error {
	*h = Host{}
	bad := func(key, format string, args ...any) {
		h.problems = append(h.problems, hostProblem{key, fmt.Sprintf(format, args...)})
	}
	switch v := v.(type) {
	case string:
		h.Target = v
	case map[string]any:
		h.table = true
		if _, ok := v["target"]; !ok {
			bad("", `a host table needs target = "user@host:/path"`)
		}
		for _, k := range slices.Sorted(maps.Keys(v)) {
			val := v[k]
			var ok bool
			want := "a string"
			switch k {
			case "target":
				h.Target, ok = val.(string)
			case "ssh_key":
				h.SSHKey, ok = val.(string)
			case "known_hosts":
				h.KnownHosts, ok = val.(string)
			case "accept_new_host_key":
				h.AcceptNewHostKey, ok = val.(bool)
				h.acceptSet, want = ok, "true or false"
			case "port":
				var n int64
				n, ok = val.(int64)
				want = "an integer"
				if ok && (n < 1 || n > 65535) {
					bad(k, "bad port %d (use 1 to 65535)", n)
				} else if ok {
					h.Port = int(n)
				}
			default:
				msg := fmt.Sprintf("unknown key %q in a host of targets", k)
				if s := closest.Name(k, hostKeys); s != "" {
					msg += fmt.Sprintf(" (did you mean %q?)", s)
				}
				bad(k, "%s", msg)
				continue
			}
			if !ok {
				bad(k, "%s: expected %s, found %s", k, want, tomlKind(val))
			}
		}
	default:
		bad("", `a host is a target string ("user@host:/path") or a table with target, not %s`, tomlKind(v))
	}
	return nil
}

// tomlKind names the kind of a decoded TOML value for messages.
func tomlKind(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a number with a fraction"
	case bool:
		return "true or false"
	case []any, []map[string]any:
		return "a list"
	case map[string]any:
		return "a table"
	}
	return "a date or time"
}

// MarshalTOML implements toml.Marshaler: the host as it was written, a
// target string, or an inline table when it sets more than its target.
// Line is not written.
func (h Host) MarshalTOML() ([]byte, error) {
	if !h.table && !h.acceptSet && h.Port == 0 && h.SSHKey == "" && h.KnownHosts == "" && !h.AcceptNewHostKey {
		return []byte(quoteTOML(h.Target)), nil
	}
	parts := []string{"target = " + quoteTOML(h.Target)}
	if h.Port != 0 {
		parts = append(parts, "port = "+strconv.Itoa(h.Port))
	}
	if h.SSHKey != "" {
		parts = append(parts, "ssh_key = "+quoteTOML(h.SSHKey))
	}
	if h.KnownHosts != "" {
		parts = append(parts, "known_hosts = "+quoteTOML(h.KnownHosts))
	}
	if h.acceptSet || h.AcceptNewHostKey {
		parts = append(parts, "accept_new_host_key = "+strconv.FormatBool(h.AcceptNewHostKey))
	}
	return []byte("{ " + strings.Join(parts, ", ") + " }"), nil
}

// quoteTOML writes s as a TOML basic string.
func quoteTOML(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// Remote reports whether the host is reached over SSH, rather than being a
// folder on this machine.
func (h Host) Remote() bool {
	return !filepath.IsAbs(h.Target) && strings.Contains(h.Target, ":") && !strings.HasPrefix(h.Target, ".")
}

// LocalPath returns the folder of a local host for a repository: "{repo}"
// replaced, a relative folder taken inside dataDir.
func (h Host) LocalPath(dataDir, repo string) string {
	p := strings.ReplaceAll(h.Target, "{repo}", repo)
	if !filepath.IsAbs(p) {
		p = filepath.Join(dataDir, p)
	}
	return filepath.Clean(p)
}

// Hosts returns where the environment's releases go: the one host of
// target, or each host of targets with the environment's port, ssh_key,
// known_hosts and accept_new_host_key where the host sets none of its own.
// Nil when the environment names neither.
func (e *Environment) Hosts() []Host {
	if e.Target != "" || len(e.Targets) == 0 {
		if e.Target == "" {
			return nil
		}
		return []Host{{Target: e.Target, Port: e.Port, SSHKey: e.SSHKey, KnownHosts: e.KnownHosts,
			AcceptNewHostKey: e.AcceptNewHostKey, Line: e.targetLine}}
	}
	out := make([]Host, len(e.Targets))
	for i, h := range e.Targets {
		out[i] = Host{
			Target:           h.Target,
			Port:             cmp.Or(h.Port, e.Port),
			SSHKey:           cmp.Or(h.SSHKey, e.SSHKey),
			KnownHosts:       cmp.Or(h.KnownHosts, e.KnownHosts),
			AcceptNewHostKey: h.AcceptNewHostKey || !h.acceptSet && e.AcceptNewHostKey,
			Line:             h.Line,
		}
	}
	return out
}

// envAt is one environment under validation: where it is in the file, and
// what its problems start with.
type envAt struct {
	v         *validator
	repo, env string
	path      string // its table path, "environment" or "repo.environment"
	index     int    // which of them
	from      int    // the line its search starts from
	name      int    // the line of its name
}

func (a envAt) key(key string) int { return a.v.loc.keyInNth(a.path, a.index, key, a.from) }

func (a envAt) add(line int, format string, args ...any) {
	a.v.add(line, "repo %q: environment %q: "+format, append([]any{a.repo, a.env}, args...)...)
}

// hosts checks where the environment deploys to, and puts each host's line
// on it.
func (a envAt) hosts(e *Environment) {
	if e.Port < 0 || e.Port > 65535 {
		a.add(a.key("port"), "bad port %d", e.Port)
	}
	switch {
	case e.Target != "" && e.Targets != nil:
		a.add(a.key("targets"), "set target (one host) or targets (many), not both")
		return
	case e.Target == "" && e.Targets == nil:
		a.v.add(a.name, "repo %q: environment %q has no target (set target, or targets for many hosts)", a.repo, a.env)
		return
	case e.Target == "" && len(e.Targets) == 0:
		a.add(a.key("targets"), "targets is empty: list at least one host")
		return
	}
	single := e.Target != ""
	var spans []span
	if single {
		e.targetLine = a.key("target")
	} else {
		spans = a.v.loc.elements(a.path, a.index, "targets", a.from)
		if len(spans) != len(e.Targets) {
			line := a.key("targets")
			spans = slices.Repeat([]span{{line, line}}, len(e.Targets))
		}
		for k := range e.Targets {
			e.Targets[k].Line = spans[k].first
		}
	}
	var local, far *Host
	seen := map[string]int{} // identity → line of its first listing
	hosts := e.Hosts()
	for k := range hosts {
		h := &hosts[k]
		what := fmt.Sprintf("host %q", truncate(h.Target))
		if single {
			what = fmt.Sprintf("target %q", truncate(h.Target))
		} else {
			for _, p := range e.Targets[k].problems {
				if h.Target == "" {
					a.add(a.v.loc.keyInSpan(spans[k], p.key), "targets: %s", p.msg)
				} else {
					a.add(a.v.loc.keyInSpan(spans[k], p.key), "%s: %s", what, p.msg)
				}
			}
			if h.Target == "" {
				continue
			}
		}
		id := "local " + filepath.Clean(h.Target)
		if h.Remote() {
			far = cmp.Or(far, h)
			t, err := remote.ParseTemplate(h.Target)
			if err != nil {
				a.add(h.Line, "%s must look like user@host:/path or ssh://user@host:port/path: %v", what, err)
				continue
			}
			switch {
			case h.SSHKey != "" && h.KnownHosts != "":
			case single:
				a.add(h.Line, "a remote target needs ssh_key and known_hosts files")
			default:
				a.add(h.Line, "%s needs ssh_key and known_hosts files (set them on the host or the environment)", what)
			}
			if own := e.Targets; !single && own[k].Port != 0 && t.Port != 0 && own[k].Port != t.Port {
				a.add(a.v.loc.keyInSpan(spans[k], "port"), "%s names port %d in its target and port = %d: keep one", what, t.Port, own[k].Port)
			}
			id = identity(t, h.Port)
		} else {
			local = cmp.Or(local, h)
			if strings.Contains(h.Target, "..") {
				if single {
					a.add(h.Line, "a local target may not contain \"..\"")
				} else {
					a.add(h.Line, "%s: a local folder may not contain \"..\"", what)
				}
				continue
			}
		}
		first, dup := seen[id]
		switch {
		case !dup:
			seen[id] = h.Line
		case first > 0 && first != h.Line:
			a.add(h.Line, "%s is listed twice (lines %d and %d)", what, first, h.Line)
		default:
			a.add(h.Line, "%s is listed twice", what)
		}
	}
	if local != nil && far != nil {
		a.add(a.key("targets"), "targets mixes local folders (%q) and remote hosts (%q): list only one kind",
			truncate(local.Target), truncate(far.Target))
	}
}

// rollout checks how a release goes to the hosts, and fills in the
// defaults.
func (a envAt) rollout(e *Environment) {
	for _, n := range []struct {
		key string
		n   int
	}{{"parallel", e.Parallel}, {"batch", e.Batch}} {
		if n.n < 0 {
			a.add(a.key(n.key), "%s must not be negative", n.key)
		}
	}
	if e.HealthRetries != nil && *e.HealthRetries < 0 {
		a.add(a.key("health_retries"), "health_retries must not be negative")
	}
	if strings.TrimSpace(e.Health) == "" {
		e.Health = ""
	}
	if e.Parallel == 0 {
		e.Parallel = DefaultParallel
	}
	if e.HealthTimeout.Duration == 0 {
		e.HealthTimeout.Duration = DefaultHealthTimeout
	}
	if e.HealthRetries == nil {
		n := DefaultHealthRetries
		e.HealthRetries = &n
	}
}

// identity is what makes two remote hosts the same: the login and host in
// lower case, the port (port when the target names none, 22 when neither
// does), and the cleaned path, "{repo}" in it as written.
func identity(t remote.Target, port int) string {
	port = cmp.Or(t.Port, port, 22)
	host := t.Host
	if t.User != "" {
		host = t.User + "@" + host
	}
	return strings.ToLower(host) + " " + strconv.Itoa(port) + " " + path.Clean(t.Path)
}
