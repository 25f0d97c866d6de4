package web

import (
	"bytes"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"

	"slipway/internal/manifest"
	"slipway/record"
)

// funcs are the templates' helpers.
var funcs = template.FuncMap{
	"short": func(id string) string {
		if len(id) > 7 {
			return id[:7]
		}
		return id
	},
	"when": func(t any) string {
		var tt time.Time
		switch t := t.(type) {
		case time.Time:
			tt = t
		case *time.Time:
			if t != nil {
				tt = *t
			}
		}
		if tt.IsZero() {
			return "-"
		}
		return tt.UTC().Format("2006-01-02 15:04:05 UTC")
	},
	"ms":     millis,
	"bytes":  byteSize,
	"zero":   record.ZeroID,
	"inc":    func(i int) int { return i + 1 },
	"digest": manifest.Short,
	"ref": func(ref string) string {
		return strings.TrimPrefix(strings.TrimPrefix(ref, "refs/heads/"), "refs/tags/")
	},
}

// page is what every page template gets: the viewer and the page's own
// data.
type page struct {
	Title  string
	Viewer viewer
	// CSRF is the token a form that changes something carries as its
	// hidden field "csrf" (see checkWrite); "" without a session.
	CSRF string
	Data any
}

// render writes the named page. It renders into a buffer first, so that a
// template error is a clean 500, never half a page.
func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, name, title string, data any) {
	var buf bytes.Buffer
	if err := s.pages.ExecuteTemplate(&buf, name, page{Title: title, Viewer: s.viewerOf(r), CSRF: s.csrfOf(r), Data: data}); err != nil {
		s.log.Error("render page", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	setPageHeaders(w.Header())
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// setPageHeaders sets the headers of an HTML page: scripts and styles only
// from the daemon itself (no inline script can run, whatever a page
// shows), and no framing.
func setPageHeaders(h http.Header) {
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'")
}

// notFound is the answer for what does not exist and for what the viewer
// may not see: the same page, so that names cannot be probed.
func (s *Server) notFound(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, http.StatusNotFound, "error.html", "Not found", errorPage{
		Status: http.StatusNotFound, Message: fmt.Sprintf("Nothing at %s, or nothing you may see.", r.URL.Path)})
}

// badRequest says what was wrong with the request.
func (s *Server) badRequest(w http.ResponseWriter, r *http.Request, msg string) {
	s.render(w, r, http.StatusBadRequest, "error.html", "Bad request", errorPage{Status: http.StatusBadRequest, Message: msg})
}

type errorPage struct {
	Status  int
	Message string
}

// millis shows a duration in milliseconds the way people read one: "850 ms",
// "12.3 s", "4 min 05 s", "1 h 02 min".
func millis(ms int64) string {
	switch d := time.Duration(ms) * time.Millisecond; {
	case d < time.Second:
		return fmt.Sprintf("%d ms", ms)
	case d < time.Minute:
		return fmt.Sprintf("%.1f s", d.Seconds())
	case d < time.Hour:
		return fmt.Sprintf("%d min %02d s", int(d.Minutes()), int(d.Seconds())%60)
	default:
		return fmt.Sprintf("%d h %02d min", int(d.Hours()), int(d.Minutes())%60)
	}
}

// byteSize shows a size: "512 B", "12.3 KiB", "4.0 MiB".
func byteSize(n int64) string {
	switch {
	case n < 1<<10:
		return fmt.Sprintf("%d B", n)
	case n < 1<<20:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	case n < 1<<30:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
}
