package configs

import (
	"errors"
	"strings"
	"testing"
)

// users is two users, alice (lines 1-3) and bob (4-6), for the cases below.
const users = `[[user]]
name = "alice"
keys = ["` + keyA + `"]
[[user]]
name = "bob"
keys = ["` + keyB + `"]
`

// TestCheckMessages pins what `slipway config check` prints, line for line:
// every problem as FILE:LINE: problem, at the line it is about.
func TestCheckMessages(t *testing.T) {
	cases := []struct {
		name string
		src  string
		want []string
	}{
		{"typo at the top level", "data_dir = \"d\"\ndatadir = \"x\"\n",
			[]string{`c.toml:2: unknown key "datadir" (did you mean "data_dir"?)`}},
		{"typo in a table", "[ssh]\nlisten = \"127.0.0.1:0\"\nidel_timeout = \"1m\"\n",
			[]string{`c.toml:3: unknown key "idel_timeout" in [ssh] (did you mean "idle_timeout"?)`}},
		{"typo in an array of tables", users + "admn = true\n",
			[]string{`c.toml:7: unknown key "admn" in [[user]] (did you mean "admin"?)`}},
		{"typo in the second of two tables", users + "admn = true\n[[user]]\nname = \"carol\"\nadmn = true\n",
			[]string{
				`c.toml:7: unknown key "admn" in [[user]] (did you mean "admin"?)`,
				`c.toml:8: user "carol" has no keys`,
				`c.toml:10: unknown key "admn" in [[user]] (did you mean "admin"?)`,
			}},
		{"nested table typo", users + "[[repo]]\nname = \"app\"\n  [[repo.environment]]\n  name = \"prod\"\n  target = \"/srv\"\n  aprovers = [\"bob\"]\n",
			[]string{`c.toml:12: unknown key "aprovers" in [[repo.environment]] (did you mean "approvers"?)`}},
		{"unknown key with nothing close", "colour = \"blue\"\n",
			[]string{`c.toml:1: unknown key "colour"`}},
		{"top-level key after a table header", "[ssh]\nlisten = \"127.0.0.1:0\"\ntimezone = \"UTC\"\n",
			[]string{`c.toml:3: unknown key "timezone" in [ssh] (it is a top-level setting: write it above the first [table])`}},
		{"key of another table", "listen = \"127.0.0.1:0\"\n",
			[]string{`c.toml:1: unknown key "listen" (it belongs in [http] or [ssh])`}},
		{"misspelt table, its keys not repeated", "[sssh]\nlisten = \"x\"\nport = 1\n",
			[]string{`c.toml:1: unknown table [sssh] (did you mean [ssh]?)`}},
		{"misspelt array of tables", "[[users]]\nname = \"x\"\n",
			[]string{`c.toml:1: unknown table [[users]] (did you mean [[user]]?)`}},
		{"misspelt nested array of tables", users + "[[repo]]\nname = \"app\"\n  [[repo.enviroment]]\n  name = \"prod\"\n",
			[]string{`c.toml:9: unknown table [[repo.enviroment]] (did you mean [[repo.environment]]?)`}},

		{"unknown user, close to one", users + "[[repo]]\nname = \"app\"\nwrite = [\"alcie\"]\n",
			[]string{`c.toml:9: repo "app": write lists unknown user "alcie" (did you mean "alice"?)`}},
		{"unknown user, close to none", users + "[[repo]]\nname = \"app\"\nread = [\"zed\"]\n",
			[]string{`c.toml:9: repo "app": read lists unknown user "zed"`}},
		{"unknown user in a list over several lines", users + "[[repo]]\nname = \"app\"\nrelease = [\n  \"bob\",\n  \"aliec\",\n]\n",
			[]string{`c.toml:11: repo "app": release lists unknown user "aliec" (did you mean "alice"?)`}},
		{"unknown approver", users + "[[repo]]\nname = \"app\"\nrelease = [\"bob\"]\n  [[repo.environment]]\n  name = \"prod\"\n  target = \"/srv\"\n  approvers = [\"bbo\"]\n",
			[]string{`c.toml:13: repo "app": environment "prod": approvers lists unknown user "bbo" (did you mean "bob"?)`}},

		{"approver without the release right", users + "[[repo]]\nname = \"app\"\nrelease = [\"alice\"]\n  [[repo.environment]]\n  name = \"staging\"\n  target = \"/srv/s\"\n  [[repo.environment]]\n  name = \"prod\"\n  target = \"/srv/p\"\n  approvers = [\"alice\", \"bob\"]\n",
			[]string{`c.toml:16: environment "prod" of repo "app": approver "bob" may not release on "app" (add to release = ["alice", "bob"])`}},
		{"approver with the release right through *", users + "[[repo]]\nname = \"app\"\nrelease = [\"*\"]\n  [[repo.environment]]\n  name = \"prod\"\n  target = \"/srv/p\"\n  approvers = [\"bob\"]\n",
			nil},
		{"approver who is an admin", strings.Replace(users, "name = \"bob\"", "name = \"bob\"\nadmin = true", 1) + "[[repo]]\nname = \"app\"\n  [[repo.environment]]\n  name = \"prod\"\n  target = \"/srv/p\"\n  approvers = [\"bob\"]\n",
			nil},
		{"approver of a top-level environment", users + "[[environment]]\nname = \"prod\"\ntarget = \"envs/{repo}\"\napprovers = [\"bob\"]\n[[repo]]\nname = \"app\"\nrelease = [\"bob\"]\n[[repo]]\nname = \"web\"\n",
			[]string{`c.toml:10: environment "prod" of repo "web": approver "bob" may not release on "web" (add to release = ["bob"])`}},

		{"syntax: unclosed table header", "data_dir = \"x\"\n[ssh\nlisten = \"a\"\n",
			[]string{`c.toml:2: expected '.' or ']' to end table name, but got '\n' instead`}},
		{"syntax: missing value", "data_dir = \"x\"\n[ssh]\nlisten = \n",
			[]string{`c.toml:3: ssh.listen: expected value but found '\n' instead`}},
		{"syntax: unterminated string", "data_dir = \"x\ntimezone = \"UTC\"\n",
			[]string{`c.toml:1: data_dir: strings cannot contain newlines`}},
		{"syntax: duplicate key", "data_dir = \"x\"\ntimezone = \"UTC\"\ndata_dir = \"y\"\n",
			[]string{`c.toml:3: Key 'data_dir' has already been defined.`}},
		{"syntax: unterminated array", "[[user]]\nname = \"a\"\nkeys = [\"x\"\n\n[[repo]]\n",
			[]string{`c.toml:5: user.keys: expected a comma (',') or array terminator (']'), but got '['`}},
		{"wrong type", "[ssh]\nlisten = \"127.0.0.1:0\"\nmax_sessions = \"many\"\n",
			[]string{`c.toml:3: ssh.max_sessions: expected an integer, found a string`}},
		{"string for a list", users + "[[repo]]\nname = \"app\"\nread = \"alice\"\n",
			[]string{`c.toml:9: repo.read: expected a list, found a string`}},
		{"bad duration", "[ssh]\nidle_timeout = \"soon\"\n",
			[]string{`c.toml:2: ssh.idle_timeout: invalid duration "soon" (use a form like "90s" or "10m")`}},
		{"max_startups not start:rate:full", "[ssh]\nmax_startups = \"10:30\"\n",
			[]string{`c.toml:2: ssh.max_startups: "10:30" is not START:RATE:FULL (such as "128:30:512") or one number`}},
		{"max_startups rate over 100", "[ssh]\nmax_startups = \"10:130:100\"\n",
			[]string{`c.toml:2: ssh.max_startups: "10:130:100": the rate is a percentage from 1 to 100`}},
		{"max_startups start over full", "[ssh]\nmax_startups = \"100:30:10\"\n",
			[]string{`c.toml:2: ssh.max_startups: "100:30:10": start (100) is more than full (10)`}},
		{"max_startups zero", "[ssh]\nmax_startups = \"0\"\n",
			[]string{`c.toml:2: ssh.max_startups: "0": start and full must be at least 1`}},
		{"negative per_source_max_startups", "[ssh]\nper_source_max_startups = -1\n",
			[]string{`c.toml:2: ssh.per_source_max_startups must be positive (set it to max_startups' full for no cap per source)`}},
		{"net block size out of range", "[ssh]\nper_source_net_block_size = \"33:64\"\n",
			[]string{`c.toml:2: ssh.per_source_net_block_size: "33:64": the IPv4 prefix length must be from 1 to 32`}},
		{"net block size not numbers", "[ssh]\nper_source_net_block_size = \"/24\"\n",
			[]string{`c.toml:2: ssh.per_source_net_block_size: "/24" is not IPV4_BITS:IPV6_BITS (such as "32:64")`}},
		{"every connection limit problem at once", "[ssh]\nmax_startups = \"100:30:10\"\nper_source_max_startups = -2\nper_source_net_block_size = \"24:200\"\n",
			[]string{
				`c.toml:2: ssh.max_startups: "100:30:10": start (100) is more than full (10)`,
				`c.toml:3: ssh.per_source_max_startups must be positive (set it to max_startups' full for no cap per source)`,
				`c.toml:4: ssh.per_source_net_block_size: "24:200": the IPv6 prefix length must be from 1 to 128`,
			}},
		{"bad listen address", "[ssh]\nlisten = \"2222\"\n",
			[]string{`c.toml:2: [ssh] listen: "2222" is not HOST:PORT (such as 127.0.0.1:2222, or 127.0.0.1:0 for any free port)`}},

		{"key option refused", "[[user]]\nname = \"alice\"\nkeys = [\n  'command=\"ls\" " + keyA + "',\n  'restrict " + keyB + "',\n]\n",
			[]string{
				`c.toml:4: user "alice": key option "command=\"ls\"" is not supported (Slipway honours only from= and expiry-time=, and runs nothing but git and its own commands); remove it`,
				`c.toml:5: user "alice": key option "restrict" is not supported (Slipway honours only from= and expiry-time=, and runs nothing but git and its own commands); remove it`,
			}},
		{"key options malformed", "[[user]]\nname = \"alice\"\nkeys = ['from=\"*.example.com\" " + keyA + "']\n[[user]]\nname = \"bob\"\nkeys = ['expiry-time=\"2026-01-01\" " + keyB + "']\n",
			[]string{
				`c.toml:3: user "alice": key option from="*.example.com": "*.example.com" is not an address, CIDR block or address pattern (host names are not supported: Slipway does not resolve addresses)`,
				`c.toml:6: user "bob": key option expiry-time="2026-01-01": use YYYYMMDD or YYYYMMDDHHMM[SS], with Z at the end for UTC`,
			}},
		{"bad inline key", "[[user]]\nname = \"alice\"\nkeys = [\"ssh-ed25519 notbase64\"]\n",
			[]string{`c.toml:3: user "alice": bad public key "ssh-ed25519 notbase64" (want an authorized_keys line: [OPTIONS] TYPE BASE64 [COMMENT])`}},
		{"one key, two users", users + "[[user]]\nname = \"carol\"\nkeys = [\"" + keyA + "\"]\n",
			[]string{`c.toml:9: user "carol": key SHA256:oqM6ojUsReCkxV2gmmS3+jkITaBvIFwXfOdwbDP5a0U is already the key of user "alice" (c.toml:3)`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Loader{}.Parse([]byte(tc.src), "c.toml")
			if tc.want == nil {
				if err != nil {
					t.Fatalf("want no problems, got:\n%v", err)
				}
				return
			}
			wantProblems(t, err, tc.want)
		})
	}
}

