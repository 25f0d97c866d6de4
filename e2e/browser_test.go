package e2e

// A real browser against the real binary (issue 14): Debian's chromium,
// headless, driven over the DevTools protocol by chromedp. What a person
// at a browser would do and see: sign in with the link `ssh login`
// prints, watch a running build's log grow without reloading, cancel it
// with the page's button, see a release live on its environment's page.
// With SLIPWAY_SCREENSHOTS=1 the run also saves the main pages into
// docs/screenshots/ for the README. Everything here is prefixed br so that
// it cannot collide with the other files of this package.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"slipway/record"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// brScreenshotsEnv names the variable that makes the test save its
// screenshots; CI leaves it unset so that a run does not change the tree.
const brScreenshotsEnv = "SLIPWAY_SCREENSHOTS"

// brScreenshotDir is where the screenshots go, from the package's folder
// (go test runs a test in its package's folder).
const brScreenshotDir = "../docs/screenshots"

// brTimeout bounds one step in the browser (a navigation, waiting for a
// text) on a loaded 2-core machine.
const brTimeout = time.Minute

// brBrowser is one headless chromium, with a fresh profile, for one test.
type brBrowser struct {
	t   *testing.T
	ctx context.Context

	mu sync.Mutex
	// problems are the page's script exceptions and console errors (a
	// script the page's CSP blocked, a failed request): a person would
	// see a page that does not work, so the test fails on them. A request
	// off loopback is one too.
	problems []string
}

// brStartBrowser starts chromium for t; it is stopped when t ends.
func brStartBrowser(t *testing.T) *brBrowser {
	t.Helper()
	exe, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("the browser tests need Debian's chromium (apt-get install chromium; .ci/run installs it): %v", err)
	}
	profile := t.TempDir() // before the browser's cleanup: removed after it stops
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1280, 800),
		// Chromium refuses to start as root with its sandbox on, and CI
		// runs the tests as root. The pages it opens are the daemon's own
		// on loopback, not the web's.
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		// Loopback only: every name but 127.0.0.1 (the daemon's address)
		// fails to resolve, and the services a browser calls by itself
		// are off.
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-domain-reliability", true),
		chromedp.Flag("no-pings", true),
	)
	b := &brBrowser{t: t}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf), chromedp.WithListener(b.listen))
	t.Cleanup(func() {
		cancelCtx()
		cancelAlloc() // waits for chromium to exit
	})
	b.ctx = ctx
	// The first run starts chromium and opens its tab; it must not have a
	// timeout of its own, which would stop the browser with it.
	start := time.Now()
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	t.Logf("chromium started in %v", time.Since(start).Round(time.Millisecond))
	return b
}

// listen keeps the page's problems. It runs on the goroutine that reads
// the tab's messages: it only appends.
func (b *brBrowser) listen(ev any) {
	switch ev := ev.(type) {
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		what := d.Text
		if d.Exception != nil {
			what += " " + d.Exception.Description
		}
		b.problem(fmt.Sprintf("script exception at %s:%d: %s", d.URL, d.LineNumber, what))
	case *log.EventEntryAdded:
		// The browser asks for /favicon.ico by itself; the dashboard has
		// none, and a person sees nothing of that 404.
		if ev.Entry.Level == log.EntryLevelError && !strings.HasSuffix(ev.Entry.URL, "/favicon.ico") {
			b.problem(fmt.Sprintf("console error (%s): %s %s", ev.Entry.Source, ev.Entry.Text, ev.Entry.URL))
		}
	case *network.EventRequestWillBeSent:
		// The pages ask for nothing but the daemon's own.
		if u := ev.Request.URL; !strings.HasPrefix(u, "http://127.0.0.1:") && !strings.HasPrefix(u, "data:") && u != "about:blank" {
			b.problem("a request off loopback: " + u)
		}
	case *runtime.EventConsoleAPICalled:
		if ev.Type == runtime.ConsoleAPICalledTypeError {
			b.problem("console.error from a script")
		}
	}
}

