package pipeline

import (
	"cmp"
	"errors"
	"fmt"
	"path"
	"slices"
	"slipway/internal/closest"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// knownKeys returns the keys a section may hold, in the order they are
// documented.
func knownKeys() []string {
	return []string{"steps", "timeout", "artifacts", "env", "network", "cache", "image"}
}

// Parse reads a pipeline file. On failure the error is an [*Error] (syntax,
// one problem) or several joined with [errors.Join] (validation, every
// problem found, in file order); errors.As finds the first.
func Parse(data []byte) (*File, error) {
	if len(data) > MaxFileSize {
		return nil, &Error{Line: 1, Col: 1, Msg: fmt.Sprintf("file is %d bytes; the limit is %d", len(data), MaxFileSize)}
	}
	text := string(data)
	// Decoding into a generic map rather than a struct keeps key matching
	// exact (the struct decoder matches field names case-insensitively, so
	// "Steps" would pass silently) and lets every type problem be reported
	// in our words with a position, instead of the decoder's first error.
	var doc map[string]any
	md, err := toml.Decode(text, &doc)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			line, col := errorPosition(text, pe.Position)
			return nil, &Error{Line: line, Col: col, Msg: pe.Message}
		}
		return nil, &Error{Line: 1, Col: 1, Msg: err.Error()}
	}
	v := &validator{md: &md, keys: scanKeys(text)}
	f := &File{Sections: map[string]Pipeline{}}
	// Keys lists dotted keys (build.steps = ...) without their parent
	// tables, so sections are collected from the first element of every key.
	for _, name := range childNames(md.Keys(), nil) {
		if p, ok := v.section(name, doc[name]); ok {
			f.Sections[name] = p
		}
	}
	if len(v.errs) > 0 {
		slices.SortStableFunc(v.errs, func(a, b *Error) int {
			return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Col, b.Col))
		})
		errs := make([]error, len(v.errs))
		for i, e := range v.errs {
			errs[i] = e
		}
		return nil, errors.Join(errs...)
	}
	return f, nil
}

// errorPosition turns the decoder's position into line and column. The
// decoder fills Line and the byte offset Start but not always Col.
func errorPosition(text string, p toml.Position) (line, col int) {
	line = max(p.Line, 1)
	if p.Start < 0 || p.Start > len(text) {
		return line, 1
	}
	lineStart := strings.LastIndexByte(text[:p.Start], '\n') + 1
	return line, p.Start - lineStart + 1
}

// childNames returns, in file order and once each, the names of the keys
// directly under parent.
func childNames(keys []toml.Key, parent []string) []string {
	var names []string
	seen := map[string]bool{}
	for _, k := range keys {
		if len(k) <= len(parent) || !slices.Equal(k[:len(parent)], parent) {
			continue
		}
		if name := k[len(parent)]; !seen[name] {
			seen[name] = true
			names = append(names, name)
		}
	}
	return names
}

type validator struct {
	md   *toml.MetaData
	keys map[string]pos
	errs []*Error
}

func (v *validator) errorf(key []string, format string, args ...any) {
	p := lookup(v.keys, key)
	v.errs = append(v.errs, &Error{Line: p.line, Col: p.col, Msg: fmt.Sprintf(format, args...)})
}

func (v *validator) section(name string, value any) (Pipeline, bool) {
	key := []string{name}
	table, isTable := value.(map[string]any)
	switch {
	case isTable:
	case v.md.Type(name) == "ArrayHash":
		v.errorf(key, "[[%s]] is an array of tables; write the section as [%s]", name, name)
		return Pipeline{}, false
	default:
		v.errorf(key, "key %q is outside any section; put it under a section such as [%s]", name, DefaultSection)
		return Pipeline{}, false
	}
	if !isName(name) {
		v.errorf(key, "section name %q may only use letters, digits, '-' and '_'", name)
	}
	ok := true
	var p Pipeline
	// Walk the section's keys in file order so the errors read top to bottom.
	for _, field := range childNames(v.md.Keys(), key) {
		if !v.field(&p, name, field, table[field]) {
			ok = false
		}
	}
	if _, set := table["steps"]; !set {
		v.errorf(key, "[%s] has no steps; add steps = [\"make test\"]", name)
		ok = false
	}
	return p, ok && isName(name)
}

