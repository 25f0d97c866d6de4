package configs

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// Environment is a place a repository's passing builds are deployed to.
type Environment struct {
	Name string `toml:"name"`
	// Target is "user@host:/path" (with Port, SSHKey and KnownHosts), or a
	// local folder. A relative folder is taken inside the data dir, and
	// "{repo}" in it is replaced by the repository name.
	Target string `toml:"target"`
	// Targets are the hosts of an environment of many (instead of
	// Target): each a target string, or a table of its own target, port,
	// ssh_key, known_hosts and accept_new_host_key, which default to the
	// environment's (see Hosts). All remote, or all local folders.
	Targets []Host `toml:"targets"`
	Port    int    `toml:"port"`
	// SSHKey is the private key file used to reach the target; KnownHosts
	// holds the target's host key. Host keys are always checked; with
	// AcceptNewHostKey an unknown key is accepted once and then pinned.
	SSHKey           string `toml:"ssh_key"`
	KnownHosts       string `toml:"known_hosts"`
	AcceptNewHostKey bool   `toml:"accept_new_host_key"`
	// A release goes to the hosts in two phases: it is transferred to
	// every host, Parallel hosts at once (default DefaultParallel), then
	// switched live Batch hosts at a time (0, the default: all at once).
	// After each batch, Health (a shell command; blank is none) runs on
	// each host of it, HealthTimeout at most per attempt (default
	// DefaultHealthTimeout) and HealthRetries more times when it fails
	// (default DefaultHealthRetries). Any failure switches every host that
	// was switched back. Parse fills in the defaults.
	Parallel      int      `toml:"parallel"`
	Batch         int      `toml:"batch"`
	Health        string   `toml:"health"`
	HealthTimeout Duration `toml:"health_timeout"`
	HealthRetries *int     `toml:"health_retries"`
	// Auto is a branch whose passing builds deploy here by themselves.
	Auto string `toml:"auto"`
	// Requires is another environment the revision must be (or have been)
	// live on before it may come here.
	Requires string `toml:"requires"`
	// Approvers, when set, narrows who of the repo's releasers may push
	// refs/release/<name>.
	Approvers []string `toml:"approvers"`
	// Activate is run on the target inside the new release after the switch.
	Activate string `toml:"activate"`
	// Keep is how many releases stay on the target. Default 5, at least 2.
	Keep int `toml:"keep"`

	targetLine int // the line of target in the file, 0 unknown
}

// Defaults of an environment, filled in by Parse where the file says
// nothing.
const (
	// DefaultKeepReleases is the releases kept on a target.
	DefaultKeepReleases = 5
	// DefaultParallel is the hosts a release is transferred to at once.
	DefaultParallel = 8
	// DefaultHealthTimeout bounds one attempt of the health command.
	DefaultHealthTimeout = 30 * time.Second
	// DefaultHealthRetries is the attempts after a failed health check.
	DefaultHealthRetries = 2
)

// HealthRetryCount is the attempts of the health command after a failed
// one: health_retries, or DefaultHealthRetries when the file sets none.
func (e *Environment) HealthRetryCount() int {
	if e.HealthRetries == nil {
		return DefaultHealthRetries
	}
	return *e.HealthRetries
}

// Remote reports whether the environment's first host is reached over
// SSH. It is for callers that know one host: with targets, use Hosts.
func (e *Environment) Remote() bool {
	hs := e.Hosts()
	return len(hs) > 0 && hs[0].Remote()
}

// LocalPath returns the folder of the environment's first host, a local
// one, for a repository. It is for callers that know one host: with
// targets, use Hosts.
func (e *Environment) LocalPath(dataDir, repo string) string {
	var h Host
	if hs := e.Hosts(); len(hs) > 0 {
		h = hs[0]
	}
	return h.LocalPath(dataDir, repo)
}

