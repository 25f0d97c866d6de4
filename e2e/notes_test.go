package e2e

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"slipway/record"
)

// ntClone clones repo as u with the notes ref in its fetch refspecs, the
// one line of git config the README gives, over protocol v2.
func ntClone(t *testing.T, d *daemon, u *user, repo string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "clone")
	u.mustGit(t, "", "-c", "protocol.version=2", "clone", "-q", d.url(repo), dir)
	u.mustGit(t, dir, "config", "--add", "remote.origin.fetch", "+refs/notes/slipway:refs/notes/slipway")
	u.mustGit(t, dir, "config", "protocol.version", "2")
	return dir
}

// ntNote fetches and returns the note of commit as `git log --notes=slipway`
// shows it, one line per result.
func ntNote(t *testing.T, u *user, clone, commit string) []string {
	t.Helper()
	u.mustGit(t, clone, "fetch", "-q", "origin")
	out := strings.TrimSpace(u.mustGit(t, clone, "log", "-1", "--notes=slipway", "--format=%N", commit))
	if out == "" {
		return nil
	}
	return strings.Split(out, "\n")
}

// ntAwaitNote waits until the note of commit has n lines.
func ntAwaitNote(t *testing.T, d *daemon, u *user, clone, commit string, n int) []string {
	t.Helper()
	var lines []string
	defer func() {
		if t.Failed() {
			server, _ := rlGit(filepath.Join(d.dataDir(), "repos", "app.git"), "notes", "--ref=slipway", "list")
			db := rlOpenDB(t, d.dataDir())
			defer db.Close()
			var cursor, last int64
			_ = db.QueryRow(`SELECT (SELECT last_id FROM event_cursors WHERE name = 'notes'), (SELECT max(id) FROM events)`).Scan(&cursor, &last)
			t.Logf("note of %.7s: %q\non the server:\n%s\ncursor %d, last event %d\ndaemon log:\n%s", commit, lines, server, cursor, last, d.logs)
		}
	}()
	d.eventually(t, 2*time.Minute, fmt.Sprintf("%d lines in the note of %.7s", n, commit), func() bool {
		lines = ntNote(t, u, clone, commit)
		return len(lines) >= n
	})
	if len(lines) != n {
		t.Fatalf("note of %.7s: %q, want %d lines", commit, lines, n)
	}
	return lines
}

// ntStatus runs `status` and returns its output and exit status.
func ntStatus(t *testing.T, d *daemon, u *user, args ...string) (string, int) {
	t.Helper()
	out, stderr, code := d.ssh(u, append([]string{"status"}, args...)...)
	return out + stderr, code
}

