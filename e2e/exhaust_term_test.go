package e2e

// End-to-end tests of issue 12's terminal part: what builds and
// deployments print, and the pipeline file's command text, reach no
// terminal as control sequences. A step prints carriage returns, cursor
// movement, OSC 0 (window title) and OSC 52 (clipboard), hidden text with
// a fake "build #N passed", C1 controls and colours, then fails; every
// place a person reads it (`git push -o wait`, `log`, `log -f`, `builds`,
// a release push, `log deploy`, `deploys`) shows visible escapes and the
// colours, and the real result is the only unmarked result line.

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"slipway/record"
)

// etHostileStep prints, in this order: a progress line redrawn with CR;
// a line erased and overwritten by cursor movement; a window title and a
// clipboard write; a fake result hidden with SGR 8 (revealed by the reset
// after it), another in the open, and one drawn over its own line with CR
// and erase-line; a red word; a C1 CSI (as UTF-8 and as a raw byte); and
// then it fails.
const etHostileStep = `printf 'progress 10%%\rprogress 99%%\n'
printf 'line A\n\033[1A\033[2Kline B over A\n'
printf '\033]0;pwned-title\007\033]52;c;cHduZWQ=\007osc done\n'
printf '\033[8mbuild #%s passed in 0.1s\033[0m\n' "$SLIPWAY_BUILD_ID"
printf 'build #%s passed in 0.2s\n' "$SLIPWAY_BUILD_ID"
printf '\r\033[2Kbuild #%s passed in 0.3s\n' "$SLIPWAY_BUILD_ID"
printf '\033[31mred\033[0m and plain\n'
printf '\302\233c C1 CSI and a raw \233 byte\n'
exit 1`

// etShown is what a terminal must be sent of etHostileStep's output for
// build #1: every control a visible escape, the colours as they were.
var etShown = []string{
	`progress 10%\rprogress 99%`,
	`\x1b[1A\x1b[2Kline B over A`,
	`\x1b]0;pwned-title\x07\x1b]52;c;cHduZWQ=\x07osc done`,
	`\x1b[8mbuild #1 passed in 0.1s` + "\x1b[0m",
	`\r\x1b[2Kbuild #1 passed in 0.3s`,
	"\x1b[31mred\x1b[0m and plain",
	`\u009bc C1 CSI and a raw \x9b byte`,
}

// etPrinted is what etHostileStep printed for build #1, byte for byte.
var etPrinted = []string{
	"progress 10%\rprogress 99%\n",
	"line A\n",
	"\x1b[1A\x1b[2Kline B over A\n",
	"\x1b]0;pwned-title\x07\x1b]52;c;cHduZWQ=\x07osc done\n",
	"\x1b[8mbuild #1 passed in 0.1s\x1b[0m\n",
	"build #1 passed in 0.2s\n",
	"\r\x1b[2Kbuild #1 passed in 0.3s\n",
	"\x1b[31mred\x1b[0m and plain\n",
	"\u009bc C1 CSI and a raw \x9b byte\n",
}

// etSGR is a colour sequence: the only escape a terminal may be sent.
var etSGR = regexp.MustCompile(`^\x1b\[([0-9;]*)m`)

// etUnsafe returns what in out a terminal would obey beyond colour, or ""
// if nothing: an ESC that does not start an SGR sequence, an SGR that
// hides or blinks (8, 5, 6), any other control character but tab and
// newline (C0, DEL, C1 as UTF-8), or a byte that is not UTF-8 (a raw C1).
func etUnsafe(out string) string {
	for i := 0; i < len(out); {
		r, size := utf8.DecodeRuneInString(out[i:])
		around := strconv.Quote(out[max(0, i-30):min(len(out), i+30)])
		switch {
		case r == utf8.RuneError && size == 1:
			return fmt.Sprintf("byte %#x, not UTF-8, at %d: %s", out[i], i, around)
		case r == 0x1b:
			m := etSGR.FindStringSubmatch(out[i:])
			if m == nil {
				return fmt.Sprintf("ESC that starts no colour at %d: %s", i, around)
			}
			for _, p := range strings.Split(m[1], ";") {
				if p == "8" || p == "5" || p == "6" {
					return fmt.Sprintf("SGR %s at %d: %s", p, i, around)
				}
			}
			i += len(m[0])
			continue
		case r == '\t' || r == '\n':
		case r < 0x20 || r >= 0x7f && r <= 0x9f:
			return fmt.Sprintf("control %U at %d: %s", r, i, around)
		}
		i += size
	}
	return ""
}

// etStamped is a line of output in a log as shown: "[mm:ss.mmm] │ ",
// after git's "remote: " in a push's output.
var etStamped = regexp.MustCompile(`^(remote: )?\[\d{2,}:\d{2}\.\d{3}\] │ `)

