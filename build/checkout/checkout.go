package checkout

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"

	git "github.com/go-git/go-git/v5"
)

// Result tells what Checkout wrote.
type Result struct {
	// Files is the number of files and symbolic links written.
	Files int
	// Submodules lists the paths of gitlink entries, which are not checked
	// out: each is left as an empty folder, as a clone without
	// --recurse-submodules would leave it.
	Submodules []string
}

// ErrNotEmpty is returned when the destination folder holds anything; a
// workspace is always fresh so that no file of an earlier build survives.
var ErrNotEmpty = errors.New("destination folder is not empty")

// commitPattern accepts full object names only: a branch name could be moved
// by a push between the time a build is queued and the time it runs.
var commitPattern = regexp.MustCompile(`^([0-9a-f]{40}|[0-9a-f]{64})$`)

// Checkout writes exactly the tree of commit, a full hexadecimal object name,
// from the bare repository gitDir into the existing empty folder dst.
//
// A tree of at most smallTreeMax files without .gitattributes is written
// in-process with go-git. A larger one is written by git: it runs
// `git read-tree --reset -u` against a throwaway index file in a
// temporary folder and, at the same time, `git ls-tree -r` of the commit to
// count files and find submodules (two processes side by side rather than
// one after the other: a checkout is on the way from push to first step).
// On error dst may hold part of the tree; callers discard the workspace.
func Checkout(ctx context.Context, gitDir, commit, dst string) (Result, error) {
	if !commitPattern.MatchString(commit) {
		return Result{}, fmt.Errorf("check out %q: not a full commit id", commit)
	}
	if err := checkEmpty(dst); err != nil {
		return Result{}, fmt.Errorf("check out %s into %s: %w", commit, dst, err)
	}
	absDst, err := filepath.Abs(dst)
	if err != nil {
		return Result{}, fmt.Errorf("check out %s: resolve %s: %w", commit, dst, err)
	}
	// Small trees are written in-process; the fixed cost of git processes
	// would be most of their checkout. go-git only reads the repository.
	if repo, err := git.PlainOpen(gitDir); err == nil {
		if entries, ok, err := smallTree(repo, commit); err == nil && ok {
			res, err := writeSmall(repo, entries, absDst)
			if err != nil {
				return Result{}, fmt.Errorf("check out %s from %s: %w", commit, gitDir, err)
			}
			return res, nil
		}
	}
	return checkoutGit(ctx, gitDir, commit, absDst)
}

// CheckoutQuarantined is Checkout of a commit that git has not accepted yet:
// a push's pre-receive hook runs with the pushed objects in a quarantine
// folder inside the repository's objects folder, and only moves them into
// the repository once the hook has said yes. Objects are read from
// quarantine first and from the repository after it, as git itself does for
// its hooks (GIT_OBJECT_DIRECTORY and GIT_ALTERNATE_OBJECT_DIRECTORIES).
// The caller has checked that quarantine is one of gitDir's. git writes the
// tree whatever its size: go-git does not read a quarantine.
func CheckoutQuarantined(ctx context.Context, gitDir, quarantine, commit, dst string) (Result, error) {
	if !commitPattern.MatchString(commit) {
		return Result{}, fmt.Errorf("check out %q: not a full commit id", commit)
	}
	if err := checkEmpty(dst); err != nil {
		return Result{}, fmt.Errorf("check out %s into %s: %w", commit, dst, err)
	}
	absDst, err := filepath.Abs(dst)
	if err != nil {
		return Result{}, fmt.Errorf("check out %s: resolve %s: %w", commit, dst, err)
	}
	return checkoutGit(ctx, gitDir, commit, absDst, QuarantineEnv(gitDir, quarantine)...)
}

// QuarantineEnv is the environment that makes git read the objects of a
// push's quarantine folder before those of the repository at gitDir.
func QuarantineEnv(gitDir, quarantine string) []string {
	return []string{
		"GIT_OBJECT_DIRECTORY=" + quarantine,
		"GIT_ALTERNATE_OBJECT_DIRECTORIES=" + filepath.Join(gitDir, "objects"),
	}
}

