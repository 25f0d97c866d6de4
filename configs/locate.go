package configs

import (
	"bufio"
	"bytes"
	"regexp"
	"strings"

	"github.com/BurntSushi/toml"
)

// locator finds the line of a table or key in the configuration text.
// BurntSushi/toml does not expose the positions of decoded keys, so problems
// found after decoding (duplicates, unknown users, unknown keys) are placed
// by scanning the text: a line-based view that is exact for files written
// one key per line, and falls back to the table header otherwise.
type locator struct {
	headers []header // in file order
	keys    []keyAt
	lines   []string

	// Indexes, so that placing every table of a file of thousands of
	// users and repositories (which validation does for each one, problem
	// or not) stays linear: the header lines of each table path, and the
	// first line of each key by table occurrence and by table path.
	tables  map[string][]int
	firstIn map[keyAt]int // keyAt without line
	first   map[keyAt]int // keyAt without index and line
}

type header struct {
	path string // "user", "repo.environment"
	line int
}

type keyAt struct {
	table string // path of the enclosing table, "" at top level
	index int    // which occurrence of that table (array of tables)
	key   string
	line  int
}

func newLocator(data []byte) *locator {
	l := &locator{tables: map[string][]int{}, firstIn: map[keyAt]int{}, first: map[keyAt]int{}}
	count := map[string]int{}
	table, index := "", 0
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for n := 1; sc.Scan(); n++ {
		l.lines = append(l.lines, sc.Text())
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "[[") && strings.Contains(line, "]]"):
			table = normalize(line[2:strings.Index(line, "]]")])
			index = count[table]
			count[table]++
			l.headers = append(l.headers, header{table, n})
			l.tables[table] = append(l.tables[table], n)
		case strings.HasPrefix(line, "["):
			if end := strings.Index(line, "]"); end > 0 {
				table = normalize(line[1:end])
				index = 0
				l.headers = append(l.headers, header{table, n})
				l.tables[table] = append(l.tables[table], n)
			}
		default:
			if eq := strings.Index(line, "="); eq > 0 && !strings.HasPrefix(line, "#") {
				k := keyAt{table, index, normalize(line[:eq]), n}
				l.keys = append(l.keys, k)
				k.line = 0
				if _, ok := l.firstIn[k]; !ok {
					l.firstIn[k] = n
				}
				k.index = 0
				if _, ok := l.first[k]; !ok {
					l.first[k] = n
				}
			}
		}
	}
	return l
}

func normalize(s string) string {
	parts := strings.Split(s, ".")
	for i, p := range parts {
		parts[i] = strings.Trim(strings.TrimSpace(p), `"'`)
	}
	return strings.Join(parts, ".")
}

// table returns the header line of the index-th [[path]] table, or 0.
func (l *locator) table(path string, index int) int {
	if lines := l.tables[path]; index >= 0 && index < len(lines) {
		return lines[index]
	}
	return 0
}

// keyIn returns the line of key in the index-th table at path (index -1:
// any), falling back to that table's header.
func (l *locator) keyIn(path string, index int, key string) int {
	if index < 0 {
		if line, ok := l.first[keyAt{table: path, key: key}]; ok {
			return line
		}
	} else if line, ok := l.firstIn[keyAt{table: path, index: index, key: key}]; ok {
		return line
	}
	if index < 0 {
		index = 0
	}
	return l.table(path, index)
}

// keyNth returns the line of the n-th occurrence (from 0) of a key reported
// by toml.MetaData, such as ["user", "nmae"], or of the table it names.
func (l *locator) keyNth(k toml.Key, n int) int {
	if len(k) == 0 {
		return 0
	}
	parent := strings.Join(k[:len(k)-1], ".")
	last := k[len(k)-1]
	seen := 0
	for _, kl := range l.keys {
		if kl.table == parent && kl.key == last {
			if seen == n {
				return kl.line
			}
			seen++
		}
	}
	full := k.String()
	seen = 0
	for _, h := range l.headers {
		if h.path == full {
			if seen == n {
				return h.line
			}
			seen++
		}
	}
	return l.keyNth(k[:len(k)-1], 0)
}

// valueLine returns the line, from line from on and before the next table
// header, that holds value as a quoted string: the element of a list
// written over several lines. It falls back to from.
func (l *locator) valueLine(from int, value string) int {
	if from <= 0 || value == "" {
		return from
	}
	for n := from; n <= len(l.lines); n++ {
		text := l.lines[n-1]
		if n > from && strings.HasPrefix(strings.TrimSpace(text), "[") && !strings.HasPrefix(strings.TrimSpace(text), `["`) {
			break
		}
		if strings.Contains(text, `"`+value+`"`) || strings.Contains(text, "'"+value+"'") {
			return n
		}
	}
	return from
}

// keyInNth returns the line of key in the index-th table at path that comes
// after line from (the header of its parent table), falling back to from.
func (l *locator) keyInNth(path string, index int, key string, from int) int {
	header, end := l.nthTable(path, index, from)
	if header == 0 {
		return from
	}
	if line := l.keyBetween(path, key, header, end); line > 0 {
		return line
	}
	return header
}

// nthTable returns the header line of the index-th table at path after
// line from, and the line of the next header (1<<30 when none); 0 when
// there is no such table.
func (l *locator) nthTable(path string, index int, from int) (header, end int) {
	seen := -1
	for _, h := range l.headers {
		if h.path == path && h.line > from {
			seen++
			if seen == index {
				header = h.line
				break
			}
		}
	}
	if header == 0 {
		return 0, 0
	}
	end = 1 << 30
	for _, h := range l.headers {
		if h.line > header {
			end = h.line
			break
		}
	}
	return header, end
}

