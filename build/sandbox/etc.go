package sandbox

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// PrepareEtc writes the files of the host's /etc that a build may see (see
// etcAllowed) into dir, replacing what dir held. Set Bwrap.EtcDir to it: the
// sandbox then mounts that one folder as /etc instead of mounting each file,
// which halves the cost of starting a sandbox (every mount in a new mount
// namespace costs a few hundred microseconds). Call it again to pick up
// changes of the host's /etc, such as new users or certificates.
func PrepareEtc(dir string) error {
	return prepareEtc("/etc", dir)
}

func prepareEtc(src, dir string) error {
	tmp := dir + ".new"
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("prepare sandbox /etc: %w", err)
	}
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return fmt.Errorf("prepare sandbox /etc: %w", err)
	}
	for _, name := range etcAllowed {
		if err := copyTree(filepath.Join(src, name), filepath.Join(tmp, name)); err != nil {
			os.RemoveAll(tmp)
			return fmt.Errorf("prepare sandbox /etc: %w", err)
		}
	}
	// Replace the old copy: a sandbox starting meanwhile sees either.
	old := dir + ".old"
	if err := os.RemoveAll(old); err != nil {
		return fmt.Errorf("prepare sandbox /etc: %w", err)
	}
	if err := os.Rename(dir, old); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("prepare sandbox /etc: %w", err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return fmt.Errorf("prepare sandbox /etc: %w", err)
	}
	return os.RemoveAll(old)
}

// copyTree copies a file, symlink or folder as it is (symlinks stay links:
// their targets, such as /usr/share/ca-certificates, are mounted anyway).
// A missing source is skipped; other kinds of files are left out.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) && p == src {
				return nil
			}
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(target, to)
		case d.IsDir():
			return os.MkdirAll(to, info.Mode().Perm()|0o700)
		case d.Type().IsRegular():
			return copyFile(p, to, info.Mode().Perm())
		}
		return nil
	})
}

func copyFile(src, dst string, mode fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
