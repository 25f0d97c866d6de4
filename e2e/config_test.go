package e2e

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"slipway/internal/testutil"
	"strings"
	"testing"
)

// ctServe runs `slipway serve args...` in dir with env, waits for its banner
// and returns it with the address it reports. The daemon is stopped with
// SIGINT at the end of the test, which fails if it does not exit cleanly.
func ctServe(t *testing.T, dir string, env []string, args ...string) (banner, addr string) {
	t.Helper()
	if !slices.Contains(args, "--http") {
		// The embedded default serves the web side on 8080; tests run
		// side by side.
		args = append(args, "--http", "127.0.0.1:0")
	}
	cmd := exec.Command(slipwayBin, append([]string{"serve"}, args...)...)
	cmd.Dir = dir
	cmd.Env = env
	d := startServe(t, cmd, func(stdout string) bool { return strings.Contains(stdout, "Commands:") })
	return d.stdout.String(), d.addr
}

// ctHome is a home folder with u's public key in ~/.ssh, as a newcomer has.
func ctHome(t *testing.T, u *user) string {
	t.Helper()
	home := t.TempDir()
	if err := os.MkdirAll(filepath.Join(home, ".ssh"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, ".ssh", "id_ed25519.pub"), []byte(u.pub+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return home
}

func ctEnv(home string, extra ...string) []string {
	return append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + home}, extra...)
}

// ctWhoami runs `ssh ... whoami` as u against addr, from the local address
// bind (any when empty), and returns stdout, stderr and the exit code.
func ctWhoami(t *testing.T, u *user, addr, bind string) (string, string, int) {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	args := append(u.sshArgs(), "-p", port)
	if bind != "" {
		args = append(args, "-b", bind)
	}
	cmd := exec.Command("ssh", append(args, "git@"+host, "whoami")...)
	cmd.Env = u.env()
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("ssh: %v", err)
	}
	return stdout.String(), stderr.String(), code
}

// TestDefaultConfigIsAnOrdinaryFile copies the embedded default, changes only
// its port, and serves on the copy: the person running it is admitted as
// admin with their ~/.ssh key exactly as with no config at all, and the
// banner says so.
func TestDefaultConfigIsAnOrdinaryFile(t *testing.T) {
	t.Parallel()
	alice := newUser(t, "alice")
	home := ctHome(t, alice)
	work := t.TempDir()
	out, err := exec.Command(slipwayBin, "config", "default").Output()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), `key_files = ["~/.ssh/*.pub"]`) || !strings.Contains(string(out), `keys_env = "SLIPWAY_ADMIN_KEYS"`) {
		t.Fatalf("slipway config default does not spell out its admin's keys:\n%s", out)
	}
	copied := strings.Replace(string(out), `listen = "127.0.0.1:2222"`, `listen = "127.0.0.1:0"`, 1)
	if copied == string(out) {
		t.Fatalf("no listen line to change in the default:\n%s", out)
	}
	if err := os.WriteFile(filepath.Join(work, "my.toml"), []byte(copied), 0o600); err != nil {
		t.Fatal(err)
	}
	fromCopy, addrCopy := ctServe(t, work, ctEnv(home), "--config", "my.toml")
	// No config at all, on another port and data dir, for comparison.
	fromDefault, addrDefault := ctServe(t, t.TempDir(), ctEnv(home), "--listen", "127.0.0.1:0")

	admitted := regexp.MustCompile(`(?m)^Admitted as admin:\n  (SHA256:\S+)  (\S+)  \((\S+)\)$`)
	var lines []string
	for _, b := range []string{fromCopy, fromDefault} {
		m := admitted.FindStringSubmatch(b)
		if m == nil {
			t.Fatalf("banner lacks the admitted admin key:\n%s", b)
		}
		if m[1] != alice.fingerprint(t) || m[3] != filepath.Join(home, ".ssh", "id_ed25519.pub")+":1" {
			t.Errorf("banner admits %s from %s; want %s from ~/.ssh/id_ed25519.pub:1", m[1], m[3], alice.fingerprint(t))
		}
		lines = append(lines, m[0])
	}
	if lines[0] != lines[1] {
		t.Errorf("the copy admits\n%s\nbut the default admits\n%s", lines[0], lines[1])
	}
	for _, addr := range []string{addrCopy, addrDefault} {
		stdout, stderr, code := ctWhoami(t, alice, addr, "")
		if code != 0 || !strings.Contains(stdout, "admin") {
			t.Errorf("whoami on %s: exit %d, %q %q", addr, code, stdout, stderr)
		}
	}
	if _, err := os.Stat(filepath.Join(work, "slipway-data", "slipway.db")); err != nil {
		t.Errorf("the copy's data dir is not ./slipway-data: %v", err)
	}
}

