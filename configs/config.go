package configs

import (
	_ "embed"
	"fmt"
	"net"
	"net/url"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// Default is the embedded configuration `slipway serve` runs on without
// --config; Example is the commented reference configuration.
var (
	//go:embed default.toml
	defaultTOML []byte
	//go:embed example.toml
	exampleTOML []byte
)

// DefaultTOML returns the embedded default configuration file.
func DefaultTOML() []byte { return slices.Clone(defaultTOML) }

// ExampleTOML returns the commented example configuration file.
func ExampleTOML() []byte { return slices.Clone(exampleTOML) }

// Config is the whole server configuration. Its exported fields mirror the
// TOML file; after Parse they are validated and defaults are filled in.
// A Config is read-only once the daemon starts: serve only makes DataDir
// and build.work_dir absolute before anything reads them.
type Config struct {
	// DataDir holds everything Slipway owns: repositories, the database,
	// the host key, logs. Relative paths are taken from the working
	// directory of `slipway serve`.
	DataDir string `toml:"data_dir"`
	SSH     SSH    `toml:"ssh"`
	HTTP    HTTP   `toml:"http"`
	Users   []User `toml:"user"`
	Repos   []Repo `toml:"repo"`
	Build   Build  `toml:"build"`
	// Kubernetes configures the Kubernetes executor ([kubernetes]).
	Kubernetes Kubernetes `toml:"kubernetes"`
	// Timezone is the default zone of schedules ("Europe/Berlin"); a
	// CRON_TZ= prefix in a spec wins. Default: the server's local zone.
	Timezone string `toml:"timezone"`
	// Environments are the default environments of repositories that
	// define none; "{repo}" in a local target is the repository name.
	Environments []Environment `toml:"environment"`
	// ConfigRepo makes the configuration a repository too: admins push
	// the file to the repository slipway-config, whose pre-receive
	// validates it and whose accepted pushes are written to the file and
	// reloaded. The file stays the source at start. Needs --config.
	ConfigRepo bool `toml:"config_repo"`
	// Webhooks are told about the events of every repository
	// ([[webhook]]); a repository's own come after them.
	Webhooks []Webhook `toml:"webhook"`
	// WebhookSettings are what every hook shares ([webhooks]).
	WebhookSettings Webhooks `toml:"webhooks"`

	byKey  map[string]*User // by SHA256 fingerprint
	byName map[string]*User
	repos  map[string]*Repo
	origin Origin // set when a Live puts it in force
	// metricsToken is the content of [http] metrics_token_file, read
	// when the configuration is (at start and at each reload).
	metricsToken string
}

// SSH configures the SSH listener.
type SSH struct {
	// Listen is the TCP address of the SSH server.
	Listen string `toml:"listen"`
	// HostKey is the ed25519 host key file, generated on first start if
	// missing. Default: <data_dir>/ssh_host_ed25519_key.
	HostKey string `toml:"host_key"`
	// MaxSessions caps authenticated connections overall, and
	// MaxSessionsPerUser per user. A connection counts from the moment its
	// key is verified until it closes; until then it is a startup, counted
	// by MaxStartups and PerSourceMaxStartups only, so connections that
	// never authenticate cannot take a user's place.
	MaxSessions        int `toml:"max_sessions"`
	MaxSessionsPerUser int `toml:"max_sessions_per_user"`
	// MaxStartups caps connections that have not authenticated yet, as
	// OpenSSH's MaxStartups "start:rate:full" (random early drop).
	// PerSourceMaxStartups caps them per source, a block of addresses of
	// PerSourceNetBlockSize. Either way, a new connection is let in in the
	// place of one that has sent nothing at all yet, when there is one.
	MaxStartups           Startups     `toml:"max_startups"`
	PerSourceMaxStartups  int          `toml:"per_source_max_startups"`
	PerSourceNetBlockSize NetBlockSize `toml:"per_source_net_block_size"`
	// HandshakeTimeout bounds the whole time before authentication (SSH's
	// LoginGraceTime): banner, key exchange and authentication. IdleTimeout
	// closes a connection that has been silent that long (longer than git's
	// quiet phases, such as packing a large repository).
	HandshakeTimeout Duration `toml:"handshake_timeout"`
	IdleTimeout      Duration `toml:"idle_timeout"`
}

// HTTP configures the web side: the dashboard, the JSON API, badges and
// metrics, served by the same daemon.
type HTTP struct {
	// Listen is the TCP address of the HTTP server; empty (the default
	// when the file has no [http]) turns the web side off. The embedded
	// default serves on "127.0.0.1:8080". `serve --http ADDR` overrides it.
	Listen string `toml:"listen"`
	// PublicURL is where people reach the web side ("https://ci.example.com"),
	// for the links Slipway prints (push output, `builds`). Default: none.
	PublicURL string `toml:"public_url"`
	// TLSCert and TLSKey, both or neither, serve HTTPS (and HTTP/2).
	TLSCert string `toml:"tls_cert"`
	TLSKey  string `toml:"tls_key"`
	// MetricsTokenFile holds the bearer token that /metrics asks for;
	// without it /metrics is off. It is read with the configuration, at
	// start and at every reload (a relative path from the working
	// directory): one line of at least 16 visible ASCII characters, such
	// as `openssl rand -hex 32` prints.
	MetricsTokenFile string `toml:"metrics_token_file"`
}

// User is a person or machine that authenticates with one of its keys,
// gathered from Keys, KeyFiles and KeysEnv.
type User struct {
	// Name is the user's name; LoginPlaceholder ("{login}") stands for the
	// login name of the user running Slipway.
	Name string `toml:"name"`
	// Keys are public keys in authorized_keys format, with the options
	// from= and expiry-time= allowed in front.
	Keys []string `toml:"keys"`
	// KeyFiles are files of authorized_keys lines (blank lines and #
	// comments skipped), as glob patterns; "~/" is the running user's home,
	// and a relative path is taken from the working directory. A pattern
	// may match nothing; a path without wildcards must exist. Read at start.
	KeyFiles []string `toml:"key_files"`
	// KeysEnv names an environment variable of the daemon holding
	// authorized_keys lines, one per line; unset or empty adds nothing.
	KeysEnv string `toml:"keys_env"`
	// Admin users may do everything, including creating repositories by
	// pushing to a new name.
	Admin bool `toml:"admin"`

	keys []AuthorizedKey
}

// Repo grants rights on one repository. Read, Write and Release list user
// names, or "*" for every configured user. Write implies Read; Release
// (pushing refs/release/*) implies Read too.
type Repo struct {
	Name    string   `toml:"name"`
	Read    []string `toml:"read"`
	Write   []string `toml:"write"`
	Release []string `toml:"release"`

	// BuildBranches are the branches whose pushes build, as path.Match
	// patterns ("main", "release/*"). Default: every branch.
	BuildBranches []string `toml:"build_branches"`
	// BuildTags makes pushed tags build too. Default: false.
	BuildTags bool `toml:"build_tags"`
	// VerifyBranches are the branches, as path.Match patterns, that only
	// move when the pushed revision's build passes: every push to them is
	// built in pre-receive as if `git push -o verify` had been given.
	// Default: none.
	VerifyBranches []string `toml:"verify_branches"`
	// CancelRunning makes a newer push to a branch cancel a still-running
	// build of that branch (a queued one is always superseded).
	CancelRunning bool `toml:"cancel_running"`
	// Public lets anyone, without signing in, read this repository's pages
	// and badges on the web side (read only). Default: false.
	Public bool `toml:"public"`
	// Network allows this repository's pipelines to ask for network access
	// (`network = true` in .slipway.toml). Default: false.
	Network bool `toml:"network"`
	// Secrets are handed to this repository's builds and deployments as
	// environment variables, where their scope allows, and masked in logs.
	Secrets []Secret `toml:"secret"`
	// DefaultBranch is the branch whose cache a new branch's first build
	// starts from (a copy: no other branch can write it). Default: the
	// auto branch of the repository's first environment that has one,
	// else "main".
	DefaultBranch string `toml:"default_branch"`
	// Environments are where passing builds are deployed. A repository
	// with none gets the top-level environments (the embedded default's
	// staging and prod).
	Environments []Environment `toml:"environment"`
	// Schedules build branch tips on a cron schedule.
	Schedules []Schedule `toml:"schedule"`
	// Webhooks are told about this repository's events, after the
	// top-level [[webhook]]s.
	Webhooks []Webhook `toml:"webhook"`
	// Executor is where this repository's builds run ("bubblewrap" or
	// "kubernetes"); default build.executor.
	Executor string `toml:"executor"`
}

// Secret is one secret environment variable of a repository's builds. Its
// value comes from a file or from the daemon's environment, never from this
// file.
type Secret struct {
	Name string `toml:"name"`
	File string `toml:"file"`
	Env  string `toml:"env"`
	// Branches are the branches (path.Match patterns) whose builds get the
	// secret. Environments are the environments whose deployments get it
	// (in activate's environment). A secret that names neither reaches the
	// builds of the repository's auto-deploy branches only, never every
	// branch; see Config.SecretScope.
	Branches     []string `toml:"branches"`
	Environments []string `toml:"environments"`
}

// Build configures the build queue and sandbox.
type Build struct {
	// Concurrency is how many builds run at once. Default: the number of CPUs.
	Concurrency int `toml:"concurrency"`
	// Executor is where builds run: "bubblewrap" (on this host, in the
	// sandbox below; the default) or "kubernetes" (a Pod per build, see
	// [kubernetes]). A repository's own executor wins.
	Executor string `toml:"executor"`
	// Sandbox is "bwrap" (bubblewrap; the default) or "none", which runs
	// steps as plain processes and says so in every build log.
	Sandbox string `toml:"sandbox"`
	// DefaultTimeout applies to pipelines that set none; MaxTimeout caps
	// what a pipeline may ask for. Defaults: "30m" and "2h".
	DefaultTimeout Duration `toml:"default_timeout"`
	MaxTimeout     Duration `toml:"max_timeout"`
	// MaxLogBytes cuts a build log beyond this size. Default: 10 MiB.
	MaxLogBytes int64 `toml:"max_log_bytes"`
	// MaxPerPush caps the builds one push enqueues (a mirror push of many
	// branches must not bury the queue). Default: 10.
	MaxPerPush int `toml:"max_per_push"`
	// Keep is how many finished builds are kept per repository, of every
	// state, branch and trigger, with their logs, artifacts and
	// deployments; older ones are deleted after each build and at start.
	// Builds that deployments still need stay beyond it: on every
	// environment the live release, the one before it (the rollback) and
	// the newest deployment, and every queued or running deployment. Push
	// records go when nothing kept refers to them (the newest Keep per
	// repository and the last record of each ref stay). Default: 100.
	Keep int `toml:"keep"`
	// Limits of every build step, and of what a build keeps. A key left
	// out of the file gets its default; 0 turns the limit off. The
	// defaults fit a 2-core machine with 24 GiB of memory running two
	// builds at once (README "The sandbox, and which limits hold where").
	//
	// MaxProcesses caps the processes and threads of a step at once
	// (RLIMIT_NPROC). Default: 512.
	MaxProcesses int `toml:"max_processes"`
	// MaxFileBytes caps the size of any one file a step writes
	// (RLIMIT_FSIZE), and the files a checkout writes for the steps.
	// Default: 1 GiB.
	MaxFileBytes int64 `toml:"max_file_bytes"`
	// MaxOpenFiles caps the open files of each process of a step
	// (RLIMIT_NOFILE, soft and hard). Default: 4096.
	MaxOpenFiles int `toml:"max_open_files"`
	// MaxMemoryBytes caps the memory of all a step's processes together,
	// its /tmp included, through a memory cgroup where the daemon may make
	// one (a delegated cgroup v2 with the memory controller, or the cgroup
	// v1 memory hierarchy as root). Default: three quarters of the
	// machine's memory (or of the daemon's own cgroup limit, if lower)
	// shared by Concurrency builds, rounded down to a MiB.
	MaxMemoryBytes int64 `toml:"max_memory_bytes"`
	// MaxTmpBytes caps the step's /tmp and /dev/shm, one tmpfs (memory,
	// not disk). Default: 2 GiB.
	MaxTmpBytes int64 `toml:"max_tmp_bytes"`
	// MaxWorkspaceBytes caps the disk a build's workspace (checkout
	// included) and home hold together; a step that goes over it is
	// stopped. Default: 10 GiB.
	MaxWorkspaceBytes int64 `toml:"max_workspace_bytes"`
	// MaxArtifactBytes caps the artifacts a passing build keeps; a build
	// whose artifacts are larger fails and keeps none. Default: 1 GiB.
	MaxArtifactBytes int64 `toml:"max_artifact_bytes"`
	// UIDRange is where build identities come from when the daemon runs
	// as root: every running build gets a host uid of its own from it (its
	// gid is the same number), so that no build, and no other local
	// account, can read another's workspace, home or cache. Builds that
	// share a cache (two builds of one ref at once) share its uid. It must
	// hold at least Concurrency ids, none of them an account, a group or a
	// subordinate range of the machine (checked at start). Written
	// "START-END" or "START+COUNT". Default: 2000000000-2000001023, in the
	// range systemd leaves unused (above its container ranges, below 2^31)
	// and above Debian's SUB_UID_MAX.
	UIDRange IDRange `toml:"uid_range"`
	// UID and GID are the old way of naming the build identity: one uid
	// every build shares. Deprecated: the daemon says so at start, and
	// concurrent builds can then read each other's folders. Only one of
	// uid_range and uid/gid may be set.
	UID int `toml:"uid"`
	GID int `toml:"gid"`
	// WorkDir holds build workspaces and caches. It must be reachable by
	// the build uids. Default: <data_dir>/build, or a private folder under the system's
	// temporary folder when the data dir cannot be reached by them.
	WorkDir string `toml:"work_dir"`
}

// Duration is a time.Duration written as a Go duration string ("90s").
type Duration struct{ time.Duration }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("invalid duration %q (use a form like \"90s\" or \"10m\")", b)
	}
	if v <= 0 {
		return fmt.Errorf("duration %q must be positive", b)
	}
	d.Duration = v
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// Defaults applied by Parse where the file says nothing.
const (
	DefaultListen             = "127.0.0.1:2222"
	DefaultDataDir            = "slipway-data"
	DefaultMaxSessions        = 256
	DefaultMaxSessionsPerUser = 32
	// DefaultPerSourceMaxStartups is half of DefaultMaxStartups' start, so
	// that one source alone never makes everyone else face random early
	// drop, and more than the 50 clients a CI farm behind one address may
	// start at once.
	DefaultPerSourceMaxStartups = 64
	DefaultHandshakeTimeout     = 20 * time.Second
	DefaultIdleTimeout          = 15 * time.Minute

	DefaultBuildTimeout    = 30 * time.Minute
	DefaultMaxBuildTimeout = 2 * time.Hour
	DefaultMaxLogBytes     = 10 << 20
	DefaultMaxPerPush      = 10
	DefaultKeepBuilds      = 100
	DefaultMaxProcesses    = 512
	DefaultMaxFileBytes    = 1 << 30
	DefaultMaxOpenFiles    = 4096
	DefaultMaxTmpBytes     = 2 << 30
	DefaultMaxWorkspace    = 10 << 30
	DefaultMaxArtifacts    = 1 << 30
)

