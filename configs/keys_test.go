package configs

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"slipway/internal/testutil"
)

func newKey(t *testing.T, comment string) string {
	t.Helper()
	return testutil.NewKey(t).Line + " " + comment
}

func fingerprint(t *testing.T, line string) string {
	t.Helper()
	pk, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	return ssh.FingerprintSHA256(pk)
}

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

// The embedded default is an ordinary file: parsed as the default or as a
// copy on disk, it admits the running user with the keys of ~/.ssh/*.pub
// and $SLIPWAY_ADMIN_KEYS.
func TestDefaultAdmitsTheRunningUser(t *testing.T) {
	home := t.TempDir()
	keyC := newKey(t, "from-env")
	writeFile(t, filepath.Join(home, ".ssh", "id_ed25519.pub"), keyA+"\n")
	writeFile(t, filepath.Join(home, ".ssh", "work.pub"), "# work laptop\n\n"+keyB+"\n")
	writeFile(t, filepath.Join(home, ".ssh", "known_hosts"), "not a key\n")
	if err := os.Mkdir(filepath.Join(home, ".ssh", "folder.pub"), 0o700); err != nil {
		t.Fatal(err)
	}
	l := Loader{Home: home, Login: "Alice.Smith", Getenv: env(map[string]string{"SLIPWAY_ADMIN_KEYS": keyC + "\n" + keyA + "\n"})}

	copyPath := filepath.Join(t.TempDir(), "my.toml")
	writeFile(t, copyPath, strings.Replace(string(DefaultTOML()), "127.0.0.1:2222", "127.0.0.1:2299", 1))
	fromCopy, err := l.Load(copyPath)
	if err != nil {
		t.Fatal(err)
	}
	embedded, err := l.Parse(DefaultTOML(), "embedded default.toml")
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]*Config{"embedded": embedded, "copy": fromCopy} {
		if len(c.Users) != 1 || c.Users[0].Name != "alice.smith" || !c.Users[0].Admin {
			t.Fatalf("%s: users %+v, want the admin alice.smith", name, c.Users)
		}
		var got []string
		for _, k := range c.Users[0].AuthorizedKeys() {
			got = append(got, k.Fingerprint+" "+filepath.Base(k.Source))
		}
		// keyA is in a file and in the variable: it counts once.
		want := []string{
			fingerprint(t, keyA) + " id_ed25519.pub:1",
			fingerprint(t, keyB) + " work.pub:3",
			fingerprint(t, keyC) + " $SLIPWAY_ADMIN_KEYS:1",
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("%s: keys\n%s\nwant\n%s", name, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		for _, k := range []string{keyA, keyB, keyC} {
			pk, _, _, _, _ := ssh.ParseAuthorizedKey([]byte(k))
			if u, _, err := c.Authorize(pk, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}, time.Now()); err != nil || u.Name != "alice.smith" {
				t.Errorf("%s: Authorize(%s) = %v, %v", name, k, u, err)
			}
		}
		if c.Access("alice.smith", "any/new") != Admin {
			t.Errorf("%s: the running user is not admin", name)
		}
	}
	if fromCopy.SSH.Listen != "127.0.0.1:2299" {
		t.Errorf("the copy's port was not used: %q", fromCopy.SSH.Listen)
	}
}

func TestDefaultWithoutKeys(t *testing.T) {
	_, err := Loader{Home: t.TempDir(), Login: "me"}.Parse(DefaultTOML(), "embedded default.toml")
	want := `embedded default.toml:13: user "me" has no keys: key_files ["~/.ssh/*.pub"] found none, $SLIPWAY_ADMIN_KEYS is empty (create a key with ` + "`ssh-keygen -t ed25519`)"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
}

func TestLoginName(t *testing.T) {
	for login, want := range map[string]string{"alice": "alice", "Alice.Smith": "alice.smith", "": "admin",
		"__": "admin", "_svc-ci": "svc-ci", "DOMAIN\\bob": "domainbob"} {
		if got := loginName(login); got != want {
			t.Errorf("loginName(%q) = %q, want %q", login, got, want)
		}
	}
}

// Keys read from files and variables are checked like inline keys, and a
// bad one names its file and line.
func TestKeySourceProblems(t *testing.T) {
	dir := t.TempDir()
	keyC := newKey(t, "c")
	writeFile(t, filepath.Join(dir, "keys", "a.pub"), keyA+"\n# comment\nnot a key\n")
	writeFile(t, filepath.Join(dir, "keys", "c.pub"), `from="10.0.0.1" `+keyC+"\n")
	writeFile(t, filepath.Join(dir, "bob.pub"), keyB+"\n")
	src := `[[user]]
name = "alice"
key_files = ["` + dir + `/keys/*.pub", "` + dir + `/missing.pub", "~/x.pub", "~bob/x.pub"]
keys_env = "ALICE_KEYS"
[[user]]
name = "bob"
keys = ["` + keyB + `"]
key_files = ["` + dir + `/bob.pub"]
[[user]]
name = "carol"
keys_env = "BAD-NAME"
keys = ["` + keyC + `"]
[[user]]
name = "dave"
keys_env = "DAVE_KEYS"
`
	l := Loader{Getenv: env(map[string]string{"ALICE_KEYS": keyC + "\n" + keyB + "\n", "DAVE_KEYS": "\n"})}
	_, err := l.Parse([]byte(src), "c.toml")
	// alice comes first, so keyB is hers (from $ALICE_KEYS) when bob's
	// turn comes.
	want := []string{
		`c.toml:3: user "alice": key_files "` + dir + `/missing.pub": open ` + dir + `/missing.pub: no such file or directory`,
		`c.toml:3: user "alice": key_files "~/x.pub": the running user has no home folder for ~`,
		`c.toml:3: user "alice": key_files "~bob/x.pub": only ~/ (the running user's home) is supported`,
		dir + `/keys/a.pub:3: user "alice": bad public key "not a key" (want an authorized_keys line: [OPTIONS] TYPE BASE64 [COMMENT])`,
		`$ALICE_KEYS:1: user "alice": key ` + fingerprint(t, keyC) + ` is listed twice with different options (also at ` + dir + `/keys/c.pub:1)`,
		`c.toml:7: user "bob": key ` + fingerprint(t, keyB) + ` is already the key of user "alice" ($ALICE_KEYS:2)`,
		dir + `/bob.pub:1: user "bob": key ` + fingerprint(t, keyB) + ` is already the key of user "alice" ($ALICE_KEYS:2)`,
		`c.toml:11: user "carol": keys_env "BAD-NAME" is not an environment variable name`,
		`c.toml:12: user "carol": key ` + fingerprint(t, keyC) + ` is already the key of user "alice" (` + dir + `/keys/c.pub:1)`,
		`c.toml:13: user "dave" has no keys: $DAVE_KEYS is empty (create a key with ` + "`ssh-keygen -t ed25519`)",
	}
	wantProblems(t, err, want)
}

