package e2e

// End-to-end tests of the web side's live logs, log pages and badges
// (issue 14) against the real binary: a real build in the sandbox
// followed over Server-Sent Events, its deployment, and the badges a
// README would show.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// wlEvent is one Server-Sent Event.
type wlEvent struct {
	id, name string
	data     []string
}

// wlSubscribe opens a live log and returns its events, in a channel
// closed when the stream ends.
func wlSubscribe(t *testing.T, ctx context.Context, url string) <-chan wlEvent {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "text/event-stream; charset=utf-8" ||
		res.Header.Get("X-Accel-Buffering") != "no" || res.Header.Get("Cache-Control") != "no-cache" {
		t.Fatalf("GET %s: %d %v", url, res.StatusCode, res.Header)
	}
	out := make(chan wlEvent, 256)
	go func() {
		defer close(out)
		defer res.Body.Close()
		sc := bufio.NewScanner(res.Body)
		sc.Buffer(make([]byte, 0, 4<<10), 1<<20)
		var ev wlEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.data != nil || ev.name != "" {
					out <- ev
				}
				ev = wlEvent{}
			case strings.HasPrefix(line, "id: "):
				ev.id = line[4:]
			case strings.HasPrefix(line, "event: "):
				ev.name = line[7:]
			case strings.HasPrefix(line, "data: "):
				ev.data = append(ev.data, line[6:])
			}
		}
	}()
	return out
}

var wlLineRE = regexp.MustCompile(`^<span class="l [os]" id="L(\d+)">`)

// wlBadge fetches a badge and returns its text ("build: passing").
func wlBadge(t *testing.T, url string) (int, string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		return res.StatusCode, ""
	}
	var svg struct {
		Label string `xml:"aria-label,attr"`
	}
	if err := xml.Unmarshal(body, &svg); err != nil || res.Header.Get("Content-Type") != "image/svg+xml; charset=utf-8" ||
		!strings.HasPrefix(res.Header.Get("Cache-Control"), "no-cache") {
		t.Fatalf("GET %s: not an uncached SVG badge (%v): %v\n%s", url, err, res.Header, body)
	}
	return res.StatusCode, svg.Label
}

