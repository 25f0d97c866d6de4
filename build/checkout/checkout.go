package checkout

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"slipway/internal/gitobj"
)

// Result tells what Checkout wrote.
type Result struct {
	// Files is the number of files and symbolic links written.
	Files int
	// Submodules lists the paths of gitlink entries, which are not checked
	// out: each is left as an empty folder, as a clone without
	// --recurse-submodules would leave it. At most maxSubmodules are
	// listed; MoreSubmodules counts the others.
	Submodules     []string
	MoreSubmodules int
}

// maxSubmodules bounds Result.Submodules: a tree of a million gitlinks
// must not become a million strings in the daemon.
const maxSubmodules = 100

func (r *Result) submodule(path string) {
	if len(r.Submodules) < maxSubmodules {
		r.Submodules = append(r.Submodules, path)
	} else {
		r.MoreSubmodules++
	}
}

// Options bound a checkout.
type Options struct {
	// MaxFileBytes fails the checkout when a file of the tree is larger,
	// before any file is written (a [*FileSizeError]); 0 is no limit. The
	// build worker passes build.max_file_bytes, the limit its steps write
	// under: a file the steps could not write is not written for them.
	MaxFileBytes int64
	// Objects, when set, reads the objects of a small tree in-process:
	// at most smallTreeMax files and folders, every blob within Objects'
	// per-object cap, no .gitattributes. Every other tree, and every tree
	// when Objects is nil, is written by git.
	Objects *gitobj.Pool
}

// FileSizeError is a file of the tree larger than Options.MaxFileBytes.
type FileSizeError struct {
	Path        string
	Size, Limit int64
}

