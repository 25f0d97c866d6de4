package configs

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

// envHead is users (lines 1-6), a repository and the head of its one
// environment, prod: its name is on line 10, the lines given follow from
// line 11 on.
func envHead(lines ...string) string {
	return users + "[[repo]]\nname = \"app\"\n  [[repo.environment]]\n  name = \"prod\"\n" + strings.Join(lines, "\n") + "\n"
}

func TestHostsDecodeAndInherit(t *testing.T) {
	src := envHead(
		`  ssh_key = "/etc/slipway/keys/app"`,        // 11
		`  known_hosts = "/etc/slipway/known_hosts"`, // 12
		`  port = 2200`,                              // 13
		`  accept_new_host_key = true`,               // 14
		`  targets = [`,                              // 15
		`    "deploy@web1:/srv/app",  # plain`,       // 16
		`    # a comment, with "quotes" and ] in it`, // 17
		`    { target = "deploy@web2:/srv/app", port = 2222, ssh_key = "/k2", known_hosts = "/kh2", accept_new_host_key = false },`, // 18
		`    'ssh://deploy@web3:2022/srv/app', "deploy@web4:/srv/{repo}"]`,                                                          // 19
		`  parallel = 2`,
		`  batch = 1`,
		`  health = "curl -fsS http://127.0.0.1:8080/health"`,
		`  health_timeout = "10s"`,
		`  health_retries = 0`,
	)
	c, err := Loader{}.Parse([]byte(src), "c.toml")
	if err != nil {
		t.Fatal(err)
	}
	e, _ := c.Environment("app", "prod")
	want := []Host{
		{Target: "deploy@web1:/srv/app", Port: 2200, SSHKey: "/etc/slipway/keys/app", KnownHosts: "/etc/slipway/known_hosts", AcceptNewHostKey: true, Line: 16},
		{Target: "deploy@web2:/srv/app", Port: 2222, SSHKey: "/k2", KnownHosts: "/kh2", AcceptNewHostKey: false, Line: 18},
		{Target: "ssh://deploy@web3:2022/srv/app", Port: 2200, SSHKey: "/etc/slipway/keys/app", KnownHosts: "/etc/slipway/known_hosts", AcceptNewHostKey: true, Line: 19},
		{Target: "deploy@web4:/srv/{repo}", Port: 2200, SSHKey: "/etc/slipway/keys/app", KnownHosts: "/etc/slipway/known_hosts", AcceptNewHostKey: true, Line: 19},
	}
	if got := e.Hosts(); !reflect.DeepEqual(got, want) {
		t.Errorf("Hosts():\n%+v\nwant\n%+v", got, want)
	}
	if e.Parallel != 2 || e.Batch != 1 || e.Health != "curl -fsS http://127.0.0.1:8080/health" ||
		e.HealthTimeout.Duration != 10*time.Second || e.HealthRetryCount() != 0 {
		t.Errorf("rollout: parallel %d, batch %d, health %q, timeout %v, retries %d", e.Parallel, e.Batch, e.Health, e.HealthTimeout, e.HealthRetryCount())
	}
	if !e.Remote() || e.Target != "" {
		t.Errorf("Remote() = %v, Target %q: want the first host's", e.Remote(), e.Target)
	}
}