func TestOverrides(t *testing.T) {
	src := "data_dir = \"from-file\"\n[ssh]\nlisten = \"127.0.0.1:2222\"\n" + users
	c, err := Loader{DataDir: "/srv/flag", Listen: "127.0.0.1:0"}.Parse([]byte(src), "c.toml")
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir != "/srv/flag" || c.SSH.Listen != "127.0.0.1:0" {
		t.Errorf("data_dir %q, listen %q; want the overrides", c.DataDir, c.SSH.Listen)
	}
	if c.SSH.HostKey != "/srv/flag/ssh_host_ed25519_key" {
		t.Errorf("host key %q does not follow the overridden data dir", c.SSH.HostKey)
	}
	// An explicit host_key stays where the file says.
	c, err = Loader{DataDir: "/srv/flag"}.Parse([]byte("[ssh]\nhost_key = \"/etc/k\"\n"+users), "c.toml")
	if err != nil || c.SSH.HostKey != "/etc/k" || c.SSH.Listen != DefaultListen {
		t.Fatalf("host key %q, listen %q, %v", c.SSH.HostKey, c.SSH.Listen, err)
	}
}

// wantProblems checks that err is a ValidationError whose problems, one a
// line, are want.
func wantProblems(t *testing.T, err error, want []string) {
	t.Helper()
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("want a ValidationError, got %v", err)
	}
	var got []string
	for _, p := range ve.Problems {
		got = append(got, p.String())
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
