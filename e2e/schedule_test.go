package e2e

// End-to-end tests of schedules (issue 5) and of the quick start on the
// embedded default config, against the real binary. The clock-driven
// semantics (catch-up over nights, DST, only_if_changed) are covered with an
// injected clock in build/schedule; these tests check what a user of the
// running daemon sees, in real time, with "@every" specs.

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"slipway/internal/testutil"
	"strconv"
	"strings"
	"testing"
	"time"

	"slipway/record"
	"slipway/store"
)

// stPipelines is a .slipway.toml with both sections, each echoing its name so
// that the log shows which one ran.
const stPipelines = `[build]
steps = ["echo ran-build-section"]

[nightly]
steps = ["echo ran-nightly-section"]
`

// stBuildOnly has no [nightly] section: schedules fall back to [build].
const stBuildOnly = `[build]
steps = ["echo ran-build-section"]
`

// stRuns returns the builds of a schedule, newest first.
func stRuns(t *testing.T, db *store.Store, repo, name string) []record.Build {
	t.Helper()
	bs, err := db.ListScheduleRuns(t.Context(), repo, name, 0)
	if err != nil {
		t.Fatal(err)
	}
	return bs
}

// stWaitRun waits for a build of the schedule that satisfies ok and returns
// the oldest such build.
func stWaitRun(t *testing.T, d *daemon, db *store.Store, repo, name, what string, ok func(record.Build) bool) record.Build {
	t.Helper()
	var found record.Build
	d.eventually(t, time.Minute, what, func() bool {
		runs := stRuns(t, db, repo, name)
		for i := len(runs) - 1; i >= 0; i-- {
			if ok(runs[i]) {
				found = runs[i]
				return true
			}
		}
		return false
	})
	return found
}

// stLine returns the first line of text that contains every one of parts,
// or "".
func stLine(text string, parts ...string) string {
	for _, line := range strings.Split(text, "\n") {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			return line
		}
	}
	return ""
}

// stWithZone sets the server's default time zone of schedules.
func stWithZone(config, zone string) string {
	return strings.Replace(config, "[ssh]\n", "timezone = \""+zone+"\"\n[ssh]\n", 1)
}

