package notes

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Line is one result in a note, written as one line of space-separated
// fields:
//
//	<time> <kind> <id> <state> [env=<env>] [build=<id>] [digest=<digest>] [<link>]
//
// time is RFC 3339 in UTC to the second; kind is "build" or "deploy"; id
// is the build's or deployment's id and state its final state. A
// deployment has env= and build= (the build it shipped); digest= is the
// artifact set ("sha256:..."), where there is one; the link, the last
// field, is the dashboard's page when [http] public_url is set. No field
// holds a space.
type Line struct {
	Time   time.Time
	Kind   string // KindBuild or KindDeploy
	ID     int64
	State  string
	Env    string // deployments
	Build  int64  // deployments: the build shipped
	Digest string // "" when none
	Link   string // "" when no public URL is set
}

// The kinds of a Line.
const (
	KindBuild  = "build"
	KindDeploy = "deploy"
)

// String is the line as written, without its newline.
func (l Line) String() string {
	f := []string{l.Time.UTC().Format(time.RFC3339), l.Kind, strconv.FormatInt(l.ID, 10), field(l.State)}
	if l.Env != "" {
		f = append(f, "env="+field(l.Env))
	}
	if l.Build != 0 {
		f = append(f, "build="+strconv.FormatInt(l.Build, 10))
	}
	if l.Digest != "" {
		f = append(f, "digest="+field(l.Digest))
	}
	if l.Link != "" {
		f = append(f, field(l.Link))
	}
	return strings.Join(f, " ")
}

// field keeps a value to one field of one line: names and states never
// hold blanks, and this keeps it so whatever comes in.
func field(s string) string {
	return strings.Map(func(r rune) rune {
		if r <= ' ' || r == 0x7f {
			return '_'
		}
		return r
	}, s)
}

// key is what makes two lines the same result: the kind, the id and the
// state (a build interrupted by a restart may end again, in another
// state). The time, digest and link of a line written before are not
// compared: a changed public_url must not write a result twice.
func (l Line) key() string { return fmt.Sprintf("%s %d %s", l.Kind, l.ID, field(l.State)) }

// ParseLine reads a line as String writes it.
func ParseLine(s string) (Line, error) {
	f := strings.Fields(s)
	if len(f) < 4 {
		return Line{}, fmt.Errorf("note line %q: want at least time, kind, id and state", s)
	}
	t, err := time.Parse(time.RFC3339, f[0])
	if err != nil {
		return Line{}, fmt.Errorf("note line %q: %w", s, err)
	}
	id, err := strconv.ParseInt(f[2], 10, 64)
	if err != nil {
		return Line{}, fmt.Errorf("note line %q: id: %w", s, err)
	}
	l := Line{Time: t, Kind: f[1], ID: id, State: f[3]}
	for _, x := range f[4:] {
		k, v, ok := strings.Cut(x, "=")
		switch {
		case ok && k == "env":
			l.Env = v
		case ok && k == "build":
			if l.Build, err = strconv.ParseInt(v, 10, 64); err != nil {
				return Line{}, fmt.Errorf("note line %q: build: %w", s, err)
			}
		case ok && k == "digest":
			l.Digest = v
		default:
			l.Link = x
		}
	}
	return l, nil
}

// has reports whether note already holds l's result.
func has(note string, l Line) bool {
	want := l.key()
	for line := range strings.Lines(note) {
		if p, err := ParseLine(strings.TrimSpace(line)); err == nil && p.key() == want {
			return true
		}
	}
	return false
}
