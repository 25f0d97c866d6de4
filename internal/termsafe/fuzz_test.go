package termsafe

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzFilter: whatever a step prints, however it is split into writes,
// what reaches the terminal is safe (checkSafe), does not depend on the
// split, and text that needs no escape passes unchanged. The seeds (the
// hostile cases of the unit tests) run in the normal suite; explore with
// go test -fuzz FuzzFilter ./internal/termsafe.
func FuzzFilter(f *testing.F) {
	for _, c := range cases {
		f.Add(c.in, uint8(len(c.in)/2))
	}
	f.Fuzz(func(t *testing.T, in string, split uint8) {
		whole := render(in)
		if err := checkSafe(whole); err != nil {
			t.Fatalf("rendering of %q is not safe: %v\n%q", in, err, whole)
		}
		k := min(int(split), len(in))
		var fl Filter
		out := fl.Append(nil, []byte(in[:k]))
		if fl.n >= MaxHeld {
			t.Fatalf("%d bytes held", fl.n)
		}
		out = fl.Append(out, []byte(in[k:]))
		if got := string(fl.End(out)); got != whole {
			t.Fatalf("%q split at %d renders %q, whole %q", in, k, got, whole)
		}
		if needsNoEscape(in) && whole != in {
			t.Fatalf("plain text %q rendered as %q", in, whole)
		}
	})
}

// FuzzLine: Line's result is one line of printable text, and Line leaves
// text that needs no escape alone.
func FuzzLine(f *testing.F) {
	for _, c := range cases {
		f.Add(c.in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out := Line(in)
		if !utf8.ValidString(out) {
			t.Fatalf("Line(%q) = %q: invalid UTF-8", in, out)
		}
		for _, r := range out {
			if r < 0x20 || r >= 0x7f && r <= 0x9f || escaped(r) {
				t.Fatalf("Line(%q) = %q: holds %U", in, out, r)
			}
		}
		if plainLine := !strings.ContainsAny(in, "\t\n"); plainLine && needsNoEscape(in) && out != in {
			t.Fatalf("Line(%q) = %q; want it unchanged", in, out)
		}
	})
}

// needsNoEscape says whether s is valid UTF-8 with no control character
// but tab and newline and no character the filter escapes.
func needsNoEscape(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 && r != '\t' && r != '\n' || r == 0x7f || escaped(r) {
			return false
		}
	}
	return true
}
