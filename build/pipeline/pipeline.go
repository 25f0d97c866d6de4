package pipeline

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"
)

// FileName is the name of the pipeline file at the root of a repository.
const FileName = ".slipway.toml"

// DefaultSection is the section a push builds.
const DefaultSection = "build"

// MaxFileSize bounds the pipeline file; a larger file is refused rather than
// read into memory, since it comes from whoever may push.
const MaxFileSize = 1 << 20

// ErrNoFile reports that the commit has no pipeline file. Callers record the
// build as skipped rather than failed.
var ErrNoFile = errors.New("no " + FileName + " in this commit")

// Pipeline is one section of the pipeline file.
//
// A Pipeline returned by [Parse] or [Load] always satisfies:
//   - Steps has at least one entry; no step is blank or contains a NUL byte.
//   - Timeout is zero (not set: the server's default applies) or positive.
//   - Every artifact is a clean, relative, slash-separated path that stays
//     inside the workspace (no leading "/", no ".." segment, no NUL byte).
//   - Env keys are shell names ([A-Za-z_][A-Za-z0-9_]*) other than PATH,
//     HOME, CI and SLIPWAY_*, which the worker sets itself; values have no
//     NUL byte.
type Pipeline struct {
	// Steps run in order with sh -c; the first that fails fails the build.
	Steps []string
	// Timeout for the whole pipeline; zero when the file does not set one.
	// The server caps it.
	Timeout time.Duration
	// Artifacts are kept after a passing build, relative to the workspace.
	// A trailing slash in the file is dropped by cleaning ("bin/" is "bin").
	Artifacts []string
	// Env is added to the build's allow-listed environment. Nil when empty.
	Env map[string]string
	// Network asks for network access; the server must also allow it.
	Network bool
	// Cache asks for the per-repo cache folder to be mounted read-write.
	Cache bool
	// Image is the container image the steps run in on Kubernetes
	// ("golang:1.26"); builds on this host ignore it, and say so.
	Image string
}

// File is a parsed pipeline file.
type File struct {
	// Sections by name, e.g. "build" and "nightly".
	Sections map[string]Pipeline
}

// Section returns the section called name or, when the file has none, the
// one called fallback (pass "" for no fallback). It also returns the name of
// the section it found, for the build record and log. ok is false when
// neither exists. The returned Pipeline is a copy the caller may modify.
func (f *File) Section(name, fallback string) (p Pipeline, found string, ok bool) {
	if f == nil {
		return Pipeline{}, "", false
	}
	for _, n := range []string{name, fallback} {
		if n == "" {
			continue
		}
		if s, exists := f.Sections[n]; exists {
			return s.clone(), n, true
		}
	}
	return Pipeline{}, "", false
}

func (p Pipeline) clone() Pipeline {
	p.Steps = slices.Clone(p.Steps)
	p.Artifacts = slices.Clone(p.Artifacts)
	p.Env = maps.Clone(p.Env)
	return p
}

// Error is a problem in the pipeline file at a line and column (both start at
// 1, the column counts bytes). Its message is meant for the pusher.
type Error struct {
	Line int
	Col  int
	Msg  string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s:%d:%d: %s", FileName, e.Line, e.Col, e.Msg)
}
