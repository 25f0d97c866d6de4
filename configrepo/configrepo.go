package configrepo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"

	"slipway/configs"
)

// MaxFileBytes bounds the configuration file a push may hold: it is read
// into the daemon's memory, and a configuration of a thousand users and
// repositories takes a few hundred KiB.
const MaxFileBytes = 8 << 20

// mainRef is the branch whose file is the configuration.
const mainRef = "refs/heads/" + configs.ConfigBranch

// Options configure a Repo. File, GitDir, Parse and Reload are required.
type Options struct {
	// File is the configuration file the daemon runs on (serve
	// --config); accepted pushes are written there.
	File string
	// GitDir is the bare repository slipway-config.git, with Slipway's
	// hooks in its config (the daemon makes it at start).
	GitDir string
	// Parse validates a configuration the way the daemon loads its own
	// (`slipway config check`'s checks); name is the file name problems
	// are reported with.
	Parse func(data []byte, name string) (*configs.Config, error)
	// Reload puts File in force for reason and writes its result on out,
	// for the pusher.
	Reload func(ctx context.Context, reason string, out io.Writer)
	// Host names this machine in the commits the daemon makes: "Slipway
	// <slipway@Host>". Default: the host name.
	Host string
	// GitEnv is added to the environment of git and the hooks it runs
	// (GORACE for a binary built with -race).
	GitEnv []string
	Logger *slog.Logger // nil: discard
}

// Repo is the configuration repository of one daemon. It is safe for
// concurrent use.
type Repo struct {
	o    Options
	log  *slog.Logger
	path string // PATH for git

	applyMu sync.Mutex // one accepted push written and reloaded at a time
	syncMu  sync.Mutex // one commit of the file on disk at a time
}

// New returns the Repo of o.
func New(o Options) (*Repo, error) {
	if o.File == "" || o.GitDir == "" || o.Parse == nil || o.Reload == nil {
		return nil, errors.New("configrepo: File, GitDir, Parse and Reload are required")
	}
	if o.Host == "" {
		o.Host, _ = os.Hostname()
		if o.Host == "" {
			o.Host = "localhost"
		}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	path := os.Getenv("PATH")
	if path == "" {
		path = "/usr/local/bin:/usr/bin:/bin"
	}
	return &Repo{o: o, log: o.Logger, path: path}, nil
}

// Owns reports whether repo is the configuration repository.
func (r *Repo) Owns(repo string) bool { return repo == configs.ConfigRepoName }

// git runs git on the repository with env added to a minimal environment
// (never the daemon's own GIT_* variables, nor any user's git config) and
// returns its standard output.
func (r *Repo) git(ctx context.Context, env []string, stdin []byte, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "git", append([]string{"--git-dir", r.o.GitDir}, args...)...)
	cmd.Env = append([]string{"PATH=" + r.path, "HOME=/nonexistent", "GIT_CONFIG_NOSYSTEM=1"}, r.o.GitEnv...)
	cmd.Env = append(cmd.Env, env...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), &gitError{args: args, err: err, stderr: strings.TrimSpace(stderr.String())}
	}
	return stdout.Bytes(), nil
}

// gitError is a git command that failed, with what it said.
type gitError struct {
	args   []string
	err    error
	stderr string
}

func (e *gitError) Error() string {
	if e.stderr == "" {
		return fmt.Sprintf("git %s: %v", e.args[0], e.err)
	}
	return fmt.Sprintf("git %s: %v: %s", e.args[0], e.err, e.stderr)
}

func (e *gitError) Unwrap() error { return e.err }

// exitCode is git's exit status in err, or -1.
func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// head returns the commit main points at, or "" when there is no main.
func (r *Repo) head(ctx context.Context) (string, error) {
	out, err := r.git(ctx, nil, nil, "rev-parse", "--verify", "--quiet", mainRef+"^{commit}")
	if exitCode(err) == 1 {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read %s of %s: %w", configs.ConfigBranch, configs.ConfigRepoName, err)
	}
	return strings.TrimSpace(string(out)), nil
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