func TestStEverySecondRunsNightlyOrBuild(t *testing.T) {
	t.Parallel()
	alice := newUser(t, "alice")
	d := startDaemon(t, stWithZone(configFor(`
[[repo]]
name = "app"
read = ["*"]
  [[repo.schedule]]
  name = "tick"
  cron = "@every 1s"
  branch = "main"
  [[repo.schedule]]
  name = "ghost"
  cron = "@every 1s"
  branch = "no-such-branch"
  [[repo.schedule]]
  name = "nightly"
  cron = "CRON_TZ=Asia/Tokyo 30 2 * * *"
  branch = "main"

[[repo]]
name = "plain"
read = ["*"]
  [[repo.schedule]]
  name = "tick"
  cron = "@every 1s"
  branch = "main"
`, []*user{alice}), "Europe/Berlin"))
	db := d.store(t)

	app := alice.newProject(t, map[string]string{".slipway.toml": stPipelines})
	alice.mustGit(t, app, "push", "-q", d.url("app"), "main")
	appHead := alice.head(t, app)
	plain := alice.newProject(t, map[string]string{".slipway.toml": stBuildOnly})
	alice.mustGit(t, plain, "push", "-q", d.url("plain"), "main")
	plainHead := alice.head(t, plain)

	// A scheduled build of app runs its [nightly] section.
	tick := stWaitRun(t, d, db, "app", "tick", "a passed scheduled build of app", func(b record.Build) bool {
		return b.Commit == appHead && b.State == record.StatePassed
	})
	if tick.Trigger != record.TriggerSchedule || tick.Ref != "refs/heads/main" || tick.PushID != 0 {
		t.Errorf("scheduled build of app recorded as %+v", tick)
	}
	builds := mustSSH(t, d, alice, "builds", "app", "--limit", "100")
	if line := stLine(builds, strconv.FormatInt(tick.ID, 10)+" ", "schedule:tick", "passed"); line == "" {
		t.Errorf("builds app does not show build %d as passed, schedule:tick:\n%s", tick.ID, builds)
	}
	log := mustSSH(t, d, alice, "log", strconv.FormatInt(tick.ID, 10))
	if !strings.Contains(log, "ran-nightly-section") || strings.Contains(log, "ran-build-section") {
		t.Errorf("scheduled build of a file with [nightly] did not run [nightly]:\n%s", log)
	}

	// plain has no [nightly]: the schedule runs [build] and says so.
	ptick := stWaitRun(t, d, db, "plain", "tick", "a passed scheduled build of plain", func(b record.Build) bool {
		return b.Commit == plainHead && b.State == record.StatePassed
	})
	log = mustSSH(t, d, alice, "log", strconv.FormatInt(ptick.ID, 10))
	if !strings.Contains(log, "ran-build-section") || !strings.Contains(log, "no [nightly] section; running [build]") {
		t.Errorf("scheduled build without [nightly] did not fall back to [build] visibly:\n%s", log)
	}

	// A schedule on a branch that does not exist records an error build
	// each time it fires, and the others keep firing after it.
	ghost := stWaitRun(t, d, db, "app", "ghost", "an error build of the missing branch after the push", func(b record.Build) bool {
		return b.ID > tick.ID && b.State == record.StateError
	})
	if ghost.Reason != "branch no-such-branch does not exist" || ghost.Commit != "" {
		t.Errorf("build of a missing branch recorded as %+v", ghost)
	}
	stWaitRun(t, d, db, "app", "tick", "a scheduled build after the missing branch's error", func(b record.Build) bool {
		return b.ID > ghost.ID && b.State == record.StatePassed
	})
	stWaitRun(t, d, db, "app", "ghost", "the missing branch's schedule firing again", func(b record.Build) bool {
		return b.ID > ghost.ID && b.State == record.StateError
	})
	if out := mustSSH(t, d, alice, "whoami"); !strings.Contains(out, "alice") {
		t.Errorf("whoami after the failing schedule: %q", out)
	}
	builds = mustSSH(t, d, alice, "builds", "app", "--limit", "100")
	if stLine(builds, "no-such-branch", "error", "schedule:ghost", "branch no-such-branch does not exist") == "" {
		t.Errorf("builds app does not show the missing branch's error:\n%s", builds)
	}

	// schedules: spec, next fire time in the schedule's zone, last run.
	tokyo, err := time.LoadLocation("Asia/Tokyo")
	if err != nil {
		t.Fatal(err)
	}
	before := stNext230(time.Now(), tokyo)
	list := mustSSH(t, d, alice, "schedules", "app")
	after := stNext230(time.Now(), tokyo)
	nightly := stLine(list, "app", "nightly", "CRON_TZ=Asia/Tokyo 30 2 * * *")
	if nightly == "" || !strings.HasSuffix(strings.TrimSpace(nightly), "never") ||
		!strings.Contains(nightly, before.Format("2006-01-02 15:04 MST")) && !strings.Contains(nightly, after.Format("2006-01-02 15:04 MST")) {
		t.Errorf("schedules: nightly should show its spec, next at %s (JST) and no last run:\n%s", before.Format("2006-01-02 15:04 MST"), list)
	}
	if line := stLine(list, "ghost", "@every 1s", "no-such-branch"); !strings.Contains(line, "error (branch no-such-branch does not exist)") {
		t.Errorf("schedules: ghost should show its last run as an error with the reason:\n%s", list)
	}
	// @every runs in the server's default zone, Europe/Berlin here.
	if line := stLine(list, "tick", "@every 1s", "main"); !strings.Contains(line, " CET ") && !strings.Contains(line, " CEST ") || !strings.Contains(line, "#") {
		t.Errorf("schedules: tick should show its next time in Europe/Berlin and a last run:\n%s", list)
	}
	if strings.Contains(list, "plain") {
		t.Errorf("schedules app lists another repository's schedule:\n%s", list)
	}
}

