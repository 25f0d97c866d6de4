package web

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"strconv"
	"unicode/utf8"

	"slipway/build/logs"
	"slipway/configs"
	"slipway/internal/termsafe"
	"slipway/record"
)

// BuildLogs is what the web side needs of builds to show their logs
// (build.Service).
type BuildLogs interface {
	// Get returns one build; the error wraps record.ErrNotFound when there
	// is none.
	Get(ctx context.Context, id int64) (record.Build, error)
	// Follow copies the build's log to w, from its start; with follow it
	// waits for a queued build and streams until the build ends.
	Follow(ctx context.Context, id int64, w io.Writer, follow bool) error
}

// DeployLogs is the same for deployments (deploy.Service).
type DeployLogs interface {
	Get(ctx context.Context, id int64) (record.Deployment, error)
	Follow(ctx context.Context, id int64, w io.Writer, follow bool) error
}

// How much of a log a page holds. A log may be 100 MB (max_log_bytes is
// the operator's); what the daemon keeps in memory for one request, and
// what a browser is sent in one page, is bounded whatever its size.
const (
	// defaultTailLines is how many of a log's last lines a page shows.
	defaultTailLines = 1000
	// maxTailLines bounds ?lines=.
	maxTailLines = 100_000
	// tailBudget bounds the bytes of log text a page shows: fewer lines
	// than asked when the last ones are long.
	tailBudget = 2 << 20
	// maxShownLine is how much of one line a page shows; the rest is
	// counted, and the raw log has it.
	maxShownLine = 16 << 10
)

// logRun is a build or a deployment whose log is asked for: what the
// handlers share.
type logRun struct {
	Kind   string // "build" or "deployment"
	ID     int64
	Repo   string
	State  string
	Final  bool
	Reason string
	// Base is the run's path: /builds/12 or /deployments/3.
	Base   string
	follow func(ctx context.Context, w io.Writer, follow bool) error
	// state reads the run's state again, once its log has ended.
	state func(ctx context.Context) (state, reason string, err error)
}

// findRun resolves the {id} of a /builds/ or /deployments/ path to a run
// the viewer may read. It answers 404 itself (and returns false) for a
// malformed or unknown id and for a run the viewer may not read, the same
// page for all three.
func (s *Server) findRun(w http.ResponseWriter, r *http.Request, kind string) (logRun, bool) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		s.notFound(w, r)
		return logRun{}, false
	}
	run, err := s.lookupRun(r.Context(), kind, id)
	if errors.Is(err, record.ErrNotFound) || err == nil && !s.apiViewer(r).caller().Access(s.config(r.Context()), run.Repo).Has(configs.Read) {
		s.notFound(w, r)
		return logRun{}, false
	}
	if err != nil {
		s.log.Error("find run", "kind", kind, "id", id, "err", err)
		http.Error(w, "could not read the record", http.StatusInternalServerError)
		return logRun{}, false
	}
	return run, true
}

func (s *Server) lookupRun(ctx context.Context, kind string, id int64) (logRun, error) {
	switch kind {
	case "build":
		if s.o.BuildLogs == nil {
			return logRun{}, record.ErrNotFound
		}
		b, err := s.o.BuildLogs.Get(ctx, id)
		if err != nil {
			return logRun{}, err
		}
		return logRun{
			Kind: kind, ID: id, Repo: b.Repo, State: string(b.State), Final: b.State.Final(), Reason: b.Reason,
			Base: "/builds/" + strconv.FormatInt(id, 10),
			follow: func(ctx context.Context, w io.Writer, follow bool) error {
				return s.o.BuildLogs.Follow(ctx, id, w, follow)
			},
			state: func(ctx context.Context) (string, string, error) {
				b, err := s.o.BuildLogs.Get(ctx, id)
				return string(b.State), b.Reason, err
			},
		}, nil
	case "deployment":
		if s.o.DeployLogs == nil {
			return logRun{}, record.ErrNotFound
		}
		d, err := s.o.DeployLogs.Get(ctx, id)
		if err != nil {
			return logRun{}, err
		}
		return logRun{
			Kind: kind, ID: id, Repo: d.Repo, State: string(d.State), Final: deployFinal(d.State), Reason: d.Reason,
			Base: "/deployments/" + strconv.FormatInt(id, 10),
			follow: func(ctx context.Context, w io.Writer, follow bool) error {
				return s.o.DeployLogs.Follow(ctx, id, w, follow)
			},
			state: func(ctx context.Context) (string, string, error) {
				d, err := s.o.DeployLogs.Get(ctx, id)
				return string(d.State), d.Reason, err
			},
		}, nil
	}
	return logRun{}, fmt.Errorf("unknown kind of run %q", kind)
}

