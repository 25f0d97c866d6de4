package web

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"math"
	"net/http"
	"strings"
	"unicode/utf8"

	"slipway/configs"
	"slipway/record"
)

// Badges answers what the badges show (store.Store).
type Badges interface {
	// LastResult returns the newest build of repo's ref that ran the
	// default pipeline and passed or failed (errored counts as failed):
	// the branch's answer to "does it pass?". Cancelled, superseded,
	// skipped and interrupted builds say nothing about that and are
	// passed over. ok is false when there is none.
	LastResult(ctx context.Context, repo, ref string) (b record.Build, ok bool, err error)
	// LiveDeployment returns the newest deployment that succeeded on an
	// environment: what is live there. ok is false when none did.
	LiveDeployment(ctx context.Context, repo, env string) (d record.Deployment, ok bool, err error)
}

// repoPaths answers the paths that start with a repository's name, which
// may hold slashes (team/app): /<repo> (its page), /<repo>/env/<env> (an
// environment's page), /<repo>/badge.svg and /<repo>/env/<env>/badge.svg. They are told apart by their end; what
// matches none, or names what the viewer may not read, is a 404.
func (s *Server) repoPaths(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		s.notFound(w, r)
		return
	}
	p := strings.TrimPrefix(r.URL.Path, "/")
	if rest, ok := strings.CutSuffix(p, "/badge.svg"); ok {
		s.badge(w, r, rest)
		return
	}
	if s.o.Views == nil {
		s.notFound(w, r)
		return
	}
	cfg := s.config(r.Context())
	// team/app/env/prod is environment prod of team/app when it has one,
	// as for the badges.
	if i := strings.LastIndex(p, "/env/"); i > 0 {
		repo, env := p[:i], p[i+len("/env/"):]
		if _, ok := cfg.Environment(repo, env); ok && !strings.Contains(env, "/") {
			if name, err := configs.CleanRepoName(repo); err == nil && name == repo && s.readable(r.Context(), cfg, s.apiViewer(r), repo) {
				s.envPage(w, r, repo, env)
				return
			}
		}
	}
	if name, err := configs.CleanRepoName(p); err == nil && name == p && s.readable(r.Context(), cfg, s.apiViewer(r), name) {
		s.repoPage(w, r, name)
		return
	}
	s.notFound(w, r)
}

// badge answers both badges; rest is the path before "/badge.svg".
func (s *Server) badge(w http.ResponseWriter, r *http.Request, rest string) {
	cfg := s.config(r.Context())
	v := s.apiViewer(r)
	repo, env := rest, ""
	// team/app/env/prod names environment prod of team/app, when it has
	// one; else it is the repository team/app/env/prod.
	if i := strings.LastIndex(rest, "/env/"); i > 0 {
		if name := rest[i+len("/env/"):]; !strings.Contains(name, "/") {
			if _, ok := cfg.Environment(rest[:i], name); ok {
				repo, env = rest[:i], name
			}
		}
	}
	name, err := configs.CleanRepoName(repo)
	if err != nil || name != repo || !s.readable(r.Context(), cfg, v, repo) {
		s.notFound(w, r)
		return
	}
	if env != "" {
		s.envBadge(w, r, repo, env)
		return
	}
	// Other parameters (a cache buster in a README) are left alone.
	branch := r.URL.Query().Get("branch")
	if branch == "" {
		branch = cfg.DefaultBranch(repo)
	}
	if err := checkBranch(branch); err != nil {
		s.badRequest(w, r, err.Error())
		return
	}
	value, colour := "unknown", colourUnknown
	if s.o.Badges != nil {
		b, ok, err := s.o.Badges.LastResult(r.Context(), repo, "refs/heads/"+branch)
		if err != nil {
			s.log.Error("badge: last result", "repo", repo, "branch", branch, "err", err)
			http.Error(w, "could not read the builds", http.StatusInternalServerError)
			return
		}
		switch {
		case !ok:
		case b.State == record.StatePassed:
			value, colour = "passing", colourPass
		default:
			value, colour = "failing", colourFail
		}
	}
	writeBadge(w, "build", value, colour)
}

func (s *Server) envBadge(w http.ResponseWriter, r *http.Request, repo, env string) {
	value, colour := "none", colourUnknown
	if s.o.Badges != nil {
		d, ok, err := s.o.Badges.LiveDeployment(r.Context(), repo, env)
		if err != nil {
			s.log.Error("badge: live deployment", "repo", repo, "env", env, "err", err)
			http.Error(w, "could not read the deployments", http.StatusInternalServerError)
			return
		}
		if ok {
			value, colour = shortCommit(d.Commit), colourLive
		}
	}
	writeBadge(w, env, value, colour)
}

// readable reports whether v may read repo and it exists: a configured
// repository exists from the start; one the configuration does not name
// (admins only) must be on disk.
func (s *Server) readable(ctx context.Context, cfg *configs.Config, v viewer, repo string) bool {
	if !v.caller().Access(cfg, repo).Has(configs.Read) {
		return false
	}
	if cfg.Configured(repo) || s.o.Repos == nil {
		return cfg.Configured(repo)
	}
	names, err := s.o.Repos.Repos(ctx)
	if err != nil {
		s.log.Error("list repositories", "err", err)
		return false
	}
	for _, n := range names {
		if n == repo {
			return true
		}
	}
	return false
}

