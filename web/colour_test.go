package web

import (
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"

	terminal "github.com/buildkite/terminal-to-html/v3"
)

// TestColourStateMatchesTheLibrary: replaying the state colourState keeps
// gives a line the colours the library would give it after all the
// sequences before it in one stream, for random SGR sequences (colours,
// 256 and true colours, weights, resets, and parameters the library
// ignores).
func TestColourStateMatchesTheLibrary(t *testing.T) {
	t.Parallel()
	params := []string{"0", "1", "2", "3", "4", "5", "6", "9", "21", "22", "23", "24", "25", "29",
		"30", "31", "37", "39", "40", "42", "47", "49", "90", "93", "97", "100", "104", "107",
		"38;5;208", "48;5;17", "38;2;10;20;30", "48;2;200;100;0", "38;5", "38", "48;7", "53", "255", "300", "7", "8"}
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 1000 {
		var stream strings.Builder
		var state colourState
		for range 1 + r.IntN(6) {
			var ps []string
			for range r.IntN(4) {
				ps = append(ps, params[r.IntN(len(params))])
			}
			// The library sees what safeText makes of the sequence:
			// what termsafe refuses, as visible text.
			stream.Write(safeText(nil, []byte("\x1b["+strings.Join(ps, ";")+"m"), &state))
		}
		want := styleOfLast(terminal.Render([]byte(stream.String() + "x")))
		got := styleOfLast(terminal.Render(append(state.appendPrefix(nil), 'x')))
		if got != want {
			t.Fatalf("case %d: %q: replayed state %+v renders %s, the stream %s", i, stream.String(), state, got, want)
		}
	}
}

var lastStyle = regexp.MustCompile(`(?:<span class="([^"]*)">[^<]*)?x(?:</span>)?$`)

// styleOfLast returns the classes of the final "x" of a rendering.
func styleOfLast(html string) string {
	m := lastStyle.FindStringSubmatch(html)
	if m == nil {
		return "no x in " + html
	}
	return m[1]
}

// TestColoursCarryAcrossLines: a colour set on one line colours the next
// lines until a reset, whether they are rendered in one go or one at a
// time (as SSE events are), and Slipway's own lines in between are never
// coloured by it.
func TestColoursCarryAcrossLines(t *testing.T) {
	t.Parallel()
	lines := []string{
		"[00:00.001] │ \x1b[1;32mgreen and bold",
		"[00:00.002] │ still green",
		"[00:00.003] == step 2/3: make (Slipway's)",
		"[00:00.004] │ green after Slipway's line\x1b[0m, then plain",
		"[00:00.005] │ plain",
		"[00:00.006] │ \x1b[38:5:208morange in the colon form",
		"[00:00.007] │ \x1b[4:3mcurly underline read as underline",
		"[00:00.008] │ \x1b[58:5:9;33myellow, underline colour dropped\x1b[m",
		"[00:00.009] │ CRLF line\r",
	}
	var state colourState
	var got []string
	for i, l := range lines {
		got = append(got, string(lineHTML(nil, int64(i+1), []byte(l), 0, &state)))
	}
	checks := []struct {
		line      int
		has, hasn []string
	}{
		{1, []string{`<span class="term-fg32 term-fg1">green and bold</span>`}, nil},
		{2, []string{`<span class="term-fg32 term-fg1">still green</span>`}, nil},
		{3, []string{`class="l s"`, "== step 2/3: make (Slipway&#39;s)"}, []string{"term-fg"}},
		{4, []string{`<span class="term-fg32 term-fg1">green after Slipway&#39;s line</span>, then plain`}, nil},
		{5, []string{`<span class="t">plain</span>`}, []string{"term-"}},
		{6, []string{`<span class="term-fgx208">orange in the colon form</span>`}, []string{"38:5", "[38"}},
		{7, []string{`term-fg4`}, []string{"4:3", "[4"}},
		{8, []string{`<span class="term-fg33 term-fg4">`, "yellow, underline colour dropped"}, []string{"58", "term-fg5"}},
		{9, []string{">CRLF line</span>"}, []string{`\r`}},
	}
	for _, c := range checks {
		h := got[c.line-1]
		for _, s := range c.has {
			if !strings.Contains(h, s) {
				t.Errorf("line %d: no %q in\n%s", c.line, s, h)
			}
		}
		for _, s := range c.hasn {
			if strings.Contains(h, s) {
				t.Errorf("line %d: %q in\n%s", c.line, s, h)
			}
		}
	}
	// Rendering the lines after line 5 with a fresh state (as a page
	// starting there would, after skipping the lines before) is the same.
	state = colourState{}
	for _, l := range lines[:5] {
		skipLine([]byte(l), &state)
	}
	if h := string(lineHTML(nil, 6, []byte(lines[5]), 0, &state)); h != got[5] {
		t.Errorf("line 6 after skipping:\n%s\nrendered in one go:\n%s", h, got[5])
	}
}