func (v *validator) field(p *Pipeline, section, name string, value any) bool {
	key := []string{section, name}
	switch name {
	case "steps":
		steps, ok := v.strings(key, value)
		if !ok {
			return false
		}
		if len(steps) == 0 {
			v.errorf(key, "[%s] steps is empty; a pipeline needs at least one step", section)
			return false
		}
		for i, s := range steps {
			if strings.TrimSpace(s) == "" {
				v.errorf(key, "[%s] step %d is blank", section, i+1)
				ok = false
			} else if strings.IndexByte(s, 0) >= 0 {
				v.errorf(key, "[%s] step %d contains a NUL byte", section, i+1)
				ok = false
			}
		}
		p.Steps = steps
		return ok
	case "timeout":
		s, isString := value.(string)
		if !isString {
			v.errorf(key, "[%s] timeout must be a duration string such as \"15m\", not %s", section, describe(value))
			return false
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			v.errorf(key, "[%s] timeout %q is not a duration (use e.g. \"90s\", \"15m\", \"1h30m\")", section, s)
			return false
		}
		if d <= 0 {
			v.errorf(key, "[%s] timeout %q must be more than zero", section, s)
			return false
		}
		p.Timeout = d
		return true
	case "artifacts":
		paths, ok := v.strings(key, value)
		if !ok {
			return false
		}
		for i, a := range paths {
			clean, problem := cleanArtifact(a)
			if problem != "" {
				v.errorf(key, "[%s] artifact %q %s", section, a, problem)
				ok = false
				continue
			}
			paths[i] = clean
		}
		p.Artifacts = paths
		return ok
	case "env":
		return v.env(p, section, value)
	case "image":
		s, isString := value.(string)
		switch {
		case !isString:
			v.errorf(key, "[%s] image must be a string such as \"golang:1.26\", not %s", section, describe(value))
			return false
		case s == "" || len(s) > 255 || strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f }):
			v.errorf(key, "[%s] image %q is not an image name (such as \"golang:1.26\")", section, s)
			return false
		}
		p.Image = s
		return true
	case "network", "cache":
		b, isBool := value.(bool)
		if !isBool {
			v.errorf(key, "[%s] %s must be true or false, not %s", section, name, describe(value))
			return false
		}
		if name == "network" {
			p.Network = b
		} else {
			p.Cache = b
		}
		return true
	}
	msg := fmt.Sprintf("unknown key %q in [%s]", name, section)
	if s := suggest(name); s != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", s)
	} else {
		msg += " (known keys: " + strings.Join(knownKeys(), ", ") + ")"
	}
	v.errorf(key, "%s", msg)
	return false
}

func (v *validator) strings(key []string, value any) ([]string, bool) {
	list, isList := value.([]any)
	if !isList {
		v.errorf(key, "[%s] %s must be an array of strings, not %s", key[0], key[1], describe(value))
		return nil, false
	}
	out := make([]string, len(list))
	for i, item := range list {
		s, isString := item.(string)
		if !isString {
			v.errorf(key, "[%s] %s: entry %d must be a string, not %s", key[0], key[1], i+1, describe(item))
			return nil, false
		}
		out[i] = s
	}
	return out, true
}

func (v *validator) env(p *Pipeline, section string, value any) bool {
	key := []string{section, "env"}
	table, isTable := value.(map[string]any)
	if !isTable {
		v.errorf(key, "[%s] env must be a table of NAME = \"value\", not %s", section, describe(value))
		return false
	}
	ok := true
	env := make(map[string]string, len(table))
	for _, name := range childNames(v.md.Keys(), key) {
		full := []string{section, "env", name}
		var val string
		switch x := table[name].(type) {
		case string:
			val = x
		case int64, bool:
			// Unambiguous as text; people write GOMAXPROCS = 2.
			val = fmt.Sprint(x)
		default:
			v.errorf(full, "[%s] env %s must be a string, not %s", section, name, describe(x))
			ok = false
			continue
		}
		if problem := envNameProblem(name); problem != "" {
			v.errorf(full, "[%s] env %s", section, problem)
			ok = false
			continue
		}
		if strings.IndexByte(val, 0) >= 0 {
			v.errorf(full, "[%s] env %s contains a NUL byte", section, name)
			ok = false
			continue
		}
		env[name] = val
	}
	if len(env) > 0 {
		p.Env = env
	}
	return ok
}

// envNameProblem says why name cannot be set by a pipeline, or "".
func envNameProblem(name string) string {
	if !isShellName(name) {
		return fmt.Sprintf("name %q is not a shell variable name (letters, digits and '_', not starting with a digit)", name)
	}
	// The worker sets these; letting the file override them would let a
	// pipeline escape the allow-list (PATH) or lie about the build (SLIPWAY_*).
	switch {
	case name == "PATH", name == "HOME", name == "CI":
		return fmt.Sprintf("%s is set by Slipway and cannot be overridden", name)
	case strings.HasPrefix(name, "SLIPWAY_"):
		return fmt.Sprintf("%s: names starting with SLIPWAY_ are reserved for Slipway", name)
	}
	return ""
}

// cleanArtifact returns the cleaned path, or a reason it is refused.
func cleanArtifact(a string) (string, string) {
	switch {
	case strings.TrimSpace(a) == "":
		return "", "is empty"
	case strings.IndexByte(a, 0) >= 0:
		return "", "contains a NUL byte"
	case strings.HasPrefix(a, "/"):
		return "", "is absolute; artifacts are relative to the workspace"
	}
	clean := path.Clean(a)
	if clean == ".." || strings.HasPrefix(clean, "../") {
		return "", "leaves the workspace"
	}
	return clean, ""
}

func isShellName(s string) bool {
	if s == "" || (s[0] >= '0' && s[0] <= '9') {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// isName reports whether s is a bare TOML key, which is what section names
// are restricted to so they can be typed in commands and shown in logs.
func isName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c == '-' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

func describe(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a number"
	case bool:
		return "a boolean"
	case []any:
		return "an array"
	case []map[string]any:
		return "an array of tables"
	case map[string]any:
		return "a table"
	}
	return "a date or time"
}

// suggest returns the known key closest to a misspelt one, or "".
func suggest(name string) string { return closest.Name(name, knownKeys()) }