// DefaultMaxStartups lets 128 clients authenticate at once before random
// early drop begins (OpenSSH's 10 is low for a Git host that CI runners
// clone from in bursts, and a startup costs a goroutine, not a process),
// and holds at most 512. DefaultNetBlockSize counts an IPv4 address or an
// IPv6 /64 as one source.
var (
	DefaultMaxStartups  = Startups{Start: 128, Rate: 30, Full: 512}
	DefaultNetBlockSize = NetBlockSize{V4: 32, V6: 64}
)

// DefaultUIDRange is build.uid_range when the file names none: systemd's
// UIDS-GIDS.md leaves 1879048192-2147483647 unused (but for its "foreign"
// range from 2147352576), Debian's login.defs hands out subordinate ids up
// to 600100000, and ids from 2^31 on trip programs that take uid_t as
// signed.
var DefaultUIDRange = IDRange{First: 2000000000, Count: 1024}

// DefaultMemoryBytes is build.max_memory_bytes when the file names none:
// three quarters of memory shared by concurrency builds, rounded down to a
// MiB; 0 (no limit) when memory is unknown.
func DefaultMemoryBytes(memory int64, concurrency int) int64 {
	if memory <= 0 || concurrency <= 0 {
		return 0
	}
	return memory / 4 * 3 / int64(concurrency) &^ (1<<20 - 1)
}