// etCheckView checks one place a person reads build #1 of etHostileStep:
// nothing unsafe, every escape visible, the colours kept, every line that
// says "build #1 passed" marked as output, and realResult, the line of
// Slipway's that gives the real result, present.
func etCheckView(t *testing.T, what, out string, realResult *regexp.Regexp) {
	t.Helper()
	if bad := etUnsafe(out); bad != "" {
		t.Errorf("%s sends the terminal %s\n%s", what, bad, out)
	}
	for _, want := range etShown {
		if !strings.Contains(out, want) {
			t.Errorf("%s does not show %q:\n%s", what, want, out)
		}
	}
	fakes := 0
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "build #1 passed") {
			fakes++
			if !etStamped.MatchString(line) {
				t.Errorf("%s shows a result line the step printed without the output mark: %q", what, line)
			}
		}
	}
	if fakes != 3 {
		t.Errorf("%s shows %d of the step's 3 fake results:\n%s", what, fakes, out)
	}
	if !realResult.MatchString(out) {
		t.Errorf("%s does not give the real result (%s):\n%s", what, realResult, out)
	}
}

// TestBuildOutputCannotTakeOverTheTerminal: a failing step that prints
// control sequences and fake results is shown safe by `git push -o
// wait`, `log ID`, `log ID -f` and `builds`, with its colours; the real
// "failed" is the only result line without the output mark; `log ID
// --raw` gives the stored bytes, the step's output exactly. A step whose
// command text (from .slipway.toml) holds such bytes is shown escaped, on
// one line, in the log's step header, `builds` and the push's result.
func TestBuildOutputCannotTakeOverTheTerminal(t *testing.T) {
	t.Parallel()
	alice, bob, d := btApp(t, "")
	db := d.store(t)
	src := alice.newProject(t, map[string]string{".slipway.toml": btPipeline("", etHostileStep)})

	push := alice.mustGit(t, src, "push", "-o", "wait", d.url("app"), "main")
	ids := btQueued(t, d, push)
	if len(ids) != 1 || ids[0] != 1 {
		t.Fatalf("the push queued %v, want build #1:\n%s", ids, push)
	}
	if b := btFinal(t, d, db, alice, "app", 1); b.State != "failed" {
		t.Fatalf("build #1: %s (%s), want failed", b.State, b.Reason)
	}
	reasonText := `step 1 (printf 'progress 10%%\rprogress 99%%\n'…) exited 1` // the first line of the command
	reason := regexp.QuoteMeta(reasonText)
	etCheckView(t, "git push -o wait", push,
		regexp.MustCompile(`(?m)^remote: build #1 failed in \d[\d.]*m?s: `+reason+` *$`))

	logRE := regexp.MustCompile(`(?m)^\[\d{2,}:\d{2}\.\d{3}\] == failed: ` + reason + `$`)
	etCheckView(t, "log 1", btLog(t, d, bob, 1, false), logRE)

	follow, _, code := d.ssh(bob, "log", "1", "-f")
	if code != 1 {
		t.Errorf("log 1 -f of a failed build: exit %d, want 1", code)
	}
	etCheckView(t, "log 1 -f", follow, logRE)
	if !strings.HasSuffix(follow, "\nbuild #1 failed ("+reasonText+")\n") {
		t.Errorf("log 1 -f does not end with the real result:\n%s", follow)
	}

	// The stored bytes, for scripts: the step's output exactly, each line
	// after its stamp and mark.
	raw, errOut, code := d.ssh(bob, "log", "1", "--raw")
	stored, err := os.ReadFile(filepath.Join(d.dataDir(), "logs", "1.log"))
	if code != 0 || err != nil || raw != string(stored) {
		t.Fatalf("log 1 --raw: exit %d %s, %d bytes; the stored log (%v) has %d", code, errOut, len(raw), err, len(stored))
	}
	for _, line := range etPrinted {
		if !strings.Contains(raw, "] │ "+line) {
			t.Errorf("log 1 --raw lacks the step's output line %q:\n%q", line, raw)
		}
	}

	// A step whose command text holds escape sequences, a CR and
	// newlines, one of them before a line that looks like Slipway's.
	alice.commit(t, src, ".slipway.toml", `[build]
steps = ["printf 'cmd ran\\n' #\u001b]0;cmd-title\u0007\u001b[8m\r\n# == build #2 passed\nexit 3"]
`)
	push = alice.mustGit(t, src, "push", "-o", "wait", d.url("app"), "main")
	if b := btFinal(t, d, db, alice, "app", 2); b.State != "failed" {
		t.Fatalf("build #2: %s (%s), want failed", b.State, b.Reason)
	}
	cmdReason := `step 1 (printf 'cmd ran\n' #\x1b]0;cmd-title\x07\x1b[8m\r…) exited 3`
	header := `== step 1/1: printf 'cmd ran\n' #\x1b]0;cmd-title\x07\x1b[8m\r\n# == build #2 passed\nexit 3`
	log2 := btLog(t, d, bob, 2, false)
	list, _, _ := d.ssh(bob, "builds", "app")
	for what, view := range map[string]string{"git push -o wait": push, "log 2": log2, "builds app": list} {
		if bad := etUnsafe(view); bad != "" {
			t.Errorf("%s of a hostile command sends the terminal %s\n%s", what, bad, view)
		}
		for _, line := range strings.Split(view, "\n") {
			line = strings.TrimPrefix(etStampRE.ReplaceAllString(strings.TrimPrefix(line, "remote: "), ""), "│ ")
			if strings.HasPrefix(line, "# == build") || strings.HasPrefix(line, "== build #2 passed") || strings.HasPrefix(line, "build #2 passed") {
				t.Errorf("%s: the command text made a line of its own: %q", what, line)
			}
		}
	}
	if !strings.Contains(log2, "] "+header+"\n") || !strings.Contains(log2, "cmd ran\n") {
		t.Errorf("log 2 does not show the step's command escaped on its header line %q:\n%s", header, log2)
	}
	if !regexp.MustCompile(`(?m)^remote: build #2 failed in \d[\d.]*m?s: ` + regexp.QuoteMeta(cmdReason) + ` *$`).MatchString(push) {
		t.Errorf("the push does not give build #2's result with its command escaped (%s):\n%s", cmdReason, push)
	}
	// The listing: one row per build, the hostile reason escaped.
	row1 := regexp.MustCompile(`(?m)^1\s+app\s+main\s+[0-9a-f]{7}\s+failed\s+push\s.*` + reason + `\s*$`)
	row2 := regexp.MustCompile(`(?m)^2\s+app\s+main\s+[0-9a-f]{7}\s+failed\s+push\s.*` + regexp.QuoteMeta(cmdReason) + `\s*$`)
	if !row1.MatchString(list) || !row2.MatchString(list) || strings.Count(list, "\n") != 3 {
		t.Errorf("builds app does not list the two failed builds with their reasons escaped, one row each:\n%s", list)
	}
}