func TestAuthorizeKeyOptions(t *testing.T) {
	keyC := newKey(t, "c")
	cases := []struct {
		options string
		remote  string
		now     time.Time
		want    error
	}{
		{``, "127.0.0.1", time.Now(), nil},
		{`from="127.0.0.1"`, "127.0.0.1", time.Now(), nil},
		{`from="127.0.0.2"`, "127.0.0.1", time.Now(), ErrKeyFrom},
		{`from="127.0.0.2,127.0.0.1"`, "127.0.0.1", time.Now(), nil},
		{`from="10.0.0.0/8"`, "10.200.3.4", time.Now(), nil},
		{`from="10.0.0.0/8"`, "11.0.0.1", time.Now(), ErrKeyFrom},
		{`from="10.0.0.0/8,!10.0.0.9"`, "10.0.0.9", time.Now(), ErrKeyFrom},
		{`from="!10.0.0.9,10.0.0.0/8"`, "10.0.0.8", time.Now(), nil},
		{`from="192.168.1.*"`, "192.168.1.77", time.Now(), nil},
		{`from="192.168.1.?"`, "192.168.1.77", time.Now(), ErrKeyFrom},
		{`from="*"`, "203.0.113.5", time.Now(), nil},
		{`from="::1"`, "::1", time.Now(), nil},
		{`from="127.0.0.1"`, "::ffff:127.0.0.1", time.Now(), nil},
		{`from="2001:db8::/32"`, "2001:db8::5", time.Now(), nil},
		{`from="2001:db8::/32"`, "127.0.0.1", time.Now(), ErrKeyFrom},
		{`expiry-time="20300101Z"`, "127.0.0.1", time.Date(2029, 12, 31, 23, 59, 0, 0, time.UTC), nil},
		{`expiry-time="20300101Z"`, "127.0.0.1", time.Date(2030, 1, 1, 0, 0, 1, 0, time.UTC), ErrKeyExpired},
		{`expiry-time="203001011230Z"`, "127.0.0.1", time.Date(2030, 1, 1, 12, 29, 0, 0, time.UTC), nil},
		{`expiry-time="20300101123000Z"`, "127.0.0.1", time.Date(2030, 1, 1, 12, 31, 0, 0, time.UTC), ErrKeyExpired},
		{`EXPIRY-TIME="20000101",from="127.0.0.1"`, "127.0.0.1", time.Now(), ErrKeyExpired},
	}
	for _, tc := range cases {
		src := "[[user]]\nname = \"alice\"\nkeys = ['" + strings.TrimSpace(tc.options+" "+keyC) + "']\n"
		c, err := Loader{}.Parse([]byte(src), "c.toml")
		if err != nil {
			t.Fatalf("%s: %v", tc.options, err)
		}
		pk, _, _, _, _ := ssh.ParseAuthorizedKey([]byte(keyC))
		remote := &net.TCPAddr{IP: net.ParseIP(tc.remote), Port: 40000}
		u, _, err := c.Authorize(pk, remote, tc.now)
		if !errors.Is(err, tc.want) || (err == nil) != (tc.want == nil) {
			t.Errorf("%s from %s at %v: %v, want %v", tc.options, tc.remote, tc.now, err, tc.want)
		}
		if err == nil && u.Name != "alice" {
			t.Errorf("%s: user %v", tc.options, u)
		}
	}
	// A key nobody has is unknown, whatever the address.
	c, _ := Loader{}.Parse([]byte(users), "c.toml")
	pk, _, _, _, _ := ssh.ParseAuthorizedKey([]byte(keyC))
	if _, _, err := c.Authorize(pk, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}, time.Now()); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("unknown key: %v", err)
	}
}

func FuzzFromPatterns(f *testing.F) {
	for _, s := range []string{"127.0.0.1", "10.0.0.0/8,!10.0.0.9", "192.168.*.?", "*", "::1", "!", ",", "1.2.3.4/33", "a*"} {
		f.Add(s, "127.0.0.1")
	}
	f.Fuzz(func(t *testing.T, list, addr string) {
		pats, err := parseFrom(list)
		if err != nil {
			return
		}
		a, err := net.ResolveIPAddr("ip", addr)
		if err != nil || strings.ContainsAny(addr, "%") {
			return
		}
		ip, _ := remoteAddr(&net.TCPAddr{IP: a.IP})
		matchFrom(pats, ip)
	})
}
