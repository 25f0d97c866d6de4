package e2e

// End-to-end tests of the configuration as a repository (issue 13,
// config_repo = true) against the real binary, git and ssh: admins push
// the configuration to slipway-config; pushes that would break the daemon
// or lock admins out are refused with their reasons, accepted ones are in
// force when the push returns, and the file on disk stays the source.

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// crConfig is a configuration with config_repo on: alice is the admin,
// others are ordinary users.
func crConfig(admins []*user, others ...*user) string {
	return "config_repo = true\n" + configFor("", admins, others...)
}

// crClone clones slipway-config as u into a fresh folder.
func crClone(t *testing.T, d *daemon, u *user) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "slipway-config")
	u.mustGit(t, "", "clone", "-q", d.url("slipway-config"), dir)
	return dir
}

// crPush writes text as slipway.toml in work, commits it and pushes main;
// it returns git's output and whether the push succeeded.
func crPush(t *testing.T, u *user, work, text string) (string, bool) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(work, "slipway.toml"), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	u.mustGit(t, work, "commit", "-q", "-am", "change the configuration")
	out, err := u.git(work, "push", "origin", "main")
	return out, err == nil
}

var crGeneration = regexp.MustCompile(`^# configuration (\d+), in force since \S+ \((.*)\)\n`)

// crInForce is the generation and reason of `ssh config`, and its text.
func crInForce(t *testing.T, d *daemon, u *user) (int, string, string) {
	t.Helper()
	out, errOut, code := d.ssh(u, "config")
	m := crGeneration.FindStringSubmatch(out)
	if code != 0 || m == nil {
		t.Fatalf("ssh config: exit %d, %q %q", code, out, errOut)
	}
	var gen int
	fmt.Sscan(m[1], &gen)
	return gen, m[2], out
}

// crMain is slipway-config's main as git on the server's disk has it: its
// commit, author, subject and slipway.toml.
func crMain(t *testing.T, d *daemon) (commit, author, subject, file string) {
	t.Helper()
	gitDir := filepath.Join(d.dataDir(), "repos", "slipway-config.git")
	show := run(t, "", nil, "git", "--git-dir", gitDir, "show", "-s", "--format=%H%n%an <%ae>%n%s", "refs/heads/main")
	lines := strings.SplitN(strings.TrimSpace(show), "\n", 3)
	file = run(t, "", nil, "git", "--git-dir", gitDir, "show", "refs/heads/main:slipway.toml")
	return lines[0], lines[1], lines[2], file
}