// IDRange is a range of host uids (and gids of the same numbers), written
// "START-END" (both included) or "START+COUNT".
type IDRange struct {
	First, Count int
}

// maxID is the last id a range may hold: ids from 2^31 on are taken as
// negative by programs that store uid_t in a signed int.
const maxID = 1<<31 - 1

// UnmarshalText implements encoding.TextUnmarshaler.
func (r *IDRange) UnmarshalText(b []byte) error {
	s := strings.TrimSpace(string(b))
	bad := fmt.Errorf("invalid id range %q (write it as \"2000000000-2000001023\" or \"2000000000+1024\")", b)
	var first, last int64
	if a, c, ok := strings.Cut(s, "+"); ok {
		f, err1 := strconv.ParseInt(a, 10, 64)
		n, err2 := strconv.ParseInt(c, 10, 64)
		if err1 != nil || err2 != nil || n < 1 {
			return bad
		}
		first, last = f, f+n-1
	} else if a, c, ok := strings.Cut(s, "-"); ok {
		f, err1 := strconv.ParseInt(a, 10, 64)
		l, err2 := strconv.ParseInt(c, 10, 64)
		if err1 != nil || err2 != nil {
			return bad
		}
		first, last = f, l
	} else {
		return bad
	}
	switch {
	case first < 1:
		return fmt.Errorf("id range %q must start above 0 (root)", b)
	case last < first:
		return fmt.Errorf("id range %q ends before it starts", b)
	case last > maxID:
		return fmt.Errorf("id range %q goes beyond %d (ids from 2^31 on are negative to programs that store them signed)", b, maxID)
	}
	r.First, r.Count = int(first), int(last-first+1)
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (r IDRange) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// Last is the last id of the range.
func (r IDRange) Last() int { return r.First + r.Count - 1 }

func (r IDRange) String() string { return fmt.Sprintf("%d-%d", r.First, r.Last()) }

// Problem is one thing wrong with a configuration file.
type Problem struct {
	File string
	Line int // 0 when the problem has no single line
	Msg  string

	order int // the line of the config file the problem sorts at
}

func (p Problem) String() string {
	if p.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Msg)
	}
	return fmt.Sprintf("%s: %s", p.File, p.Msg)
}