// TestWebLiveLogAndBadges: a build running in the sandbox is followed
// from its log page: the page shows the lines so far (coloured, a
// <script> a step printed shown as text), the live stream brings the
// lines the step writes after, then the end with the state, and the raw
// download is what `log ID --raw` prints. The README badges then say
// passing and which commit staging runs; a repository that is not public
// has no badge for an anonymous reader.
func TestWebLiveLogAndBadges(t *testing.T) {
	t.Parallel()
	alice := newUser(t, "alice")
	staging := filepath.Join(t.TempDir(), "staging")
	d := btStartDaemon(t, configFor(fmt.Sprintf(`
[http]
listen = "127.0.0.1:0"

[[repo]]
name = "app"
public = true
write = ["alice"]
  [[repo.environment]]
  name = "staging"
  auto = "main"
  target = %q

[[repo]]
name = "secret"
write = ["alice"]
`, staging), []*user{alice}))
	base := waDashboard(t, d)
	db := d.store(t)
	web := &http.Client{Timeout: 30 * time.Second}

	if code, label := wlBadge(t, base+"/app/badge.svg"); code != http.StatusOK || label != "build: unknown" {
		t.Errorf("the badge before any build: %d %q", code, label)
	}
	src := alice.newProject(t, map[string]string{
		".slipway.toml": btPipeline("cache = true\nartifacts = [\"out/\"]\n",
			`printf '\033[32mgreen <script>alert(1)</script>\n'; echo 'still green'; printf '\033[0mplain\n'; `+
				`touch /cache/started; while [ ! -e /cache/go ]; do sleep 0.05; done; `+
				`for i in 1 2 3; do echo "after the wait $i"; sleep 0.2; done; mkdir -p out; echo hello > out/index.html`),
	})
	id, _ := btPushOne(t, d, alice, src, "main")
	commit := alice.head(t, src)
	d.eventually(t, btBuildTimeout, "the build to start", func() bool { return btExists(d, "started") })

	// The log page while the step waits: the lines so far, in colour,
	// escaped, and the stream to follow.
	page := fmt.Sprintf("%s/builds/%d/log", base, id)
	var body string
	d.eventually(t, 30*time.Second, "the log page to show the step's output", func() bool {
		_, body = waGet(t, web, page)
		return strings.Contains(body, "plain")
	})
	after := regexp.MustCompile(`data-after="(\d+)"`).FindStringSubmatch(body)
	if after == nil || !strings.Contains(body, `<span class="term-fg32">green &lt;script&gt;alert(1)&lt;&#47;script&gt;</span>`) ||
		!strings.Contains(body, `<span class="term-fg32">still green</span>`) || strings.Contains(body, "<script>alert") ||
		!strings.Contains(body, `id="state">running</span>`) || !strings.Contains(body, `<script src="/static/live.js" defer></script>`) {
		t.Fatalf("the log page of running build #%d:\n%s", id, body)
	}
	shown, _ := strconv.ParseInt(after[1], 10, 64)

	// Follow it live from the page's last line, then let the step go on.
	ctx, cancel := context.WithTimeout(t.Context(), btBuildTimeout)
	defer cancel()
	events := wlSubscribe(t, ctx, fmt.Sprintf("%s/builds/%d/log/events?after=%d", base, id, shown))
	btTouch(t, d, "go")
	var lines []string
	next := shown + 1
	var end *wlEvent
	for ev := range events {
		if ev.name == "end" {
			end = &ev
			break
		}
		for _, l := range ev.data {
			m := wlLineRE.FindStringSubmatch(l)
			if n, _ := strconv.ParseInt(m[1], 10, 64); m == nil || n != next {
				t.Fatalf("line %q, want line %d", l, next)
			}
			next++
			lines = append(lines, l)
		}
	}
	all := strings.Join(lines, "\n")
	if end == nil || !strings.HasPrefix(end.data[0], `{"state":"passed","reason":"passed in `) {
		t.Fatalf("the stream ended with %+v, want passed; lines:\n%s", end, all)
	}
	for i := 1; i <= 3; i++ {
		if !strings.Contains(all, fmt.Sprintf("after the wait %d", i)) {
			t.Errorf("the stream lacks line %d written after the wait:\n%s", i, all)
		}
	}
	if !strings.Contains(all, `class="l s"`) || !strings.Contains(all, "passed") || strings.Contains(all, "still green") {
		t.Errorf("the stream has lines from before the page's, or not the result:\n%s", all)
	}

	// The raw download is the stored log, as `log ID --raw` prints it.
	raw, _, _ := d.ssh(alice, "log", strconv.FormatInt(id, 10), "--raw")
	res, err := web.Get(fmt.Sprintf("%s/builds/%d/log.txt", base, id))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if string(got) != raw || res.Header.Get("Content-Disposition") != fmt.Sprintf(`attachment; filename="build-%d.log"`, id) {
		t.Errorf("log.txt (%d bytes, %v) is not `log %d --raw` (%d bytes)", len(got), res.Header, id, len(raw))
	}

	// The badges: passing, and the commit staging runs once the automatic
	// deployment is done.
	if code, label := wlBadge(t, base+"/app/badge.svg?branch=main"); code != http.StatusOK || label != "build: passing" {
		t.Errorf("the badge after the build: %d %q", code, label)
	}
	d.eventually(t, btBuildTimeout, "staging's badge to show the commit", func() bool {
		_, label := wlBadge(t, base+"/app/env/staging/badge.svg")
		return label == "staging: "+commit[:7]
	})
	dep, ok, err := db.LiveDeployment(t.Context(), "app", "staging")
	if err != nil || !ok {
		t.Fatalf("no live deployment on staging: %v", err)
	}
	// The deployment's log page and stream, ended.
	if code, body := waGet(t, web, fmt.Sprintf("%s/deployments/%d/log", base, dep.ID)); code != http.StatusOK ||
		!strings.Contains(body, `id="state">succeeded</span>`) || strings.Contains(body, "live.js") {
		t.Errorf("deployment %d's log page: %d\n%s", dep.ID, code, body)
	}
	var depEnd *wlEvent
	for ev := range wlSubscribe(t, ctx, fmt.Sprintf("%s/deployments/%d/log/events", base, dep.ID)) {
		if ev.name == "end" {
			depEnd = &ev
		}
	}
	if depEnd == nil || !strings.HasPrefix(depEnd.data[0], `{"state":"succeeded"`) {
		t.Errorf("deployment %d's stream ended with %+v", dep.ID, depEnd)
	}

	// What an anonymous reader may not read is not there.
	for _, path := range []string{"/secret/badge.svg", "/secret/env/staging/badge.svg", "/nosuch/badge.svg"} {
		if code, _ := wlBadge(t, base+path); code != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", path, code)
		}
	}
}