func deployFinal(s record.DeployState) bool {
	return s != record.DeployQueued && s != record.DeployRunning
}

// rawLog answers GET /builds/{id}/log.txt: the stored bytes as they are,
// escape sequences and all (what `log ID --raw` prints), streamed from the
// file.
func (s *Server) rawLog(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		run, ok := s.findRun(w, r, kind)
		if !ok {
			return
		}
		h := w.Header()
		h.Set("Content-Type", "text/plain; charset=utf-8")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s-%d.log"`, run.Kind, run.ID))
		if !run.Final {
			h.Set("Cache-Control", "no-cache")
		}
		if r.Method == http.MethodHead {
			return
		}
		if err := run.follow(r.Context(), w, false); err != nil && r.Context().Err() == nil {
			s.log.Warn("send raw log", "kind", kind, "id", run.ID, "err", err)
		}
	}
}

// lineSplitter cuts a log into its lines for fn. It holds at most
// maxShownLine bytes of a line, counting the rest: a log that is one
// 100 MB line costs no more than one of short lines.
type lineSplitter struct {
	n    int64  // lines given to fn
	line []byte // the current line's first bytes
	more int64  // bytes of the current line past maxShownLine
	fn   func(n int64, line []byte, more int64) error
}

func (ls *lineSplitter) Write(p []byte) (int, error) {
	size := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		chunk := p
		if i >= 0 {
			chunk = p[:i]
		}
		ls.add(chunk)
		if i < 0 {
			break
		}
		if err := ls.emit(); err != nil {
			return 0, err
		}
		p = p[i+1:]
	}
	return size, nil
}

func (ls *lineSplitter) add(b []byte) {
	room := maxShownLine - len(ls.line)
	if room >= len(b) {
		ls.line = append(ls.line, b...)
		return
	}
	if room > 0 {
		ls.line = append(ls.line, b[:room]...)
	}
	ls.more += int64(len(b) - max(room, 0))
}

func (ls *lineSplitter) emit() error {
	ls.n++
	line, more := ls.line, ls.more
	if more > 0 {
		// Do not show half a character where the line was cut.
		for k := 1; k < utf8.UTFMax && k <= len(line); k++ {
			if utf8.RuneStart(line[len(line)-k]) {
				if !utf8.FullRune(line[len(line)-k:]) {
					more += int64(k)
					line = line[:len(line)-k]
				}
				break
			}
		}
	}
	err := ls.fn(ls.n, line, more)
	ls.line, ls.more = ls.line[:0], 0
	return err
}

// end gives fn the last line when the log does not end with a newline.
func (ls *lineSplitter) end() error {
	if len(ls.line) == 0 && ls.more == 0 {
		return nil
	}
	return ls.emit()
}

// splitStamp parses a stored line: "[mm:ss.mmm] " then either the
// OutputMark and a step's output, or a line of Slipway's own. A line
// without a stamp (Follow's "build #3 skipped: ..." for a build that never
// ran) is Slipway's.
func splitStamp(line []byte) (stamp, text []byte, output bool) {
	if len(line) > 0 && line[0] == '[' {
		if end := bytes.Index(line[:min(len(line), 24)], []byte("] ")); end > 1 && isStamp(line[1:end]) {
			stamp, text = line[:end+1], line[end+2:]
			if rest, ok := bytes.CutPrefix(text, []byte(logs.OutputMark)); ok {
				return stamp, rest, true
			}
			return stamp, text, false
		}
	}
	return nil, line, false
}

