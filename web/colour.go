package web

import (
	"bytes"
	"strconv"
	"strings"

	terminal "github.com/buildkite/terminal-to-html/v3"

	"slipway/internal/termsafe"
)

// A log's output is shown the way `log ID` shows it on a terminal (the
// text through package termsafe: every control character and escape
// sequence but SGR colours made visible), and its colours are drawn by
// terminal-to-html. What the library sees is therefore only printable
// text, tabs and SGR sequences: no cursor movement, no OSC hyperlinks or
// images, nothing that could make one line draw over another.
//
// A colour set on one line goes on until a reset, on the next lines too,
// as it would on a terminal (termsafe ends colours with their line only
// because a terminal cannot tell a step's line from Slipway's; a page
// can, and shows Slipway's lines apart). Each line is rendered on its
// own, preceded by the SGR sequence that restores the colour state the
// lines before it left (colourState): so a line renders the same whether
// it comes in the first page, an SSE event after a reconnect, or the
// middle of the whole log, and no renderer holds more than one line.

// colourState is the SGR state that terminal-to-html keeps between
// characters, in the library's own terms (its style: foreground,
// background, bold or faint, italic, underline, blink, strike), so that
// replaying it before a line gives that line the colours it would have had
// in one stream.
type colourState struct {
	fg, bg string // the parameters that set them: "31", "38;5;208", "48;2;1;2;3"
	flags  uint8
}

// The flags, with the SGR parameter that sets each.
const (
	flagBold uint8 = 1 << iota
	flagFaint
	flagItalic
	flagUnderline
	flagBlink
	flagStrike
)

var flagParams = [...]struct {
	flag  uint8
	param string
}{
	{flagBold, "1"}, {flagFaint, "2"}, {flagItalic, "3"}, {flagUnderline, "4"}, {flagBlink, "5"}, {flagStrike, "9"},
}

// plain reports whether no colour or weight is set.
func (c colourState) plain() bool { return c == colourState{} }

// appendPrefix appends the SGR sequence that sets c from nothing.
func (c colourState) appendPrefix(dst []byte) []byte {
	if c.plain() {
		return dst
	}
	dst = append(dst, "\x1b["...)
	n := 0
	sep := func() {
		if n > 0 {
			dst = append(dst, ';')
		}
		n++
	}
	for _, f := range flagParams {
		if c.flags&f.flag != 0 {
			sep()
			dst = append(dst, f.param...)
		}
	}
	if c.fg != "" {
		sep()
		dst = append(dst, c.fg...)
	}
	if c.bg != "" {
		sep()
		dst = append(dst, c.bg...)
	}
	return append(dst, 'm')
}

// sgr applies one SGR sequence's parameters, as the library does
// (terminal-to-html v3's style.color): an empty list or a lone 0 resets;
// 38/48 take 5;N or 2;R;G;B; a parameter that is not a number 0-255 is
// passed over.
func (c *colourState) sgr(params []string) {
	if len(params) == 0 || len(params) == 1 && params[0] == "0" {
		*c = colourState{}
		return
	}
	const (
		normal = iota
		got38
		got48
		got38x5
		got48x5
		got38x2
		got48x2
	)
	mode := normal
	var rgb [3]string
	idx := 0
	for _, p := range params {
		v, err := strconv.ParseUint(p, 10, 8)
		if err != nil {
			continue
		}
		p = strconv.FormatUint(v, 10)
		switch mode {
		case got38, got48:
			switch {
			case v == 5 && mode == got38:
				mode = got38x5
			case v == 5:
				mode = got48x5
			case v == 2 && mode == got38:
				mode, idx = got38x2, 0
			case v == 2:
				mode, idx = got48x2, 0
			default:
				mode = normal
			}
			continue
		case got38x5:
			c.fg, mode = "38;5;"+p, normal
			continue
		case got48x5:
			c.bg, mode = "48;5;"+p, normal
			continue
		case got38x2, got48x2:
			rgb[idx] = p
			if idx < 2 {
				idx++
				continue
			}
			set := "2;" + rgb[0] + ";" + rgb[1] + ";" + rgb[2]
			if mode == got38x2 {
				c.fg = "38;" + set
			} else {
				c.bg = "48;" + set
			}
			mode = normal
			continue
		}
		switch {
		case v == 0:
			*c = colourState{}
		case v == 1:
			c.flags = c.flags&^flagFaint | flagBold
		case v == 2:
			c.flags = c.flags&^flagBold | flagFaint
		case v == 3:
			c.flags |= flagItalic
		case v == 4:
			c.flags |= flagUnderline
		case v == 5 || v == 6:
			c.flags |= flagBlink
		case v == 9:
			c.flags |= flagStrike
		case v == 21 || v == 22:
			c.flags &^= flagBold | flagFaint
		case v == 23:
			c.flags &^= flagItalic
		case v == 24:
			c.flags &^= flagUnderline
		case v == 25:
			c.flags &^= flagBlink
		case v == 29:
			c.flags &^= flagStrike
		case v == 38:
			mode = got38
		case v == 39:
			c.fg = ""
		case v == 48:
			mode = got48
		case v == 49:
			c.bg = ""
		case v >= 30 && v <= 37 || v >= 90 && v <= 97:
			c.fg = p
		case v >= 40 && v <= 47 || v >= 100 && v <= 107:
			c.bg = p
		}
	}
}