// TestConfigRepo goes through the life of slipway-config: made and filled
// with the file at start, listed for admins only; pushes that break the
// configuration (a syntax error, an unknown user), remove the file or main,
// or lock admins out refused with their lines while nothing changes; a push
// that adds a user in force by the time it returns; a restart on the file
// the push wrote; a hand edit reloaded by SIGHUP committed to main.
func TestConfigRepo(t *testing.T) {
	t.Parallel()
	alice, bob, carol := newUser(t, "alice"), newUser(t, "bob"), newUser(t, "carol")
	d := btStartDaemon(t, crConfig([]*user{alice}, bob))
	host, _ := os.Hostname()

	// At start: the file on disk is main's, committed by Slipway.
	disk, _ := os.ReadFile(d.config)
	startCommit, author, subject, file := crMain(t, d)
	if author != "Slipway <slipway@"+host+">" || subject != "configuration on disk at start" || file != string(disk) {
		t.Fatalf("slipway-config's main at start: %s, %q, file equal to the disk's: %v", author, subject, file == string(disk))
	}
	out, _, _ := d.ssh(alice, "repos")
	if !regexp.MustCompile(`(?m)^slipway-config +read,write`).MatchString(out) {
		t.Errorf("alice's repos does not list slipway-config as configured:\n%s", out)
	}
	if out, _, _ := d.ssh(bob, "repos"); strings.Contains(out, "slipway-config") {
		t.Errorf("bob, no admin, sees slipway-config:\n%s", out)
	}
	if out, err := bob.git("", "clone", d.url("slipway-config"), filepath.Join(t.TempDir(), "c")); err == nil ||
		!strings.Contains(out, `repository "slipway-config" not found`) {
		t.Errorf("bob cloned slipway-config (err %v):\n%s", err, out)
	}

	work := crClone(t, d, alice)
	base := string(disk)
	n := strings.Count(base, "\n") // lines appended start at n+1
	refused := func(name, text string, want ...string) {
		t.Helper()
		out, ok := crPush(t, alice, work, text)
		if ok {
			t.Fatalf("%s: pushed:\n%s", name, out)
		}
		for _, w := range append(want, "remote: slipway: push refused; no ref was updated and the configuration in force is unchanged",
			"[remote rejected] main -> main (pre-receive hook declined)") {
			if !strings.Contains(out, w) {
				t.Errorf("%s: the pusher was not told %q:\n%s", name, w, out)
			}
		}
		alice.mustGit(t, work, "reset", "-q", "--hard", "origin/main")
		if c, _, _, _ := crMain(t, d); c != startCommit {
			t.Errorf("%s: main moved to %s", name, c)
		}
		if now, _ := os.ReadFile(d.config); string(now) != base {
			t.Errorf("%s: the file on disk changed:\n%s", name, now)
		}
		if gen, reason, _ := crInForce(t, d, alice); gen != 1 || reason != "start" {
			t.Errorf("%s: ssh config shows configuration %d (%s); want 1 (start)", name, gen, reason)
		}
	}
	refused("syntax error", base+"[[repo]\nname = \"app\"\n",
		fmt.Sprintf("remote: slipway.toml:%d: ", n+1), "remote: main: slipway.toml at ")
	refused("unknown user", base+"[[repo]]\nname = \"app\"\nwrite = [\"zed\"]\n",
		fmt.Sprintf(`remote: slipway.toml:%d: repo "app": write lists unknown user "zed"`, n+3), "has 1 problem")
	refused("every admin removed", strings.Replace(base, "admin = true", "admin = false", 1),
		"remote: main: this push would lock every admin out")
	refused("alice's own admin taken", strings.Replace(crConfig([]*user{bob}, alice), "%DATA%", d.dataDir(), 1),
		"remote: main: this push would take away your own admin access: your key "+alice.fingerprint(t)+" is no admin's; have another admin push it")

	alice.mustGit(t, work, "rm", "-q", "slipway.toml")
	alice.mustGit(t, work, "commit", "-q", "-m", "remove it")
	if out, err := alice.git(work, "push", "origin", "main"); err == nil || !strings.Contains(out, "slipway.toml is missing at ") ||
		!strings.Contains(out, "this push would remove the configuration") {
		t.Errorf("a push deleting slipway.toml (err %v):\n%s", err, out)
	}
	alice.mustGit(t, work, "reset", "-q", "--hard", "origin/main")
	if out, err := alice.git(work, "push", "origin", ":main"); err == nil || !strings.Contains(out, "remote: main: deleting main would remove the configuration") {
		t.Errorf("a push deleting main (err %v):\n%s", err, out)
	}
	if c, _, _, _ := crMain(t, d); c != startCommit {
		t.Fatalf("main moved to %s after refused pushes", c)
	}

	// A review branch may hold anything and puts nothing in force.
	alice.mustGit(t, work, "checkout", "-q", "-b", "review")
	if err := os.WriteFile(filepath.Join(work, "slipway.toml"), []byte("broken ["), 0o644); err != nil {
		t.Fatal(err)
	}
	alice.mustGit(t, work, "commit", "-q", "-am", "try something")
	if out := alice.mustGit(t, work, "push", "origin", "review"); !strings.Contains(out, "remote: slipway: review is not main: nothing was put in force") {
		t.Errorf("a review branch push was not told it applies nothing:\n%s", out)
	}
	alice.mustGit(t, work, "checkout", "-q", "main")
	if gen, _, _ := crInForce(t, d, alice); gen != 1 {
		t.Errorf("a review branch push put configuration %d in force", gen)
	}

	// A valid push adding carol with a repository of her own, and a
	// pipeline file that would build anywhere else: in force when the
	// push returns, nothing built.
	added := base + fmt.Sprintf("[[user]]\nname = \"carol\"\nkeys = [%q]\n\n[[repo]]\nname = \"team\"\nwrite = [\"carol\"]\n", carol.pub)
	if err := os.WriteFile(filepath.Join(work, ".slipway.toml"), []byte(btPipeline("", "true")), 0o644); err != nil {
		t.Fatal(err)
	}
	alice.mustGit(t, work, "add", ".slipway.toml")
	began := time.Now()
	out, ok := crPush(t, alice, work, added)
	pushed := time.Since(began)
	if !ok {
		t.Fatalf("a valid push was refused:\n%s", out)
	}
	commit := alice.head(t, work)
	m := regexp.MustCompile(`remote: slipway: configuration 2 in force \(push to slipway-config by alice \(commit ` + commit[:7] + `\), from \S+, in (\S+)\)`).FindStringSubmatch(out)
	if m == nil || !strings.Contains(out, "remote:   users +carol; repos +team") {
		t.Fatalf("the pusher was not shown the reload's result:\n%s", out)
	}
	took, err := time.ParseDuration(m[1])
	if err != nil || took > time.Second {
		t.Errorf("the reload took %s (%v); want it within 1 s", m[1], err)
	}
	// No waiting: carol is admitted the moment the push returns.
	if who, errOut, code := d.ssh(carol, "whoami"); code != 0 || !strings.HasPrefix(who, "carol") {
		t.Fatalf("carol right after the push: exit %d, %q %q", code, who, errOut)
	}
	admitted := time.Since(began)
	t.Logf("push of slipway-config returned in %v with the configuration in force (reload %v); carol's whoami succeeded %v after the push began", pushed, took, admitted)
	team := carol.newProject(t, map[string]string{"README": "team\n"})
	carol.mustGit(t, team, "push", "-q", d.url("team"), "main")
	gen, reason, text := crInForce(t, d, alice)
	if gen != 2 || reason != "push to slipway-config by alice (commit "+commit[:7]+")" || !strings.Contains(text, `name = "carol"`) {
		t.Errorf("ssh config after the push: configuration %d (%s), carol in it: %v", gen, reason, strings.Contains(text, `name = "carol"`))
	}
	if now, _ := os.ReadFile(d.config); string(now) != added {
		t.Errorf("the file on disk does not hold the push:\n%s", now)
	}
	if fi, err := os.Stat(d.config); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the file's mode after the push: %v, %v; want 0600 as it was", fi.Mode(), err)
	}
	if c, _, _, _ := crMain(t, d); c != commit {
		t.Errorf("main is %s, want the pushed %s (and no commit of Slipway's on top)", c, commit)
	}
	bout, _, _ := d.ssh(alice, "builds", "slipway-config", "--json")
	var builds []json.RawMessage
	if err := json.Unmarshal([]byte(bout), &builds); err != nil || len(builds) != 0 {
		t.Errorf("slipway-config was built: %s (%v)", bout, err)
	}

	// A restart starts from the file the push wrote.
	d.stop()
	d.start()
	if gen, reason, text := crInForce(t, d, alice); gen != 1 || reason != "start" || !strings.Contains(text, `name = "carol"`) {
		t.Errorf("after the restart: configuration %d (%s), carol in it: %v", gen, reason, strings.Contains(text, `name = "carol"`))
	}
	if who, _, code := d.ssh(carol, "whoami"); code != 0 || !strings.HasPrefix(who, "carol") {
		t.Errorf("carol after the restart: exit %d, %q", code, who)
	}
	if c, _, _, _ := crMain(t, d); c != commit {
		t.Errorf("the restart committed %s over main %s, which held the file already", c, commit)
	}

	// The file edited by hand and reloaded by SIGHUP: a commit on main.
	edited := added + "\n[[repo]]\nname = \"web\"\n"
	if err := os.WriteFile(d.config, []byte(edited), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := d.proc.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	// The reload puts the file in force, then commits it.
	d.eventually(t, 30*time.Second, "the SIGHUP reload's commit", func() bool {
		c, _, _, _ := crMain(t, d)
		return c != commit
	})
	if gen, reason, _ := crInForce(t, d, alice); gen != 2 || reason != "SIGHUP" {
		t.Errorf("after the SIGHUP: configuration %d (%s); want 2 (SIGHUP)", gen, reason)
	}
	hup, author, subject, file := crMain(t, d)
	if file != edited || author != "Slipway <slipway@"+host+">" || subject != "configuration reloaded by SIGHUP" {
		t.Errorf("main after the SIGHUP: %s by %s, %q, file equal to the disk's: %v\n%s", hup, author, subject, file == edited, d.logs)
	}
	gitDir := filepath.Join(d.dataDir(), "repos", "slipway-config.git")
	if parent := strings.TrimSpace(run(t, "", nil, "git", "--git-dir", gitDir, "rev-parse", hup+"^")); parent != commit {
		t.Errorf("the SIGHUP commit's parent is %s, want the pushed %s", parent, commit)
	}
	// The admin's clone gets it as an ordinary fetch.
	alice.mustGit(t, work, "pull", "-q", "--ff-only", d.url("slipway-config"), "main")
	if got, _ := os.ReadFile(filepath.Join(work, "slipway.toml")); string(got) != edited {
		t.Errorf("alice's pull does not bring the hand edit:\n%s", got)
	}
}