// isStamp reports whether b is "mm:ss.mmm" (minutes may have more digits).
func isStamp(b []byte) bool {
	colon := bytes.IndexByte(b, ':')
	if colon < 2 || len(b) != colon+7 || b[colon+3] != '.' {
		return false
	}
	for i, c := range b {
		if i != colon && i != colon+3 && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// lineHTML appends line n of a log as HTML, one <span class="l"> with no
// newline in it: its number (a link to itself), its stamp, and its text,
// coloured from state if it is a step's output (advancing state), plain
// and marked as Slipway's own otherwise. more is how many bytes of the
// line were not kept.
func lineHTML(dst []byte, n int64, line []byte, more int64, state *colourState) []byte {
	stamp, text, output := splitStamp(line)
	num := strconv.FormatInt(n, 10)
	cls := "l s"
	if output {
		cls = "l o"
	}
	dst = append(dst, `<span class="`...)
	dst = append(dst, cls...)
	dst = append(dst, `" id="L`...)
	dst = append(dst, num...)
	dst = append(dst, `"><a class="n" href="#L`...)
	dst = append(dst, num...)
	dst = append(dst, `">`...)
	dst = append(dst, num...)
	dst = append(dst, `</a>`...)
	if stamp != nil {
		dst = append(dst, `<span class="ts">`...)
		dst = append(dst, stamp...) // digits and punctuation only (isStamp)
		dst = append(dst, `</span> `...)
	}
	if output {
		dst = append(dst, `<span class="t">`...)
		dst = colourLine(dst, text, state)
	} else {
		dst = append(dst, `<span class="t">`...)
		template.HTMLEscape(byteWriter{&dst}, []byte(termsafe.Line(string(text))))
	}
	dst = append(dst, `</span>`...)
	if more > 0 {
		dst = fmt.Appendf(dst, ` <span class="cut">[%d more bytes of this line: see the raw log]</span>`, more)
	}
	return append(dst, `</span>`...)
}

// skipLine advances state past line n when it is not shown.
func skipLine(line []byte, state *colourState) {
	if _, text, output := splitStamp(line); output {
		skipColour(text, state)
	}
}

// byteWriter appends to a byte slice.
type byteWriter struct{ b *[]byte }

func (w byteWriter) Write(p []byte) (int, error) {
	*w.b = append(*w.b, p...)
	return len(p), nil
}

// logTail is the end of a log, rendered for a page.
type logTail struct {
	Lines int64         // lines in the log so far
	First int64         // the number of the first line shown (Lines+1 when none)
	HTML  template.HTML // the lines shown, one per line
}

// Shown is how many lines the page shows.
func (t logTail) Shown() int64 { return t.Lines - t.First + 1 }

// tail reads a run's log to its current end and renders its last n lines
// (all when n < 0), within tailBudget bytes of text: the lines before are
// read for their colours only. What it holds is the lines it will show,
// never the log.
func tail(ctx context.Context, run logRun, n int) (logTail, error) {
	type kept struct {
		n    int64
		line []byte
		more int64
	}
	var (
		ring  []kept // the last lines, oldest first at ring[head]
		head  int
		bytes int
		state colourState
	)
	drop := func() {
		k := ring[head]
		skipLine(k.line, &state)
		bytes -= len(k.line)
		ring[head] = kept{}
		head++
		if head > len(ring)/2 && head > 64 {
			ring = append(ring[:0:0], ring[head:]...)
			head = 0
		}
	}
	ls := lineSplitter{fn: func(num int64, line []byte, more int64) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		ring = append(ring, kept{num, bytesClone(line), more})
		bytes += len(line)
		for len(ring)-head > 0 && (n >= 0 && len(ring)-head > n || bytes > tailBudget && len(ring)-head > 1) {
			drop()
		}
		return nil
	}}
	if err := run.follow(ctx, &ls, false); err != nil {
		return logTail{}, err
	}
	if err := ls.end(); err != nil {
		return logTail{}, err
	}
	t := logTail{Lines: ls.n, First: ls.n + 1}
	var b []byte
	for i, k := range ring[head:] {
		if i == 0 {
			t.First = k.n
		}
		b = lineHTML(b, k.n, k.line, k.more, &state)
		b = append(b, '\n')
	}
	t.HTML = template.HTML(b)
	return t, nil
}

func bytesClone(b []byte) []byte { return append([]byte(nil), b...) }

// logView is a log on a page: its tail, where to get the rest, and
// whether the page follows it live.
type logView struct {
	Run  logRun
	Tail logTail
	// Asked is how many lines were asked for (?lines=), for the links.
	Asked int
	// All: the page streams the whole log (?lines=all).
	All bool
}

// Live reports whether the page should follow the log as it grows.
func (v logView) Live() bool { return !v.Run.Final }

// Earlier reports whether lines before the ones shown exist.
func (v logView) Earlier() bool { return !v.All && v.Tail.First > 1 }

// linesParam reads ?lines=: a number of last lines (1 to maxTailLines), or
// "all"; defaultTailLines when absent.
func linesParam(r *http.Request) (n int, all bool, err error) {
	v := r.URL.Query().Get("lines")
	switch v {
	case "":
		return defaultTailLines, false, nil
	case "all":
		return 0, true, nil
	}
	n, err = strconv.Atoi(v)
	if err != nil || n < 1 || n > maxTailLines {
		return 0, false, fmt.Errorf("lines must be a number from 1 to %d, or all", maxTailLines)
	}
	return n, false, nil
}

// logPage answers GET /builds/{id}/log: the log's last lines (?lines=N),
// or all of it (?lines=all, streamed), followed live by live.js while the
// run goes on. Without JavaScript it shows the log as it was when loaded.
func (s *Server) logPage(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		n, all, err := linesParam(r)
		if err != nil {
			s.badRequest(w, r, err.Error())
			return
		}
		run, ok := s.findRun(w, r, kind)
		if !ok {
			return
		}
		title := fmt.Sprintf("Log of %s #%d", kind, run.ID)
		if all {
			s.streamLog(w, r, title, run)
			return
		}
		t, err := tail(r.Context(), run, n)
		if err != nil {
			s.logFailed(w, r, run, err)
			return
		}
		s.render(w, r, http.StatusOK, "log.html", title, logView{Run: run, Tail: t, Asked: n})
	}
}