// Schedule is a cron entry that builds branch tips, such as a nightly
// integration suite.
type Schedule struct {
	Name string `toml:"name"`
	// Cron is a robfig/cron spec: five fields, a descriptor ("@nightly",
	// "@every 6h"), optionally prefixed by "CRON_TZ=Zone ".
	Cron string `toml:"cron"`
	// Branch is one branch or a list of them.
	Branch StringList `toml:"branch"`
	// Pipeline is the .slipway.toml section to run; default "nightly",
	// falling back to "build" when the file has no such section.
	Pipeline string `toml:"pipeline"`
	// CatchUp fires once at start when a fire time passed while the
	// daemon was down. Default true.
	CatchUp *bool `toml:"catch_up"`
	// OnlyIfChanged skips a run when the branch tip already passed this
	// schedule.
	OnlyIfChanged bool `toml:"only_if_changed"`
}

// DefaultSchedulePipeline is the pipeline a schedule runs by default.
const DefaultSchedulePipeline = "nightly"

// CatchesUp reports the effective catch_up setting.
func (s *Schedule) CatchesUp() bool { return s.CatchUp == nil || *s.CatchUp }

// StringList is a TOML string or array of strings.
type StringList []string

// UnmarshalTOML implements toml.Unmarshaler.
func (l *StringList) UnmarshalTOML(v any) error {
	switch v := v.(type) {
	case string:
		*l = StringList{v}
	case []any:
		out := make(StringList, 0, len(v))
		for _, e := range v {
			s, ok := e.(string)
			if !ok {
				return fmt.Errorf("expected a string or a list of strings, found %T", e)
			}
			out = append(out, s)
		}
		*l = out
	default:
		return fmt.Errorf("expected a string or a list of strings, found %T", v)
	}
	return nil
}

// CronParser parses schedule specs the way Slipway does: standard five
// fields, descriptors, and a CRON_TZ= or TZ= prefix.
func CronParser() cron.Parser {
	return cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)
}

// ParseCron parses spec in the server's default zone (a CRON_TZ= prefix in
// the spec wins).
func ParseCron(spec string, loc *time.Location) (cron.Schedule, error) {
	body := spec
	for _, prefix := range []string{"CRON_TZ=", "TZ="} {
		if rest, ok := strings.CutPrefix(spec, prefix); ok {
			// robfig/cron panics on a zone prefix with nothing after it.
			zone, fields, _ := strings.Cut(rest, " ")
			if zone == "" || strings.TrimSpace(fields) == "" {
				return nil, fmt.Errorf("invalid cron spec %q: %s needs a zone and a schedule after it", truncate(spec), prefix)
			}
			body = fields
		}
	}
	// robfig/cron turns "@every 0s" or a negative interval into every second.
	if every, ok := strings.CutPrefix(strings.TrimSpace(body), "@every "); ok {
		if d, err := time.ParseDuration(strings.TrimSpace(every)); err != nil || d < time.Second {
			return nil, fmt.Errorf("invalid cron spec %q: @every needs a duration of at least 1s", truncate(spec))
		}
	}
	if body == spec && loc != nil {
		spec = "CRON_TZ=" + loc.String() + " " + spec
	}
	s, err := CronParser().Parse(spec)
	if err != nil {
		return nil, fmt.Errorf("invalid cron spec %q: %w", truncate(spec), err)
	}
	return s, nil
}

// Location is the server's default time zone for schedules.
func (c *Config) Location() *time.Location {
	if c.Timezone == "" {
		return time.Local
	}
	loc, err := time.LoadLocation(c.Timezone)
	if err != nil {
		return time.UTC // validation refuses unknown zones; this is unreachable after Parse
	}
	return loc
}

// envTable is the table path of the environments of the i-th repo (-1: the
// top-level defaults), and the line their search starts from.
func (v *validator) envTable(i int) (string, int) {
	if i < 0 {
		return "environment", 0
	}
	return "repo.environment", v.loc.table("repo", i)
}

