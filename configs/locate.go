package configs

import (
	"bufio"
	"bytes"
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
	seen := -1
	header := 0
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
		return from
	}
	end := 1 << 30
	for _, h := range l.headers {
		if h.line > header {
			end = h.line
			break
		}
	}
	for _, k := range l.keys {
		if k.table == path && k.line > header && k.line < end && k.key == key {
			return k.line
		}
	}
	return header
}
