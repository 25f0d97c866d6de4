package web

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"slipway/build/logs"
	"slipway/configs"
	"slipway/internal/testutil"
	"slipway/record"
)

// testRuns stands in for build.Service and deploy.Service over a real log
// store: builds' records in memory, their logs real files written by
// logs.Writer and followed by logs.Store.Follow, as the services do.
type testRuns struct {
	dir  string
	logs *logs.Store
	mu   sync.Mutex
	recs map[int64]record.Build
}

func newTestRuns(t testing.TB) *testRuns {
	dir := t.TempDir()
	return &testRuns{dir: dir, logs: logs.NewStore(dir), recs: map[int64]record.Build{}}
}

// start records a running build of repo and opens its log.
func (tr *testRuns) start(t testing.TB, id int64, repo string) *logs.Writer {
	t.Helper()
	w, err := tr.logs.Create(strconv.FormatInt(id, 10), 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	tr.set(record.Build{ID: id, Repo: repo, Ref: "refs/heads/main", State: record.StateRunning})
	return w
}

func (tr *testRuns) set(b record.Build) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.recs[b.ID] = b
}

// finish records the build's end, then closes its log, in the order the
// build worker does.
func (tr *testRuns) finish(t testing.TB, id int64, w *logs.Writer, state record.State) {
	t.Helper()
	w.Printf("== build %s", state)
	tr.mu.Lock()
	b := tr.recs[id]
	b.State = state
	tr.recs[id] = b
	tr.mu.Unlock()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func (tr *testRuns) Get(_ context.Context, id int64) (record.Build, error) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	b, ok := tr.recs[id]
	if !ok {
		return record.Build{}, fmt.Errorf("get build %d: %w", id, record.ErrNotFound)
	}
	return b, nil
}

func (tr *testRuns) Follow(ctx context.Context, id int64, w io.Writer, follow bool) error {
	return tr.logs.Follow(ctx, strconv.FormatInt(id, 10), 0, w, follow)
}

const liveTOML = `
[[user]]
name = "alice"
keys = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGjGZ8k2z3c6Yk4C3WbV7a6i0x8w0bq9bAq7Zp2Qe0rk alice"]
[[repo]]
name = "pub"
public = true
[[repo]]
name = "team/app"
public = true
  [[repo.environment]]
  name = "prod"
  target = "/srv/app"
[[repo]]
name = "priv"
read = ["alice"]
`

func newLiveServer(t testing.TB, o Options) *Server {
	t.Helper()
	cfg, err := configs.Loader{}.Parse([]byte(liveTOML), "test.toml")
	if err != nil {
		t.Fatal(err)
	}
	o.Config = cfg
	if o.Repos == nil {
		o.Repos = fixedRepos{"priv", "pub", "team/app"}
	}
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func listenLoopback(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// event is one Server-Sent Event as a client parses it.
type event struct {
	id, name string
	data     []string
	comment  string
}

// readEvents parses an event stream into events until it ends.
func readEvents(body io.Reader, out chan<- event) error {
	defer close(out)
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 0, 4<<10), 1<<20)
	var ev event
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if ev.data != nil || ev.name != "" || ev.id != "" {
				out <- ev
			}
			ev = event{}
		case strings.HasPrefix(line, ":"):
			out <- event{comment: line}
		default:
			field, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch field {
			case "id":
				ev.id = value
			case "event":
				ev.name = value
			case "data":
				ev.data = append(ev.data, value)
			}
		}
	}
	return sc.Err()
}

var lineID = regexp.MustCompile(`^<span class="l [os]" id="L(\d+)">`)

// lineNumbers returns the numbers of the lines in an event, in order.
func lineNumbers(t testing.TB, ev event) []int64 {
	t.Helper()
	var ns []int64
	for _, d := range ev.data {
		m := lineID.FindStringSubmatch(d)
		if m == nil {
			t.Fatalf("event data is not a log line: %q", d)
		}
		n, _ := strconv.ParseInt(m[1], 10, 64)
		ns = append(ns, n)
	}
	return ns
}

// subscribe opens the live log at url (with Last-Event-ID when last > 0)
// and returns its response and its events.
func subscribe(t testing.TB, ctx context.Context, url string, last int64) (*http.Response, <-chan event) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if last > 0 {
		req.Header.Set("Last-Event-ID", strconv.FormatInt(last, 10))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	evs := make(chan event, 1024)
	go func() {
		defer resp.Body.Close()
		readEvents(resp.Body, evs)
	}()
	return resp, evs
}