// ValidationError lists every problem found in a configuration file.
type ValidationError struct{ Problems []Problem }

func (e *ValidationError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// applyDefaults fills in what the file left out. defined says whether the
// file names a key (path as in toml.MetaData.IsDefined); memory is the
// machine's, for the default memory limit (0: unknown).
func (c *Config) applyDefaults(defined func(key ...string) bool, memory int64) {
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	if c.SSH.Listen == "" {
		c.SSH.Listen = DefaultListen
	}
	if c.SSH.HostKey == "" {
		c.SSH.HostKey = filepath.Join(c.DataDir, "ssh_host_ed25519_key")
	}
	if c.SSH.MaxSessions == 0 {
		c.SSH.MaxSessions = DefaultMaxSessions
	}
	if c.SSH.MaxSessionsPerUser == 0 {
		c.SSH.MaxSessionsPerUser = DefaultMaxSessionsPerUser
	}
	if c.SSH.MaxStartups == (Startups{}) {
		c.SSH.MaxStartups = DefaultMaxStartups
	}
	if c.SSH.PerSourceMaxStartups == 0 {
		c.SSH.PerSourceMaxStartups = DefaultPerSourceMaxStartups
	}
	if c.SSH.PerSourceNetBlockSize == (NetBlockSize{}) {
		c.SSH.PerSourceNetBlockSize = DefaultNetBlockSize
	}
	if c.SSH.HandshakeTimeout.Duration == 0 {
		c.SSH.HandshakeTimeout.Duration = DefaultHandshakeTimeout
	}
	if c.SSH.IdleTimeout.Duration == 0 {
		c.SSH.IdleTimeout.Duration = DefaultIdleTimeout
	}
	b := &c.Build
	if b.Concurrency == 0 {
		b.Concurrency = runtime.NumCPU()
	}
	if b.Sandbox == "" {
		b.Sandbox = "bwrap"
	}
	c.kubernetesDefaults()
	if b.DefaultTimeout.Duration == 0 {
		b.DefaultTimeout.Duration = DefaultBuildTimeout
	}
	if b.MaxTimeout.Duration == 0 {
		b.MaxTimeout.Duration = max(DefaultMaxBuildTimeout, b.DefaultTimeout.Duration)
	}
	if b.MaxLogBytes == 0 {
		b.MaxLogBytes = DefaultMaxLogBytes
	}
	if b.MaxPerPush == 0 {
		b.MaxPerPush = DefaultMaxPerPush
	}
	if b.Keep == 0 {
		b.Keep = DefaultKeepBuilds
	}
	// A limit left out gets its default; one written as 0 is off.
	limits := []struct {
		key  string
		n    *int64
		def  int64
		ints *int
	}{
		{key: "max_processes", ints: &b.MaxProcesses, def: DefaultMaxProcesses},
		{key: "max_file_bytes", n: &b.MaxFileBytes, def: DefaultMaxFileBytes},
		{key: "max_open_files", ints: &b.MaxOpenFiles, def: DefaultMaxOpenFiles},
		{key: "max_memory_bytes", n: &b.MaxMemoryBytes, def: DefaultMemoryBytes(memory, b.Concurrency)},
		{key: "max_tmp_bytes", n: &b.MaxTmpBytes, def: DefaultMaxTmpBytes},
		{key: "max_workspace_bytes", n: &b.MaxWorkspaceBytes, def: DefaultMaxWorkspace},
		{key: "max_artifact_bytes", n: &b.MaxArtifactBytes, def: DefaultMaxArtifacts},
	}
	for _, l := range limits {
		if defined("build", l.key) {
			continue
		}
		if l.ints != nil {
			*l.ints = int(l.def)
		} else {
			*l.n = l.def
		}
	}
	switch {
	case defined("build", "uid_range"):
	case defined("build", "uid") || defined("build", "gid"):
		// The deprecated single identity, with its old defaults.
		if b.UID == 0 {
			b.UID = legacyBuildID
		}
		if b.GID == 0 {
			b.GID = legacyBuildID
		}
	default:
		b.UIDRange = DefaultUIDRange
	}
}

// legacyBuildID is what build.uid and build.gid defaulted to before
// build.uid_range: nobody, shared with whatever else runs as nobody.
const legacyBuildID = 65534

type validator struct {
	file     string
	loc      *locator
	loader   Loader
	problems []Problem
}

func (v *validator) add(line int, format string, args ...any) {
	v.problems = append(v.problems, Problem{File: v.file, Line: line, Msg: fmt.Sprintf(format, args...), order: line})
}

func (c *Config) validate(v *validator) {
	c.validateSSH(v)
	c.validateHTTP(v)
	c.validateBuild(v)
	if c.Timezone != "" {
		if _, err := time.LoadLocation(c.Timezone); err != nil {
			v.add(v.loc.keyIn("", -1, "timezone"), "unknown time zone %q", c.Timezone)
		}
	}
	c.byKey = map[string]*User{}
	c.byName = map[string]*User{}
	for i := range c.Users {
		u := &c.Users[i]
		line := v.loc.table("user", i)
		if u.Name == LoginPlaceholder {
			u.Name = loginName(v.loader.Login)
		}
		switch {
		case u.Name == "":
			v.add(line, "user without a name")
			continue
		case !validUserName(u.Name):
			v.add(v.loc.keyIn("user", i, "name"), "user name %q: use lowercase letters, digits, '.', '_' or '-'", truncate(u.Name))
			continue
		case c.byName[u.Name] != nil:
			v.add(v.loc.keyIn("user", i, "name"), "duplicate user %q", u.Name)
			continue
		}
		c.byName[u.Name] = u
		c.validateKeys(v, i, u)
	}
	defaults := Repo{Name: "(default)", Environments: c.Environments}
	c.validateEnvironments(v, -1, &defaults)
	c.repos = map[string]*Repo{}
	for i := range c.Repos {
		r := &c.Repos[i]
		name, err := CleanRepoName(r.Name)
		switch {
		case r.Name == "":
			v.add(v.loc.table("repo", i), "repo without a name")
			continue
		case err != nil:
			v.add(v.loc.keyIn("repo", i, "name"), "%v", err)
			name = r.Name
		case c.repos[name] != nil:
			v.add(v.loc.keyIn("repo", i, "name"), "duplicate repo %q", name)
			continue
		case c.IsConfigRepo(name):
			// Its rights are the admins' alone, and what it holds is
			// checked as a configuration, not built.
			v.add(v.loc.keyIn("repo", i, "name"), "repo %q is the configuration repository (config_repo = true), which only admins may push; choose another name", name)
			continue
		}
		if err == nil {
			r.Name = name
			c.repos[name] = r
		}
		c.validateRepoBuild(v, i, r)
		c.validateEnvironments(v, i, r)
		c.validateSchedules(v, i, r)
		for _, acl := range []struct {
			key   string
			names []string
		}{{"read", r.Read}, {"write", r.Write}, {"release", r.Release}} {
			at := v.loc.keyIn("repo", i, acl.key)
			for _, n := range acl.names {
				if n != "*" && c.byName[n] == nil {
					v.add(v.loc.valueLine(at, n), "repo %q: %s lists unknown user %q%s", name, acl.key, truncate(n), c.suggestUser(n))
				}
			}
		}
	}
	c.validateApprovers(v)
	c.validateWebhooks(v)
	c.validateKubernetes(v)
}

func (c *Config) validateHTTP(v *validator) {
	h := c.HTTP
	if h.Listen != "" {
		if err := CheckListen(h.Listen); err != nil {
			v.add(v.loc.keyIn("http", -1, "listen"), "[http] listen: %v", err)
		}
	}
	if (h.TLSCert == "") != (h.TLSKey == "") {
		v.add(v.loc.keyIn("http", -1, "tls_cert"), "[http] tls_cert and tls_key go together: set both for HTTPS, or neither")
	}
	if h.MetricsTokenFile != "" {
		tok, err := readMetricsToken(h.MetricsTokenFile)
		if err != nil {
			v.add(v.loc.keyIn("http", -1, "metrics_token_file"), "[http] metrics_token_file: %v", err)
		}
		c.metricsToken = tok
	}
	if h.PublicURL != "" {
		u, err := url.Parse(h.PublicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			v.add(v.loc.keyIn("http", -1, "public_url"), "[http] public_url %q: use an absolute http or https URL such as \"https://ci.example.com\"", truncate(h.PublicURL))
		}
	}
}

func (c *Config) validateSSH(v *validator) {
	if c.SSH.MaxSessions < 0 || c.SSH.MaxSessionsPerUser < 0 {
		v.add(v.loc.keyIn("ssh", -1, "max_sessions"), "session limits must be positive")
	}
	if err := c.SSH.MaxStartups.err; err != nil {
		v.add(v.loc.keyIn("ssh", -1, "max_startups"), "ssh.max_startups: %v", err)
	}
	if err := c.SSH.PerSourceNetBlockSize.err; err != nil {
		v.add(v.loc.keyIn("ssh", -1, "per_source_net_block_size"), "ssh.per_source_net_block_size: %v", err)
	}
	if c.SSH.PerSourceMaxStartups < 0 {
		v.add(v.loc.keyIn("ssh", -1, "per_source_max_startups"), "ssh.per_source_max_startups must be positive (set it to max_startups' full for no cap per source)")
	}
	if err := CheckListen(c.SSH.Listen); err != nil {
		v.add(v.loc.keyIn("ssh", -1, "listen"), "[ssh] listen: %v", err)
	}
}

// CheckListen reports whether addr can be the SSH server's address.
func CheckListen(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not HOST:PORT (such as 127.0.0.1:2222, or 127.0.0.1:0 for any free port)", truncate(addr))
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q: the port must be a number from 0 to 65535", truncate(addr))
	}
	return nil
}

