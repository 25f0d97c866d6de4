package pipeline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// Load reads and parses the pipeline file at the root of commit in the
// repository at gitDir (bare or not; the work tree is never looked at).
// commit is a full object name or anything git rev-parse would resolve
// (a branch, a tag, a short name).
//
// It returns an error wrapping [ErrNoFile] when the commit has no pipeline
// file, an [*Error] (possibly several joined) when the file is broken, and
// other errors when the repository or commit cannot be read.
func Load(gitDir, commit string) (*File, error) {
	repo, err := git.PlainOpen(gitDir)
	if err != nil {
		return nil, fmt.Errorf("open repository %q: %w", gitDir, err)
	}
	hash, err := repo.ResolveRevision(plumbing.Revision(commit))
	if err != nil {
		return nil, fmt.Errorf("resolve %q in %q: %w", commit, gitDir, err)
	}
	c, err := repo.CommitObject(*hash)
	if err != nil {
		return nil, fmt.Errorf("read commit %s in %q: %w", hash, gitDir, err)
	}
	data, err := readFile(repo, c)
	if err != nil {
		return nil, fmt.Errorf("read %s of commit %s: %w", FileName, hash, err)
	}
	return Parse(data)
}

func readFile(repo *git.Repository, c *object.Commit) ([]byte, error) {
	tree, err := c.Tree()
	if err != nil {
		return nil, err
	}
	entry, err := tree.FindEntry(FileName)
	if errors.Is(err, object.ErrEntryNotFound) || errors.Is(err, object.ErrFileNotFound) || errors.Is(err, object.ErrDirectoryNotFound) {
		return nil, ErrNoFile
	}
	if err != nil {
		return nil, err
	}
	if err := checkMode(entry.Mode); err != nil {
		return nil, err
	}
	blob, err := repo.BlobObject(entry.Hash)
	if err != nil {
		return nil, err
	}
	if err := checkSize(blob.Size); err != nil {
		return nil, err
	}
	r, err := blob.Reader()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(io.LimitReader(r, MaxFileSize+1))
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

func checkSize(size int64) error {
	if size > MaxFileSize {
		return fmt.Errorf("it is %d bytes; the limit is %d", size, MaxFileSize)
	}
	return nil
}

// fullCommit accepts full object names only, as LoadGit's contract says.
var fullCommit = regexp.MustCompile(`^([0-9a-f]{40}|[0-9a-f]{64})$`)

// LoadGit is Load done by the git command, with env added to git's
// otherwise empty environment: for objects go-git cannot see, such as those
// of a push that waits in its pre-receive hook (env is then
// checkout.QuarantineEnv). commit must be a full object name. Errors are
// those of Load.
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