// keyBetween returns the line of key in the table at path between the
// lines header and end, or 0.
func (l *locator) keyBetween(path, key string, header, end int) int {
	for _, k := range l.keys {
		if k.table == path && k.line > header && k.line < end && k.key == key {
			return k.line
		}
	}
	return 0
}

// span is where one value is written: its first and last lines.
type span struct{ first, last int }

// elements returns where each element of the array of key is written, in
// the index-th table at path after line from: the elements of key = [...],
// or the tables [[path.key]] that follow that table. Nil when it cannot
// tell.
func (l *locator) elements(path string, index int, key string, from int) []span {
	header, end := l.nthTable(path, index, from)
	if header == 0 {
		return nil
	}
	if line := l.keyBetween(path, key, header, end); line > 0 {
		return l.arrayAt(line)
	}
	sub := path + "." + key
	var out []span
	for i, h := range l.headers {
		if h.line < end {
			continue
		}
		if h.path != sub && !strings.HasPrefix(h.path, sub+".") {
			break
		}
		if h.path == sub {
			last := len(l.lines)
			if i+1 < len(l.headers) {
				last = l.headers[i+1].line - 1
			}
			out = append(out, span{h.line, last})
		}
	}
	return out
}

// arrayAt reads the array value of the key written on line n (key = [...],
// over as many lines as it takes), and returns where each element is.
func (l *locator) arrayAt(n int) []span {
	eq := strings.Index(l.lines[n-1], "=")
	if eq < 0 {
		return nil
	}
	c := &cursor{lines: l.lines, n: n - 1, i: eq + 1}
	c.skip(" \t\r\n")
	if c.at() != '[' {
		return nil
	}
	c.advance()
	var out []span
	for {
		c.skip(" \t\r\n,")
		switch c.at() {
		case 0:
			return nil
		case ']':
			return out
		}
		first := c.line()
		c.value()
		out = append(out, span{first, c.line()})
	}
}

// keyInSpan returns the line within s where key is set, or s.first.
func (l *locator) keyInSpan(s span, key string) int {
	if key == "" || s.first <= 0 {
		return s.first
	}
	re := regexp.MustCompile(`(^|[\s{,])["']?` + regexp.QuoteMeta(key) + `["']?\s*=`)
	for n := s.first; n <= s.last && n <= len(l.lines); n++ {
		if re.MatchString(l.lines[n-1]) {
			return n
		}
	}
	return s.first
}

// cursor walks TOML text a byte at a time, across lines, knowing just
// enough of the syntax (strings, comments, nesting) to step over a value.
type cursor struct {
	lines []string
	n, i  int // line (from 0) and byte in it
}

// at is the byte under the cursor: '\n' at the end of a line, 0 at the end
// of the text.
func (c *cursor) at() byte {
	switch {
	case c.n >= len(c.lines):
		return 0
	case c.i >= len(c.lines[c.n]):
		return '\n'
	}
	return c.lines[c.n][c.i]
}

func (c *cursor) advance() {
	switch {
	case c.n >= len(c.lines):
	case c.i >= len(c.lines[c.n]):
		c.n, c.i = c.n+1, 0
	default:
		c.i++
	}
}

func (c *cursor) line() int { return c.n + 1 }

func (c *cursor) has(s string) bool {
	return c.n < len(c.lines) && c.i <= len(c.lines[c.n]) && strings.HasPrefix(c.lines[c.n][c.i:], s)
}

// skip steps over the bytes of set and over comments.
func (c *cursor) skip(set string) {
	for {
		switch b := c.at(); {
		case b == '#':
			c.i = len(c.lines[c.n])
		case b != 0 && strings.IndexByte(set, b) >= 0:
			c.advance()
		default:
			return
		}
	}
}

// value steps over one value: a string, an inline table or array, or a
// bare word (number, boolean, date).
func (c *cursor) value() {
	n, i := c.n, c.i
	switch c.at() {
	case '"', '\'':
		c.str()
	case '{', '[':
		depth := 0
		for {
			switch b := c.at(); b {
			case 0:
				return
			case '"', '\'':
				c.str()
				continue
			case '#':
				c.i = len(c.lines[c.n])
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
			}
			c.advance()
			if depth == 0 {
				return
			}
		}
	default:
		for b := c.at(); b != 0 && strings.IndexByte(",]}# \t\r\n", b) < 0; b = c.at() {
			c.advance()
		}
	}
	if c.n == n && c.i == i {
		c.advance() // a stray byte: step over it rather than stop
	}
}

// str steps over a string: basic or literal, on one line or multi-line.
func (c *cursor) str() {
	q := c.at()
	triple := strings.Repeat(string(q), 3)
	if c.has(triple) {
		c.i += 3
		for c.at() != 0 {
			switch {
			case q == '"' && c.at() == '\\':
				c.advance()
			case c.has(triple):
				c.i += 3
				for c.at() == q { // up to two quotes may end the content
					c.advance()
				}
				return
			}
			c.advance()
		}
		return
	}
	c.advance()
	for b := c.at(); b != 0 && b != '\n'; b = c.at() {
		c.advance()
		switch {
		case b == q:
			return
		case q == '"' && b == '\\':
			c.advance()
		}
	}
}