func TestHostsOfOneTarget(t *testing.T) {
	src := envHead(
		`  target = "deploy@web1:/srv/app"`, // 11
		`  port = 2222`,
		`  ssh_key = "/k"`,
		`  known_hosts = "/kh"`,
		`  health = "   "`,
	)
	c, err := Loader{}.Parse([]byte(src), "c.toml")
	if err != nil {
		t.Fatal(err)
	}
	e, _ := c.Environment("app", "prod")
	want := []Host{{Target: "deploy@web1:/srv/app", Port: 2222, SSHKey: "/k", KnownHosts: "/kh", Line: 11}}
	if got := e.Hosts(); !reflect.DeepEqual(got, want) {
		t.Errorf("Hosts() = %+v, want %+v", got, want)
	}
	// The defaults are filled in by Parse; a blank health is none.
	if e.Parallel != DefaultParallel || e.Batch != 0 || e.HealthTimeout.Duration != DefaultHealthTimeout ||
		e.HealthRetryCount() != DefaultHealthRetries || e.Health != "" {
		t.Errorf("defaults: parallel %d, batch %d, timeout %v, retries %d, health %q", e.Parallel, e.Batch, e.HealthTimeout, e.HealthRetryCount(), e.Health)
	}
	if (&Environment{}).HealthRetryCount() != DefaultHealthRetries {
		t.Error("an environment not from a file has no default health_retries")
	}

	// A local folder, relative to the data dir.
	local := Environment{Target: "deploys/{repo}"}
	if local.Remote() || local.LocalPath("/data", "team/app") != "/data/deploys/team/app" {
		t.Errorf("local: Remote %v, LocalPath %q", local.Remote(), local.LocalPath("/data", "team/app"))
	}
	if (&Environment{}).Hosts() != nil {
		t.Error("an environment with no target has hosts")
	}
}

// TestHostsAsTables: targets may also be written as [[repo.environment.targets]]
// tables, each host's line its header.
func TestHostsAsTables(t *testing.T) {
	src := envHead(
		`  ssh_key = "/k"`,               // 11
		`  known_hosts = "/kh"`,          // 12
		`  [[repo.environment.targets]]`, // 13
		`  target = "deploy@web1:/srv/app"`,
		`  [[repo.environment.targets]]`, // 15
		`  target = "deploy@web2:/srv/app"`,
		`  prot = 22`, // 17
	)
	_, err := Loader{}.Parse([]byte(src), "c.toml")
	want := `c.toml:17: repo "app": environment "prod": host "deploy@web2:/srv/app": unknown key "prot" in a host of targets (did you mean "port"?)`
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want %s", err, want)
	}
	c, err := Loader{}.Parse([]byte(strings.Replace(src, "prot", "port", 1)), "c.toml")
	if err != nil {
		t.Fatal(err)
	}
	e, _ := c.Environment("app", "prod")
	if hs := e.Hosts(); len(hs) != 2 || hs[0].Line != 13 || hs[1].Line != 15 || hs[1].Port != 22 || hs[0].Port != 0 {
		t.Errorf("Hosts() = %+v", hs)
	}
}