func (c *Config) validateBuild(v *validator) {
	b := c.Build
	if b.Sandbox != "bwrap" && b.Sandbox != "none" {
		v.add(v.loc.keyIn("build", -1, "sandbox"), `build.sandbox must be "bwrap" or "none", not %q`, b.Sandbox)
	}
	for key, n := range map[string]int64{"concurrency": int64(b.Concurrency), "max_log_bytes": b.MaxLogBytes,
		"max_per_push": int64(b.MaxPerPush), "keep": int64(b.Keep), "max_processes": int64(b.MaxProcesses),
		"max_file_bytes": b.MaxFileBytes, "max_memory_bytes": b.MaxMemoryBytes, "max_open_files": int64(b.MaxOpenFiles),
		"max_tmp_bytes": b.MaxTmpBytes, "max_workspace_bytes": b.MaxWorkspaceBytes, "max_artifact_bytes": b.MaxArtifactBytes,
		"uid": int64(b.UID), "gid": int64(b.GID)} {
		if n < 0 {
			v.add(v.loc.keyIn("build", -1, key), "build.%s must not be negative", key)
		}
	}
	for key, n := range map[string]int64{"uid": int64(b.UID), "gid": int64(b.GID)} {
		if n > maxID {
			v.add(v.loc.keyIn("build", -1, key), "build.%s %d is beyond %d (ids from 2^31 on are negative to programs that store them signed)", key, n, maxID)
		}
	}
	if b.UIDRange.Count > 0 && (b.UID != 0 || b.GID != 0) {
		key := "uid"
		if b.UID == 0 {
			key = "gid"
		}
		v.add(v.loc.keyIn("build", -1, key), "build.uid_range and build.%s are both set; keep uid_range (each build gets a uid of its own) and remove uid/gid", key)
	} else if b.UIDRange.Count > 0 && b.UIDRange.Count < b.Concurrency {
		v.add(v.loc.keyIn("build", -1, "uid_range"), "build.uid_range %s holds %d ids, fewer than build.concurrency (%d): every running build needs one", b.UIDRange, b.UIDRange.Count, b.Concurrency)
	}
	if b.DefaultTimeout.Duration > b.MaxTimeout.Duration {
		v.add(v.loc.keyIn("build", -1, "default_timeout"), "build.default_timeout %v is longer than build.max_timeout %v", b.DefaultTimeout, b.MaxTimeout)
	}
}