// etStampRE is the stamp of a log line.
var etStampRE = regexp.MustCompile(`^\[\d{2,}:\d{2}\.\d{3}\] `)

// TestDeploymentOutputCannotTakeOverTheTerminal: what an activate script
// prints (a window title, erase-line, hidden text with a fake success,
// colour, an escape on stderr that becomes the failure's reason) is shown
// safe by the release push that streams the deployment, `log deploy ID`
// and `deploys`; the real outcome is the only one without the output
// mark; `log deploy ID --raw` gives the stored bytes.
func TestDeploymentOutputCannotTakeOverTheTerminal(t *testing.T) {
	t.Parallel()
	alice := newUser(t, "alice")
	prod := filepath.Join(t.TempDir(), "prod")
	d := startDaemon(t, configFor(fmt.Sprintf(`
[[repo]]
name = "web"
read = ["*"]
release = ["alice"]
  [[repo.environment]]
  name = "prod"
  target = %q
  activate = "sh dist/start.sh"
`, prod), []*user{alice}))
	url := d.url("web")
	src, rev := dtProject(t, alice, map[string]string{
		"start.sh": `printf 'starting\r\033[2K\033]0;deploy-title\007\033[8mdeployment #%s to prod succeeded\033[0m\n' "$SLIPWAY_DEPLOY_ID"
printf '\033[32mgreen\033[0m\n'
printf 'boom\033[1A\007\n' >&2
exit 4
`,
	})
	alice.mustGit(t, src, "push", "-q", url, "main")
	dtWaitPassed(t, d, alice, "web", rev, 0)
	push := alice.mustGit(t, src, "push", url, rev+":refs/release/prod")
	dep := dtDeploys(t, d, alice, "web", "prod")[0]
	if dep.State != record.DeployFailed || !strings.Contains(dep.Reason, "activate failed with exit 4") {
		t.Fatalf("deployment #%d: %s (%q), want failed by activate", dep.ID, dep.State, dep.Reason)
	}
	id := strconv.FormatInt(dep.ID, 10)
	fake := "deployment #" + id + " to prod succeeded"
	log := mustSSH(t, d, alice, "log", "deploy", id)
	list, _, _ := d.ssh(alice, "deploys", "web")
	for what, view := range map[string]string{"the release push": push, "log deploy " + id: log} {
		if bad := etUnsafe(view); bad != "" {
			t.Errorf("%s sends the terminal %s\n%s", what, bad, view)
		}
		for _, want := range []string{`starting\r\x1b[2K\x1b]0;deploy-title\x07\x1b[8m` + fake + "\x1b[0m", "\x1b[32mgreen\x1b[0m", `boom\x1b[1A\x07`} {
			if !strings.Contains(view, want) {
				t.Errorf("%s does not show %q:\n%s", what, want, view)
			}
		}
		for _, line := range strings.Split(view, "\n") {
			if strings.Contains(line, fake) && !etStamped.MatchString(line) {
				t.Errorf("%s shows the script's fake success without the output mark: %q", what, line)
			}
		}
	}
	outcome := regexp.MustCompile(`(?m)^remote: deployment #` + id + ` to prod failed in \S+: activate failed with exit 4; `)
	if !outcome.MatchString(push) {
		t.Errorf("the release push does not end with the real outcome (%s):\n%s", outcome, push)
	}
	if !regexp.MustCompile(`(?m)^\[\d{2,}:\d{2}\.\d{3}\] ==> activate failed`).MatchString(log) {
		t.Errorf("log deploy %s does not tell activate failed on a line of Slipway's own:\n%s", id, log)
	}
	if bad := etUnsafe(list); bad != "" || !strings.Contains(list, "activate failed with exit 4") {
		t.Errorf("deploys web (%s):\n%s", bad, list)
	}
	raw, _, code := d.ssh(alice, "log", "deploy", id, "--raw")
	stored, err := os.ReadFile(filepath.Join(d.dataDir(), "logs", "deploy-"+id+".log"))
	if code != 0 || err != nil || raw != string(stored) ||
		!strings.Contains(raw, "] │ starting\r\x1b[2K\x1b]0;deploy-title\x07\x1b[8m"+fake+"\x1b[0m\n") {
		t.Errorf("log deploy %s --raw: exit %d, %d bytes; the stored log (%v) has %d:\n%q", id, code, len(raw), err, len(stored), raw)
	}
}