// TestHostProblems pins every problem of hosts and rollout settings, each at
// its line.
func TestHostProblems(t *testing.T) {
	keys := "  ssh_key = \"/k\"\n  known_hosts = \"/kh\"" // lines 11 and 12
	cases := []struct {
		name string
		src  string
		want []string
	}{
		{"target and targets", envHead(keys, `  target = "deploy@web1:/srv/app"`, `  targets = ["deploy@web2:/srv/app"]`),
			[]string{`c.toml:14: repo "app": environment "prod": set target (one host) or targets (many), not both`}},
		{"targets empty", envHead(keys, `  targets = []`),
			[]string{`c.toml:13: repo "app": environment "prod": targets is empty: list at least one host`}},
		{"neither", envHead(keys),
			[]string{`c.toml:10: repo "app": environment "prod" has no target (set target, or targets for many hosts)`}},
		{"host listed twice", envHead(keys, `  targets = [`, `    "deploy@web1:/srv/app",`, `    "deploy@web2:/srv/app",`,
			`    "Deploy@WEB1:/srv/app",`, `    "ssh://deploy@web1:22/srv/app",`, `    { target = "deploy@web1:/srv/app", port = 2222 },`, `  ]`),
			[]string{
				`c.toml:16: repo "app": environment "prod": host "Deploy@WEB1:/srv/app" is listed twice (lines 14 and 16)`,
				`c.toml:17: repo "app": environment "prod": host "ssh://deploy@web1:22/srv/app" is listed twice (lines 14 and 17)`,
			}},
		{"local folder listed twice, {repo} as written", envHead(`  targets = ["/srv/{repo}", "/srv/app",`, `  "/srv//{repo}/"]`),
			[]string{`c.toml:12: repo "app": environment "prod": host "/srv//{repo}/" is listed twice (lines 11 and 12)`}},
		{"twice on one line", envHead(keys, `  targets = ["deploy@web1:/srv/app", "deploy@web1:/srv/app"]`),
			[]string{`c.toml:13: repo "app": environment "prod": host "deploy@web1:/srv/app" is listed twice`}},
		{"local and remote mixed", envHead(keys, `  targets = [`, `    "deploy@web1:/srv/app",`, `    "deploys/{repo}",`, `  ]`),
			[]string{`c.toml:13: repo "app": environment "prod": targets mixes local folders ("deploys/{repo}") and remote hosts ("deploy@web1:/srv/app"): list only one kind`}},
		{"table without target", envHead(keys, `  targets = [`, `    "deploy@web1:/srv/app",`, `    { port = 2222 },`, `  ]`),
			[]string{`c.toml:15: repo "app": environment "prod": targets: a host table needs target = "user@host:/path"`}},
		{"unknown key in a host table", envHead(keys, `  targets = [`, `    "deploy@web1:/srv/app",`, `    { target = "deploy@web2:/srv/app", prot = 22 },`, `  ]`),
			[]string{`c.toml:15: repo "app": environment "prod": host "deploy@web2:/srv/app": unknown key "prot" in a host of targets (did you mean "port"?)`}},
		{"bad ports", envHead(keys, `  port = 70000`, `  targets = [`, `    { target = "deploy@web1:/srv/app", port = 0 },`,
			`    { target = "deploy@web2:/srv/app",`, `      port = 65536 },`, `    "ssh://deploy@web3:99999/srv/app",`, `  ]`),
			[]string{
				`c.toml:13: repo "app": environment "prod": bad port 70000`,
				`c.toml:15: repo "app": environment "prod": host "deploy@web1:/srv/app": bad port 0 (use 1 to 65535)`,
				`c.toml:17: repo "app": environment "prod": host "deploy@web2:/srv/app": bad port 65536 (use 1 to 65535)`,
				`c.toml:18: repo "app": environment "prod": host "ssh://deploy@web3:99999/srv/app" must look like user@host:/path or ssh://user@host:port/path: bad port 99999 (use 1 to 65535)`,
			}},
		{"two ports for one host", envHead(keys, `  targets = [{ target = "ssh://deploy@web1:2222/srv/app", port = 2200 }]`),
			[]string{`c.toml:13: repo "app": environment "prod": host "ssh://deploy@web1:2222/srv/app" names port 2222 in its target and port = 2200: keep one`}},
		{"malformed targets", envHead(keys, `  targets = [`,
			`    "deploy@web1:srv/app",`,
			`    "deploy@:/srv/app",`,
			`    "-oProxyCommand=x@web2:/srv/app",`,
			`    "deploy@web3:/srv/my app",`,
			`    "deploy@web4:/",`,
			`    "ssh://deploy:secret@web5/srv/app",`,
			`    "deploy@web6:/srv/app/./x",`,
			`  ]`),
			[]string{
				`c.toml:14: repo "app": environment "prod": host "deploy@web1:srv/app" must look like user@host:/path or ssh://user@host:port/path: path "srv/app" is not absolute`,
				`c.toml:15: repo "app": environment "prod": host "deploy@:/srv/app" must look like user@host:/path or ssh://user@host:port/path: the host is missing`,
				`c.toml:16: repo "app": environment "prod": host "-oProxyCommand=x@web2:/srv/app" must look like user@host:/path or ssh://user@host:port/path: user "-oProxyCommand=x": only letters, digits, '.', '_' and '-' are allowed`,
				`c.toml:17: repo "app": environment "prod": host "deploy@web3:/srv/my app" must look like user@host:/path or ssh://user@host:port/path: path "/srv/my app": only letters, digits and / . _ - + @ , = are allowed on remote targets`,
				`c.toml:18: repo "app": environment "prod": host "deploy@web4:/" must look like user@host:/path or ssh://user@host:port/path: the path must not be the root folder`,
				`c.toml:19: repo "app": environment "prod": host "ssh://deploy:secret@web5/srv/app" must look like user@host:/path or ssh://user@host:port/path: passwords are not supported, use a deploy key`,
				`c.toml:20: repo "app": environment "prod": host "deploy@web6:/srv/app/./x" must look like user@host:/path or ssh://user@host:port/path: path "/srv/app/./x" is not clean (write "/srv/app/x")`,
			}},
		{"malformed single target", envHead(keys, `  target = "deploy@web1:srv/app"`),
			[]string{`c.toml:13: repo "app": environment "prod": target "deploy@web1:srv/app" must look like user@host:/path or ssh://user@host:port/path: path "srv/app" is not absolute`}},
		{"dot-dot in paths", envHead(keys, `  targets = ["deploy@web1:/srv/../etc",`, `    "deploy@web2:/srv/app"]`) +
			"  [[repo.environment]]\n  name = \"local\"\n  targets = [\"/srv/app\", \"deploys/../x\"]\n",
			[]string{
				`c.toml:13: repo "app": environment "prod": host "deploy@web1:/srv/../etc" must look like user@host:/path or ssh://user@host:port/path: path "/srv/../etc" may not contain ".."`,
				`c.toml:17: repo "app": environment "local": host "deploys/../x": a local folder may not contain ".."`,
			}},
		{"remote hosts without keys", envHead(`  known_hosts = "/kh"`, `  targets = [`, `    "deploy@web1:/srv/app",`,
			`    { target = "deploy@web2:/srv/app", ssh_key = "/k2" },`, `    "/srv/app",`, `  ]`),
			[]string{
				`c.toml:12: repo "app": environment "prod": targets mixes local folders ("/srv/app") and remote hosts ("deploy@web1:/srv/app"): list only one kind`,
				`c.toml:13: repo "app": environment "prod": host "deploy@web1:/srv/app" needs ssh_key and known_hosts files (set them on the host or the environment)`,
			}},
		{"wrong types", envHead(keys, `  targets = [`, `    { target = "deploy@web1:/srv/app", port = "22", accept_new_host_key = "yes" },`, `    42,`, `    { target = 7 },`, `  ]`),
			[]string{
				`c.toml:14: repo "app": environment "prod": host "deploy@web1:/srv/app": accept_new_host_key: expected true or false, found a string`,
				`c.toml:14: repo "app": environment "prod": host "deploy@web1:/srv/app": port: expected an integer, found a string`,
				`c.toml:15: repo "app": environment "prod": targets: a host is a target string ("user@host:/path") or a table with target, not an integer`,
				`c.toml:16: repo "app": environment "prod": targets: target: expected a string, found an integer`,
			}},
		{"negative rollout settings", envHead(keys, `  target = "deploy@web1:/srv/app"`, `  parallel = -1`, `  batch = -2`, `  health_retries = -3`),
			[]string{
				`c.toml:14: repo "app": environment "prod": parallel must not be negative`,
				`c.toml:15: repo "app": environment "prod": batch must not be negative`,
				`c.toml:16: repo "app": environment "prod": health_retries must not be negative`,
			}},
		{"negative health_timeout", envHead(keys, `  target = "deploy@web1:/srv/app"`, `  health_timeout = "-5s"`),
			[]string{`c.toml:14: repo.environment.health_timeout: duration "-5s" must be positive`}},
		{"a top-level environment's hosts", "[[environment]]\nname = \"prod\"\ntargets = [\n  \"envs/{repo}/a\",\n  \"envs/{repo}/a\",\n]\n",
			[]string{`c.toml:5: repo "(default)": environment "prod": host "envs/{repo}/a" is listed twice (lines 4 and 5)`}},
		{"the second environment's hosts", envHead(keys, `  target = "deploy@web1:/srv/app"`) +
			"  [[repo.environment]]\n  name = \"qa\"\n  ssh_key = \"/k\"\n  targets = [\"deploy@qa1:/srv/app\",\n    { target = \"deploy@qa2:/srv/app\", known_hosts = \"/kh\" }]\n",
			[]string{`c.toml:17: repo "app": environment "qa": host "deploy@qa1:/srv/app" needs ssh_key and known_hosts files (set them on the host or the environment)`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Loader{}.Parse([]byte(tc.src), "c.toml")
			wantProblems(t, err, tc.want)
		})
	}
}