func (c *Config) validateRepoBuild(v *validator, i int, r *Repo) {
	for _, k := range []struct {
		key      string
		patterns []string
	}{{"build_branches", r.BuildBranches}, {"verify_branches", r.VerifyBranches}} {
		for _, p := range k.patterns {
			if _, err := path.Match(p, "x"); err != nil || p == "" {
				v.add(v.loc.keyIn("repo", i, k.key), "repo %q: bad branch pattern %q", r.Name, p)
			}
		}
	}
	seen := map[string]bool{}
	for j, s := range r.Secrets {
		line := v.loc.keyInNth("repo.secret", j, "name", v.loc.table("repo", i))
		switch {
		case !validEnvName(s.Name):
			v.add(line, "repo %q: secret name %q is not a valid environment variable name", r.Name, s.Name)
		case seen[s.Name]:
			v.add(line, "repo %q: duplicate secret %q", r.Name, s.Name)
		case (s.File == "") == (s.Env == ""):
			v.add(line, "repo %q: secret %q needs exactly one of file or env (values are never written inline)", r.Name, s.Name)
		}
		seen[s.Name] = true
		c.validateSecretScope(v, r, s)
	}
}

// validEnvName reports whether a secret may be handed to builds as the
// variable s: a valid name that Slipway does not set itself.
func validEnvName(s string) bool {
	return validEnvVar(s) && !strings.HasPrefix(s, "SLIPWAY_") && s != "PATH" && s != "HOME" && s != "CI"
}