// config_repo with a file the daemon cannot write refuses to start, with
// the reason, before it makes anything.
func TestConfigRepoNeedsAWritableFile(t *testing.T) {
	t.Parallel()
	alice := newUser(t, "alice")
	dir := t.TempDir()
	// Root's file (or, not as root, a read-only one) for a daemon run as
	// an ordinary account.
	acct := ordinaryAccount(t)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for up := filepath.Dir(dir); strings.HasPrefix(up, os.TempDir()+string(filepath.Separator)); up = filepath.Dir(up) {
		if err := os.Chmod(up, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	data := filepath.Join(dir, "data")
	cfg := filepath.Join(dir, "slipway.toml")
	if err := os.WriteFile(cfg, []byte(strings.Replace(crConfig([]*user{alice}), "%DATA%", data, 1)), 0o444); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(slipwayBin, "serve", "--config", cfg)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, noExitSleep}
	if os.Geteuid() == 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(acct.uid), Gid: uint32(acct.gid), Groups: []uint32{}}}
	}
	out, err := cmd.CombinedOutput()
	want := "slipway: config_repo = true: the daemon must be able to write " + cfg + ", where it puts each accepted push of slipway-config, and it cannot: "
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), want) {
		t.Errorf("serve with a file it cannot write: %v\n%s\nwant %q", err, out, want)
	}
	if _, err := os.Stat(data); !os.IsNotExist(err) {
		t.Errorf("the refused start made its data dir: %v", err)
	}
}