// stNext230 is the first 02:30 in loc after now.
func stNext230(now time.Time, loc *time.Location) time.Time {
	n := now.In(loc)
	c := time.Date(n.Year(), n.Month(), n.Day(), 2, 30, 0, 0, loc)
	if !c.After(n) {
		c = c.AddDate(0, 0, 1)
	}
	return c
}

func TestStOverlapSkipsWithReason(t *testing.T) {
	t.Parallel()
	alice := newUser(t, "alice")
	d := startDaemon(t, configFor(`
[[repo]]
name = "app"
read = ["*"]
  [[repo.schedule]]
  name = "slow"
  cron = "@every 1s"
  branch = "main"
`, []*user{alice}))
	db := d.store(t)
	// The nightly suite hangs while the file "hold" exists.
	src := alice.newProject(t, map[string]string{
		".slipway.toml": "[build]\nsteps = [\"true\"]\n[nightly]\nsteps = [\"if [ -f hold ]; then sleep 300; fi\", \"echo suite-done\"]\n",
		"hold":          "",
	})
	alice.mustGit(t, src, "push", "-q", d.url("app"), "main")

	first := stWaitRun(t, d, db, "app", "slow", "a running scheduled build", func(b record.Build) bool {
		return b.State == record.StateRunning
	})
	reason := "previous run (build " + strconv.FormatInt(first.ID, 10) + ") is still running"
	skipped := stWaitRun(t, d, db, "app", "slow", "a skipped firing while the first runs", func(b record.Build) bool {
		return b.ID > first.ID && b.State == record.StateSkipped
	})
	if skipped.Reason != reason || skipped.Trigger != record.TriggerSchedule {
		t.Errorf("overlapping firing recorded as %+v; want skipped with %q", skipped, reason)
	}
	builds := mustSSH(t, d, alice, "builds", "app", "--limit", "100")
	if stLine(builds, strconv.FormatInt(skipped.ID, 10)+" ", "skipped", "schedule:slow", reason) == "" {
		t.Errorf("builds does not show the skipped firing with its reason:\n%s", builds)
	}

	// Release the suite: a new tip without "hold", and the hung run
	// cancelled. The next firing runs again.
	if err := os.Remove(filepath.Join(src, "hold")); err != nil {
		t.Fatal(err)
	}
	alice.mustGit(t, src, "commit", "-q", "-am", "no hold")
	alice.mustGit(t, src, "push", "-q", d.url("app"), "main")
	head := alice.head(t, src)
	if out := mustSSH(t, d, alice, "cancel", strconv.FormatInt(first.ID, 10)); !strings.Contains(out, "cancelled") {
		t.Fatalf("cancel: %q", out)
	}
	next := stWaitRun(t, d, db, "app", "slow", "a scheduled run after the cancel", func(b record.Build) bool {
		return b.ID > first.ID && b.State != record.StateSkipped
	})
	next = stWaitRun(t, d, db, "app", "slow", "that run finishing", func(b record.Build) bool {
		return b.ID == next.ID && b.State.Final()
	})
	if next.State != record.StatePassed || next.Commit != head {
		t.Errorf("run after the overlap ended = %+v; want passed on %s", next, head)
	}
	// Every firing while the first ran was skipped: never two at once.
	for _, b := range stRuns(t, db, "app", "slow") {
		if b.ID > first.ID && b.ID < next.ID && (b.State != record.StateSkipped || b.Reason != reason) {
			t.Errorf("firing during the running build: %+v; want skipped with %q", b, reason)
		}
	}
	if b, err := db.GetBuild(t.Context(), first.ID); err != nil || b.State != record.StateCancelled {
		t.Errorf("the hung run: %+v, %v; want cancelled", b, err)
	}
}

