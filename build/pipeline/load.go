package pipeline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/filemode"

	"slipway/internal/gitobj"
)

// Load reads and parses the pipeline file at the root of commit, a full
// commit id, in the bare repository at gitDir (the work tree is never
// looked at).
//
// The objects are read in-process through objects (nil: by git, as
// [LoadGit] does), each one's size learnt from its header before any of it
// is read: a file over [MaxFileSize] is refused without being read. What
// objects does not read within its bounds (a commit or tree over its cap,
// a long delta chain, a repository layout it does not know) is read by git
// in a child process, which gives the same answers.
//
// It returns an error wrapping [ErrNoFile] when the commit has no pipeline
// file, an [*Error] (possibly several joined) when the file is broken, and
// other errors when the repository or commit cannot be read.
func Load(ctx context.Context, objects *gitobj.Pool, gitDir, commit string) (*File, error) {
	if !fullCommit.MatchString(commit) {
		return nil, fmt.Errorf("read %s of %q: not a full commit id", FileName, commit)
	}
	if objects != nil {
		f, err := loadInProcess(ctx, objects, gitDir, commit)
		if !errors.Is(err, errUseGit) {
			return f, err
		}
	}
	return LoadGit(ctx, gitDir, commit, nil)
}

// errUseGit marks what loadInProcess leaves to git.
var errUseGit = errors.New("read by git")

// errFound stops a tree walk.
var errFound = errors.New("found")

func loadInProcess(ctx context.Context, objects *gitobj.Pool, gitDir, commit string) (*File, error) {
	r := objects.Open(gitDir)
	defer r.Close()
	useGit := func(err error) error { return fmt.Errorf("%w: %w", errUseGit, err) }
	var tree string
	err := r.Read(ctx, commit, func(t gitobj.Type, data []byte) (err error) {
		if t != gitobj.Commit {
			return fmt.Errorf("%s is a %s", commit, t)
		}
		tree, err = gitobj.CommitTree(data)
		return err
	})
	if err != nil {
		return nil, useGit(err)
	}
	var entry gitobj.TreeEntry
	err = r.Read(ctx, tree, func(t gitobj.Type, data []byte) error {
		if t != gitobj.Tree {
			return fmt.Errorf("tree %s is a %s", tree, t)
		}
		return gitobj.ParseTree(data, func(e gitobj.TreeEntry) error {
			if string(e.Name) != FileName {
				return nil
			}
			entry = e
			return errFound
		})
	})
	switch {
	case err == nil:
		return nil, fmt.Errorf("read %s of commit %s: %w", FileName, commit, ErrNoFile)
	case !errors.Is(err, errFound):
		return nil, useGit(err)
	}
	if err := checkMode(filemode.FileMode(entry.Mode)); err != nil {
		return nil, fmt.Errorf("read %s of commit %s: %w", FileName, commit, err)
	}
	size, err := r.Size(entry.ID)
	if err != nil {
		return nil, useGit(err)
	}
	if err := checkSize(size); err != nil {
		return nil, fmt.Errorf("read %s of commit %s: %w", FileName, commit, err)
	}
	var f *File
	var perr error
	if err := r.Read(ctx, entry.ID, func(_ gitobj.Type, data []byte) error {
		f, perr = Parse(data)
		return nil
	}); err != nil {
		return nil, useGit(err)
	}
	return f, perr
}

// checkMode refuses a tree entry that is not a plain file.
func checkMode(mode filemode.FileMode) error {
	switch mode {
	case filemode.Regular, filemode.Executable, filemode.Deprecated:
		return nil
	case filemode.Symlink:
		// Following it could read another file of the commit or point
		// outside the repository; neither is what the pusher meant.
		return errors.New("it is a symbolic link; commit the file itself")
	}
	return fmt.Errorf("it is not a regular file (mode %s)", mode)
}

// SizeError is a pipeline file over MaxFileSize, refused before it is
// read. Its message is meant for the pusher.
type SizeError struct {
	Size, Limit int64
}

func (e *SizeError) Error() string {
	return fmt.Sprintf("%s is %d bytes; the limit is %d", FileName, e.Size, e.Limit)
}

func checkSize(size int64) error {
	if size > MaxFileSize {
		return &SizeError{Size: size, Limit: MaxFileSize}
	}
	return nil
}

// fullCommit accepts full object names only, as LoadGit's contract says.
var fullCommit = regexp.MustCompile(`^([0-9a-f]{40}|[0-9a-f]{64})$`)

// LoadGit is Load done by the git command, with env added to git's
// otherwise empty environment: for objects Load does not read in-process,
// and for those of a push that waits in its pre-receive hook (env is then
// checkout.QuarantineEnv). commit must be a full object name. Errors are
// those of Load. The file's size is read first (git ls-tree -l, which
// reads the blob's header only); only a file within MaxFileSize is read.
func LoadGit(ctx context.Context, gitDir, commit string, env []string) (*File, error) {
	if !fullCommit.MatchString(commit) {
		return nil, fmt.Errorf("read %s of %q: not a full commit id", FileName, commit)
	}
	git := func(args ...string) ([]byte, error) {
		cmd := exec.CommandContext(ctx, "git", append([]string{"--git-dir=" + gitDir}, args...)...)
		cmd.Env = append([]string{
			"PATH=" + os.Getenv("PATH"),
			"GIT_CONFIG_NOSYSTEM=1",
			"GIT_CONFIG_GLOBAL=/dev/null",
			"HOME=/nonexistent",
		}, env...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("git %s: %w: %s", args[0], err, strings.TrimSpace(stderr.String()))
		}
		return stdout.Bytes(), nil
	}
	// "<mode> <type> <object> <size>\t<name>\0", or nothing when the file
	// is missing; ^{commit} refuses a tree or blob id given by mistake.
	out, err := git("ls-tree", "-l", "-z", "--full-tree", commit+"^{commit}", "--", FileName)
	if err != nil {
		return nil, fmt.Errorf("read %s of commit %s: %w", FileName, commit, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("read %s of commit %s: %w", FileName, commit, ErrNoFile)
	}
	meta, _, _ := strings.Cut(string(out), "\t")
	f := strings.Fields(meta)
	if len(f) != 4 {
		return nil, fmt.Errorf("read %s of commit %s: unexpected git ls-tree output %q", FileName, commit, out)
	}
	mode, err := filemode.New(f[0])
	if err == nil {
		err = checkMode(mode)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s of commit %s: %w", FileName, commit, err)
	}
	size, err := strconv.ParseInt(f[3], 10, 64)
	if err != nil {
		return nil, fmt.Errorf("read %s of commit %s: unexpected git ls-tree output %q", FileName, commit, out)
	}
	if err := checkSize(size); err != nil {
		return nil, fmt.Errorf("read %s of commit %s: %w", FileName, commit, err)
	}
	data, err := git("cat-file", "blob", f[2])
	if err != nil {
		return nil, fmt.Errorf("read %s of commit %s: %w", FileName, commit, err)
	}
	return Parse(data)
}
