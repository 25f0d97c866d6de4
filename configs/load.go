package configs

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/user"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// Loader reads configurations. Besides the file itself, a configuration may
// draw on the machine it is loaded on, and only where it says so: the running
// user's home folder ("~/" in key_files), login name (name = "{login}") and
// environment (keys_env). The flags of `slipway serve` override two settings.
// The zero Loader has no home, no login and no environment.
type Loader struct {
	// Home is the running user's home folder; "~/" in key_files stands for it.
	Home string
	// Login is the running user's login name; a user named "{login}" gets it.
	Login string
	// Getenv reads the environment variables named by keys_env; nil reads
	// nothing.
	Getenv func(string) string
	// DataDir, Listen and HTTPListen, when not empty, replace the file's
	// data_dir, [ssh] listen and [http] listen (serve's --data, --listen
	// and --http; --http off turns the web side off).
	DataDir, Listen, HTTPListen string
	// MemoryBytes is the memory builds share on this machine, from which
	// build.max_memory_bytes gets its default; 0: unknown, no default
	// memory limit.
	MemoryBytes int64
}

// SystemLoader returns a Loader for the running process: $HOME, the login
// name of the process's user, and the process's environment.
func SystemLoader() Loader {
	l := Loader{Getenv: os.Getenv, MemoryBytes: hostMemory()}
	l.Home, _ = os.UserHomeDir()
	if u, err := user.Current(); err == nil && u.Username != "" {
		l.Login = u.Username
	} else {
		l.Login = os.Getenv("USER")
	}
	return l
}

// Load reads and validates the configuration file at path on this machine
// (see SystemLoader).
func Load(path string) (*Config, error) { return SystemLoader().Load(path) }

// Parse decodes and validates a configuration on this machine (see
// SystemLoader); name is used in messages.
func Parse(data []byte, name string) (*Config, error) { return SystemLoader().Parse(data, name) }

// Load reads and validates the configuration file at path.
func (l Loader) Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return l.Parse(data, path)
}

// Parse decodes and validates a configuration; name is used in messages.
// On failure the error is a *ValidationError carrying every problem found,
// each as "FILE:LINE: problem".
func (l Loader) Parse(data []byte, name string) (*Config, error) {
	var c Config
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&c)
	if err != nil {
		return nil, &ValidationError{[]Problem{decodeProblem(err, data, name)}}
	}
	v := validator{file: name, loc: newLocator(data), loader: l}
	v.unknownKeys(md)
	if l.DataDir != "" {
		c.DataDir = l.DataDir
	}
	if l.Listen != "" {
		c.SSH.Listen = l.Listen
	}
	switch l.HTTPListen {
	case "":
	case "off":
		c.HTTP.Listen = ""
	default:
		c.HTTP.Listen = l.HTTPListen
	}
	c.applyDefaults(md.IsDefined, l.MemoryBytes)
	c.validate(&v)
	if len(v.problems) > 0 {
		slices.SortStableFunc(v.problems, func(a, b Problem) int { return a.order - b.order })
		return nil, &ValidationError{v.problems}
	}
	return &c, nil
}

// decodeProblem turns an error of the TOML decoder into a Problem with the
// line it is about.
func decodeProblem(err error, data []byte, name string) Problem {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		msg := pe.Message
		if pe.LastKey != "" && !strings.Contains(msg, pe.LastKey) {
			msg = fmt.Sprintf("%s: %s", pe.LastKey, msg)
		}
		line := errorLine(pe.Position, data)
		return Problem{File: name, Line: line, Msg: msg, order: line}
	}
	// BurntSushi/toml reports a value of the wrong type as a plain string.
	typeErr := regexp.MustCompile(`^toml: (?:line (\d+) )?\(last key "([^"]*)"\): (.*)$`)
	if m := typeErr.FindStringSubmatch(err.Error()); m != nil {
		line, _ := strconv.Atoi(m[1])
		return Problem{File: name, Line: line, Msg: m[2] + ": " + typeMessage(m[3]), order: line}
	}
	return Problem{File: name, Msg: err.Error()}
}

// errorLine is the line of a syntax error. The decoder's own line number
// counts the newline it just read, so an error found at the end of a line
// ("[ssh" with no "]") would be reported on the next one; the line of the
// last byte the lexer read is the line the problem is on.
func errorLine(p toml.Position, data []byte) int {
	end := p.Start + max(p.Len, 1) - 1
	if p.Line <= 0 || p.Start <= 0 && p.Line > 1 || end < 0 || end > len(data) {
		return p.Line // no position, or none to trust
	}
	if end == len(data) {
		end--
	}
	return 1 + bytes.Count(data[:end], []byte("\n"))
}

// typeMessage says "expected an integer, found a string" for the decoder's
// "incompatible types: TOML value has type string; destination has type
// integer".
func typeMessage(msg string) string {
	m := regexp.MustCompile(`^incompatible types: TOML value has type (\S+); destination has type (.+)$`).FindStringSubmatch(msg)
	if m == nil {
		return msg
	}
	found := map[string]string{
		"string": "a string", "int64": "an integer", "float64": "a number with a fraction",
		"bool": "true or false", "[]any": "a list", "[]map[string]any": "a list of tables",
		"map[string]any": "a table",
	}[m[1]]
	if found == "" {
		found = "a date or time"
	}
	want := map[string]string{
		"string": "a string", "integer": "an integer", "float": "a number", "boolean": "true or false",
		"slice": "a list", "map": "a table", "primitive (string-like)": "a string",
	}[m[2]]
	if want == "" {
		want = m[2]
	}
	return fmt.Sprintf("expected %s, found %s", want, found)
}
