package pipeline

import (
	"errors"
	"fmt"
	"io"

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
	switch entry.Mode {
	case filemode.Regular, filemode.Executable, filemode.Deprecated:
	case filemode.Symlink:
		// Following it could read another file of the commit or point
		// outside the repository; neither is what the pusher meant.
		return nil, errors.New("it is a symbolic link; commit the file itself")
	default:
		return nil, fmt.Errorf("it is not a regular file (mode %s)", entry.Mode)
	}
	blob, err := repo.BlobObject(entry.Hash)
	if err != nil {
		return nil, err
	}
	if blob.Size > MaxFileSize {
		return nil, fmt.Errorf("it is %d bytes; the limit is %d", blob.Size, MaxFileSize)
	}
	r, err := blob.Reader()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(io.LimitReader(r, MaxFileSize+1))
}
