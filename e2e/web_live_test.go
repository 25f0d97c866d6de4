package e2e

// End-to-end tests of the web side's live logs, log pages and badges
// (issue 14) against the real binary: a real build in the sandbox
// followed over Server-Sent Events, its deployment, and the badges a
// README would show.

import (
	"bufio"
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
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
	db := openStore(t, d)
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
	commit := strings.TrimSpace(alice.mustGit(t, src, "rev-parse", "HEAD"))
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