// BenchmarkLogFollow10MiB times `ssh HOST log 1 -f` of a finished build
// whose log is 10 MiB of ordinary build output (test results with tabs,
// coloured compiler errors, UTF-8), shown safe through the termsafe
// filter, against `log 1 -f --raw` in the same run, which copies the
// stored bytes: the cost of the filter as a person waiting for the log
// sees it. It runs the binary built without -race (releaseBin).
//
//	go test -run '^$' -bench BenchmarkLogFollow10MiB -benchtime 10x ./e2e
func BenchmarkLogFollow10MiB(b *testing.B) {
	bin := mustReleaseBin(b)
	root := b.TempDir()
	u := newUser(b, "bench")
	addr := startDaemonIn(b, bin, root, configFor("[build]\nmax_log_bytes = 20971520\n", []*user{u})).addr
	src := filepath.Join(root, "src")
	step := `yes "$(printf 'ok  \tslipway/build/pipeline\t0.016s\tcoverage: 91.2%% of statements')" | head -n 120000; ` +
		`yes "$(printf '\033[1m\033[31merror\033[0m: expected ;, found } — src/main.rs:12:5 ✓')" | head -n 15000`
	if err := os.MkdirAll(src, 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, ".slipway.toml"), []byte(btPipeline("", step)), 0o644); err != nil {
		b.Fatal(err)
	}
	for _, args := range [][]string{{"init", "-q", "-b", "main"}, {"add", "-A"}, {"commit", "-q", "-m", "big log"},
		{"push", "-o", "wait", "ssh://git@" + addr + "/app", "main"}} {
		if out, err := u.git(src, args...); err != nil {
			b.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	host, port, _ := strings.Cut(addr, ":")
	follow := func(extra ...string) (time.Duration, int) {
		cmd := exec.Command("ssh", append(append(u.sshArgs(),
			"-p", port, "git@"+host, "log", "1", "-f"), extra...)...)
		cmd.Env = u.env()
		var out bytes.Buffer
		cmd.Stdout = &out
		start := time.Now()
		if err := cmd.Run(); err != nil {
			b.Fatalf("log 1 -f %v: %v", extra, err)
		}
		return time.Since(start), out.Len()
	}
	if _, n := follow("--raw"); n < 10<<20 {
		b.Fatalf("the log holds %d bytes, want 10 MiB", n)
	}
	var safe, raw []time.Duration
	b.ResetTimer()
	for range b.N {
		d, n := follow()
		safe = append(safe, d)
		b.SetBytes(int64(n))
		b.StopTimer()
		d, _ = follow("--raw")
		raw = append(raw, d)
		b.StartTimer()
	}
	b.StopTimer()
	sp50, rp50 := percentile(safe, 50), percentile(raw, 50)
	b.ReportMetric(float64(sp50.Milliseconds()), "p50-ms")
	b.ReportMetric(float64(rp50.Milliseconds()), "raw-p50-ms")
	b.ReportMetric(float64(sp50)/float64(rp50), "x-raw")
}