// wlBench is a daemon a benchmark runs: its SSH address, its dashboard
// and its pid.
type wlBench struct {
	addr, base string
	pid        int
}

// wlBenchApp runs the release build on a public repository "app" that
// user "bench" writes, waits for its Dashboard line too, and makes bench's
// project on main whose build runs step.
func wlBenchApp(b *testing.B, step string) (d wlBench, u *user, src string) {
	b.Helper()
	u = newUser(b, "bench")
	sd := startDaemonBin(b, mustReleaseBin(b), configFor("[http]\nlisten = \"127.0.0.1:0\"\n\n[[repo]]\nname = \"app\"\npublic = true\nwrite = [\"bench\"]\n", []*user{u}))
	src = u.newProject(b, map[string]string{".slipway.toml": btPipeline("", step)})
	return wlBench{addr: sd.addr, base: waDashboard(b, sd), pid: sd.proc.cmd.Process.Pid}, u, src
}

// wlPushBuild pushes main of src to d's app, after a new commit from the
// second round on, and returns the id of the build the push queued.
func wlPushBuild(b *testing.B, d wlBench, u *user, src string, round int) string {
	b.Helper()
	if round > 0 {
		u.commit(b, src, "n", strconv.Itoa(round))
	}
	out := u.mustGit(b, src, "push", "ssh://git@"+d.addr+"/app", "HEAD:main")
	m := btQueuedRE.FindStringSubmatch(out)
	if m == nil {
		b.Fatalf("the push queued no build:\n%s", out)
	}
	return m[1]
}