func (e *FileSizeError) Error() string {
	return fmt.Sprintf("%s is %d bytes; the limit is %d", e.Path, e.Size, e.Limit)
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
// A small tree (see Options.Objects) is written in-process. Any other is
// written by git: `git ls-tree -r -l` first lists it with every blob's size
// (read from the objects' headers), and only when no file is over
// o.MaxFileBytes does `git read-tree --reset -u`, against a throwaway index
// file in a temporary folder, write it. Either way, the size of every file
// is checked before the first file is written. On error dst may hold part
// of the tree; callers discard the workspace.
func Checkout(ctx context.Context, gitDir, commit, dst string, o Options) (Result, error) {
	absDst, err := prepare(commit, dst)
	if err != nil {
		return Result{}, err
	}
	// Small trees are written in-process; the fixed cost of git processes
	// would be most of their checkout.
	if o.Objects != nil {
		res, err := checkoutSmall(ctx, o, gitDir, commit, absDst)
		if !errors.Is(err, errNotSmall) {
			if err != nil {
				return Result{}, fmt.Errorf("check out %s from %s: %w", commit, gitDir, err)
			}
			return res, nil
		}
	}
	return checkoutGit(ctx, gitDir, commit, absDst, o.MaxFileBytes)
}

// CheckoutQuarantined is Checkout of a commit that git has not accepted yet:
// a push's pre-receive hook runs with the pushed objects in a quarantine
// folder inside the repository's objects folder, and only moves them into
// the repository once the hook has said yes. Objects are read from
// quarantine first and from the repository after it, as git itself does for
// its hooks (GIT_OBJECT_DIRECTORY and GIT_ALTERNATE_OBJECT_DIRECTORIES).
// The caller has checked that quarantine is one of gitDir's. git writes the
// tree whatever its size (o.Objects is not used), after the same size
// check as Checkout's.
func CheckoutQuarantined(ctx context.Context, gitDir, quarantine, commit, dst string, o Options) (Result, error) {
	absDst, err := prepare(commit, dst)
	if err != nil {
		return Result{}, err
	}
	return checkoutGit(ctx, gitDir, commit, absDst, o.MaxFileBytes, QuarantineEnv(gitDir, quarantine)...)
}

// prepare checks what both checkouts are given, a full commit id and an
// empty destination, and returns the destination's absolute path.
func prepare(commit, dst string) (string, error) {
	if !commitPattern.MatchString(commit) {
		return "", fmt.Errorf("check out %q: not a full commit id", commit)
	}
	if err := checkEmpty(dst); err != nil {
		return "", fmt.Errorf("check out %s into %s: %w", commit, dst, err)
	}
	absDst, err := filepath.Abs(dst)
	if err != nil {
		return "", fmt.Errorf("check out %s: resolve %s: %w", commit, dst, err)
	}
	return absDst, nil
}

// QuarantineEnv is the environment that makes git read the objects of a
// push's quarantine folder before those of the repository at gitDir.
func QuarantineEnv(gitDir, quarantine string) []string {
	return []string{
		"GIT_OBJECT_DIRECTORY=" + quarantine,
		"GIT_ALTERNATE_OBJECT_DIRECTORIES=" + filepath.Join(gitDir, "objects"),
	}
}

// checkoutGit writes the tree with git into the empty folder absDst, once
// its listing has shown no file over maxFile (0: no limit); env is added
// to git's environment.
func checkoutGit(ctx context.Context, gitDir, commit, absDst string, maxFile int64, env ...string) (Result, error) {
	tmp, err := os.MkdirTemp("", "slipway-checkout-")
	if err != nil {
		return Result{}, fmt.Errorf("check out %s: make index folder: %w", commit, err)
	}
	defer os.RemoveAll(tmp)

	g := gitRunner{gitDir: gitDir, workTree: absDst, index: filepath.Join(tmp, "index"), env: env}
	// The listing comes first, and alone: read-tree would start writing
	// files before a file over the limit is found.
	res, err := g.list(ctx, commit, maxFile)
	if err != nil {
		return Result{}, fmt.Errorf("list checkout of %s from %s: %w", commit, gitDir, err)
	}
	// commit^{commit} makes git refuse a tree or blob id given by mistake.
	if _, err := g.run(ctx, "read-tree", "--reset", "-u", commit+"^{commit}"); err != nil {
		return Result{}, fmt.Errorf("check out %s from %s: %w", commit, gitDir, err)
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

// command prepares git with an environment built from nothing, so that
// neither the daemon's environment nor a global or system git config (an
// LFS filter, a core.fsmonitor command) takes part in writing the
// workspace.
func (g gitRunner) command(ctx context.Context, args ...string) *exec.Cmd {
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
	return cmd
}

// run runs git and returns its output.
func (g gitRunner) run(ctx context.Context, args ...string) ([]byte, error) {
	cmd := g.command(ctx, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, gitError(args[0], err, stderr.String())
	}
	return stdout.Bytes(), nil
}

func gitError(sub string, err error, stderr string) error {
	if msg := strings.TrimSpace(stderr); msg != "" {
		return fmt.Errorf("git %s: %w: %s", sub, err, msg)
	}
	return fmt.Errorf("git %s: %w", sub, err)
}

// maxListEntry bounds one entry of `git ls-tree -l -z` that list reads:
// git writes no path longer than PATH_MAX (4096) on Linux anyway.
const maxListEntry = 64 << 10

// list reads `git ls-tree -r -l -z` of commit as git writes it (nothing of
// it is kept but the counts and the first submodules) and returns what a
// checkout will write, or a *FileSizeError for the first file larger than
// maxFile (0: no limit), at which point git is stopped.
func (g gitRunner) list(ctx context.Context, commit string, maxFile int64) (Result, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := g.command(ctx, "ls-tree", "-r", "-l", "-z", "--full-tree", commit+"^{commit}")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return Result{}, err
	}
	if err := cmd.Start(); err != nil {
		return Result{}, fmt.Errorf("git ls-tree: %w", err)
	}
	res, perr := parseListing(bufio.NewReaderSize(out, maxListEntry), maxFile)
	if perr != nil {
		cancel()
	}
	err = cmd.Wait()
	switch {
	case perr != nil:
		return Result{}, perr
	case err != nil:
		return Result{}, gitError("ls-tree", err, stderr.String())
	}
	return res, nil
}

// parseListing reads `git ls-tree -r -l -z`:
// "<mode> SP <type> SP <object> SP+ <size> TAB <path> NUL", the size "-"
// for a submodule.
func parseListing(r *bufio.Reader, maxFile int64) (Result, error) {
	var res Result
	for {
		entry, err := r.ReadSlice(0)
		if errors.Is(err, io.EOF) && len(entry) == 0 {
			return res, nil
		}
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			return Result{}, fmt.Errorf("an entry longer than %d bytes", maxListEntry)
		case errors.Is(err, io.EOF):
			return Result{}, fmt.Errorf("unterminated entry %q", entry)
		case err != nil:
			return Result{}, err
		}
		entry = entry[:len(entry)-1]
		meta, path, ok := bytes.Cut(entry, []byte{'\t'})
		f := bytes.Fields(meta)
		if !ok || len(f) != 4 {
			return Result{}, fmt.Errorf("malformed entry %q", entry)
		}
		if string(f[0]) == "160000" {
			res.submodule(string(path))
			continue
		}
		size, err := strconv.ParseInt(string(f[3]), 10, 64)
		if err != nil {
			return Result{}, fmt.Errorf("malformed entry %q", entry)
		}
		if maxFile > 0 && size > maxFile {
			return Result{}, &FileSizeError{Path: string(path), Size: size, Limit: maxFile}
		}
		res.Files++
	}
}
