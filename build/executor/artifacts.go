package executor

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
)

// CopyArtifacts copies the artifact paths (clean, relative, slash-separated,
// as the pipeline parser guarantees) from the workspace ws into dst, which
// it creates, and returns the number of files and symbolic links copied.
// max, if above 0, caps the sum of the copied files' lengths: once the
// artifacts would go over it, nothing more is copied, the rest is only
// measured, and the error is an *ArtifactsTooLargeError with the whole
// size (the caller removes dst; a 3 GiB artifact is never copied whole to
// be refused).
// Every Executor keeps its artifacts by these rules; one that runs steps
// elsewhere copies the workspace back first, or applies the same rules
// where it runs.
//
// Everything is read through an os.Root of the workspace, so no path and no
// symbolic link can make it read outside: a build could otherwise name
// /etc/shadow or the daemon's host key as its artifact, through a link, and
// have the deploy ship it. Links inside an artifact folder are kept as links
// when they stay inside the workspace and refused otherwise; an artifact
// path that is itself a link is followed (within the workspace). Sockets,
// pipes and devices are left out.
func CopyArtifacts(ws, dst string, paths []string, max int64) (int, error) {
	src, err := os.OpenRoot(ws)
	if err != nil {
		return 0, fmt.Errorf("open workspace: %w", err)
	}
	defer src.Close()
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return 0, fmt.Errorf("make artifacts folder: %w", err)
	}
	out, err := os.OpenRoot(dst)
	if err != nil {
		return 0, fmt.Errorf("open artifacts folder: %w", err)
	}
	defer out.Close()

	c := copier{src: src, out: out, max: max}
	for _, p := range paths {
		if err := c.top(p); err != nil {
			return c.n, err
		}
	}
	if c.over {
		return c.n, &ArtifactsTooLargeError{Size: c.size, Max: max}
	}
	return c.n, nil
}

type copier struct {
	src, out *os.Root
	n        int
	max      int64 // cap on size; 0: none
	size     int64 // of the files copied, or measured once over
	over     bool  // the cap is passed: measure, copy nothing more
}

func (c *copier) top(p string) error {
	if p == "." || p == "" {
		return c.dir(".")
	}
	lfi, err := c.src.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%q does not exist in the workspace", p)
	}
	if err != nil {
		return fmt.Errorf("%q refused: %w", p, err)
	}
	if lfi.Mode()&fs.ModeSymlink != 0 {
		if err := c.checkLink(p); err != nil {
			return err
		}
	}
	fi, err := c.src.Stat(p)
	if err != nil {
		return fmt.Errorf("%q refused: %w", p, err)
	}
	if dir := path.Dir(p); dir != "." {
		if err := c.out.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("copy %q: %w", p, err)
		}
	}
	switch {
	case fi.IsDir():
		return c.dir(p)
	case fi.Mode().IsRegular():
		return c.file(p, fi.Mode())
	}
	return fmt.Errorf("%q is neither a file nor a folder", p)
}

// checkLink refuses a link at p whose target is outside the workspace.
func (c *copier) checkLink(p string) error {
	target, err := c.src.Readlink(p)
	if err != nil {
		return fmt.Errorf("read link %q: %w", p, err)
	}
	refused := fmt.Errorf("%q refused: it is a symbolic link to %q, outside the workspace", p, target)
	if path.IsAbs(target) {
		return refused
	}
	j := path.Join(path.Dir(p), target)
	if j == ".." || strings.HasPrefix(j, "../") {
		return refused
	}
	// Lexically inside; links on the way may still lead out, which the
	// root's own resolution tells. A target that does not exist is a
	// dangling link, harmless to keep.
	if _, err := c.src.Stat(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return refused
	}
	return nil
}

func (c *copier) dir(p string) error {
	if err := c.out.MkdirAll(p, 0o755); err != nil {
		return fmt.Errorf("copy %q: %w", p, err)
	}
	f, err := c.src.Open(p)
	if err != nil {
		return fmt.Errorf("copy %q: %w", p, err)
	}
	entries, err := f.ReadDir(-1)
	f.Close()
	if err != nil {
		return fmt.Errorf("copy %q: %w", p, err)
	}
	for _, e := range entries {
		child := path.Join(p, e.Name())
		switch t := e.Type(); {
		case t&fs.ModeSymlink != 0:
			if err := c.checkLink(child); err != nil {
				return err
			}
			target, err := c.src.Readlink(child)
			if err != nil {
				return fmt.Errorf("copy %q: %w", child, err)
			}
			if err := c.out.Symlink(target, child); err != nil && !errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("copy %q: %w", child, err)
			}
			c.n++
		case t.IsDir():
			if err := c.dir(child); err != nil {
				return err
			}
		case t.IsRegular():
			info, err := e.Info()
			if err != nil {
				return fmt.Errorf("copy %q: %w", child, err)
			}
			if err := c.file(child, info.Mode()); err != nil {
				return err
			}
		}
		// Sockets, pipes and devices a build left behind are not
		// artifacts.
	}
	return nil
}

func (c *copier) file(p string, mode fs.FileMode) error {
	if c.max > 0 {
		fi, err := c.src.Stat(p)
		if err != nil {
			return fmt.Errorf("copy %q: %w", p, err)
		}
		if c.over || c.size+fi.Size() > c.max {
			c.over = true
			c.size += fi.Size()
			return nil
		}
	}
	in, err := c.src.Open(p)
	if err != nil {
		return fmt.Errorf("copy %q: %w", p, err)
	}
	defer in.Close()
	o, err := c.out.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode.Perm())
	if err != nil {
		return fmt.Errorf("copy %q: %w", p, err)
	}
	n, err := io.Copy(o, in)
	c.size += n
	if err != nil {
		o.Close()
		return fmt.Errorf("copy %q: %w", p, err)
	}
	if err := o.Close(); err != nil {
		return fmt.Errorf("copy %q: %w", p, err)
	}
	c.n++
	return nil
}