func (b *brBrowser) problem(p string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.problems = append(b.problems, p)
}

// forgetProblems drops the problems so far (a page that is an error on
// purpose).
func (b *brBrowser) forgetProblems() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.problems = nil
}

// checkProblems fails the test if a page had a script exception or a
// console error since the last check.
func (b *brBrowser) checkProblems(where string) {
	b.t.Helper()
	b.mu.Lock()
	ps := b.problems
	b.problems = nil
	b.mu.Unlock()
	if len(ps) > 0 {
		b.t.Errorf("%s: the page reported problems:\n  %s", where, strings.Join(ps, "\n  "))
	}
}

// do runs actions in the tab, within brTimeout, and fails the test on
// an error, saying what it was doing and what the page shows.
func (b *brBrowser) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	brRun(b, what, chromedp.Steps(actions...))
}

// brRun runs one action that returns a value, as do does.
func brRun[T any](b *brBrowser, what string, a chromedp.Action[T]) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, brTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		// What the page shows helps more than "context deadline exceeded".
		tctx, tcancel := context.WithTimeout(b.ctx, 5*time.Second)
		defer tcancel()
		url, _ := chromedp.Run(tctx, chromedp.Location())
		body, _ := chromedp.Run(tctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
		b.t.Fatalf("browser: %s: %v\nat %s the page shows:\n%s", what, err, url, body)
	}
	return v
}

// open loads url and waits for its body.
func (b *brBrowser) open(url string) {
	b.t.Helper()
	b.do("open "+url, chromedp.Navigate(url), chromedp.WaitReady(chromedp.CSS("body")))
}

// click clicks the element that matches the CSS selector sel, as a
// person would (a mouse click where it is), and waits for the page it
// loads.
func (b *brBrowser) click(what, sel string) {
	b.t.Helper()
	brRun(b, "click "+what, chromedp.WaitEvent(page.LoadEventFired, nil, chromedp.Click(chromedp.CSS(sel))))
}

// mark marks the page in the tab; hasMark tells whether the tab still
// shows that page (a reload or a new page has no mark).
func (b *brBrowser) mark() {
	b.t.Helper()
	brRun(b, "mark the page", chromedp.Evaluate[bool](`window.brSamePage = true`))
}

func (b *brBrowser) hasMark() bool {
	b.t.Helper()
	return brRun(b, "read the page's mark", chromedp.Evaluate[bool](`window.brSamePage === true`))
}

// text is what the page shows (its body's rendered text).
func (b *brBrowser) text() string {
	b.t.Helper()
	return brRun(b, "read the page", chromedp.Evaluate[string](`document.body.innerText`))
}

// location is the tab's URL.
func (b *brBrowser) location() string {
	b.t.Helper()
	return brRun(b, "read the location", chromedp.Location())
}

// waitText waits until the page shows want, without doing anything to
// the page: what appears, appears by the page's own doing.
func (b *brBrowser) waitText(what, want string) {
	b.t.Helper()
	js := fmt.Sprintf(`document.body && document.body.innerText.includes(%q)`, want)
	b.do(what, chromedp.Poll[chromedp.Void](js, chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(brTimeout)))
}