var ntLineRE = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ (build|deploy) \d+ \w+( env=\S+)?( build=\d+)?( digest=sha256:[0-9a-f]{64})?$`)

// Push, build, auto deploy: a clone fetches refs/notes/slipway and `git log
// --notes=slipway` shows both results; writing them recorded no push and
// built nothing; nobody can push the notes ref; `status` answers scripts
// with 0, 1, 2; a restart, even a crash, neither loses nor doubles a note.
func TestNotesAndStatus(t *testing.T) {
	t.Parallel()
	alice, wendy := newUser(t, "alice"), newUser(t, "wendy")
	staging := filepath.Join(t.TempDir(), "staging")
	d := startDaemon(t, configFor(fmt.Sprintf(`
[[repo]]
name = "app"
read = ["*"]
write = ["wendy"]
  [[repo.environment]]
  name = "staging"
  auto = "main"
  target = %q
`, staging), []*user{alice}, wendy))
	url := d.url("app")
	src, rev1 := dtProject(t, wendy, map[string]string{"index.html": "v1\n"})
	alice.mustGit(t, src, "push", "-q", url, "main")
	b1 := dtWaitPassed(t, d, wendy, "app", rev1, 0)
	s1 := dtWaitDeploy(t, d, wendy, "app", "staging", rev1, 0)
	if s1.State != record.DeploySucceeded {
		t.Fatalf("staging deployment: %+v", s1)
	}
	clone := ntClone(t, d, wendy, "app")
	lines := ntAwaitNote(t, d, wendy, clone, rev1, 2)
	wantBuild := fmt.Sprintf(" build %d passed digest=sha256:", b1.ID)
	wantDeploy := fmt.Sprintf(" deploy %d succeeded env=staging build=%d digest=sha256:", s1.ID, b1.ID)
	if !strings.Contains(lines[0], wantBuild) || !strings.Contains(lines[1], wantDeploy) {
		t.Errorf("note of rev1:\n%s\nwant lines with %q and %q", strings.Join(lines, "\n"), wantBuild, wantDeploy)
	}
	for _, l := range lines {
		if !ntLineRE.MatchString(l) {
			t.Errorf("note line %q is not in the documented format", l)
		}
	}
	log := wendy.mustGit(t, clone, "log", "--notes=slipway", "-1", rev1)
	if !strings.Contains(log, "Notes (slipway):") || !strings.Contains(log, wantDeploy) {
		t.Errorf("git log --notes=slipway:\n%s", log)
	}

	// Writing the notes recorded no push and built nothing.
	db := rlOpenDB(t, d.dataDir())
	defer db.Close()
	var pushes, builds int
	if err := db.QueryRow(`SELECT (SELECT count(*) FROM pushes), (SELECT count(*) FROM builds)`).Scan(&pushes, &builds); err != nil {
		t.Fatal(err)
	}
	if pushes != 1 || builds != 1 {
		t.Errorf("after the notes: %d pushes and %d builds, want 1 and 1", pushes, builds)
	}

	// Nobody pushes the notes ref, the admin included; it stays.
	notesAt := strings.TrimSpace(wendy.mustGit(t, clone, "rev-parse", "refs/notes/slipway"))
	wendy.mustGit(t, clone, "notes", "--ref=slipway", "append", "-m", "build 999 passed", rev1)
	for _, u := range []*user{wendy, alice} {
		out, err := u.git(clone, "push", url, "refs/notes/slipway:refs/notes/slipway")
		if err == nil || !strings.Contains(out, "Slipway alone writes this ref") {
			t.Errorf("%s pushed the notes ref (err %v):\n%s", u.name, err, out)
		}
		out, err = u.git(clone, "push", url, ":refs/notes/slipway")
		if err == nil {
			t.Errorf("%s deleted the notes ref:\n%s", u.name, out)
		}
	}
	if out := alice.mustGit(t, "", "ls-remote", url, "refs/notes/slipway"); !strings.HasPrefix(out, notesAt) {
		t.Errorf("the notes ref moved: %q, want %s", out, notesAt)
	}
	wendy.mustGit(t, clone, "update-ref", "refs/notes/slipway", notesAt)

	// status: 0 for a passed revision, every branch too.
	out, code := ntStatus(t, d, wendy, "app", "main")
	if code != 0 || !regexp.MustCompile(fmt.Sprintf(`build +#%d +passed`, b1.ID)).MatchString(out) ||
		!regexp.MustCompile(fmt.Sprintf(`deploy +#%d +succeeded +staging`, s1.ID)).MatchString(out) {
		t.Errorf("status app main: exit %d, want 0:\n%s", code, out)
	}
	// A failing branch: 1, and 1 for the repository as a whole.
	wendy.mustGit(t, src, "checkout", "-q", "-b", "broken")
	rev2 := wendy.commit(t, src, "FAIL", "no\n")
	wendy.mustGit(t, src, "push", "-q", url, "broken")
	if b := dtWaitBuild(t, d, wendy, "app", rev2, 0); b.State != record.StateFailed {
		t.Fatalf("build of rev2: %s", b.State)
	}
	if out, code := ntStatus(t, d, wendy, "app", "broken"); code != 1 || !strings.Contains(out, "failed") {
		t.Errorf("status app broken: exit %d, want 1:\n%s", code, out)
	}
	if out, code := ntStatus(t, d, wendy, "app"); code != 1 || !strings.Contains(out, "app main @ "+rev1[:7]+": passed") {
		t.Errorf("status app: exit %d, want 1:\n%s", code, out)
	}
	// A tag of a commit nothing built (tags do not build here): 2.
	wendy.mustGit(t, src, "checkout", "-q", "main")
	rev3 := wendy.commit(t, src, "app/index.html", "v3 (tagged, never built)\n")
	wendy.mustGit(t, src, "tag", "v3", rev3)
	wendy.mustGit(t, src, "push", "-q", url, "v3")
	if out, code := ntStatus(t, d, wendy, "app", "v3"); code != 2 || !strings.Contains(out, ": none") {
		t.Errorf("status app v3: exit %d, want 2:\n%s", code, out)
	}
	if out, code := ntStatus(t, d, wendy, "app", "nosuchbranch"); code != 4 || !strings.Contains(out, "no revision") {
		t.Errorf("status of an unknown revision: exit %d, want 4:\n%s", code, out)
	}
	if out, code := ntStatus(t, d, wendy, "app", rev1[:10], "--json"); code != 0 || !strings.Contains(out, `"result": "passed"`) {
		t.Errorf("status --json: exit %d:\n%s", code, out)
	}

	// A restart, then a crash while a build runs: no note lost or doubled.
	// (Each start listens on a port of its own.)
	restart := func(crash bool) {
		if crash {
			d.kill()
		} else {
			d.stop()
		}
		d.start()
		url = d.url("app")
		wendy.mustGit(t, clone, "remote", "set-url", "origin", url)
	}
	restart(false)
	rev4 := wendy.commit(t, src, "app/index.html", "v4\n")
	wendy.mustGit(t, src, "push", "-q", url, "main")
	b4 := dtWaitBuild(t, d, wendy, "app", rev4, 0)
	restart(true)
	ntAwaitNote(t, d, wendy, clone, rev4, 2) // its build and its deployment
	if got := ntNote(t, wendy, clone, rev1); len(got) != 2 {
		t.Errorf("note of rev1 after restarts: %q", got)
	}
	if got := ntAwaitNote(t, d, wendy, clone, rev2, 1); !strings.Contains(got[0], " failed") {
		t.Errorf("note of rev2: %q", got)
	}
	if got := ntNote(t, wendy, clone, rev4); !strings.Contains(got[0], fmt.Sprintf(" build %d passed", b4.ID)) {
		t.Errorf("note of rev4: %q", got)
	}
}