// Builds reports whether a pushed ref should build in this repository.
func (r *Repo) Builds(ref string) bool {
	if tag, ok := strings.CutPrefix(ref, "refs/tags/"); ok {
		return r.BuildTags && tag != ""
	}
	branch, ok := strings.CutPrefix(ref, "refs/heads/")
	if !ok {
		return false
	}
	if len(r.BuildBranches) == 0 {
		return true
	}
	for _, p := range r.BuildBranches {
		if ok, _ := path.Match(p, branch); ok {
			return true
		}
	}
	return false
}

// Verifies reports whether a push to ref must pass its build before the ref
// moves (verify_branches).
func (r *Repo) Verifies(ref string) bool {
	branch, ok := strings.CutPrefix(ref, "refs/heads/")
	if !ok {
		return false
	}
	for _, p := range r.VerifyBranches {
		if ok, _ := path.Match(p, branch); ok {
			return true
		}
	}
	return false
}

// RepoOrDefault returns the repository's configuration, or the settings an
// unlisted repository (one an admin created by pushing) builds with.
func (c *Config) RepoOrDefault(name string) *Repo {
	if r, ok := c.repos[name]; ok {
		return r
	}
	return &Repo{Name: name}
}

// EnvironmentsOf returns the environments of a repository: its own, or the
// top-level defaults when it defines none.
func (c *Config) EnvironmentsOf(repo string) []Environment {
	if r, ok := c.repos[repo]; ok && len(r.Environments) > 0 {
		return r.Environments
	}
	return c.Environments
}

