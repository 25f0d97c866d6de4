package termsafe

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
)

// render is the whole-stream rendering of in, in one Append.
func render(in string) string {
	var f Filter
	out := f.Append(nil, []byte(in))
	return string(f.End(out))
}

// cases are inputs a hostile or careless step prints, with what a terminal
// must be sent instead.
var cases = []struct {
	name, in, want string
}{
	{"plain text", "ok  \tslipway/build\t0.016s\n", "ok  \tslipway/build\t0.016s\n"},
	{"UTF-8 text", "naïve café — 日本語 ✓ 🚀\n", "naïve café — 日本語 ✓ 🚀\n"},
	{"carriage return overwrites the line", "50%\r100%\n", `50%\r100%` + "\n"},
	{"CRLF is a plain line end", "line one\r\nline two\r\n", "line one\nline two\n"},
	{"CR CR LF keeps one CR visible", "a\r\r\n", `a\r` + "\n"},
	{"cursor up and erase line", "real\n\x1b[1A\x1b[2Kfake\n", "real\n" + `\x1b[1A\x1b[2Kfake` + "\n"},
	{"window title (OSC 0, BEL)", "\x1b]0;pwned\x07x\n", `\x1b]0;pwned\x07x` + "\n"},
	{"clipboard write (OSC 52, ST)", "\x1b]52;c;Y3VybCBldmlsfHNo\x1b\\\n", `\x1b]52;c;Y3VybCBldmlsfHNo\x1b\` + "\n"},
	{"conceal hides text", "\x1b[8mbuild #12 passed\x1b[0m\n", `\x1b[8mbuild #12 passed` + "\x1b[0m\n"},
	{"conceal among other parameters", "\x1b[1;8;31mx\n", `\x1b[1;8;31mx` + "\n"},
	{"conceal with leading zeros", "\x1b[008mx\n", `\x1b[008mx` + "\n"},
	{"blink", "\x1b[5mx\x1b[6my\n", `\x1b[5mx\x1b[6my` + "\n"},
	{"red then reset", "\x1b[31mred\x1b[0m plain\n", "\x1b[31mred\x1b[0m plain\n"},
	{"empty SGR is a reset", "\x1b[1mbold\x1b[m\n", "\x1b[1mbold\x1b[m\n"},
	{"256 colours: 8 as a colour number passes", "\x1b[38;5;8mgrey\x1b[0m\n", "\x1b[38;5;8mgrey\x1b[0m\n"},
	{"true colour fg and bg", "\x1b[38;2;8;8;8;48;2;255;255;255mx\x1b[0m\n", "\x1b[38;2;8;8;8;48;2;255;255;255mx\x1b[0m\n"},
	{"colon forms", "\x1b[4:3;58:2::255:0:0mx\x1b[0m\n", "\x1b[4:3;58:2::255:0:0mx\x1b[0m\n"},
	{"truncated 256-colour", "\x1b[38;5mx\n", `\x1b[38;5mx` + "\n"},
	{"unknown colour selector", "\x1b[38;8;1mx\n", `\x1b[38;8;1mx` + "\n"},
	{"colon on a plain parameter", "\x1b[8:1mx\n", `\x1b[8:1mx` + "\n"},
	{"private SGR (modifyOtherKeys)", "\x1b[>4;1mx\n", `\x1b[>4;1mx` + "\n"},
	{"colour runs to the end of its line only", "\x1b[30;40mblack\nnext\n", "\x1b[30;40mblack\x1b[0m\nnext\n"},
	{"colour left on at the end of the stream", "\x1b[31mred", "\x1b[31mred\x1b[0m"},
	{"SGR too long to pass", "\x1b[" + strings.Repeat("1;", 40) + "1mx\n", `\x1b[` + strings.Repeat("1;", 40) + "1mx\n"},
	{"other C0 controls", "a\x00b\x07c\x08d\x0be\x0cf\x7fg\n", `a\x00b\x07c\x08d\x0be\x0cf\x7fg` + "\n"},
	{"C1 CSI as UTF-8", "\u009b2Jx\n", `\u009b2Jx` + "\n"},
	{"raw 8-bit CSI byte", "\x9b2Jx\n", `\x9b2Jx` + "\n"},
	{"NEL and other C1", "a\u0085b\u0090c\n", `a\u0085b\u0090c` + "\n"},
	{"invalid UTF-8", "a\xffb\xc3(c\xe2\x82\n", `a\xffb\xc3(c\xe2\x82` + "\n"},
	{"bidi override reorders text", "if x \u202e} \u2066evil\u2069\n", `if x \u202e} \u2066evil\u2069` + "\n"},
	{"line separator", "a\u2028b\n", `a\u2028b` + "\n"},
	{"ESC at the very end", "x\x1b", `x\x1b`},
	{"CR at the very end", "x\r", `x\r`},
	{"half a character at the end", "x\xe6\x97", `x\xe6\x97`},
	{"incomplete SGR at the end", "x\x1b[31", `x\x1b[31`},
}

func TestFilterRendersHostileOutputSafe(t *testing.T) {
	for _, c := range cases {
		if got := render(c.in); got != c.want {
			t.Errorf("%s:\n in  %q\n got %q\nwant %q", c.name, c.in, got, c.want)
		}
		if err := checkSafe(render(c.in)); err != nil {
			t.Errorf("%s: rendering is not safe: %v", c.name, err)
		}
	}
}

// TestFilterSplitAtEveryByte: a sequence split across writes at any byte
// boundary, or written a byte at a time, renders as it does whole.
func TestFilterSplitAtEveryByte(t *testing.T) {
	for _, c := range cases {
		want := render(c.in)
		for i := 0; i <= len(c.in); i++ {
			for j := i; j <= len(c.in); j++ {
				var f Filter
				out := f.Append(nil, []byte(c.in[:i]))
				out = f.Append(out, []byte(c.in[i:j]))
				out = f.Append(out, []byte(c.in[j:]))
				if got := string(f.End(out)); got != want {
					t.Fatalf("%s split at %d and %d:\n got %q\nwant %q", c.name, i, j, got, want)
				}
			}
		}
		var f Filter
		var out []byte
		for k := range len(c.in) {
			out = f.Append(out, []byte{c.in[k]})
			if f.n >= MaxHeld {
				t.Fatalf("%s: %d bytes held", c.name, f.n)
			}
		}
		if got := string(f.End(out)); got != want {
			t.Errorf("%s a byte at a time:\n got %q\nwant %q", c.name, got, want)
		}
	}
}

// TestFilterHoldsLittle: however a step writes, the Filter holds fewer
// than MaxHeld bytes, and a long almost-SGR is let go as text.
func TestFilterHoldsLittle(t *testing.T) {
	var f Filter
	in := "\x1b[" + strings.Repeat("1", 200)
	var out []byte
	for k := range len(in) {
		out = f.Append(out, []byte{in[k]})
		if f.n >= MaxHeld {
			t.Fatalf("%d bytes held after %d written", f.n, k+1)
		}
	}
	if got, want := string(f.End(out)), `\x1b[`+strings.Repeat("1", 200); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestLine(t *testing.T) {
	for in, want := range map[string]string{
		"go test ./...":                  "go test ./...",
		"make — ✓":                       "make — ✓",
		"a\tb":                           `a\tb`,
		"true\n== build #12 passed":      `true\n== build #12 passed`,
		"\x1b[31mred\x1b[0m":             `\x1b[31mred\x1b[0m`,
		"\x1b]0;t\x07\r\u009b\xff\u202e": `\x1b]0;t\x07\r\u009b\xff\u202e`,
		"":                               "",
	} {
		if got := Line(in); got != want {
			t.Errorf("Line(%q) = %q, want %q", in, got, want)
		}
	}
	if s := "plain text"; testing.AllocsPerRun(100, func() { _ = Line(s) }) != 0 {
		t.Error("Line allocates for text that needs no escape")
	}
}

// failWriter fails every write after the first.
type failWriter struct {
	bytes.Buffer
	writes int
}

func (w *failWriter) Write(p []byte) (int, error) {
	w.writes++
	if w.writes > 1 {
		return 0, errors.New("gone")
	}
	return w.Buffer.Write(p)
}

func TestWriter(t *testing.T) {
	var b bytes.Buffer
	w := NewWriter(&b)
	for _, s := range []string{"a\x1b", "[31mred\r", "\nb\x1b]0;", "t\x07", "\x1b[32mgreen"} {
		if n, err := w.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", s, n, err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got, want := b.String(), "a\x1b[31mred\x1b[0m\nb"+`\x1b]0;t\x07`+"\x1b[32mgreen\x1b[0m"; got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}

	// A long write is rendered in pieces; a failing writer's error comes
	// back with how much was rendered before it.
	fw := &failWriter{}
	w = NewWriter(fw)
	long := bytes.Repeat([]byte("x"), 3*chunk)
	if n, err := w.Write(long); n != chunk || err == nil {
		t.Errorf("Write to a failing writer = %d, %v; want %d and its error", n, err, chunk)
	}
}

// checkSafe is the property every rendering has, checked independently of
// the filter's own parser: ESC only as the start of an SGR sequence with
// no parameter that hides or blinks, no other C0 or C1 control than tab
// and newline, valid UTF-8, no bidirectional control, and no colour left
// on at a newline or at the end.
func checkSafe(out string) error {
	if !utf8.ValidString(out) {
		return errors.New("invalid UTF-8")
	}
	coloured := false
	for i := 0; i < len(out); {
		r, size := utf8.DecodeRuneInString(out[i:])
		switch {
		case r == 0x1b:
			end := strings.IndexByte(out[i:], 'm')
			if end < 0 || out[i+1] != '[' {
				return errorAt(out, i, "ESC that starts no SGR")
			}
			params := out[i+2 : i+end]
			if strings.Trim(params, "0123456789;:") != "" {
				return errorAt(out, i, "ESC that starts no SGR")
			}
			if hidesText(params) {
				return errorAt(out, i, "SGR that hides or blinks")
			}
			coloured = strings.Trim(params, "0;") != ""
			i += end + 1
			continue
		case r == '\n':
			if coloured {
				return errorAt(out, i, "colour left on at a newline")
			}
		case r == '\t':
		case r < 0x20, r >= 0x7f && r <= 0x9f:
			return errorAt(out, i, "control character")
		case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, r == 0x200e, r == 0x200f, r == 0x061c:
			return errorAt(out, i, "bidirectional control")
		}
		i += size
	}
	if coloured {
		return errors.New("colour left on at the end")
	}
	return nil
}

// hidesText says whether SGR parameters contain conceal (8) or blink (5,
// 6) as a parameter of their own, not as an argument of an extended
// colour (38;5;8, 38;2;8;8;8).
func hidesText(params string) bool {
	fields := strings.Split(params, ";")
	for i := 0; i < len(fields); i++ {
		f := strings.TrimLeft(fields[i], "0")
		switch {
		case f == "38" || f == "48" || f == "58":
			if i+1 < len(fields) && strings.TrimLeft(fields[i+1], "0") == "5" {
				i += 2
			} else if i+1 < len(fields) && strings.TrimLeft(fields[i+1], "0") == "2" {
				i += 4
			}
		case f == "5" || f == "6" || f == "8" || strings.HasPrefix(f, "8:"):
			return true
		}
	}
	return false
}

func errorAt(out string, i int, what string) error {
	return fmt.Errorf("%s at byte %d: %q", what, i, out[max(0, i-20):min(len(out), i+20)])
}

// TestPrintable8 checks the eight-byte test against the byte table for
// every byte value at every position, among printable neighbours.
func TestPrintable8(t *testing.T) {
	for c := range 256 {
		for pos := range 8 {
			b := []byte("abcdefgh")
			b[pos] = byte(c)
			want := true
			for _, x := range b {
				want = want && x >= 0x20 && x < 0x7f
			}
			if got := printable8(binary.LittleEndian.Uint64(b)); got != want {
				t.Errorf("printable8(%q) = %v, want %v", b, got, want)
			}
		}
	}
}