// checkBranch refuses what git would not take as a branch name, and what
// is too long to be one.
func checkBranch(b string) error {
	bad := len(b) > 255 || !utf8.ValidString(b) ||
		strings.HasPrefix(b, "/") || strings.HasSuffix(b, "/") || strings.HasSuffix(b, ".") ||
		strings.HasSuffix(b, ".lock") || strings.HasPrefix(b, "-") ||
		strings.Contains(b, "..") || strings.Contains(b, "//") || strings.Contains(b, "@{") || b == "@"
	for _, c := range b {
		if c < 0x20 || c == 0x7f || strings.ContainsRune(" ~^:?*[\\", c) {
			bad = true
		}
	}
	if bad {
		return fmt.Errorf("branch %q is not a branch name", cut(b, 60))
	}
	return nil
}

func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}

func shortCommit(c string) string {
	if len(c) > 7 {
		return c[:7]
	}
	return c
}

// Badge colours, as people know them from other badges.
const (
	colourPass    = "#4c1"
	colourFail    = "#e05d44"
	colourUnknown = "#9f9f9f"
	colourLive    = "#007ec6"
)

// writeBadge sends a flat badge: label on grey, value on colour. It is
// never cached: a README's badge must change when the build does.
func writeBadge(w http.ResponseWriter, label, value, colour string) {
	h := w.Header()
	h.Set("Content-Type", "image/svg+xml; charset=utf-8")
	h.Set("Cache-Control", "no-cache, max-age=0")
	h.Set("X-Content-Type-Options", "nosniff")
	// An SVG opened on its own is a document: let it run nothing.
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	w.Write(badgeSVG(label, value, colour))
}

// badgeSVG draws the badge. Its widths come from the text's width in
// Verdana 11px (the font badges are drawn in), plus a margin of 6 px on
// each side of each half.
func badgeSVG(label, value, colour string) []byte {
	lw := int(math.Ceil(textWidth(label))) + 12
	vw := int(math.Ceil(textWidth(value))) + 12
	total := lw + vw
	var b bytes.Buffer
	esc := func(s string) string {
		var e strings.Builder
		xml.EscapeText(&e, []byte(s))
		return e.String()
	}
	l, v := esc(label), esc(value)
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="20" role="img" aria-label="%s: %s">`, total, l, v)
	fmt.Fprintf(&b, `<title>%s: %s</title>`, l, v)
	b.WriteString(`<linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" stop-opacity=".1"/><stop offset="1" stop-opacity=".1"/></linearGradient>`)
	fmt.Fprintf(&b, `<clipPath id="r"><rect width="%d" height="20" rx="3" fill="#fff"/></clipPath>`, total)
	fmt.Fprintf(&b, `<g clip-path="url(#r)"><rect width="%d" height="20" fill="#555"/><rect x="%d" width="%d" height="20" fill="%s"/><rect width="%d" height="20" fill="url(#s)"/></g>`,
		lw, lw, vw, colour, total)
	b.WriteString(`<g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif" font-size="11">`)
	for _, t := range []struct {
		x    float64
		text string
	}{{float64(lw) / 2, l}, {float64(lw) + float64(vw)/2, v}} {
		fmt.Fprintf(&b, `<text x="%.1f" y="15" fill="#010101" fill-opacity=".3">%s</text><text x="%.1f" y="14">%s</text>`, t.x, t.text, t.x, t.text)
	}
	b.WriteString(`</g></svg>`)
	return b.Bytes()
}

// verdana holds the advance widths of printable ASCII in Verdana, in
// units of 1/2048 em, from ' ' (0x20) to '~' (0x7e).
var verdana = [95]uint16{
	720, 806, 940, 1676, 1302, 2204, 1488, 550, 909, 909, 1302, 1676, 745, 909, 745, 909, // space to /
	1302, 1302, 1302, 1302, 1302, 1302, 1302, 1302, 1302, 1302, // 0-9
	909, 909, 1676, 1676, 1676, 1117, 2048, // : to @
	1401, 1405, 1430, 1577, 1294, 1178, 1587, 1540, 862, 931, 1421, 1141, 1726, // A-M
	1532, 1612, 1235, 1612, 1423, 1405, 1262, 1499, 1401, 2025, 1403, 1260, 1403, // N-Z
	909, 909, 909, 1676, 1302, 1302, // [ to `
	1229, 1273, 1061, 1273, 1215, 719, 1273, 1292, 559, 702, 1198, 559, 1985, // a-m
	1292, 1237, 1273, 1273, 868, 1063, 807, 1292, 1198, 1642, 1198, 1198, 1064, // n-z
	1300, 909, 1300, 1676, // { to ~
}

// textWidth is the width of s in Verdana 11px, in pixels; a character
// outside ASCII counts as a wide one.
func textWidth(s string) float64 {
	var units int
	for _, c := range s {
		if c >= 0x20 && c <= 0x7e {
			units += int(verdana[c-0x20])
		} else {
			units += 1700
		}
	}
	return float64(units) * 11 / 2048
}