// TestServeFlags overrides the file's [ssh] listen and data_dir, with and
// without --config; port 0 is reported as the port bound everywhere the
// banner shows it.
func TestServeFlags(t *testing.T) {
	t.Parallel()
	alice := newUser(t, "alice")
	root := t.TempDir()
	fileData, flagData := filepath.Join(root, "file-data"), filepath.Join(root, "flag-data")
	// 192.0.2.1 is a documentation address no host has: serving on the
	// file's address would fail.
	cfg := filepath.Join(root, "slipway.toml")
	os.WriteFile(cfg, []byte(configFor("", []*user{alice})), 0o600)
	text, _ := os.ReadFile(cfg)
	text = []byte(strings.NewReplacer(`"%DATA%"`, `"`+fileData+`"`, `"127.0.0.1:0"`, `"192.0.2.1:22"`).Replace(string(text)))
	os.WriteFile(cfg, text, 0o600)

	banner, addr := ctServe(t, root, ctEnv(root), "--config", cfg, "--listen", "127.0.0.1:0", "--data", flagData)
	host, port, _ := net.SplitHostPort(addr)
	if host != "127.0.0.1" || port == "0" || port == "" {
		t.Fatalf("listening on %q; want 127.0.0.1 and the port bound", addr)
	}
	for _, want := range []string{"Data: " + flagData + "\n", "git remote add slipway ssh://127.0.0.1:" + port + "/myproject.git",
		"Commands: ssh -p " + port + " 127.0.0.1 help"} {
		if !strings.Contains(banner, want) {
			t.Errorf("banner lacks %q:\n%s", want, banner)
		}
	}
	if stdout, stderr, code := ctWhoami(t, alice, addr, ""); code != 0 || !strings.HasPrefix(stdout, "alice") {
		t.Errorf("whoami: exit %d, %q %q", code, stdout, stderr)
	}
	if _, err := os.Stat(filepath.Join(flagData, "slipway.db")); err != nil {
		t.Errorf("no database in the --data folder: %v", err)
	}
	if _, err := os.Stat(filepath.Join(flagData, "ssh_host_ed25519_key")); err != nil {
		t.Errorf("the host key did not follow --data: %v", err)
	}
	if _, err := os.Stat(fileData); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the file's data_dir was used despite --data: %v", err)
	}

	// Without --config: the embedded default, moved by the same flags.
	home := ctHome(t, alice)
	otherData := filepath.Join(t.TempDir(), "d")
	banner, addr = ctServe(t, t.TempDir(), ctEnv(home), "--listen", "127.0.0.1:0", "--data", otherData)
	if _, port, _ := net.SplitHostPort(addr); port == "0" || !strings.Contains(banner, "Data: "+otherData+"\n") {
		t.Errorf("embedded default with flags: address %q, banner:\n%s", addr, banner)
	}
	if stdout, _, code := ctWhoami(t, alice, addr, ""); code != 0 || !strings.Contains(stdout, "admin") {
		t.Errorf("whoami on the embedded default: exit %d, %q", code, stdout)
	}

	// A bad --listen is refused before anything starts.
	out, err := exec.Command(slipwayBin, "serve", "--listen", "2222").CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 ||
		!strings.Contains(string(out), `slipway: --listen "2222" is not HOST:PORT (such as 127.0.0.1:2222, or 127.0.0.1:0 for any free port)`) {
		t.Errorf("serve --listen 2222: %v\n%s", err, out)
	}
}

// TestServePortInUse holds a port and starts serve on it, by flag and by
// the config file: the error names the way out, and nothing is created.
func TestServePortInUse(t *testing.T) {
	t.Parallel()
	alice := newUser(t, "alice")
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	addr := taken.Addr().String()
	root := t.TempDir()
	data := filepath.Join(root, "data")
	cfg := filepath.Join(root, "slipway.toml")
	text := strings.NewReplacer("%DATA%", data, "127.0.0.1:0", addr).Replace(configFor("", []*user{alice}))
	os.WriteFile(cfg, []byte(text), 0o600)
	home := ctHome(t, alice)

	inFile := "slipway: listen on " + addr + ": address already in use; choose another with --listen 127.0.0.1:PORT (or [ssh] listen in the config)\n"
	noFile := "slipway: listen on " + addr + ": address already in use; choose another with --listen 127.0.0.1:PORT (or [ssh] listen in a config file: slipway config default > slipway.toml)\n"
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"config file", []string{"--config", cfg}, inFile},
		{"flag", []string{"--config", cfg, "--listen", addr}, inFile},
		{"embedded default", []string{"--listen", addr, "--http", "127.0.0.1:0", "--data", data}, noFile},
	} {
		cmd := exec.Command(slipwayBin, append([]string{"serve"}, tc.args...)...)
		cmd.Dir = root
		cmd.Env = ctEnv(home)
		var stdout, stderr testutil.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 || stderr.String() != tc.want || stdout.String() != "" {
			t.Errorf("%s: %v\nstdout %q\nstderr %q\nwant   %q", tc.name, err, stdout.String(), stderr.String(), tc.want)
		}
		if _, err := os.Stat(data); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: serve created its data dir although it could not listen: %v", tc.name, err)
		}
	}
}