// TestLogTextIsEscaped: what a step prints is text on the page, whatever
// it holds: HTML, a script, an OSC 8 hyperlink, an iTerm image, cursor
// movement, bidi controls; Slipway's lines (which may quote a command or
// a ref name) too.
func TestLogTextIsEscaped(t *testing.T) {
	t.Parallel()
	hostile := []string{
		`[00:00.001] │ <script>alert("x")</script><img src=x onerror=alert(1)>`,
		"[00:00.002] │ \x1b]8;;javascript:alert(1)\x07click\x1b]8;;\x07 and \x1b]1337;File=inline=1:AAAA\x07",
		"[00:00.003] │ \x1b[1Aup\x1b[2Kerase\rreturn \u202eevil\u202c \x1b[8mhidden\x1b[0m",
		"[00:00.004] == step 1/1: echo '<b>bold</b>' & \x1b[31m",
		"no stamp <i>at all</i>",
		"[00:00.005] │ \xff\xfe not UTF-8 \x1b[",
	}
	var state colourState
	var page strings.Builder
	for i, l := range hostile {
		page.Write(lineHTML(nil, int64(i+1), []byte(l), 0, &state))
	}
	h := page.String()
	for _, bad := range []string{"<script", "<img", "<a href", "href=\"javascript", "<b>", "<i>", "\x1b", "\r", "\u202e", "\xff"} {
		if strings.Contains(h, bad) {
			t.Errorf("rendered log holds %q:\n%s", bad, h)
		}
	}
	for _, shown := range []string{"&lt;script&gt;alert(&quot;x&quot;)&lt;&#47;script&gt;&lt;img src=x onerror=alert(1)&gt;", `\x1b]8;;javascript:alert(1)\x07click`,
		`\x1b[1Aup`, `\r`, `\u202e`, `\x1b[8mhidden`, "&lt;b&gt;bold&lt;/b&gt;", "&lt;i&gt;at all&lt;/i&gt;", `\xff\xfe not UTF-8 \x1b[`} {
		if !strings.Contains(h, shown) {
			t.Errorf("rendered log does not show %q:\n%s", shown, h)
		}
	}
}

// TestPlainLinesAsTheLibrary: the fast path for lines without colour
// writes what terminal-to-html would, for random text of every kind
// termsafe lets through (and what it escapes).
func TestPlainLinesAsTheLibrary(t *testing.T) {
	t.Parallel()
	alphabet := []string{"a", "Z", "0", " ", "\t", "&", "'", "<", ">", "\"", "/", "\\", "é", "✓", "日本", "😀", "\x1b", "\r", "\x00", "\x7f", "\u202e", "\xff", "%", ";", "="}
	r := rand.New(rand.NewPCG(3, 4))
	for i := range 4000 {
		var b strings.Builder
		for range r.IntN(200) {
			b.WriteString(alphabet[r.IntN(len(alphabet))])
		}
		var state colourState
		safe := safeText(nil, []byte(b.String()), &state)
		want := terminal.Render(safe)
		if want == "&nbsp;" {
			want = ""
		}
		if got := string(appendPlain(nil, safe)); got != want {
			t.Fatalf("case %d: %q: fast path %q, library %q", i, b.String(), got, want)
		}
	}
}