// checkoutGit writes the tree with git into the empty folder absDst; env is
// added to git's environment.
func checkoutGit(ctx context.Context, gitDir, commit, absDst string, env ...string) (Result, error) {
	tmp, err := os.MkdirTemp("", "slipway-checkout-")
	if err != nil {
		return Result{}, fmt.Errorf("check out %s: make index folder: %w", commit, err)
	}
	defer os.RemoveAll(tmp)

	g := gitRunner{gitDir: gitDir, workTree: absDst, index: filepath.Join(tmp, "index"), env: env}
	type listing struct {
		out []byte
		err error
	}
	listed := make(chan listing, 1)
	go func() {
		out, err := g.run(ctx, "ls-tree", "-r", "-z", "--full-tree", commit+"^{commit}")
		listed <- listing{out, err}
	}()
	// commit^{commit} makes git refuse a tree or blob id given by mistake.
	_, err = g.run(ctx, "read-tree", "--reset", "-u", commit+"^{commit}")
	l := <-listed
	if err != nil {
		return Result{}, fmt.Errorf("check out %s from %s: %w", commit, gitDir, err)
	}
	out, err := l.out, l.err
	if err != nil {
		return Result{}, fmt.Errorf("list checkout of %s from %s: %w", commit, gitDir, err)
	}
	res, err := parseStage(out)
	if err != nil {
		return Result{}, fmt.Errorf("list checkout of %s from %s: %w", commit, gitDir, err)
	}
	return res, nil
}

func checkEmpty(dst string) error {
	f, err := os.Open(dst)
	if err != nil {
		return err
	}
	defer f.Close()
	names, err := f.Readdirnames(1)
	if len(names) > 0 {
		return ErrNotEmpty
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

type gitRunner struct {
	gitDir, workTree, index string
	env                     []string // added to the environment
}

// run executes git with an environment built from nothing, so that neither
// the daemon's environment nor a global or system git config (an LFS filter,
// a core.fsmonitor command) takes part in writing the workspace.
func (g gitRunner) run(ctx context.Context, args ...string) ([]byte, error) {
	full := append([]string{
		"--git-dir=" + g.gitDir,
		"--work-tree=" + g.workTree,
		"-c", "core.symlinks=true",
		"-c", "core.fileMode=true",
		"-c", "core.fsmonitor=false",
		"-c", "core.splitIndex=false",
		"-c", "index.threads=1",
		// Parallel checkout overlaps inflating objects with writing files, as
		// the git archive | tar pipeline does.
		"-c", "checkout.workers=0",
	}, args...)
	cmd := exec.CommandContext(ctx, "git", full...)
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"GIT_INDEX_FILE=" + g.index,
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_TERMINAL_PROMPT=0",
		"HOME=/nonexistent",
	}
	cmd.Env = append(cmd.Env, g.env...)
	cmd.Dir = g.workTree
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			return nil, fmt.Errorf("git %s: %w", args[0], err)
		}
		return nil, fmt.Errorf("git %s: %w: %s", args[0], err, msg)
	}
	return stdout.Bytes(), nil
}

// parseStage reads `git ls-tree -r -z`: "<mode> <type> <sha>\t<path>\0"
// (the same shape as `git ls-files --stage -z`: a mode, a tab, a path).
func parseStage(out []byte) (Result, error) {
	var res Result
	for len(out) > 0 {
		end := bytes.IndexByte(out, 0)
		if end < 0 {
			return Result{}, fmt.Errorf("unterminated entry %q", out)
		}
		entry := out[:end]
		out = out[end+1:]
		tab := bytes.IndexByte(entry, '\t')
		sp := bytes.IndexByte(entry, ' ')
		if tab < 0 || sp < 0 || sp > tab {
			return Result{}, fmt.Errorf("malformed entry %q", entry)
		}
		if string(entry[:sp]) == "160000" {
			res.Submodules = append(res.Submodules, string(entry[tab+1:]))
			continue
		}
		res.Files++
	}
	return res, nil
}