// Ten builds of ten commits at once all get their notes: the notes of
// one repository are written one by one, each on the last.
func TestNotesOfConcurrentBuilds(t *testing.T) {
	t.Parallel()
	wendy := newUser(t, "wendy")
	d := startDaemon(t, configFor(`
[build]
concurrency = 4
[[repo]]
name = "app"
read = ["*"]
write = ["wendy"]
`, []*user{wendy}))
	url := d.url("app")
	src, _ := dtProject(t, wendy, map[string]string{"index.html": "v0\n"})
	var refspecs []string
	commits := map[string]string{}
	for i := range 10 {
		branch := fmt.Sprintf("b%d", i)
		wendy.mustGit(t, src, "checkout", "-q", "-b", branch, "main")
		commits[branch] = wendy.commit(t, src, "app/index.html", fmt.Sprintf("branch %d\n", i))
		refspecs = append(refspecs, branch)
	}
	wendy.mustGit(t, src, append([]string{"push", "-q", url}, refspecs...)...)
	clone := ntClone(t, d, wendy, "app")
	noted := map[string]bool{}
	d.eventually(t, 3*time.Minute, "notes on the ten commits", func() bool {
		wendy.mustGit(t, clone, "fetch", "-q", "origin")
		for _, c := range commits {
			if out, err := wendy.git(clone, "notes", "--ref=slipway", "show", c); err == nil && strings.Contains(out, " build ") {
				noted[c] = true
			}
		}
		return len(noted) == len(commits)
	})
	for b, c := range commits {
		lines := ntNote(t, wendy, clone, c)
		if len(lines) != 1 || !strings.Contains(lines[0], " passed ") {
			t.Errorf("note of %s (%.7s): %q", b, c, lines)
		}
	}
	db := rlOpenDB(t, d.dataDir())
	defer db.Close()
	var pushes int
	if err := db.QueryRow(`SELECT count(*) FROM pushes`).Scan(&pushes); err != nil || pushes != 1 {
		t.Errorf("%d pushes (%v), want 1", pushes, err)
	}
}