// Environment returns one environment of a repository.
func (c *Config) Environment(repo, name string) (*Environment, bool) {
	envs := c.EnvironmentsOf(repo)
	for i := range envs {
		if envs[i].Name == name {
			return &envs[i], true
		}
	}
	return nil, false
}

// User returns the user called name.
func (c *Config) User(name string) (*User, bool) {
	u, ok := c.byName[name]
	return u, ok
}

// UserForKey returns the user a public key belongs to, whatever the key's
// options say; Authorize decides whether a connection may use it.
func (c *Config) UserForKey(key ssh.PublicKey) (*User, bool) {
	u, ok := c.byKey[ssh.FingerprintSHA256(key)]
	return u, ok
}

// PublicKeys returns the user's keys.
func (u *User) PublicKeys() []ssh.PublicKey {
	out := make([]ssh.PublicKey, len(u.keys))
	for i, k := range u.keys {
		out[i] = k.Key
	}
	return out
}

// AuthorizedKeys returns the user's keys with their options and sources.
func (u *User) AuthorizedKeys() []AuthorizedKey { return slices.Clone(u.keys) }

// Repo returns the configuration of the repository with the canonical name.
func (c *Config) Repo(name string) (*Repo, bool) {
	r, ok := c.repos[name]
	return r, ok
}

// Access is a set of rights on a repository.
type Access uint8

// The rights. Admin includes all others.
const (
	Read Access = 1 << iota
	Write
	Release
	Create // may create the repository by pushing to it
	Admin  = Read | Write | Release | Create
)

// Has reports whether every right in want is in a.
func (a Access) Has(want Access) bool { return a&want == want }

// Access returns what user may do with the repository of canonical name
// repo. A repository missing from the configuration is visible only to
// admins.
func (c *Config) Access(user, repo string) Access {
	u, ok := c.byName[user]
	if !ok {
		return 0
	}
	if u.Admin {
		return Admin
	}
	r, ok := c.repos[repo]
	if !ok {
		return 0
	}
	var a Access
	if listed(r.Read, user) {
		a |= Read
	}
	if listed(r.Write, user) {
		a |= Read | Write
	}
	if listed(r.Release, user) {
		a |= Read | Release
	}
	return a
}

func listed(names []string, user string) bool {
	return slices.Contains(names, user) || slices.Contains(names, "*")
}

// Paths derived from the data directory.

// ReposDir is where bare repositories live.
func (c *Config) ReposDir() string { return filepath.Join(c.DataDir, "repos") }

// DatabasePath is the SQLite database.
func (c *Config) DatabasePath() string { return filepath.Join(c.DataDir, "slipway.db") }

// HooksDir is the daemon-owned hooks directory given to git as core.hooksPath.
func (c *Config) HooksDir() string { return filepath.Join(c.DataDir, "hooks") }

// PushHooksDir is the hooks directory git is given for pushes through the
// SSH server: the receive hooks only (see hooks.WriteScripts).
func (c *Config) PushHooksDir() string { return filepath.Join(c.HooksDir(), "push") }

// HookSocket is the Unix socket on which the daemon answers its hooks.
func (c *Config) HookSocket() string { return filepath.Join(c.DataDir, "run", "hook.sock") }

// BuildURL is the dashboard's page of build id under [http] public_url,
// or "" when none is set: the link Slipway prints beside a build.
func (c *Config) BuildURL(id int64) string {
	if c.HTTP.PublicURL == "" {
		return ""
	}
	return fmt.Sprintf("%s/builds/%d", strings.TrimSuffix(c.HTTP.PublicURL, "/"), id)
}

// DeploymentURL is the dashboard's page of deployment id under [http]
// public_url, or "" when none is set.
func (c *Config) DeploymentURL(id int64) string {
	if c.HTTP.PublicURL == "" {
		return ""
	}
	return fmt.Sprintf("%s/deployments/%d", strings.TrimSuffix(c.HTTP.PublicURL, "/"), id)
}