func TestStRunByHand(t *testing.T) {
	t.Parallel()
	admin, alice, bob, carol := newUser(t, "admin"), newUser(t, "alice"), newUser(t, "bob"), newUser(t, "carol")
	// Feb 29 at midnight: the schedule does not fire by itself during the test.
	d := startDaemon(t, configFor(`
[[repo]]
name = "app"
read = ["bob"]
write = ["alice"]
  [[repo.schedule]]
  name = "integration"
  cron = "CRON_TZ=UTC 0 0 29 2 *"
  branch = "main"
`, []*user{admin}, alice, bob, carol))
	db := d.store(t)
	src := admin.newProject(t, map[string]string{".slipway.toml": stPipelines})
	admin.mustGit(t, src, "push", "-q", d.url("app"), "main")
	head := admin.head(t, src)

	// A reader is refused, a stranger is told the repository does not
	// exist, and an unknown schedule is not found: no build in any case.
	_, stderr, code := d.ssh(bob, "run", "app", "integration")
	if code != 1 || !strings.Contains(stderr, `may read "app" but not run its schedules`) {
		t.Errorf("run by a reader: exit %d, %q", code, stderr)
	}
	_, stderr, code = d.ssh(carol, "run", "app", "integration")
	if code != 1 || !strings.Contains(stderr, `repository "app" not found`) {
		t.Errorf("run by a stranger: exit %d, %q", code, stderr)
	}
	_, stderr, code = d.ssh(alice, "run", "app", "nosuch")
	if code != 1 || !strings.Contains(stderr, `schedule "nosuch" of "app" not found`) {
		t.Errorf("run of an unknown schedule: exit %d, %q", code, stderr)
	}
	if runs := stRuns(t, db, "app", "integration"); len(runs) != 0 {
		t.Fatalf("refused runs left builds: %+v", runs)
	}

	out := mustSSH(t, d, alice, "run", "app", "integration")
	want := "queued: main @ " + head[:7]
	runs := stRuns(t, db, "app", "integration")
	if len(runs) != 1 || !strings.Contains(out, "build #"+strconv.FormatInt(runs[0].ID, 10)+" "+want) {
		t.Fatalf("run by a writer printed %q, recorded %+v; want one build %q", out, runs, want)
	}
	b := stWaitRun(t, d, db, "app", "integration", "the run by hand to pass", func(b record.Build) bool {
		return b.State.Final()
	})
	if b.State != record.StatePassed || b.Trigger != record.TriggerManual || b.Commit != head {
		t.Errorf("run by hand recorded as %+v", b)
	}
	builds := mustSSH(t, d, bob, "builds", "app")
	if stLine(builds, strconv.FormatInt(b.ID, 10)+" ", "manual:integration", "passed") == "" {
		t.Errorf("builds does not show the run by hand:\n%s", builds)
	}
	if log := mustSSH(t, d, bob, "log", strconv.FormatInt(b.ID, 10)); !strings.Contains(log, "ran-nightly-section") {
		t.Errorf("run by hand did not run [nightly]:\n%s", log)
	}
	list := mustSSH(t, d, bob, "schedules")
	if line := stLine(list, "integration"); !strings.Contains(line, "#"+strconv.FormatInt(b.ID, 10)+" passed") {
		t.Errorf("schedules does not show the run by hand as the last run:\n%s", list)
	}
	if list, _, _ := d.ssh(carol, "schedules"); strings.Contains(list, "integration") {
		t.Errorf("schedules shows a stranger another repository's schedule:\n%s", list)
	}
}

// stLogEntry is one line of the daemon's log (slog's text format).
type stLogEntry map[string]string

// stParseLog reads the daemon's log lines into key/value maps.
func stParseLog(text string) []stLogEntry {
	var out []stLogEntry
	for _, line := range strings.Split(text, "\n") {
		e := stLogEntry{}
		for rest := strings.TrimSpace(line); rest != ""; rest = strings.TrimLeft(rest, " ") {
			k, v, ok := strings.Cut(rest, "=")
			if !ok || strings.Contains(k, " ") {
				break
			}
			if strings.HasPrefix(v, `"`) {
				q, err := strconv.QuotedPrefix(v)
				if err != nil {
					break
				}
				e[k], _ = strconv.Unquote(q)
				rest = v[len(q):]
				continue
			}
			v, rest, _ = strings.Cut(v, " ")
			e[k] = v
		}
		if len(e) > 0 {
			out = append(out, e)
		}
	}
	return out
}