// reprint prints a configuration as `ssh HOST config` does and parses it
// again.
func reprint(t *testing.T, c *Config) (*Config, string) {
	t.Helper()
	var b bytes.Buffer
	if err := toml.NewEncoder(&b).Encode(c); err != nil {
		t.Fatal(err)
	}
	again, err := Loader{}.Parse(b.Bytes(), "printed.toml")
	if err != nil {
		t.Fatalf("the printed configuration does not parse: %v\n%s", err, b.String())
	}
	return again, b.String()
}

// withoutLines is hosts with Line cleared: a printed file puts them
// elsewhere.
func withoutLines(hs []Host) []Host {
	for i := range hs {
		hs[i].Line = 0
	}
	return hs
}

func TestHostsPrintBack(t *testing.T) {
	src := users + `[[repo]]
name = "app"
  [[repo.environment]]
  name = "prod"
  ssh_key = "/k"
  known_hosts = "/kh"
  accept_new_host_key = true
  port = 2200
  targets = [
    "deploy@web1:/srv/app",
    { target = "deploy@web2:/srv/app", port = 2222, ssh_key = "/k \"2\"", known_hosts = "/kh2", accept_new_host_key = false },
    { target = "deploy@web3:/srv/app" },
  ]
  batch = 1
  health = "curl -fsS http://127.0.0.1:8080/health"
  [[repo.environment]]
  name = "staging"
  target = "ssh://deploy@stage:2022/srv/app"
  ssh_key = "/k"
  known_hosts = "/kh"
[[environment]]
name = "dev"
targets = ["envs/{repo}/a", "envs/{repo}/b"]
`
	c, err := Loader{}.Parse([]byte(src), "c.toml")
	if err != nil {
		t.Fatal(err)
	}
	again, printed := reprint(t, c)
	for _, want := range []string{
		`targets = ["deploy@web1:/srv/app", { target = "deploy@web2:/srv/app", port = 2222, ssh_key = "/k \"2\"", known_hosts = "/kh2", accept_new_host_key = false }, { target = "deploy@web3:/srv/app" }]`,
		`targets = ["envs/{repo}/a", "envs/{repo}/b"]`,
		`target = "ssh://deploy@stage:2022/srv/app"`,
		`parallel = 8`, `health_timeout = "30s"`, `health_retries = 2`,
	} {
		if !strings.Contains(printed, want) {
			t.Errorf("the printed configuration lacks %s:\n%s", want, printed)
		}
	}
	for _, name := range []string{"prod", "staging"} {
		e1, _ := c.Environment("app", name)
		e2, _ := again.Environment("app", name)
		if h1, h2 := withoutLines(e1.Hosts()), withoutLines(e2.Hosts()); !reflect.DeepEqual(h1, h2) {
			t.Errorf("%s: hosts before printing:\n%+v\nafter:\n%+v", name, h1, h2)
		}
		if e1.Parallel != e2.Parallel || e1.Batch != e2.Batch || e1.Health != e2.Health || e1.HealthTimeout != e2.HealthTimeout ||
			e1.HealthRetryCount() != e2.HealthRetryCount() {
			t.Errorf("%s: rollout settings changed in print", name)
		}
	}
	if h1, h2 := withoutLines(c.Environments[0].Hosts()), withoutLines(again.Environments[0].Hosts()); !reflect.DeepEqual(h1, h2) {
		t.Errorf("dev: hosts before printing:\n%+v\nafter:\n%+v", h1, h2)
	}
}

