package e2e

// End-to-end tests of live configuration (issue 13): repositories the
// configuration names exist for their users at once, and SIGHUP or `ssh
// reload` change users, rights, repositories, schedules and environments
// without a restart, all or nothing.

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slipway/record"
	"strings"
	"syscall"
	"testing"
	"time"
)

// rtWrite replaces the daemon's configuration file.
func rtWrite(t testing.TB, d *daemon, config string) {
	t.Helper()
	config = strings.ReplaceAll(config, "%DATA%", d.dataDir())
	if err := os.WriteFile(d.config, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
}

// rtReload writes config and reloads it with `ssh reload` as admin, which
// must succeed; it returns what reload printed.
func rtReload(t testing.TB, d *daemon, admin *user, config string) string {
	t.Helper()
	rtWrite(t, d, config)
	return mustSSH(t, d, admin, "reload")
}

// rtReloads counts the reloads the daemon's log reports as applied.
func rtReloads(d *daemon) int {
	return strings.Count(d.logs.String(), `msg="configuration reloaded"`)
}

// rtHUP writes config, sends SIGHUP and waits for the reload to apply.
func rtHUP(t testing.TB, d *daemon, config string) {
	t.Helper()
	before := rtReloads(d)
	rtWrite(t, d, config)
	if err := d.proc.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	d.eventually(t, 10*time.Second, "the reload after SIGHUP", func() bool { return rtReloads(d) > before })
}

// TestConfiguredRepositoriesExist: a repository the configuration names
// exists before anyone pushes to it (a reader clones it empty, its writer's
// first push succeeds), `repos` lists it, and taking it out of the
// configuration keeps its data, admin-only and marked unconfigured.
func TestConfiguredRepositoriesExist(t *testing.T) {
	t.Parallel()
	admin, alice, rita := newUser(t, "admin"), newUser(t, "alice"), newUser(t, "rita")
	repos := `
[[repo]]
name = "team/app"
write = ["alice"]
read = ["rita"]
`
	config := configFor(repos, []*user{admin}, alice, rita)
	d := startDaemon(t, config)

	list := mustSSH(t, d, rita, "repos")
	if !regexp.MustCompile(`(?m)^team/app\s+read\s+never`).MatchString(list) {
		t.Errorf("a reader's repos does not list the configured repository before any push:\n%s", list)
	}
	clone := filepath.Join(t.TempDir(), "clone")
	out, err := rita.git("", "clone", d.url("team/app"), clone)
	if err != nil || !strings.Contains(out, "empty repository") {
		t.Fatalf("a reader's clone of a configured repository nobody pushed to: %v\n%s", err, out)
	}
	src := alice.newProject(t, map[string]string{"README": "first\n"})
	alice.mustGit(t, src, "remote", "add", "slipway", d.url("team/app"))
	if out, err := alice.git(src, "push", "slipway", "HEAD:main"); err != nil || strings.Contains(out, "not found") {
		t.Fatalf("the writer's first push to a configured repository: %v\n%s", err, out)
	}
	head := alice.head(t, src)
	rita.mustGit(t, clone, "pull", "-q", "origin", "main")
	if got := rita.head(t, clone); got != head {
		t.Errorf("the reader's clone has %s after pull, want the first push %s", got, head)
	}

	// Out of the configuration: the data stays, for admins only.
	rtReload(t, d, admin, configFor("", []*user{admin}, alice, rita))
	if list := mustSSH(t, d, rita, "repos"); strings.Contains(list, "team/app") {
		t.Errorf("a reader still sees a repository removed from the configuration:\n%s", list)
	}
	if out, err := rita.git(clone, "fetch", "origin"); err == nil || !strings.Contains(out, `repository "team/app" not found`) {
		t.Errorf("a reader's fetch of a removed repository: %v\n%s", err, out)
	}
	if list := mustSSH(t, d, admin, "repos"); !regexp.MustCompile(`(?m)^team/app \(unconfigured\)\s+read,write,release,create\s+\S+`).MatchString(list) {
		t.Errorf("admin's repos does not mark the removed repository unconfigured:\n%s", list)
	}
	adminClone := filepath.Join(t.TempDir(), "admin")
	admin.mustGit(t, "", "clone", "-q", d.url("team/app"), adminClone)
	if got := admin.head(t, adminClone); got != head {
		t.Errorf("the removed repository lost its data: HEAD %s, want %s", got, head)
	}
}

// TestReloadAddsAndRemovesUsers: a user added to the file can push after a
// SIGHUP, without a restart; removed again, their open `log -f` session is
// closed and their new connections refused, while the build they started
// runs to its end.
func TestReloadAddsAndRemovesUsers(t *testing.T) {
	t.Parallel()
	admin, carol := newUser(t, "alice"), newUser(t, "carol")
	base := configFor(btRepoConfig, []*user{admin})
	d := btStartDaemon(t, base)
	db := d.store(t)
	if _, stderr, code := d.ssh(carol, "whoami"); code == 0 {
		t.Fatalf("carol is not configured yet but whoami answered: %s", stderr)
	}

	withCarol := base + fmt.Sprintf("[[user]]\nname = \"carol\"\nkeys = [%q]\n\n[[repo]]\nname = \"svc\"\nwrite = [\"carol\"]\n", carol.pub)
	withCarol = strings.Replace(withCarol, `write = ["alice"]`, `write = ["alice", "carol"]`, 1)
	rtHUP(t, d, withCarol)
	if out := mustSSH(t, d, carol, "whoami"); !strings.HasPrefix(out, "carol\n") {
		t.Errorf("whoami of the user a reload added: %q", out)
	}
	src := carol.newProject(t, map[string]string{".slipway.toml": btPipeline("cache = true\n", btWaitStep("rt"), "echo rt-finished")})
	id, _ := btPushOne(t, d, carol, src, "main")
	follow := btStart(t, d.sshCmd(carol, "log", fmt.Sprint(id), "-f"))
	d.eventually(t, btBuildTimeout, "carol's build to start its step", func() bool { return btExists(d, "rt.started") })

	rtHUP(t, d, base)
	select {
	case <-follow.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("carol's log -f still open 10 s after the reload that removed her:\n%s", follow.out)
	}
	if _, stderr, code := d.ssh(carol, "whoami"); code == 0 {
		t.Errorf("carol was removed but a new connection of hers was let in: %s", stderr)
	}
	btTouch(t, d, "rt.go")
	if b := btFinal(t, d, db, admin, "app", id); b.State != "passed" {
		t.Errorf("carol's build, running when she was removed, ended %s, want passed", b.State)
	}
	if log := btLog(t, d, admin, id, false); !strings.Contains(log, "rt-finished") {
		t.Errorf("the build's log lacks its last step's output:\n%s", log)
	}
}

// TestReloadRefusesABrokenConfiguration: a file that does not validate, or
// is gone, changes nothing: the running configuration keeps serving,
// `reload` prints every problem with its line, the log has them too.
// Settings that need a restart are reported and keep their running value
// while the rest applies.
func TestReloadRefusesABrokenConfiguration(t *testing.T) {
	t.Parallel()
	admin, alice := newUser(t, "admin"), newUser(t, "alice")
	good := configFor(btRepoConfig, []*user{admin}, alice)
	d := startDaemon(t, good)

	broken := good + "\n[[repo]]\nname = \"svc\"\nwrite = [\"nobody\"]\n\n[ssh\n"
	rtWrite(t, d, broken)
	out, stderr, code := d.ssh(admin, "reload")
	if code == 0 || !strings.Contains(stderr, "slipway.toml:") || !strings.Contains(stderr, "nothing changed") ||
		!strings.Contains(stderr, "still running configuration 1") {
		t.Errorf("reload of a file with a syntax error: exit %d\n%s%s", code, out, stderr)
	}
	lines := strings.Split(good, "\n")
	unknown := good + "\n[[repo]]\nname = \"svc\"\nwrite = [\"nobody\"]\n"
	rtWrite(t, d, unknown)
	want := fmt.Sprintf("slipway.toml:%d: repo \"svc\": write lists unknown user \"nobody\"", len(lines)+3)
	if _, stderr, code := d.ssh(admin, "reload"); code == 0 || !strings.Contains(stderr, want) {
		t.Errorf("reload of a file naming an unknown user: exit %d, want %q in\n%s", code, want, stderr)
	}
	if logs, ok := d.logsContain(fmt.Sprintf(`slipway.toml:%d: repo \"svc\": write lists unknown user \"nobody\"`, len(lines)+3),
		"configuration reload refused"); !ok {
		t.Errorf("the daemon's log does not report the problem with its line:\n%s", logs)
	}
	if err := os.Remove(d.config); err != nil {
		t.Fatal(err)
	}
	if _, stderr, code := d.ssh(admin, "reload"); code == 0 || !strings.Contains(stderr, "no such file") {
		t.Errorf("reload of a deleted file: exit %d\n%s", code, stderr)
	}
	if out := mustSSH(t, d, alice, "whoami"); !strings.HasPrefix(out, "alice\n") {
		t.Errorf("whoami after refused reloads: %q", out)
	}
	if cfg := mustSSH(t, d, admin, "config"); !strings.HasPrefix(cfg, "# configuration 1,") || strings.Contains(cfg, `"svc"`) {
		t.Errorf("config after refused reloads is not the one from start:\n%s", cfg)
	}

	// A new listen address needs a restart; the repository beside it
	// applies at once.
	moved := strings.Replace(good, `listen = "127.0.0.1:0"`, `listen = "127.0.0.1:1"`, 1) + "\n[[repo]]\nname = \"svc\"\nwrite = [\"alice\"]\n"
	res := rtReload(t, d, admin, moved)
	if !strings.Contains(res, "configuration 2 in force") || !strings.Contains(res, "needs a restart: ssh.listen") || !strings.Contains(res, "repos +svc") {
		t.Errorf("reload with a new listen address and a new repository printed:\n%s", res)
	}
	if list := mustSSH(t, d, alice, "repos"); !strings.Contains(list, "svc") {
		t.Errorf("the repository added beside a restart-only change is not there:\n%s", list)
	}
	if cfg := mustSSH(t, d, admin, "config"); !strings.Contains(cfg, `listen = "127.0.0.1:0"`) || !strings.Contains(cfg, "ssh reload by admin") {
		t.Errorf("config does not show the running listen address and the reload that produced it:\n%s", cfg)
	}
}

// TestSIGHUPBurstIsOneReload: 20 SIGHUPs in a second are one or two
// reloads, and users are served throughout.
func TestSIGHUPBurstIsOneReload(t *testing.T) {
	t.Parallel()
	admin := newUser(t, "alice")
	d := startDaemon(t, configFor(btRepoConfig, []*user{admin}))
	for range 20 {
		if err := d.proc.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	mustSSH(t, d, admin, "whoami")
	time.Sleep(1500 * time.Millisecond) // the last burst's quiet time, with room
	if n := rtReloads(d); n < 1 || n > 2 {
		t.Errorf("20 SIGHUPs in 1 s made %d reloads, want 1 or 2:\n%s", n, d.logs)
	}
	if cfg := mustSSH(t, d, admin, "config"); !strings.Contains(cfg, "(SIGHUP)") {
		t.Errorf("config does not say a SIGHUP produced it:\n%s", cfg)
	}
}

// TestReloadMovesSchedulesAndEnvironments: a schedule changed by a reload
// fires on its new spec at once; an environment's target changed by a
// reload is the next deployment's, while the deployment running keeps the
// target it started with.
func TestReloadMovesSchedulesAndEnvironments(t *testing.T) {
	t.Parallel()
	alice := newUser(t, "alice")
	hold := t.TempDir()
	repo := func(spec, target string) string {
		return fmt.Sprintf(`
[[repo]]
name = "app"
write = ["alice"]
  [[repo.schedule]]
  name = "tick"
  cron = %q
  branch = "main"
  [[repo.environment]]
  name = "staging"
  target = %q
  auto = "main"
  activate = "touch %[3]s/held; while [ ! -e %[3]s/go ]; do sleep 0.05; done; rm -f %[3]s/held"
`, spec, target, hold)
	}
	config := configFor(repo("@every 1h", "envs/a/{repo}"), []*user{alice})
	d := btStartDaemon(t, config)
	db := d.store(t)
	dir, head := dtProject(t, alice, map[string]string{"index.html": "one\n"})
	alice.mustGit(t, dir, "push", "-q", d.url("app"), "HEAD:main")
	dtWaitPassed(t, d, alice, "app", head, 0)
	d.eventually(t, 2*time.Minute, "the deployment to hold in activate", func() bool {
		_, err := os.Stat(filepath.Join(hold, "held"))
		return err == nil
	})

	// Both change while the deployment holds.
	rtReload(t, d, alice, configFor(repo("@every 2s", "envs/b/{repo}"), []*user{alice}))
	tick := stWaitRun(t, d, db, "app", "tick", "a run of the schedule on its new spec", func(record.Build) bool { return true })
	if tick.Trigger != record.TriggerSchedule {
		t.Errorf("the schedule's run is recorded as %+v", tick)
	}
	if err := os.WriteFile(filepath.Join(hold, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	first := dtWaitDeploy(t, d, alice, "app", "staging", head, 0)
	a, bdir := filepath.Join(d.dataDir(), "envs/a/app"), filepath.Join(d.dataDir(), "envs/b/app")
	if first.State != record.DeploySucceeded {
		t.Fatalf("the deployment running during the reload ended %s: %s", first.State, first.Reason)
	}
	if body, err := os.ReadFile(filepath.Join(a, "current", "dist", "index.html")); err != nil || string(body) != "one\n" {
		t.Errorf("the deployment running during the reload did not go to its old target: %q, %v", body, err)
	}
	if _, err := os.Stat(bdir); err == nil {
		t.Errorf("the deployment running during the reload wrote to the new target %s", bdir)
	}

	alice.commit(t, dir, "app/index.html", "two\n")
	two := alice.head(t, dir)
	alice.mustGit(t, dir, "push", "-q", d.url("app"), "HEAD:main")
	if next := dtWaitDeploy(t, d, alice, "app", "staging", two, first.ID); next.State != record.DeploySucceeded {
		t.Fatalf("the deployment after the reload ended %s: %s", next.State, next.Reason)
	}
	if body, err := os.ReadFile(filepath.Join(bdir, "current", "dist", "index.html")); err != nil || string(body) != "two\n" {
		t.Errorf("the deployment after the reload did not go to the new target: %q, %v", body, err)
	}
}
