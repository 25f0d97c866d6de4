package pipeline

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// The TOML decoder knows where each key is but does not say, so positions for
// validation errors come from this scanner. It runs only on text the decoder
// has accepted, and it is best effort: whatever it cannot place is reported at
// the nearest enclosing key it did place (the section header, at worst), and
// at line 1 if even that fails.

type pos struct{ line, col int }

// lookup returns the position of key, or of its nearest recorded parent.
func lookup(found map[string]pos, key []string) pos {
	for n := len(key); n > 0; n-- {
		if p, ok := found[strings.Join(key[:n], "\x00")]; ok {
			return p
		}
	}
	return pos{line: 1, col: 1}
}

type keyScanner struct {
	s         string
	i         int
	line      int
	lineStart int
	found     map[string]pos
}

type frame struct {
	brace bool     // inline table; false for an array
	base  []string // key path of the inline table
	ok    bool     // base is known (not inside an array)
}

// scanKeys records the position of every key, table header and dotted-key
// prefix in s, keyed by the path joined with NUL.
func scanKeys(s string) map[string]pos {
	k := &keyScanner{s: s, line: 1, found: map[string]pos{}}
	var (
		table     []string
		stack     []frame
		expectKey = true
		lastKey   []string
		lastOK    bool
	)
	for k.i < len(s) {
		c := s[k.i]
		switch c {
		case '\n':
			k.newline()
			k.i++
			if len(stack) == 0 {
				expectKey = true
			}
			continue
		case ' ', '\t', '\r':
			k.i++
			continue
		case '#':
			k.skipComment()
			continue
		}
		if expectKey && c != '}' {
			expectKey = false
			if len(stack) == 0 && c == '[' {
				p := k.pos()
				k.i++
				if k.i < len(s) && s[k.i] == '[' {
					k.i++
				}
				path, ok := k.parseKey()
				table = nil
				if ok {
					table = path
					k.record(path, 1, p)
				}
				// Nothing but "]", "]]", blanks and a comment follow.
				for k.i < len(s) && s[k.i] != '\n' && s[k.i] != '#' {
					k.i++
				}
				continue
			}
			p := k.pos()
			path, ok := k.parseKey()
			base, baseOK := table, true
			if n := len(stack); n > 0 {
				base, baseOK = stack[n-1].base, stack[n-1].ok
			}
			full := append(append([]string(nil), base...), path...)
			lastKey, lastOK = full, ok && baseOK
			if lastOK {
				k.record(full, len(base)+1, p)
			}
			for k.i < len(s) && (s[k.i] == ' ' || s[k.i] == '\t') {
				k.i++
			}
			if k.i < len(s) && s[k.i] == '=' {
				k.i++
			}
			continue
		}
		expectKey = false
		switch c {
		case '"', '\'':
			k.skipString()
			continue
		case '{':
			inArray := false
			for _, f := range stack {
				inArray = inArray || !f.brace
			}
			stack = append(stack, frame{brace: true, base: lastKey, ok: lastOK && !inArray})
			expectKey = true
		case '[':
			stack = append(stack, frame{})
		case ']', '}':
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
		case ',':
			if n := len(stack); n > 0 && stack[n-1].brace {
				expectKey = true
			}
		}
		k.i++
	}
	return k.found
}

func (k *keyScanner) pos() pos { return pos{line: k.line, col: k.i - k.lineStart + 1} }

func (k *keyScanner) newline() {
	k.line++
	k.lineStart = k.i + 1
}

// record stores the position of path and of its prefixes of at least min
// elements (a dotted key a.b.c = 1 also defines a.b), keeping the first.
func (k *keyScanner) record(path []string, min int, p pos) {
	for n := max(min, 1); n <= len(path); n++ {
		key := strings.Join(path[:n], "\x00")
		if _, seen := k.found[key]; !seen {
			k.found[key] = p
		}
	}
}

func (k *keyScanner) skipComment() {
	for k.i < len(k.s) && k.s[k.i] != '\n' {
		k.i++
	}
}

// parseKey reads a possibly dotted key of bare, "basic" and 'literal' parts.
func (k *keyScanner) parseKey() ([]string, bool) {
	var path []string
	for {
		k.skipBlanks()
		if k.i >= len(k.s) {
			return path, false
		}
		switch c := k.s[k.i]; {
		case c == '"':
			start := k.i + 1
			k.skipString()
			end := max(k.i-1, start)
			path = append(path, unescape(k.s[start:end]))
		case c == '\'':
			start := k.i + 1
			k.skipString()
			end := max(k.i-1, start)
			path = append(path, k.s[start:end])
		case isBare(c):
			start := k.i
			for k.i < len(k.s) && isBare(k.s[k.i]) {
				k.i++
			}
			path = append(path, k.s[start:k.i])
		default:
			return path, false
		}
		k.skipBlanks()
		if k.i < len(k.s) && k.s[k.i] == '.' {
			k.i++
			continue
		}
		return path, len(path) > 0
	}
}

func (k *keyScanner) skipBlanks() {
	for k.i < len(k.s) && (k.s[k.i] == ' ' || k.s[k.i] == '\t') {
		k.i++
	}
}

// skipString moves past the string starting at k.i, counting the newlines of
// multi-line strings.
func (k *keyScanner) skipString() {
	q := k.s[k.i]
	escapes := q == '"'
	if strings.HasPrefix(k.s[k.i:], strings.Repeat(string(q), 3)) {
		k.i += 3
		for k.i < len(k.s) {
			c := k.s[k.i]
			switch {
			case c == '\\' && escapes:
				k.i++
				if k.i < len(k.s) && k.s[k.i] == '\n' {
					k.newline()
				}
			case c == '\n':
				k.newline()
			case c == q && strings.HasPrefix(k.s[k.i:], strings.Repeat(string(q), 3)):
				k.i += 3
				// Up to two more quotes belong to the content: """a""""".
				for n := 0; n < 2 && k.i < len(k.s) && k.s[k.i] == q; n++ {
					k.i++
				}
				return
			}
			k.i++
		}
		return
	}
	k.i++
	for k.i < len(k.s) && k.s[k.i] != '\n' {
		c := k.s[k.i]
		k.i++
		if c == q {
			return
		}
		if c == '\\' && escapes {
			k.i++
		}
	}
}

func isBare(c byte) bool {
	return c == '_' || c == '-' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// unescape decodes the escapes of a basic-string key; the decoder has already
// checked them, so anything odd is kept as written.
func unescape(s string) string {
	if strings.IndexByte(s, '\\') < 0 {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		i++
		switch c := s[i]; c {
		case 'b':
			b.WriteByte('\b')
		case 't':
			b.WriteByte('\t')
		case 'n':
			b.WriteByte('\n')
		case 'f':
			b.WriteByte('\f')
		case 'r':
			b.WriteByte('\r')
		case 'e':
			b.WriteByte(0x1b)
		case '"', '\\':
			b.WriteByte(c)
		case 'x', 'u', 'U':
			n := map[byte]int{'x': 2, 'u': 4, 'U': 8}[c]
			if i+1+n <= len(s) {
				if r, err := strconv.ParseUint(s[i+1:i+1+n], 16, 32); err == nil {
					b.WriteRune(rune(r))
					i += n
					continue
				}
			}
			b.WriteByte('\\')
			b.WriteByte(c)
		default:
			b.WriteByte('\\')
			b.WriteByte(c)
		}
	}
	if !utf8.ValidString(b.String()) {
		return s
	}
	return b.String()
}