// wlRSS is the resident memory of process pid, in bytes.
func wlRSS(b *testing.B, pid int) int64 {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^VmRSS:\s+(\d+) kB`).FindSubmatch(status)
	if m == nil {
		b.Fatalf("no VmRSS in /proc/%d/status", pid)
	}
	kb, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return kb << 10
}

// wlStampRE finds the time a step wrote a line at, in its text.
var wlStampRE = regexp.MustCompile(`t=(\d{19})`)

// wlLatencies reads lines from r until it ends and returns, for each line
// holding t=<ns>, how long after that time it was read.
func wlLatencies(r io.Reader) []time.Duration {
	var ds []time.Duration
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4<<10), 1<<20)
	for sc.Scan() {
		now := time.Now()
		if m := wlStampRE.FindStringSubmatch(sc.Text()); m != nil {
			ns, _ := strconv.ParseInt(m[1], 10, 64)
			ds = append(ds, now.Sub(time.Unix(0, ns)))
		}
	}
	return ds
}

// BenchmarkWebLiveLog times how soon a line a step writes reaches the
// people following the build: over the web side's live log (SSE) and,
// as the baseline in the same run, over `ssh HOST log ID -f`. Both
// follow the same build at once; the step writes a line holding the time
// (date +%s%N) every 30 ms. It runs the binary built without -race, and
// reports the p50 and p90 of each and the ratio of the p50s.
//
//	go test -run '^$' -bench BenchmarkWebLiveLog -benchtime 5x ./e2e
func BenchmarkWebLiveLog(b *testing.B) {
	d, u, src := wlBenchApp(b, `for i in $(seq 1 100); do echo "t=$(date +%s%N)"; sleep 0.03; done`)
	host, port, _ := strings.Cut(d.addr, ":")
	var web, ssh []time.Duration
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		id := wlPushBuild(b, d, u, src, i)
		b.StartTimer()
		res, err := http.Get(d.base + "/builds/" + id + "/log/events")
		if err != nil {
			b.Fatal(err)
		}
		cmd := exec.Command("ssh", append(u.sshArgs(), "-p", port, "git@"+host, "log", id, "-f")...)
		cmd.Env = u.env()
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			b.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		viaSSH := make(chan []time.Duration)
		go func() { viaSSH <- wlLatencies(stdout) }()
		w := wlLatencies(res.Body)
		res.Body.Close()
		s := <-viaSSH
		cmd.Wait()
		if len(w) < 100 || len(s) < 100 {
			b.Fatalf("build %s: %d lines over SSE, %d over SSH, want 100 each", id, len(w), len(s))
		}
		// The first lines were written before the followers came.
		web, ssh = append(web, w[10:]...), append(ssh, s[10:]...)
	}
	b.StopTimer()
	wp50, sp50 := percentile(web, 50), percentile(ssh, 50)
	b.ReportMetric(float64(wp50.Microseconds())/1000, "sse-p50-ms")
	b.ReportMetric(float64(percentile(web, 90).Microseconds())/1000, "sse-p90-ms")
	b.ReportMetric(float64(sp50.Microseconds())/1000, "ssh-p50-ms")
	b.ReportMetric(float64(percentile(ssh, 90).Microseconds())/1000, "ssh-p90-ms")
	b.ReportMetric(float64(wp50)/float64(sp50), "x-ssh")
}

// BenchmarkWebLiveFollowers measures the daemon's resident memory as 200
// people follow one running build's live log: before they come (one
// follower already there) and at its highest while the 200 follow. The
// followers are bare HTTP/1.0 clients in the benchmark's process. It runs
// the binary built without -race (releaseBin: the race detector's shadow
// memory would be most of what is measured) and reports the largest
// growth in MB (the first round's: the runtime keeps the memory it took).
//
//	go test -run '^$' -bench BenchmarkWebLiveFollowers -benchtime 1x ./e2e
func BenchmarkWebLiveFollowers(b *testing.B) {
	const followers = 200
	d, u, src := wlBenchApp(b, `for i in $(seq 1 160); do echo "line $i of a build's output, as long as a test's line usually is"; sleep 0.05; done`)
	var grew []float64
	for i := range b.N {
		id := wlPushBuild(b, d, u, src, i)
		path := "/builds/" + id + "/log/events"
		addr := strings.TrimPrefix(d.base, "http://")
		first := make(chan struct{})
		go wlRawFollow(addr, path, func() { close(first) })
		<-first
		time.Sleep(time.Second) // the build runs, the one follower follows
		before := wlRSS(b, d.pid)
		peak := before
		var connected sync.WaitGroup
		connected.Add(followers)
		type result struct {
			lines int
			end   bool
		}
		results := make(chan result, followers)
		for range followers {
			go func() {
				n, end := wlRawFollow(addr, path, connected.Done)
				results <- result{n, end}
			}()
		}
		connected.Wait()
		ended := 0
		tick := time.NewTicker(50 * time.Millisecond)
		for ended < followers {
			select {
			case r := <-results:
				if !r.end || r.lines == 0 {
					b.Fatalf("a follower got %d events and end %v", r.lines, r.end)
				}
				ended++
			case <-tick.C:
				peak = max(peak, wlRSS(b, d.pid))
			}
		}
		tick.Stop()
		grew = append(grew, float64(peak-before)/(1<<20))
		b.Logf("build %s: daemon RSS %.1f MB with one follower, %.1f MB at most with %d more", id, float64(before)/(1<<20), float64(peak)/(1<<20), followers)
	}
	// The first round's growth is the one that counts: the Go runtime
	// keeps what it took from the system, so later rounds start higher.
	b.ReportMetric(slices.Max(grew), "rss-growth-MB")
}

// wlRawFollow follows a live log as an HTTP/1.0 client with a 4 KiB
// buffer, calls connected once the answer's headers came, and returns how
// many events with lines it got and whether the end came.
func wlRawFollow(addr, path string, connected func()) (events int, end bool) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		connected()
		return 0, false
	}
	defer c.Close()
	fmt.Fprintf(c, "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n", path, addr)
	r := bufio.NewReaderSize(c, 4<<10)
	headers := true
	for {
		line, err := r.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			if headers {
				connected()
			}
			return events, end
		}
		switch {
		case headers && string(line) == "\r\n":
			headers = false
			connected()
		case bytes.HasPrefix(line, []byte("id: ")):
			events++
		case bytes.HasPrefix(line, []byte("event: end")):
			end = true
		}
	}
}

// TestWebPagesSignedIn: against the real binary, a writer signed in with
// `ssh login` sees a running build with its Cancel button, and the form's
// POST (with the page's CSRF token) cancels it; the repository page
// lists it cancelled, the environment page shows the release a push to
// refs/release/prod made live, and the push page who pushed it with
// which key. A reader sees the pages but no button; without the token,
// nothing is cancelled.
func TestWebPagesSignedIn(t *testing.T) {
	t.Parallel()
	alice, bob := newUser(t, "alice"), newUser(t, "bob")
	prod := filepath.Join(t.TempDir(), "prod")
	d := btStartDaemon(t, configFor(fmt.Sprintf(`
[http]
listen = "127.0.0.1:0"

[[repo]]
name = "team/app"
read = ["bob"]
write = ["alice"]
release = ["alice"]
  [[repo.environment]]
  name = "prod"
  target = %q
`, prod), []*user{alice}, bob))
	base := waDashboard(t, d)
	signIn := func(u *user) *http.Client {
		link, _ := waLoginLink(t, d, u, base)
		jar, _ := cookiejar.New(nil)
		c := &http.Client{Jar: jar, Timeout: 2 * time.Minute}
		if status, body := waGet(t, c, link); status != http.StatusOK || !strings.Contains(body, "signed in as "+u.name) {
			t.Fatalf("open %s's login link: %d\n%s", u.name, status, body)
		}
		return c
	}
	browser, reader := signIn(alice), signIn(bob)

	src := alice.newProject(t, map[string]string{
		".slipway.toml": btPipeline("cache = true\nartifacts = [\"out/\"]\n",
			`mkdir -p out; echo hello > out/index.html; if [ "$SLIPWAY_BRANCH" = slow ]; then touch /cache/started; while [ ! -e /cache/go ]; do sleep 0.05; done; fi`),
	})
	url := "ssh://git@" + d.addr + "/team/app"
	out := alice.mustGit(t, src, "push", "-o", "wait", url, "main")
	passed := btQueued(t, d, out)
	rev := alice.head(t, src)
	out = alice.mustGit(t, src, "push", url, "HEAD:refs/heads/slow")
	slow := btQueued(t, d, out)
	if len(passed) != 1 || len(slow) != 1 {
		t.Fatalf("pushes queued %v and %v", passed, slow)
	}
	d.eventually(t, btBuildTimeout, "the slow build to start", func() bool {
		var found bool
		filepath.WalkDir(filepath.Join(d.dataDir(), "build", "cache"), func(p string, e fs.DirEntry, err error) error {
			found = found || err == nil && e.Name() == "started"
			return nil
		})
		return found
	})

	buildPage := fmt.Sprintf("%s/builds/%d", base, slow[0])
	status, body := waGet(t, browser, buildPage)
	m := regexp.MustCompile(`<form method="post" action="(/builds/\d+/cancel)"><input type="hidden" name="csrf" value="([^"]+)">`).FindStringSubmatch(body)
	if status != http.StatusOK || m == nil || !strings.Contains(body, `id="state">running</span>`) {
		t.Fatalf("the running build's page for its writer: %d\n%s", status, body)
	}
	if _, body := waGet(t, reader, buildPage); strings.Contains(body, "<form method=\"post\" action=\"/builds") {
		t.Errorf("a reader sees a button:\n%s", body)
	}
	post := func(c *http.Client, csrf string) *http.Response {
		res, err := c.PostForm(base+m[1], map[string][]string{"csrf": {csrf}})
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res
	}
	if res := post(browser, "forged"); res.StatusCode != http.StatusForbidden {
		t.Errorf("POST cancel with a forged token: %d", res.StatusCode)
	}
	if b := btBuildByID(t, d, alice, "team/app", slow[0]); b.State != "running" {
		t.Fatalf("build #%d is %s after a refused cancel", slow[0], b.State)
	}
	// The form's POST, followed to the build's page as a browser does.
	res := post(browser, m[2])
	if res.StatusCode != http.StatusOK || res.Request.URL.Path != fmt.Sprintf("/builds/%d", slow[0]) {
		t.Fatalf("POST cancel: %d, ended at %s", res.StatusCode, res.Request.URL)
	}
	if b := btBuildByID(t, d, alice, "team/app", slow[0]); b.State != "cancelled" || b.Reason != "cancelled by alice" {
		t.Fatalf("build #%d after the button: %s (%s)", slow[0], b.State, b.Reason)
	}
	if _, body := waGet(t, reader, base+"/team/app?state=cancelled"); !strings.Contains(body, fmt.Sprintf(`<a href="/builds/%d">#%d</a>`, slow[0], slow[0])) ||
		strings.Contains(body, fmt.Sprintf(`<a href="/builds/%d">#%d</a></td>`, passed[0], passed[0])) {
		t.Errorf("the repository page's cancelled builds:\n%s", body)
	}

	// The passed build's page tells its releaser how to release it, and
	// that the gate would let it through; the release then shows on the
	// environment's page.
	_, body = waGet(t, browser, fmt.Sprintf("%s/builds/%d", base, passed[0]))
	cmd := fmt.Sprintf("git push ssh://%s/team/app.git %s:refs/release/prod", d.addr, rev)
	if !strings.Contains(body, "<code>"+cmd+"</code>") || !strings.Contains(body, "would let it through") || !strings.Contains(body, `download>out/index.html</a>`) {
		t.Fatalf("the passed build's page for its releaser:\n%s", body)
	}
	out = alice.mustGit(t, src, "push", url, rev+":refs/release/prod")
	if !strings.Contains(out, "succeeded") {
		t.Fatalf("the release push:\n%s", out)
	}
	_, body = waGet(t, reader, base+"/team/app/env/prod")
	if !strings.Contains(body, "<dt>Commit</dt><dd><code>"+rev+"</code></dd>") || !strings.Contains(body, "release by alice") || !strings.Contains(body, "<strong>live</strong>") {
		t.Errorf("the environment page after the release:\n%s", body)
	}
	push := regexp.MustCompile(`<a href="/pushes/(\d+)">push #\d+</a>`).FindStringSubmatch(body)
	if push == nil {
		t.Fatalf("the environment page links no push:\n%s", body)
	}
	_, body = waGet(t, reader, base+"/pushes/"+push[1])
	if !strings.Contains(body, "<dd>alice</dd>") || !strings.Contains(body, "<dd><code>"+strings.ReplaceAll(alice.fingerprint(t), "+", "&#43;")+"</code></dd>") ||
		!strings.Contains(body, "<td><code>refs/release/prod</code></td>") {
		t.Errorf("the release push's page:\n%s", body)
	}
}