// TestHostMarshal: a host built in Go prints as a string when it is only a
// target, as a table otherwise, and control characters stay valid TOML.
func TestHostMarshal(t *testing.T) {
	for _, tc := range []struct {
		h    Host
		want string
	}{
		{Host{Target: "deploy@web1:/srv/app", Line: 3}, `"deploy@web1:/srv/app"`},
		{Host{Target: "deploy@web1:/srv/app", Port: 22}, `{ target = "deploy@web1:/srv/app", port = 22 }`},
		{Host{Target: "a\tb\x01\\"}, `"a\tb\u0001\\"`},
	} {
		got, err := tc.h.MarshalTOML()
		if err != nil || string(got) != tc.want {
			t.Errorf("MarshalTOML(%+v) = %s, %v; want %s", tc.h, got, err, tc.want)
		}
		var back struct{ H Host }
		if _, err := toml.Decode("H = "+string(got), &back); err != nil || back.H.Target != tc.h.Target || back.H.Port != tc.h.Port {
			t.Errorf("%s reads back as %+v, %v", got, back.H, err)
		}
	}
}

// FuzzHosts: whatever targets holds, Parse does not panic, and a
// configuration it accepts prints and parses back to the same hosts.
func FuzzHosts(f *testing.F) {
	for _, s := range []string{
		`["deploy@web1:/srv/app"]`,
		`["deploy@web1:/srv/app", { target = "deploy@web2:/srv/app", port = 2222 }]`,
		"[\n  # c ]\n  'ssh://d@h:2/srv/a',\n  \"\"\"x\"\"\",\n]",
		`[{ target = "a@b:/c", accept_new_host_key = false }, "a@b:/c"]`,
		`[1, [2], {}]`,
		`["/srv/{repo}", "deploys/{repo}"]`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, targets string) {
		src := "[[environment]]\nname = \"prod\"\nssh_key = \"/k\"\nknown_hosts = \"/kh\"\ntargets = " + targets + "\n"
		c, err := Loader{}.Parse([]byte(src), "c.toml")
		if err != nil {
			return
		}
		for _, h := range c.Environments[0].Hosts() {
			if h.Line < 5 || h.Line > strings.Count(src, "\n") {
				t.Fatalf("host %q at line %d of:\n%s", h.Target, h.Line, src)
			}
		}
		again, _ := reprint(t, c)
		if h1, h2 := withoutLines(c.Environments[0].Hosts()), withoutLines(again.Environments[0].Hosts()); !reflect.DeepEqual(h1, h2) {
			t.Fatalf("hosts before printing:\n%+v\nafter:\n%+v", h1, h2)
		}
	})
}

// TestExampleHosts: the example's prod is an environment of three hosts,
// each found on its line.
func TestExampleHosts(t *testing.T) {
	c, err := Parse(ExampleTOML(), "example.toml")
	if err != nil {
		t.Fatal(err)
	}
	e, ok := c.Environment("app", "prod")
	if !ok {
		t.Fatal("the example has no prod")
	}
	hs := e.Hosts()
	if len(hs) != 3 || hs[2].Port != 2222 || hs[0].Port != 0 || hs[1].SSHKey != e.SSHKey {
		t.Fatalf("hosts: %+v", hs)
	}
	lines := strings.Split(string(ExampleTOML()), "\n")
	for _, h := range hs {
		if h.Line == 0 || !strings.Contains(lines[h.Line-1], `"`+h.Target+`"`) {
			t.Errorf("host %q at line %d", h.Target, h.Line)
		}
	}
	if e.Batch != 1 || e.Parallel != 8 || e.Health == "" || e.HealthTimeout.Duration != 30*time.Second || e.HealthRetryCount() != 2 {
		t.Errorf("rollout: %+v", e)
	}
}