// stStartLog returns the daemon's log up to its "slipway started" line. The
// start-up decisions of the scheduler come before that line; they can reach
// the test after the banner, which comes on another pipe.
func stStartLog(t *testing.T, d *daemon) []stLogEntry {
	t.Helper()
	var log []stLogEntry
	d.eventually(t, time.Minute, "the daemon to log its start", func() bool {
		log = stParseLog(d.logs.String())
		i := slices.IndexFunc(log, func(e stLogEntry) bool { return e["msg"] == "slipway started" })
		log = log[:i+1]
		return i >= 0
	})
	return log
}

// stEntries returns the log entries of a schedule whose message contains msg.
func stEntries(log []stLogEntry, schedule, msg string) []stLogEntry {
	var out []stLogEntry
	for _, e := range log {
		if e["schedule"] == schedule && strings.Contains(e["msg"], msg) {
			out = append(out, e)
		}
	}
	return out
}

func TestStCatchUpAcrossRestart(t *testing.T) {
	// Not parallel: it must stop the daemon within a second of a firing,
	// before the next instant 5 s later; under the load of the parallel
	// tests a build alone can take longer than that. The period leaves a
	// restarted daemon (which waits out two missed instants) 4.9 s to
	// decide before the next instant is due; with 3 s, a start slowed by
	// the load of the other packages' tests reached that instant and fired
	// it as the current one instead of catching up.
	alice := newUser(t, "alice")
	const every = 5 * time.Second
	d := startDaemon(t, stWithZone(configFor(`[[repo]]
name = "app"
read = ["*"]
  [[repo.schedule]]
  name = "up"
  cron = "@every 5s"
  branch = "main"
  [[repo.schedule]]
  name = "off"
  cron = "@every 5s"
  branch = "main"
  catch_up = false
`, []*user{alice}), "UTC"))
	db := d.store(t)
	src := alice.newProject(t, map[string]string{".slipway.toml": stPipelines})
	alice.mustGit(t, src, "push", "-q", d.url("app"), "main")
	for _, name := range []string{"up", "off"} {
		stWaitRun(t, d, db, "app", name, "a passed run of "+name, func(b record.Build) bool { return b.State == record.StatePassed })
	}
	// Stop just after both fired and their runs ended, well before the
	// next instant, so that no run is left queued: a catch-up behind a
	// queued run would be skipped (no overlap), not run.
	d.eventually(t, time.Minute, "a moment with no run in flight, just after a firing", func() bool {
		for _, name := range []string{"up", "off"} {
			st, ok, err := db.GetLastFire(t.Context(), "app", name)
			if err != nil || !ok || time.Since(st.LastFire) > time.Second {
				return false
			}
			if runs := stRuns(t, db, "app", name); len(runs) == 0 || !runs[0].State.Final() {
				return false
			}
		}
		return true
	})
	d.stop()
	for _, name := range []string{"up", "off"} {
		if runs := stRuns(t, db, "app", name); !runs[0].State.Final() {
			t.Fatalf("a run of %s is still %s after the stop: %+v", name, runs[0].State, runs[0])
		}
	}

	// Down for more than two periods of both schedules: each missed at
	// least two instants.
	var last time.Time
	for _, name := range []string{"up", "off"} {
		st, ok, err := db.GetLastFire(t.Context(), "app", name)
		if err != nil || !ok {
			t.Fatalf("last fire of %s: %+v, %v, %v", name, st, ok, err)
		}
		if st.LastFire.After(last) {
			last = st.LastFire
		}
	}
	testutil.Eventually(t, time.Minute, "the clock to pass two missed instants", func() bool {
		return time.Now().After(last.Add(2*every + 100*time.Millisecond))
	})
	restart := time.Now()
	d.start()
	log := stStartLog(t, d)

	// catch_up on: one firing at start, at the latest missed instant.
	decided := stEntries(log, "app/up", "missed runs while down")
	if len(decided) != 1 || decided[0]["msg"] != "schedule missed runs while down; catching up once" {
		t.Fatalf("start-up decision for app/up: %v; want one \"catching up once\"\n%s", decided, d.logs)
	}
	if n, _ := strconv.Atoi(decided[0]["missed"]); n < 2 {
		t.Errorf("app/up missed %q instants; want at least 2", decided[0]["missed"])
	}
	// The latest instant missed: after the last firing before the stop, and
	// not after the daemon's decision (a daemon slow to start, under load,
	// misses the instants up to then, not only those before restart).
	at, err := time.Parse(time.RFC3339, decided[0]["at"])
	decidedAt, terr := time.Parse(time.RFC3339Nano, decided[0]["time"])
	if err != nil || terr != nil || !at.After(last) || at.After(decidedAt) {
		t.Fatalf("app/up caught up at %q (%v, %v); want a missed instant: after the last firing before the stop (%s) and not after the daemon decided (%s; restarted at %s)",
			decided[0]["at"], err, terr, last, decided[0]["time"], restart)
	}
	var caughtUp []stLogEntry
	for _, e := range stEntries(log, "app/up", "scheduled build queued") {
		if fired, err := time.Parse(time.RFC3339, e["at"]); err == nil && !fired.After(at) {
			caughtUp = append(caughtUp, e)
		}
	}
	if len(caughtUp) != 1 || caughtUp[0]["at"] != decided[0]["at"] {
		t.Fatalf("app/up builds queued for missed instants: %v; want exactly one, at %s\n%s", caughtUp, decided[0]["at"], d.logs)
	}
	id, err := strconv.ParseInt(caughtUp[0]["build"], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	b := stWaitRun(t, d, db, "app", "up", "the catch-up build to finish", func(b record.Build) bool {
		return b.ID == id && b.State.Final()
	})
	if b.State != record.StatePassed || b.Trigger != record.TriggerSchedule {
		t.Errorf("catch-up build: %+v", b)
	}

	// catch_up off: no firing for the missed instants, then the next one.
	decided = stEntries(log, "app/off", "missed runs while down")
	if len(decided) != 1 || decided[0]["msg"] != "schedule missed runs while down; catch_up is off, waiting for the next time" {
		t.Fatalf("start-up decision for app/off: %v; want one \"catch_up is off, waiting\"\n%s", decided, d.logs)
	}
	at, err = time.Parse(time.RFC3339, decided[0]["at"])
	if err != nil {
		t.Fatal(err)
	}
	var next time.Time
	d.eventually(t, time.Minute, "app/off to fire at its next instant", func() bool {
		for _, e := range stEntries(stParseLog(d.logs.String()), "app/off", "scheduled build queued") {
			fired, err := time.Parse(time.RFC3339, e["at"])
			if err != nil || !fired.After(at) {
				t.Fatalf("app/off fired for a missed instant after the restart: %v (latest missed %s)", e, at)
			}
			next = fired
			return true
		}
		return false
	})
	if !next.Equal(at.Add(every)) {
		t.Errorf("app/off fired next at %s; want %s", next, at.Add(every))
	}
}

func TestStRemovedScheduleCancelsQueued(t *testing.T) {
	t.Parallel()
	alice := newUser(t, "alice")
	const schedules = `
  [[repo.schedule]]
  name = "keep"
  cron = "CRON_TZ=UTC 0 0 29 2 *"
  branch = "main"
  [[repo.schedule]]
  name = "gone"
  cron = "@every 1s"
  branch = "main"
`
	config := configFor("[build]\nconcurrency = 1\n\n[[repo]]\nname = \"app\"\nread = [\"*\"]\n"+schedules, []*user{alice})
	d := startDaemon(t, config)
	db := d.store(t)
	// The push build holds the only worker, so the schedule's runs queue.
	src := alice.newProject(t, map[string]string{".slipway.toml": "[build]\nsteps = [\"sleep 300\"]\n[nightly]\nsteps = [\"true\"]\n"})
	alice.mustGit(t, src, "push", "-q", d.url("app"), "main")
	queued := stWaitRun(t, d, db, "app", "gone", "a queued run", func(b record.Build) bool { return b.State == record.StateQueued })
	stWaitRun(t, d, db, "app", "gone", "a firing skipped behind the queued run", func(b record.Build) bool {
		return b.State == record.StateSkipped && b.Reason == "previous run (build "+strconv.FormatInt(queued.ID, 10)+") is still queued"
	})

	// The daemon dies; it comes back with "gone" removed from the config.
	d.kill()
	without := strings.Replace(config, schedules[strings.Index(schedules, "  [[repo.schedule]]\n  name = \"gone\""):], "", 1)
	if without == config {
		t.Fatal("the schedule was not removed from the config")
	}
	if err := os.WriteFile(d.config, []byte(strings.ReplaceAll(without, "%DATA%", d.dataDir())), 0o600); err != nil {
		t.Fatal(err)
	}
	d.start()
	removed := stEntries(stStartLog(t, d), "app/gone", "schedule removed from the config")
	if len(removed) != 1 || removed[0]["cancelled"] != "1" {
		t.Errorf("log of the removal: %v; want one entry with cancelled=1\n%s", removed, d.logs)
	}
	b, err := db.GetBuild(t.Context(), queued.ID)
	if err != nil || b.State != record.StateCancelled || b.Reason != `schedule "gone" was removed from the config` {
		t.Errorf("queued run of the removed schedule: %+v, %v; want cancelled", b, err)
	}
	for _, b := range stRuns(t, db, "app", "gone") {
		if !b.State.Final() {
			t.Errorf("run of the removed schedule left %s: %+v", b.State, b)
		}
	}
	list := mustSSH(t, d, alice, "schedules", "app")
	if strings.Contains(list, "gone") || !strings.Contains(list, "keep") {
		t.Errorf("schedules after the removal:\n%s", list)
	}
	builds := mustSSH(t, d, alice, "builds", "app", "--limit", "100")
	if stLine(builds, strconv.FormatInt(queued.ID, 10)+" ", "cancelled", `schedule "gone" was removed from the config`) == "" {
		t.Errorf("builds does not show the cancelled run with its reason:\n%s", builds)
	}

	// The interrupted push build runs again; stop it so the daemon can
	// stop at once.
	push, err := db.ListBuilds(t.Context(), "app", 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range push {
		if b.Trigger == record.TriggerPush && !b.State.Final() {
			mustSSH(t, d, alice, "cancel", strconv.FormatInt(b.ID, 10))
		}
	}
}

func TestStInvalidCronSpec(t *testing.T) {
	t.Parallel()
	alice := newUser(t, "alice")
	dir := t.TempDir()
	config := configFor(`
[[repo]]
name = "app"
read = ["*"]
  [[repo.schedule]]
  name = "ok"
  cron = "@daily"
  branch = "main"
  [[repo.schedule]]
  name = "minute"
  cron = "61 * * * *"
  branch = "main"
  [[repo.schedule]]
  name = "zone"
  cron = "CRON_TZ=Nowhere/Atlantis 0 2 * * *"
  branch = "main"
`, []*user{alice})
	config = strings.ReplaceAll(config, "%DATA%", filepath.Join(dir, "data"))
	file := filepath.Join(dir, "slipway.toml")
	if err := os.WriteFile(file, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	lineOf := func(s string) string {
		lines := strings.Split(config, "\n")
		i := slices.IndexFunc(lines, func(l string) bool { return strings.Contains(l, s) })
		return file + ":" + strconv.Itoa(i+1) + ":"
	}
	minute, zone := lineOf(`"61 * * * *"`), lineOf("Nowhere/Atlantis")

	out, err := exec.Command(slipwayBin, "config", "check", file).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("config check of invalid cron specs: %v\n%s", err, out)
	}
	for _, want := range []string{minute, zone} {
		if line := stLine(string(out), want); line == "" || !strings.Contains(line, "cron") {
			t.Errorf("config check does not report %q with the spec:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), lineOf(`"@daily"`)) {
		t.Errorf("config check reports the valid spec:\n%s", out)
	}

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	serve := exec.CommandContext(ctx, slipwayBin, "serve", "--config", file)
	serve.Dir = dir
	out, err = serve.CombinedOutput()
	if err == nil || !strings.Contains(string(out), minute) {
		t.Fatalf("serve on invalid cron specs: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); err == nil {
		t.Error("serve created its data dir despite the invalid config")
	}
}

// TestStQuickStartPipeline follows the quick start as a newcomer would: no
// config file, a key in ~/.ssh, a project with a pipeline pushed; the build
// passes, staging gets it by itself, a push to refs/release/prod ships it to
// prod, and a revision whose build failed is refused for prod.
func TestStQuickStartPipeline(t *testing.T) {
	t.Parallel()
	alice := newUser(t, "alice")
	home := ctHome(t, alice)
	work := t.TempDir()

	// The same commands the banner prints, with the ssh of the test's user.
	d := quickStart(t, home, work, nil)
	addr := d.addr
	envs := filepath.Join(work, "slipway-data", "environments", "myproject")
	version := func(env string) string {
		b, _ := os.ReadFile(filepath.Join(envs, env, "current", "dist", "version"))
		return string(b)
	}

	src := alice.newProject(t, map[string]string{
		".slipway.toml": "[build]\nsteps = [\"mkdir -p dist\", \"cp version dist/version\", \"test ! -f broken\"]\nartifacts = [\"dist/\"]\n",
		"version":       "v1\n",
	})
	alice.mustGit(t, src, "remote", "add", "slipway", "ssh://"+addr+"/myproject.git")
	out := alice.mustGit(t, src, "push", "slipway", "HEAD")
	if !strings.Contains(out, "build #1 queued") {
		t.Fatalf("first push does not say a build was queued:\n%s", out)
	}
	d.eventually(t, 2*time.Minute, "staging to get v1 by itself", func() bool { return version("staging") == "v1\n" })
	if builds := mustSSH(t, d, alice, "builds", "myproject"); stLine(builds, "myproject", "main", "passed", "push") == "" {
		t.Errorf("builds after the first push:\n%s", builds)
	}
	if deploys := mustSSH(t, d, alice, "deploys", "myproject", "staging"); stLine(deploys, "staging", "succeeded", "auto") == "" {
		t.Errorf("deploys after the first push:\n%s", deploys)
	}
	if version("prod") != "" {
		t.Fatal("prod got the build without a release push")
	}

	out = alice.mustGit(t, src, "push", "slipway", "HEAD:refs/release/prod")
	if !strings.Contains(out, "to prod succeeded") {
		t.Errorf("release push output:\n%s", out)
	}
	if got := version("prod"); got != "v1\n" {
		t.Fatalf("prod after the release push serves %q; want v1", got)
	}

	// A revision whose build fails stays off staging and is refused for prod.
	alice.commit(t, src, "version", "v2\n")
	bad := alice.commit(t, src, "broken", "")
	alice.mustGit(t, src, "push", "-q", "slipway", "HEAD")
	// The wait reads the database (see daemon.store); `builds` shows the
	// result once it has ended.
	dbPath := filepath.Join(work, "slipway-data", "slipway.db")
	if _, err := os.Stat(dbPath); err != nil {
		t.Fatalf("the quick start's database: %v", err)
	}
	db, err := store.Open(t.Context(), dbPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	d.eventually(t, 2*time.Minute, "the broken revision's build to end", func() bool {
		bs, _ := db.ListBuilds(t.Context(), "myproject", 0)
		return slices.ContainsFunc(bs, func(b record.Build) bool { return b.Commit == bad && b.State.Final() })
	})
	if builds := mustSSH(t, d, alice, "builds", "myproject"); stLine(builds, bad[:7], "failed", "test ! -f broken") == "" {
		t.Fatalf("the broken revision's build did not fail at test ! -f broken:\n%s", builds)
	}
	out, err = alice.git(src, "push", "slipway", "HEAD:refs/release/prod")
	if err == nil || !strings.Contains(out, "has no passed build") {
		t.Errorf("release push of a failed revision: %v\n%s", err, out)
	}
	if got := version("prod"); got != "v1\n" {
		t.Errorf("prod after the refused release serves %q; want v1", got)
	}
	if got := version("staging"); got != "v1\n" {
		t.Errorf("staging after the failed build serves %q; want v1", got)
	}
	remote := alice.mustGit(t, src, "ls-remote", "slipway", "refs/release/prod")
	if strings.Contains(remote, bad) {
		t.Errorf("refs/release/prod moved to the failed revision:\n%s", remote)
	}
}