// safeText is one line of output made safe (termsafe) and with its SGR
// sequences in the form terminal-to-html reads: termsafe passes the colon
// forms (38:5:208, 4:3), which the library would print as text.
//
// It returns dst with the line appended, and applies the line's SGR
// sequences to end, which starts as the state before the line.
func safeText(dst, line []byte, end *colourState) []byte {
	// CRLF is a plain line end.
	line = bytes.TrimSuffix(line, []byte{'\r'})
	var f termsafe.Filter
	safe := f.Append(nil, line)
	n := len(safe)
	safe = f.End(safe)
	// End escapes what an unfinished sequence left held (so it holds no
	// raw ESC) and ends a colour left on, which the next line continues
	// here.
	if bytes.HasSuffix(safe[n:], []byte("\x1b[0m")) {
		safe = safe[:len(safe)-4]
	}
	// After termsafe, every raw ESC starts an SGR sequence that passed:
	// ESC [ params m.
	for len(safe) > 0 {
		i := bytes.IndexByte(safe, 0x1b)
		if i < 0 {
			dst = append(dst, safe...)
			break
		}
		dst = append(dst, safe[:i]...)
		safe = safe[i:]
		j := bytes.IndexByte(safe, 'm')
		if j < 2 || safe[1] != '[' {
			// Not what termsafe lets through; show it as it would.
			dst = append(dst, `\x1b`...)
			safe = safe[1:]
			continue
		}
		params := sgrParams(string(safe[2:j]))
		safe = safe[j+1:]
		if params == nil {
			continue // only colon forms the library has no style for
		}
		end.sgr(params)
		dst = append(dst, "\x1b["...)
		dst = append(dst, strings.Join(params, ";")...)
		dst = append(dst, 'm')
	}
	return dst
}

// sgrParams splits an SGR sequence's parameters the way the library does
// (empty parameters dropped) after rewriting the colon forms termsafe
// passes: 38:5:N and 38:2:[id]:R:G:B (and 48) as their semicolon forms,
// 4:0 as 24 and 4:N as 4; underline colours (58, in either form) have no
// style in the library and are dropped, with their arguments, so that
// their numbers are not read as other parameters. It returns nil when
// nothing is left of a sequence that had parameters, and an empty slice
// (a reset) for ESC [ m.
func sgrParams(s string) []string {
	if s == "" {
		return []string{}
	}
	raw := strings.Split(s, ";")
	var out []string
	for i := 0; i < len(raw); i++ {
		p := raw[i]
		if sub := strings.Split(p, ":"); len(sub) > 1 {
			switch sub[0] {
			case "38", "48":
				switch {
				case sub[1] == "5" && len(sub) >= 3:
					out = append(out, sub[0], "5", sub[2])
				case sub[1] == "2" && len(sub) >= 5:
					rgb := sub[len(sub)-3:]
					out = append(out, sub[0], "2", rgb[0], rgb[1], rgb[2])
				}
			case "4":
				if sub[1] == "0" {
					out = append(out, "24")
				} else {
					out = append(out, "4")
				}
			}
			continue
		}
		if p == "58" {
			// 58;5;N or 58;2;R;G;B
			if i+1 < len(raw) && raw[i+1] == "5" {
				i += 2
			} else if i+1 < len(raw) && raw[i+1] == "2" {
				i += 4
			}
			continue
		}
		if p != "" {
			out = append(out, p)
		}
	}
	if out == nil && strings.Trim(s, ";") != "" {
		return nil
	}
	if out == nil {
		return []string{}
	}
	return out
}

// colourLine appends the HTML of one line of output to dst, coloured from
// state on, and advances state past the line. The text is HTML-escaped by
// the library.
func colourLine(dst, line []byte, state *colourState) []byte {
	if state.plain() {
		safe := safeText(nil, line, state)
		if bytes.IndexByte(safe, 0x1b) < 0 {
			// Most lines have no colour at all: write what the library
			// would (TestPlainLinesAsTheLibrary), at a tenth of its cost.
			return appendPlain(dst, safe)
		}
		return appendRendered(dst, safe)
	}
	in := state.appendPrefix(nil)
	in = safeText(in, line, state)
	return appendRendered(dst, in)
}

func appendRendered(dst, in []byte) []byte {
	html := terminal.Render(in)
	if html == "&nbsp;" {
		return dst
	}
	return append(dst, html...)
}

// appendPlain appends text without colour as terminal-to-html renders it:
// escaped as its outputBuffer.appendChar does, trailing blanks trimmed.
func appendPlain(dst, text []byte) []byte {
	text = bytes.TrimRight(text, " \t")
	for len(text) > 0 {
		i := bytes.IndexAny(text, `&'<>"/`)
		if i < 0 {
			return append(dst, text...)
		}
		dst = append(dst, text[:i]...)
		switch text[i] {
		case '&':
			dst = append(dst, "&amp;"...)
		case '\'':
			dst = append(dst, "&#39;"...)
		case '<':
			dst = append(dst, "&lt;"...)
		case '>':
			dst = append(dst, "&gt;"...)
		case '"':
			dst = append(dst, "&quot;"...)
		case '/':
			dst = append(dst, "&#47;"...)
		}
		text = text[i+1:]
	}
	return dst
}

// skipColour advances state past a line that is not shown, without
// rendering it.
func skipColour(line []byte, state *colourState) {
	if bytes.IndexByte(line, 0x1b) < 0 {
		return
	}
	safeText(nil, line, state)
}