func (c *Config) validateEnvironments(v *validator, i int, r *Repo) {
	envs := map[string]*Environment{}
	path, from := v.envTable(i)
	for j := range r.Environments {
		e := &r.Environments[j]
		line := v.loc.keyInNth(path, j, "name", from)
		if err := checkSegment(e.Name); err != nil || e.Name == "" {
			v.add(line, "repo %q: environment name %q: use lowercase letters, digits, '.', '_' or '-'", r.Name, e.Name)
			continue
		}
		if envs[e.Name] != nil {
			v.add(line, "repo %q: duplicate environment %q", r.Name, e.Name)
			continue
		}
		envs[e.Name] = e
		ea := envAt{v: v, repo: r.Name, env: e.Name, path: path, index: j, from: from, name: line}
		ea.hosts(e)
		ea.rollout(e)
		if e.Keep == 0 {
			e.Keep = DefaultKeepReleases
		}
		if e.Keep < 2 {
			v.add(line, "repo %q: environment %q: keep must be at least 2 (the live release and the one before it)", r.Name, e.Name)
		}
		at := v.loc.keyInNth(path, j, "approvers", from)
		for _, a := range e.Approvers {
			if c.byName[a] == nil {
				v.add(v.loc.valueLine(at, a), "repo %q: environment %q: approvers lists unknown user %q%s", r.Name, e.Name, truncate(a), c.suggestUser(a))
			}
		}
	}
	for j := range r.Environments {
		e := &r.Environments[j]
		if e.Requires == "" {
			continue
		}
		line := v.loc.keyInNth(path, j, "name", from)
		seen := map[string]bool{e.Name: true}
		for cur := e; cur != nil && cur.Requires != ""; {
			next := envs[cur.Requires]
			if next == nil {
				v.add(line, "repo %q: environment %q requires unknown environment %q", r.Name, cur.Name, cur.Requires)
				break
			}
			if seen[next.Name] {
				v.add(line, "repo %q: environment %q: requires forms a cycle", r.Name, e.Name)
				break
			}
			seen[next.Name] = true
			cur = next
		}
	}
}

// validateApprovers refuses approvers who may not release the repository:
// the release gate wants both, so such an approver could never approve. A
// top-level environment is checked against every configured repository
// that uses it (one with no environments of its own).
func (c *Config) validateApprovers(v *validator) {
	check := func(envIndex int, path string, from int, e *Environment, r *Repo) {
		at := v.loc.keyInNth(path, envIndex, "approvers", from)
		for _, a := range e.Approvers {
			if c.byName[a] == nil || c.Access(a, r.Name).Has(Release) {
				continue
			}
			fixed := slices.DeleteFunc(slices.Clone(r.Release), func(n string) bool { return c.byName[n] == nil })
			v.add(v.loc.valueLine(at, a), "environment %q of repo %q: approver %q may not release on %q (add to release = %s)",
				e.Name, r.Name, a, r.Name, quoteList(append(fixed, a)))
		}
	}
	for i := range c.Repos {
		r := &c.Repos[i]
		if c.repos[r.Name] != r {
			continue // invalid or duplicate name, reported already
		}
		if len(r.Environments) == 0 {
			path, from := v.envTable(-1)
			for j := range c.Environments {
				check(j, path, from, &c.Environments[j], r)
			}
			continue
		}
		path, from := v.envTable(i)
		for j := range r.Environments {
			check(j, path, from, &r.Environments[j], r)
		}
	}
}

func (c *Config) validateSchedules(v *validator, i int, r *Repo) {
	names := map[string]bool{}
	for j := range r.Schedules {
		s := &r.Schedules[j]
		line := v.loc.keyInNth("repo.schedule", j, "cron", v.loc.table("repo", i))
		if err := checkSegment(s.Name); err != nil || s.Name == "" {
			v.add(line, "repo %q: schedule name %q: use lowercase letters, digits, '.', '_' or '-'", r.Name, s.Name)
		} else if names[s.Name] {
			v.add(line, "repo %q: duplicate schedule %q", r.Name, s.Name)
		}
		names[s.Name] = true
		if _, err := ParseCron(s.Cron, c.Location()); err != nil {
			v.add(line, "repo %q: schedule %q: %v", r.Name, s.Name, err)
		}
		if len(s.Branch) == 0 {
			v.add(line, "repo %q: schedule %q names no branch", r.Name, s.Name)
		}
		for _, b := range s.Branch {
			if b == "" || strings.HasPrefix(b, "-") || strings.Contains(b, "..") || strings.ContainsAny(b, " ~^:?*[\\") {
				v.add(line, "repo %q: schedule %q: bad branch name %q", r.Name, s.Name, b)
			}
		}
		if s.Pipeline == "" {
			s.Pipeline = DefaultSchedulePipeline
		}
	}
}
