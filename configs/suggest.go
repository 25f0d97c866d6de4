package configs

import (
	"encoding"
	"fmt"
	"reflect"
	"slices"
	"slipway/internal/closest"
	"strings"

	"github.com/BurntSushi/toml"
)

// schemaTable is one table of the configuration file: its keys in the order
// they are declared, and whether it is an array of tables ([[user]]).
type schemaTable struct {
	keys  []string
	array bool
}

// schema maps the path of every table of the configuration file ("" for
// the top level, "ssh", "repo.environment") to its keys, read from the toml
// tags of Config so that it cannot fall behind.
func schema() map[string]schemaTable {
	out := map[string]schemaTable{}
	var walk func(path string, t reflect.Type, array bool)
	walk = func(path string, t reflect.Type, array bool) {
		st := schemaTable{array: array}
		for f := range t.Fields() {
			name := f.Tag.Get("toml")
			if name == "" || name == "-" || !f.IsExported() {
				continue
			}
			st.keys = append(st.keys, name)
			sub := path + "." + name
			if path == "" {
				sub = name
			}
			ft := f.Type
			switch {
			case leafType(ft):
			case ft.Kind() == reflect.Struct:
				walk(sub, ft, false)
			case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct && !leafType(ft.Elem()):
				walk(sub, ft.Elem(), true)
			}
		}
		out[path] = st
	}
	walk("", reflect.TypeFor[Config](), false)
	return out
}

// leafType reports whether values of t are written as one TOML value
// (Duration is a struct written as a string).
func leafType(t reflect.Type) bool {
	p := reflect.PointerTo(t)
	return p.Implements(reflect.TypeFor[encoding.TextUnmarshaler]()) || p.Implements(reflect.TypeFor[toml.Unmarshaler]()) ||
		t.Kind() != reflect.Struct && (t.Kind() != reflect.Slice || t.Elem().Kind() != reflect.Struct)
}

// tableName is how a table is written in the file: [ssh] or [[user]].
func tableName(path string, array bool) string {
	if array {
		return "[[" + path + "]]"
	}
	return "[" + path + "]"
}

// unknownKeys reports the keys the decoder did not use, each with the
// closest known key of its table or the table it belongs in. Keys inside
// an unknown table are not reported again.
func (v *validator) unknownKeys(md toml.MetaData) {
	tables := schema()
	var unknown []toml.Key
	seen := map[string]int{}
	for _, k := range md.Undecoded() {
		if slices.ContainsFunc(unknown, func(u toml.Key) bool { return len(u) < len(k) && slices.Equal(u, k[:len(u)]) }) {
			continue
		}
		unknown = append(unknown, k)
		parent, name := strings.Join(k[:len(k)-1], "."), k[len(k)-1]
		n := seen[k.String()]
		seen[k.String()]++
		line := v.loc.keyNth(k, n)
		var msg string
		if typ := md.Type(k...); typ == "Hash" || typ == "ArrayHash" {
			array := typ == "ArrayHash"
			msg = fmt.Sprintf("unknown table %s", tableName(k.String(), array))
			var names []string
			for p, t := range tables {
				if p != "" && t.array == array && strings.Count(p, ".") == len(k)-1 {
					names = append(names, p)
				}
			}
			slices.Sort(names)
			if s := closest.Name(k.String(), names); s != "" {
				msg += fmt.Sprintf(" (did you mean %s?)", tableName(s, array))
			}
		} else {
			msg = fmt.Sprintf("unknown key %q", name)
			if parent != "" {
				msg += " in " + tableName(parent, tables[parent].array)
			}
			msg += elsewhere(tables, parent, name)
		}
		v.add(line, "%s", msg)
	}
}

// elsewhere suggests the known key of the table closest to name, or the
// table a key of that name belongs in: a key written after a [table]
// header belongs to that table, a classic slip in TOML.
func elsewhere(tables map[string]schemaTable, parent, name string) string {
	if s := closest.Name(name, tables[parent].keys); s != "" {
		return fmt.Sprintf(" (did you mean %q?)", s)
	}
	var homes []string
	for p, t := range tables {
		if p != parent && slices.Contains(t.keys, name) {
			homes = append(homes, p)
		}
	}
	slices.Sort(homes)
	switch {
	case len(homes) == 0:
		return ""
	case homes[0] == "":
		return " (it is a top-level setting: write it above the first [table])"
	default:
		names := make([]string, len(homes))
		for i, h := range homes {
			names[i] = tableName(h, tables[h].array)
		}
		return fmt.Sprintf(" (it belongs in %s)", strings.Join(names, " or "))
	}
}

// suggestUser is " (did you mean "alice"?)" for a misspelt user name, or "".
func (c *Config) suggestUser(name string) string {
	names := make([]string, 0, len(c.Users))
	for i := range c.Users {
		if u := &c.Users[i]; c.byName[u.Name] == u {
			names = append(names, u.Name)
		}
	}
	if s := closest.Name(name, names); s != "" {
		return fmt.Sprintf(" (did you mean %q?)", s)
	}
	return ""
}
