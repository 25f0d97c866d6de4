package web

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"slipway/record"
)

var shownLine = regexp.MustCompile(`<span class="l [os]" id="L(\d+)">`)

// shownLines returns the numbers of the log lines a page shows.
func shownLines(body string) []string {
	var ns []string
	for _, m := range shownLine.FindAllStringSubmatch(body, -1) {
		ns = append(ns, m[1])
	}
	return ns
}

// TestLogPageShowsTheTail: a log page shows the last 1,000 lines (in the
// colours the earlier lines left), says how many there are, and links to
// all of them and to the raw log; ?lines=N shows N; ?lines=all streams
// the whole log; a live build's page carries the stream for live.js, a
// finished one's does not.
func TestLogPageShowsTheTail(t *testing.T) {
	t.Parallel()
	runs := newTestRuns(t)
	s := newLiveServer(t, Options{BuildLogs: runs})
	w := runs.start(t, 5, "pub")
	for i := 1; i <= 2498; i++ {
		switch i {
		case 10:
			fmt.Fprintf(w, "\x1b[36mcyan from line %d on\n", i)
		default:
			fmt.Fprintf(w, "line %d <b>\n", i)
		}
	}
	// 2,499 lines so far: the header and 2,498 of output.
	code, h, body := get(t, s.Handler(), "/builds/5/log")
	lines := shownLines(body)
	if code != http.StatusOK || h.Get("Content-Type") != "text/html; charset=utf-8" || len(lines) != 1000 || lines[0] != "1500" || lines[999] != "2499" {
		t.Fatalf("GET /builds/5/log: %d, %d lines shown (%v...)", code, len(lines), lines[:min(len(lines), 3)])
	}
	for _, want := range []string{"The last 1000 of 2499 lines.", `href="/builds/5/log?lines=all"`, `href="/builds/5/log.txt"`,
		`data-events="/builds/5/log/events" data-after="2499"`, `<script src="/static/live.js" defer></script>`,
		`<span class="term-fg36">line 1999 &lt;b&gt;</span>`} {
		if !strings.Contains(body, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	if strings.Contains(body, "<b>") {
		t.Error("log text reached the page unescaped")
	}

	code, _, body = get(t, s.Handler(), "/builds/5/log?lines=10")
	if lines := shownLines(body); code != http.StatusOK || len(lines) != 10 || lines[0] != "2490" || !strings.Contains(body, "The last 10 of 2499 lines.") {
		t.Errorf("?lines=10: %d, lines %v", code, lines)
	}

	runs.finish(t, 5, w, record.StateFailed)
	code, h, body = get(t, s.Handler(), "/builds/5/log?lines=all")
	lines = shownLines(body)
	if code != http.StatusOK || h.Get("Content-Type") != "text/html; charset=utf-8" || h.Get("Content-Security-Policy") == "" ||
		len(lines) != 2500 || lines[0] != "1" || lines[2499] != "2500" || !strings.Contains(body, "The whole log.") ||
		!strings.HasSuffix(strings.TrimSpace(body), "</html>") || strings.Contains(body, "live.js") {
		t.Errorf("?lines=all: %d, %d lines, headers %v", code, len(lines), h)
	}
	if !strings.Contains(body, `<span class="term-fg36">line 1999 &lt;b&gt;</span>`) || strings.Contains(body, `<span class="term-fg36">line 9 `) {
		t.Error("?lines=all: the colours are not those of the stream")
	}

	// A short finished log: all of it, no stream.
	w = runs.start(t, 6, "team/app")
	fmt.Fprintln(w, "hello")
	runs.finish(t, 6, w, record.StatePassed)
	code, _, body = get(t, s.Handler(), "/builds/6/log")
	if lines := shownLines(body); code != http.StatusOK || len(lines) != 3 || !strings.Contains(body, "All 3 lines.") || strings.Contains(body, "live.js") ||
		strings.Contains(body, "lines=all") || !strings.Contains(body, `id="state">passed</span>`) {
		t.Errorf("GET /builds/6/log: %d, lines %v\n%s", code, lines, body)
	}
}

// TestRawLog: the raw download is the stored file, byte for byte, as a
// text attachment.
func TestRawLog(t *testing.T) {
	t.Parallel()
	runs := newTestRuns(t)
	s := newLiveServer(t, Options{BuildLogs: runs})
	w := runs.start(t, 12, "pub")
	fmt.Fprint(w, "\x1b[31mred\x1b[0m <script>\n\xff\r\n")
	runs.finish(t, 12, w, record.StatePassed)
	stored, err := os.ReadFile(filepath.Join(runs.dir, "12.log"))
	if err != nil {
		t.Fatal(err)
	}
	code, h, body := get(t, s.Handler(), "/builds/12/log.txt")
	if code != http.StatusOK || body != string(stored) || h.Get("Content-Type") != "text/plain; charset=utf-8" ||
		h.Get("Content-Disposition") != `attachment; filename="build-12.log"` || h.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("GET /builds/12/log.txt: %d %v\n%q\nwant\n%q", code, h, body, stored)
	}
}
