package web

import (
	"encoding/xml"
	"fmt"
	"math"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"slipway/record"
	"slipway/store"
)

// svgBadge is what a badge's SVG holds, as encoding/xml reads it.
type svgBadge struct {
	XMLName xml.Name `xml:"http://www.w3.org/2000/svg svg"`
	Width   int      `xml:"width,attr"`
	Height  int      `xml:"height,attr"`
	Label   string   `xml:"aria-label,attr"`
	Title   string   `xml:"title"`
	Rects   []struct {
		Width int `xml:"width,attr"`
	} `xml:"g>rect"`
	Texts []string `xml:"g>text"`
}

// getBadge fetches a badge and parses it; it fails the test unless the
// answer is a valid, uncached SVG whose width is its text's.
func getBadge(t *testing.T, s *Server, path string) svgBadge {
	t.Helper()
	code, h, body := get(t, s.Handler(), path)
	if code != http.StatusOK || h.Get("Content-Type") != "image/svg+xml; charset=utf-8" || !strings.HasPrefix(h.Get("Cache-Control"), "no-cache") {
		t.Fatalf("GET %s: %d %v\n%s", path, code, h, body)
	}
	var b svgBadge
	if err := xml.Unmarshal([]byte(body), &b); err != nil {
		t.Fatalf("GET %s: not valid SVG: %v\n%s", path, err, body)
	}
	if len(b.Rects) != 3 || len(b.Texts) != 4 || b.Height != 20 {
		t.Fatalf("GET %s: not a badge: %+v", path, b)
	}
	label, value := b.Texts[1], b.Texts[3]
	lw, vw := b.Rects[0].Width, b.Rects[1].Width
	for _, c := range []struct {
		text string
		w    int
	}{{label, lw}, {value, vw}} {
		// The text's width in Verdana 11px with a margin of 6 px each side.
		if want := int(math.Ceil(textWidth(c.text))) + 12; c.w != want {
			t.Errorf("GET %s: %q drawn %d px wide, want %d", path, c.text, c.w, want)
		}
	}
	if b.Width != lw+vw || b.Rects[2].Width != b.Width || b.Label != label+": "+value || b.Title != b.Label {
		t.Errorf("GET %s: widths or labels do not add up: %+v", path, b)
	}
	return b
}

func badgeText(b svgBadge) string { return b.Texts[1] + ": " + b.Texts[3] }

// TestBadges: a branch's badge says passing, failing or unknown from its
// last finished build (the default branch without ?branch=); an
// environment's says what is live there, a short commit or none; names
// with slashes work; the SVG is valid and as wide as its text; what an
// anonymous viewer may not read is a 404, like what does not exist; a
// branch that cannot be one is a 400.
func TestBadges(t *testing.T) {
	t.Parallel()
	db, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "slipway.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := t.Context()
	commit := func(n int) string { return fmt.Sprintf("%040x", n) }
	finish := func(repo, ref string, n int, state record.State) record.Build {
		t.Helper()
		q, err := db.EnqueueBuilds(ctx, []record.Build{{Repo: repo, Ref: ref, Commit: commit(n), Trigger: record.TriggerManual}})
		if err != nil {
			t.Fatal(err)
		}
		if _, ok, err := db.ClaimBuild(ctx, "w"); !ok || err != nil {
			t.Fatal(ok, err)
		}
		if err := db.FinishBuild(ctx, q.Builds[0].ID, state, "", nil); err != nil {
			t.Fatal(err)
		}
		return q.Builds[0]
	}
	s := newLiveServer(t, Options{Badges: db})

	if b := getBadge(t, s, "/pub/badge.svg"); badgeText(b) != "build: unknown" {
		t.Errorf("no build yet: %s", badgeText(b))
	}
	finish("pub", "refs/heads/main", 1, record.StatePassed)
	if b := getBadge(t, s, "/pub/badge.svg"); badgeText(b) != "build: passing" {
		t.Errorf("after a passed build: %s", badgeText(b))
	}
	finish("pub", "refs/heads/main", 2, record.StateFailed)
	finish("pub", "refs/heads/feature/x", 3, record.StatePassed)
	for path, want := range map[string]string{
		"/pub/badge.svg":                        "build: failing",
		"/pub/badge.svg?branch=main":            "build: failing",
		"/pub/badge.svg?branch=feature/x&v=2":   "build: passing",
		"/pub/badge.svg?branch=feature%2Fx":     "build: passing",
		"/pub/badge.svg?branch=never-built":     "build: unknown",
		"/team/app/badge.svg":                   "build: unknown",
		"/team/app/env/prod/badge.svg":          "prod: none",
		"/team/app/env/prod/badge.svg?cache=no": "prod: none",
	} {
		if b := getBadge(t, s, path); badgeText(b) != want {
			t.Errorf("GET %s: %q, want %q", path, badgeText(b), want)
		}
	}

	b := finish("team/app", "refs/heads/main", 4, record.StatePassed)
	d, err := db.EnqueueDeployment(ctx, record.Deployment{BuildID: b.ID, Env: "prod", Trigger: record.DeployRelease, User: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := db.ClaimDeployment(ctx); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if err := db.FinishDeployment(ctx, d.ID, record.DeploySucceeded, ""); err != nil {
		t.Fatal(err)
	}
	live := getBadge(t, s, "/team/app/env/prod/badge.svg")
	if badgeText(live) != "prod: "+commit(4)[:7] {
		t.Errorf("after a deployment: %q, want prod: %s", badgeText(live), commit(4)[:7])
	}
	if pass, fail := getBadge(t, s, "/pub/badge.svg?branch=feature/x"), getBadge(t, s, "/pub/badge.svg"); pass.Width == fail.Width {
		t.Errorf("passing and failing badges are both %d px wide", pass.Width)
	}

	for _, path := range []string{"/priv/badge.svg", "/priv/badge.svg?branch=main", "/priv/env/prod/badge.svg", "/nosuch/badge.svg",
		"/team/app/env/staging/badge.svg", "/pub/env/prod/badge.svg", "/Pub/badge.svg", "/pub.git/badge.svg", "/pub/x/badge.svg"} {
		if code, _, _ := get(t, s.Handler(), path); code != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", path, code)
		}
	}
	for _, branch := range []string{"a..b", "-x", "x.lock", "a b", "a~1", strings.Repeat("b", 256), "%ff", "x:y", "x/", "@"} {
		path := "/pub/badge.svg?branch=" + strings.ReplaceAll(branch, " ", "%20")
		if code, _, body := get(t, s.Handler(), path); code != http.StatusBadRequest {
			t.Errorf("GET %s: %d, want 400\n%s", path, code, body)
		}
	}
}