// screenshot saves the page as docs/screenshots/<name>.png when
// SLIPWAY_SCREENSHOTS=1.
func (b *brBrowser) screenshot(name string) {
	b.t.Helper()
	if os.Getenv(brScreenshotsEnv) != "1" {
		return
	}
	png := brRun(b, "screenshot "+name, chromedp.FullScreenshot(100)) // quality 100: PNG
	if err := os.MkdirAll(brScreenshotDir, 0o755); err != nil {
		b.t.Fatal(err)
	}
	path := filepath.Join(brScreenshotDir, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("saved %s (%d bytes)", path, len(png))
}

// brBuildScript is the project's one step. It prints a line (with a
// "<b>" that must show as text) and makes dist/. With a SLOW file in the
// commit it then waits for the test's "live.go" file in the build's cache,
// prints a coloured line, and runs until it is cancelled. A script file,
// not the step's text, so the lines the test looks for are not in the
// step's heading in the log.
const brBuildScript = `set -e
echo "br-first-line <b>br-not-bold</b>"
mkdir -p dist
cp -R app/. dist/
if [ -e SLOW ]; then
  touch /cache/live.started
  while [ ! -e /cache/live.go ]; do sleep 0.05; done
  printf '\033[32mbr-second-line\033[0m\n'
  while :; do sleep 1; done
fi
`

// brConfig is the test's repository: alice writes and releases, bob
// reads; passing builds of main go to staging, and prod takes what was
// live on staging. Both are local folders in the data dir.
const brConfig = `
[http]
listen = "127.0.0.1:0"

[[repo]]
name = "app"
read = ["*"]
write = ["alice"]
release = ["alice"]
  [[repo.environment]]
  name = "staging"
  target = "targets/staging"
  auto = "main"
  [[repo.environment]]
  name = "prod"
  target = "targets/prod"
  requires = "staging"
`

// TestBrowser: the scenario of issue 14 in a real browser.
func TestBrowser(t *testing.T) {
	t.Parallel()
	alice, bob := btUsers(t)
	d := btStartDaemon(t, configFor(brConfig, []*user{alice}, bob))
	base := waDashboard(t, d)

	// A first revision builds, passes and goes to staging by itself while
	// the browser starts.
	src := alice.newProject(t, map[string]string{
		".slipway.toml":  "[build]\nsteps = [\"sh build.sh\"]\nartifacts = [\"dist/\"]\ncache = true\n",
		"build.sh":       brBuildScript,
		"app/index.html": "v1\n",
	})
	rev1 := alice.head(t, src)
	alice.mustGit(t, src, "push", "-q", d.url("app"), "main")
	pushed := time.Now()

	br := brStartBrowser(t)

	// Not signed in: the front page says how to sign in and lists nothing
	// (app is not public).
	br.open(base + "/")
	if txt := br.text(); !strings.Contains(txt, "not signed in") || strings.Contains(txt, "app") {
		t.Fatalf("the front page before signing in shows:\n%s", txt)
	}

	// Sign in with the one-time link `ssh login` prints.
	link, _ := waLoginLink(t, d, alice, base)
	start := time.Now()
	br.open(link)
	br.waitText("signed in as alice", "signed in as alice")
	t.Logf("signed in with the link in %v", time.Since(start).Round(time.Millisecond))
	if loc := br.location(); loc != base+"/" {
		t.Errorf("after the sign-in link the browser is at %s, want the front page %s/", loc, base)
	}
	if txt := br.text(); !strings.Contains(txt, "app") {
		t.Errorf("the signed-in front page does not list app:\n%s", txt)
	}
	br.checkProblems("the front page")

	// The link works once: opened again, even in the signed-in browser,
	// it says so.
	br.open(link)
	if txt := br.text(); !strings.Contains(txt, "used already") {
		t.Errorf("the sign-in link opened a second time shows:\n%s", txt)
	}
	br.forgetProblems() // the 410 of that page is a console error

	b1 := dtWaitPassed(t, d, alice, "app", rev1, 0)
	dtWaitDeploy(t, d, alice, "app", "staging", rev1, 0)
	t.Logf("rev1 built and live on staging %v after the push", time.Since(pushed).Round(time.Millisecond))

	// A running build: its page shows the log so far, then a line the
	// step prints later, without a reload.
	alice.commit(t, src, "SLOW", "wait for the test\n")
	id, _ := btPushOne(t, d, alice, src, "main")
	d.eventually(t, btBuildTimeout, "the step to wait for live.go", func() bool { return btExists(d, "live.started") })
	br.open(fmt.Sprintf("%s/builds/%d", base, id))
	br.waitText("the log so far", "br-first-line")
	txt := br.text()
	if !strings.Contains(txt, "running") || !strings.Contains(txt, "<b>br-not-bold</b>") || strings.Contains(txt, "br-second-line") {
		t.Fatalf("the running build's page shows:\n%s", txt)
	}
	if n := brRun(br, "count b elements in the log", chromedp.Evaluate[int](`document.querySelectorAll("#log b").length`)); n != 0 {
		t.Errorf("the log's <b> became %d element(s) of the page; it must show as text", n)
	}
	br.mark()
	start = time.Now()
	btTouch(t, d, "live.go")
	br.waitText("the line printed after the page was loaded", "br-second-line")
	t.Logf("a line printed after the page loaded appeared in it %v after the step was let go", time.Since(start).Round(time.Millisecond))
	if !br.hasMark() {
		t.Errorf("the page was reloaded to show the new line; it must come live")
	}
	// The colour the step printed is the line's colour on the page.
	colours := brRun(br, "read the colours", chromedp.Evaluate[[]string](`(() => {
		const log = document.getElementById("log");
		const el = [...log.querySelectorAll("*")].reverse().find(e => e.textContent === "br-second-line");
		return el ? [getComputedStyle(el).color, getComputedStyle(log).color] : [];
	})()`))
	if len(colours) != 2 || colours[0] == colours[1] {
		t.Errorf("the line printed in green has the log's own colour: %q", colours)
	}
	br.checkProblems("the running build's page")
	br.screenshot("build")

	// Cancel it with the page's button: the answer is the build's page,
	// a new one, that says who cancelled it; the step is stopped.
	start = time.Now()
	br.click("Cancel", `form[action$="/cancel"] button`)
	if br.hasMark() {
		t.Fatalf("the Cancel button did not load a page")
	}
	br.waitText("the build's page to say it was cancelled", "cancelled by alice")
	t.Logf("cancelled with the button in %v", time.Since(start).Round(time.Millisecond))
	if loc := br.location(); loc != fmt.Sprintf("%s/builds/%d", base, id) {
		t.Errorf("after the cancel the browser is at %s, want the build's page", loc)
	}
	if state := brRun(br, "read the state", chromedp.Evaluate[string](`document.getElementById("state").textContent`)); state != "cancelled" {
		t.Errorf("the build's page after the cancel says %q, want cancelled", state)
	}
	if n := brRun(br, "count cancel buttons", chromedp.Evaluate[int](`document.querySelectorAll('form[action$="/cancel"]').length`)); n != 0 {
		t.Errorf("the cancelled build's page still offers to cancel it")
	}
	if b := btBuildByID(t, d, bob, "app", id); b.State != "cancelled" || b.Reason != "cancelled by alice" {
		t.Errorf("after the button, builds --json lists build #%d as %s (%q)", id, b.State, b.Reason)
	}
	br.checkProblems("the cancelled build's page")

	// The passed build's page gives the command that releases it to prod,
	// and says the gate would let it through; that command, run as is,
	// releases it.
	br.open(fmt.Sprintf("%s/builds/%d", base, b1.ID))
	rows := brRows(br, "table.releases")
	var command string
	for _, r := range rows {
		if len(r) == 3 && r[0] == "prod" {
			command = r[1]
			if r[2] != "would let it through" {
				t.Errorf("the release gate of prod, on build #%d's page: %q", b1.ID, r[2])
			}
		}
	}
	args := strings.Fields(command)
	if len(args) != 4 || args[0] != "git" || args[1] != "push" || args[3] != rev1+":refs/release/prod" {
		t.Fatalf("the release command of prod on build #%d's page is %q (releases table %q)", b1.ID, command, rows)
	}
	if out := alice.mustGit(t, src, args[1:]...); !strings.Contains(out, "succeeded") {
		t.Fatalf("%s:\n%s", command, out)
	}
	prod := dtDeploys(t, d, alice, "app", "prod")
	if len(prod) != 1 || prod[0].State != record.DeploySucceeded || prod[0].Commit != rev1 || prod[0].ReleaseID == "" {
		t.Fatalf("after the release push prod has %+v, want one succeeded release of rev1", prod)
	}
	rel := prod[0]

	// The front page and the repository's page show it live on prod.
	br.open(base + "/")
	if txt := br.text(); !strings.Contains(txt, "prod: "+rev1[:7]) {
		t.Errorf("the front page does not show %s live on prod:\n%s", rev1[:7], txt)
	}
	br.checkProblems("the front page")
	br.screenshot("front-page")
	br.click("app", `table.repos a[href="/app"]`)
	br.waitText("the repository's page", "Environments")
	var live []string
	for _, r := range brRows(br, "table") {
		if len(r) > 0 && strings.HasPrefix(r[0], "prod") {
			live = r
		}
	}
	// Environment, rules, deployment and commit, release, artifacts,
	// build, by, since.
	if len(live) != 8 || live[1] != "release pushes; live on staging first" ||
		live[2] != fmt.Sprintf("#%d %s", rel.ID, rev1[:7]) || live[3] != rel.ReleaseID ||
		live[5] != fmt.Sprintf("#%d", b1.ID) || live[6] != "alice" {
		t.Errorf("prod's row on the repository's page is %q; want deployment #%d of %s, release %s, build #%d, by alice",
			live, rel.ID, rev1[:7], rel.ReleaseID, b1.ID)
	}
	br.checkProblems("the repository's page")
	br.screenshot("repository")

	// prod's own page: the release live as recorded, and on the target
	// (as the deployment service lists it there) that release, live.
	br.click("prod", `a[href="/app/env/prod"]`)
	br.waitText("prod's page", "prod of app")
	txt = br.text()
	for _, want := range []string{rev1, rel.ReleaseID, fmt.Sprintf("#%d, release by alice", rel.ID), "live on staging first"} {
		if !strings.Contains(txt, want) {
			t.Errorf("prod's page does not show %q:\n%s", want, txt)
		}
	}
	var onTarget []string
	for _, r := range brRows(br, "table") {
		if len(r) > 1 && r[0] == rel.ReleaseID {
			onTarget = r
		}
	}
	if len(onTarget) < 3 || onTarget[1] != "live" || onTarget[2] != rev1[:7] {
		t.Errorf("prod's page lists release %s on the target as %q, want it live, of %s", rel.ReleaseID, onTarget, rev1[:7])
	}
	br.checkProblems("prod's page")
	br.screenshot("environment")

	// Its deployment, one click away.
	br.click("prod's deployment", fmt.Sprintf(`#live-release a[href="/deployments/%d"]`, rel.ID))
	br.waitText("the deployment's page", fmt.Sprintf("Deployment #%d of app to prod", rel.ID))
	txt = br.text()
	// Its facts, then its log (the last line is the result).
	for _, want := range []string{": succeeded", "release by alice", rel.ReleaseID, rev1,
		fmt.Sprintf("deployment #%d succeeded: release %s is live", rel.ID, rel.ReleaseID)} {
		if !strings.Contains(txt, want) {
			t.Errorf("the deployment's page does not show %q:\n%s", want, txt)
		}
	}
	br.checkProblems("the deployment's page")
	br.screenshot("deployment")
}

// brRows reads the rows of the body of the tables that match sel, each
// cell as its text.
func brRows(b *brBrowser, sel string) [][]string {
	b.t.Helper()
	js := fmt.Sprintf(`[...document.querySelectorAll(%q)].flatMap(t => [...t.querySelectorAll("tbody tr")])
		.map(tr => [...tr.cells].map(td => td.innerText.trim()))`, sel)
	return brRun(b, "read the rows of "+sel, chromedp.Evaluate[[][]string](js))
}