func (s *Server) logFailed(w http.ResponseWriter, r *http.Request, run logRun, err error) {
	if r.Context().Err() != nil {
		return
	}
	s.log.Error("read log", "kind", run.Kind, "id", run.ID, "err", err)
	http.Error(w, "could not read the log", http.StatusInternalServerError)
}

// streamLog sends the page of ?lines=all: the page's top, then every line
// as it is read and rendered, then its bottom. A log of any size passes
// through a buffer of one line; the browser gets it as it comes.
func (s *Server) streamLog(w http.ResponseWriter, r *http.Request, title string, run logRun) {
	// The top and bottom are rendered before anything is sent, so that a
	// template error is still a clean 500.
	v := logView{Run: run, All: true}
	var top, bottom bytes.Buffer
	p := page{Title: title, Viewer: s.viewerOf(r), Data: &v}
	if err := s.pages.ExecuteTemplate(&top, "logtop", p); err != nil {
		s.log.Error("render page", "page", "logtop", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	setPageHeaders(w.Header())
	w.WriteHeader(http.StatusOK)
	w.Write(top.Bytes())
	rc := http.NewResponseController(w)
	var (
		state colourState
		buf   []byte
	)
	ls := lineSplitter{fn: func(n int64, line []byte, more int64) error {
		buf = lineHTML(buf, n, line, more, &state)
		buf = append(buf, '\n')
		if len(buf) < 32<<10 {
			return nil
		}
		_, err := w.Write(buf)
		buf = buf[:0]
		return err
	}}
	err := run.follow(r.Context(), &ls, false)
	if err == nil {
		err = ls.end()
	}
	if err == nil {
		_, err = w.Write(buf)
	}
	if err != nil {
		// Too late for an error page: say so where the log stops.
		if r.Context().Err() == nil {
			s.log.Error("read log", "kind", run.Kind, "id", run.ID, "err", err)
			fmt.Fprint(w, "\n<span class=\"l s\">[the log could not be read to its end]</span>\n")
		}
		return
	}
	v.Tail = logTail{Lines: ls.n, First: 1}
	if err := s.pages.ExecuteTemplate(&bottom, "logbottom", p); err != nil {
		s.log.Error("render page", "page", "logbottom", "err", err)
		return
	}
	w.Write(bottom.Bytes())
	rc.Flush()
}