// TestLiveLogResumesWithoutGapOrDuplicate: a follower that is cut off
// mid-build and reconnects with Last-Event-ID (as every EventSource does)
// gets every line exactly once, in order, and the colour a line opened
// before the cut goes on after it; the stream ends with the final state.
func TestLiveLogResumesWithoutGapOrDuplicate(t *testing.T) {
	t.Parallel()
	runs := newTestRuns(t)
	s := newLiveServer(t, Options{BuildLogs: runs})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()

	const total = 600 // output lines; red from line 100 of them to line 399
	w := runs.start(t, 7, "pub")
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		for i := 1; i <= total; i++ {
			switch i {
			case 100:
				fmt.Fprintf(w, "\x1b[31mred from here %d\n", i)
			case 400:
				fmt.Fprintf(w, "\x1b[0mplain again %d\n", i)
			default:
				fmt.Fprintf(w, "output line %d\n", i)
			}
			if i%10 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	}()

	ctx, cancel := context.WithCancel(t.Context())
	resp, evs := subscribe(t, ctx, srv.URL+"/builds/7/log/events", 0)
	for k, want := range map[string]string{"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	seen := map[int64]int{}
	var order []int64
	html := map[int64]string{}
	collect := func(ev event) {
		for i, n := range lineNumbers(t, ev) {
			seen[n]++
			order = append(order, n)
			html[n] = ev.data[i]
		}
		if last := order[len(order)-1]; strconv.FormatInt(last, 10) != ev.id {
			t.Errorf("event id %q, its last line %d", ev.id, last)
		}
	}
	var last int64
	for ev := range evs {
		if ev.comment != "" || ev.name != "" {
			continue
		}
		collect(ev)
		last, _ = strconv.ParseInt(ev.id, 10, 64)
		if last >= 150 {
			break
		}
	}
	cancel() // the connection drops mid-build
	for range evs {
	}

	_, evs = subscribe(t, t.Context(), srv.URL+"/builds/7/log/events", last)
	<-wrote
	runs.finish(t, 7, w, record.StatePassed)
	var end *event
	for ev := range evs {
		switch {
		case ev.comment != "":
		case ev.name == "end":
			end = &ev
		default:
			collect(ev)
		}
	}
	if end == nil || end.data[0] != `{"state":"passed","reason":""}` {
		t.Fatalf("end event %+v, want the state passed", end)
	}
	// Lines: the log's header, total output lines, the result line.
	if len(order) != total+2 {
		t.Errorf("got %d lines, want %d", len(order), total+2)
	}
	for i, n := range order {
		if n != int64(i+1) || seen[n] != 1 {
			t.Fatalf("line %d came as line number %d, seen %d times (resumed after %d)", i+1, n, seen[n], last)
		}
	}
	t.Logf("cut off after line %d, resumed from line %d", last, last+1)
	// Output line k is log line k+1 (the header is line 1): red are log
	// lines 101 to 400, and the cut fell among them.
	if last < 101 || last >= 400 {
		t.Fatalf("cut off after line %d, outside the red lines", last)
	}
	for _, n := range []int64{100, 101, last, last + 1, 400, 401} {
		if got, want := strings.Contains(html[n], "term-fg31"), n >= 101 && n <= 400; got != want {
			t.Errorf("line %d red = %v, want %v: %s", n, got, want, html[n])
		}
	}
	if !strings.Contains(html[total+2], `class="l s"`) || !strings.Contains(html[total+2], "== build passed") {
		t.Errorf("the result line is not shown as Slipway's: %s", html[total+2])
	}
}

// TestLiveLogPingsAndEnds: a quiet stream sends a comment every ping
// interval; the server's stop ends every stream at once.
func TestLiveLogPingsAndEnds(t *testing.T) {
	t.Parallel()
	runs := newTestRuns(t)
	s := newLiveServer(t, Options{BuildLogs: runs})
	s.pingEvery = 20 * time.Millisecond
	w := runs.start(t, 3, "pub")
	defer w.Close()

	ln := listenLoopback(t)
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	_, evs := subscribe(t, t.Context(), "http://"+ln.Addr().String()+"/builds/3/log/events", 0)
	pings := 0
	for ev := range evs {
		if ev.comment == ": ping" {
			if pings++; pings == 3 {
				break
			}
		}
	}
	if pings < 3 {
		t.Fatalf("the stream ended after %d pings", pings)
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	for range evs {
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Shutdown with a live log open took %v", took)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("Serve: %v", err)
	}
}

// TestLiveLogRefusals: unknown builds and builds of repositories the
// viewer may not read are the same 404; malformed resume points are 400.
func TestLiveLogRefusals(t *testing.T) {
	t.Parallel()
	runs := newTestRuns(t)
	s := newLiveServer(t, Options{BuildLogs: runs})
	w := runs.start(t, 1, "priv")
	runs.finish(t, 1, w, record.StatePassed)
	w = runs.start(t, 2, "pub")
	runs.finish(t, 2, w, record.StateFailed)

	for _, path := range []string{"/builds/1/log/events", "/builds/99/log/events", "/builds/abc/log/events", "/builds/-1/log/events",
		"/builds/1/log.txt", "/builds/1/log", "/deployments/2/log/events"} {
		code, h, body := get(t, s.Handler(), path)
		if code != http.StatusNotFound || !strings.HasPrefix(h.Get("Content-Type"), "text/html") || !strings.Contains(body, "or nothing you may see") {
			t.Errorf("GET %s: %d %q", path, code, h.Get("Content-Type"))
		}
	}
	for _, path := range []string{"/builds/2/log/events?after=x", "/builds/2/log/events?after=-3", "/builds/2/log/events?after=99999999999999999999",
		"/builds/2/log?lines=0", "/builds/2/log?lines=many", "/builds/2/log?lines=100001"} {
		code, _, body := get(t, s.Handler(), path)
		if code != http.StatusBadRequest {
			t.Errorf("GET %s: %d, want 400\n%s", path, code, body)
		}
	}
	// A finished build: all its lines, then the end, at once.
	code, h, body := get(t, s.Handler(), "/builds/2/log/events")
	if code != http.StatusOK || h.Get("Content-Type") != "text/event-stream; charset=utf-8" ||
		!strings.Contains(body, "== build failed") || !strings.HasSuffix(body, "event: end\ndata: {\"state\":\"failed\",\"reason\":\"\"}\n\n") {
		t.Errorf("GET /builds/2/log/events: %d\n%s", code, body)
	}
	// Resuming after the last line: nothing but the end.
	code, _, body = get(t, s.Handler(), "/builds/2/log/events?after=2")
	if code != http.StatusOK || strings.Contains(body, "data: <") || !strings.Contains(body, "event: end") {
		t.Errorf("GET /builds/2/log/events?after=2: %d\n%s", code, body)
	}
}

// TestSlowFollowerIsDropped: a follower that stops reading does not hold
// the others or the build: once it is hubQueue events behind, the hub
// drops it, and its request reads what it missed from the file; when the
// client reads again, it gets every line once, in order, and the end.
func TestSlowFollowerIsDropped(t *testing.T) {
	t.Parallel()
	runs := newTestRuns(t)
	var logged testutil.Buffer
	s := newLiveServer(t, Options{BuildLogs: runs, Logger: slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	w := runs.start(t, 4, "pub")
	fmt.Fprintln(w, "first")

	// The slow follower: connected, then reading nothing.
	slow, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	fmt.Fprintf(slow, "GET /builds/4/log/events HTTP/1.0\r\nHost: x\r\n\r\n")
	// A follower that keeps up, from the same moment.
	_, fast := subscribe(t, t.Context(), srv.URL+"/builds/4/log/events", 0)
	// Enough events to fill the slow one's socket buffers (on loopback,
	// up to a few MB) and its queue.
	const total = 16000
	filler := strings.Repeat("fills buffers ", 70)
	for i := range total {
		fmt.Fprintf(w, "%06d %s\n", i, filler)
	}
	runs.finish(t, 4, w, record.StatePassed)
	var fastLines []int64
	ended := false
	for ev := range fast {
		if ev.name == "end" {
			ended = true
		} else if ev.id != "" {
			fastLines = append(fastLines, lineNumbers(t, ev)...)
		}
	}
	if !ended || !consecutive(fastLines, total+3) {
		t.Fatalf("the fast follower got %d lines (end %v) while the slow one read nothing", len(fastLines), ended)
	}

	// The slow follower reads now: all of it.
	var lines []int64
	sawEnd := false
	br := bufio.NewReader(slow)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			break
		}
		if m := lineID.FindStringSubmatch(strings.TrimPrefix(line, "data: ")); m != nil && strings.HasPrefix(line, "data: ") {
			n, _ := strconv.ParseInt(m[1], 10, 64)
			lines = append(lines, n)
		}
		sawEnd = sawEnd || strings.HasPrefix(line, "event: end")
	}
	if !sawEnd || !consecutive(lines, total+3) {
		t.Fatalf("the slow follower got %d lines, end %v", len(lines), sawEnd)
	}
	if !strings.Contains(logged.String(), "a follower fell behind") {
		t.Errorf("no follower was dropped:\n%s", logged.String())
	}
}

// consecutive reports whether ns is 1, 2, ..., n.
func consecutive(ns []int64, n int64) bool {
	if int64(len(ns)) != n {
		return false
	}
	for i, k := range ns {
		if k != int64(i+1) {
			return false
		}
	}
	return true
}