// TestKeyOptionsOverSSH: from= and expiry-time= in the config hold for real
// ssh clients, and config check refuses the options Slipway does not honour.
func TestKeyOptionsOverSSH(t *testing.T) {
	t.Parallel()
	alice, bob, carol := newUser(t, "alice"), newUser(t, "bob"), newUser(t, "carol")
	config := "data_dir = \"%DATA%\"\n[ssh]\nlisten = \"127.0.0.1:0\"\n" +
		"[[user]]\nname = \"alice\"\nkeys = ['from=\"127.0.0.1\" " + alice.pub + "']\n" +
		"[[user]]\nname = \"bob\"\nkeys = ['from=\"127.0.0.2\" " + bob.pub + "']\n" +
		"[[user]]\nname = \"carol\"\nkeys = ['expiry-time=\"20000101\" " + carol.pub + "']\n"
	d := startDaemon(t, config)
	for _, tc := range []struct {
		u          *user
		bind, want string
	}{
		{alice, "127.0.0.1", "alice"},
		{bob, "127.0.0.1", ""},
		{bob, "127.0.0.2", "bob"},
		{carol, "127.0.0.1", ""},
	} {
		stdout, stderr, code := ctWhoami(t, tc.u, d.addr, tc.bind)
		if tc.want == "" {
			if code != 255 || !strings.Contains(stderr, "Permission denied (publickey)") {
				t.Errorf("%s from %s: exit %d, %q %q; want Permission denied", tc.u.name, tc.bind, code, stdout, stderr)
			}
		} else if code != 0 || !strings.HasPrefix(stdout, tc.want) {
			t.Errorf("%s from %s: exit %d, %q %q", tc.u.name, tc.bind, code, stdout, stderr)
		}
	}

	bad := filepath.Join(t.TempDir(), "bad.toml")
	os.WriteFile(bad, []byte("[[user]]\nname = \"alice\"\nkeys = [\n  'restrict,command=\"git-shell\" "+alice.pub+"',\n]\n"), 0o600)
	out, err := exec.Command(slipwayBin, "config", "check", bad).CombinedOutput()
	want := bad + `:4: user "alice": key option "restrict" is not supported (Slipway honours only from= and expiry-time=, and runs nothing but git and its own commands); remove it` + "\n" +
		"slipway: 1 problem in the configuration\n"
	if err == nil || string(out) != want {
		t.Errorf("config check of a key with restrict: %v\n%s\nwant\n%s", err, out, want)
	}
}

// TestConfigCheckReport is what a person sees from config check: each
// problem as FILE:LINE: problem, at its line, then how many.
func TestConfigCheckReport(t *testing.T) {
	t.Parallel()
	alice, bob := newUser(t, "alice"), newUser(t, "bob")
	dir := t.TempDir()
	f := filepath.Join(dir, "slipway.toml")
	os.WriteFile(f, []byte(`data_dir = "d"
[ssh]
listen = "127.0.0.1:0"
idle_timout = "1m"

[[user]]
name = "alice"
keys = ["`+alice.pub+`"]

[[user]]
name = "bob"
keys = ["`+bob.pub+`"]

[[repo]]
name = "app"
write = ["alcie"]
release = ["alice"]
  [[repo.environment]]
  name = "prod"
  target = "/srv/app"
  approvers = ["bob"]
`), 0o600)
	out, err := exec.Command(slipwayBin, "config", "check", f).CombinedOutput()
	want := f + `:4: unknown key "idle_timout" in [ssh] (did you mean "idle_timeout"?)
` + f + `:16: repo "app": write lists unknown user "alcie" (did you mean "alice"?)
` + f + `:21: environment "prod" of repo "app": approver "bob" may not release on "app" (add to release = ["alice", "bob"])
slipway: 3 problems in the configuration
`
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || string(out) != want {
		t.Errorf("config check: %v\n%s\nwant\n%s", err, out, want)
	}

	// A syntax error is reported on its own line, not the next.
	os.WriteFile(f, []byte("data_dir = \"d\"\n[ssh\nlisten = \"127.0.0.1:0\"\n"), 0o600)
	out, _ = exec.Command(slipwayBin, "config", "check", f).CombinedOutput()
	if want := f + ":2: expected '.' or ']' to end table name, but got '\\n' instead\n"; !strings.HasPrefix(string(out), want) {
		t.Errorf("config check of a syntax error:\n%s\nwant\n%s", out, want)
	}
}

// TestQuickStartRefusesABadKeyFile: a line in ~/.ssh/*.pub that is not a
// key stops the quick start with its file and line, before anything is
// created, as a bad key in a config file does.
func TestQuickStartRefusesABadKeyFile(t *testing.T) {
	t.Parallel()
	alice := newUser(t, "alice")
	home := ctHome(t, alice)
	notes := filepath.Join(home, ".ssh", "notes.pub")
	os.WriteFile(notes, []byte("# my notes\nnot a key\n"), 0o644)
	work := t.TempDir()
	cmd := exec.Command(slipwayBin, "serve")
	cmd.Dir = work
	cmd.Env = ctEnv(home)
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), notes+`:2: user "`) ||
		!strings.Contains(string(out), `": bad public key "not a key" (want an authorized_keys line: [OPTIONS] TYPE BASE64 [COMMENT])`) {
		t.Fatalf("serve with a bad ~/.ssh/notes.pub: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(work, "slipway-data")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("serve created its data dir despite the bad key file: %v", err)
	}
}
