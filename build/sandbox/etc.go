package sandbox

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// PrepareEtc is PrepareEtcSkipped without the list of what was left out.
func PrepareEtc(dir string) error {
	_, err := PrepareEtcSkipped(dir)
	return err
}

// PrepareEtcSkipped writes the files of the host's /etc that a build may see
// (see etcAllowed) into dir, replacing what dir held. Set Bwrap.EtcDir to
// it: the sandbox then mounts that one folder as /etc instead of mounting
// each file, which halves the cost of starting a sandbox (every mount in a
// new mount namespace costs a few hundred microseconds). Call it again to
// pick up changes of the host's /etc, such as new users or certificates.
//
// Entries the daemon may not read (on Debian, /etc/ssl/private is closed to
// all but root and the ssl-cert group) are left out, not an error: a build
// could not read them either when its steps run as the daemon's user, and
// must not when they run as another. skipped lists them, for the log.
func PrepareEtcSkipped(dir string) (skipped []string, err error) {
	return prepareEtc("/etc", dir, nil)
}

// PrepareEtcFor is PrepareEtcSkipped for steps that run as the uids of ids
// (Local.IDs), which no account of the host has: it adds a user "build"
// (home /home/build, shell /bin/sh) and a group "build" for each of them to
// the copy's passwd and group, so that tools that look their user up
// (ssh, id -un, a JVM's user.home) find one.
func PrepareEtcFor(dir string, ids *IDPool) (skipped []string, err error) {
	return prepareEtc("/etc", dir, ids)
}

func prepareEtc(src, dir string, ids *IDPool) (skipped []string, err error) {
	tmp := dir + ".new"
	if err := removeTree(tmp); err != nil {
		return nil, fmt.Errorf("prepare sandbox /etc: %w", err)
	}
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return nil, fmt.Errorf("prepare sandbox /etc: %w", err)
	}
	keep := linkTargetsKept(src)
	for _, name := range etcAllowed {
		s, err := copyTree(filepath.Join(src, name), filepath.Join(tmp, name), keep)
		skipped = append(skipped, s...)
		if err != nil {
			removeTree(tmp)
			return nil, fmt.Errorf("prepare sandbox /etc: %w", err)
		}
	}
	if ids != nil {
		if err := addBuildUsers(tmp, ids); err != nil {
			removeTree(tmp)
			return nil, fmt.Errorf("prepare sandbox /etc: %w", err)
		}
	}
	// Without a network, Bwrap mounts its own resolv.conf over this one,
	// and a read-only /etc has no room for a new mount point.
	if err := ensureFile(filepath.Join(tmp, "resolv.conf")); err != nil {
		removeTree(tmp)
		return nil, fmt.Errorf("prepare sandbox /etc: %w", err)
	}
	// The copy steps without network get: the same files but a
	// resolv.conf whose lookups fail at once. Mounting it whole costs
	// nothing more than the online copy; a resolv.conf mounted over the
	// online one would cost a mount per step.
	tmpOffline := dir + offlineSuffix + ".new"
	if err := removeTree(tmpOffline); err != nil {
		return nil, fmt.Errorf("prepare sandbox /etc: %w", err)
	}
	if _, err := copyTree(tmp, tmpOffline, append(keep, tmp)); err != nil {
		removeTree(tmp)
		removeTree(tmpOffline)
		return nil, fmt.Errorf("prepare sandbox /etc: %w", err)
	}
	resolv := filepath.Join(tmpOffline, "resolv.conf")
	if err := os.Remove(resolv); err != nil {
		return nil, fmt.Errorf("prepare sandbox /etc: %w", err)
	}
	if err := os.WriteFile(resolv, []byte(offlineResolvConf), 0o644); err != nil {
		return nil, fmt.Errorf("prepare sandbox /etc: %w", err)
	}
	// Replace the old copies: a sandbox starting meanwhile sees either.
	for _, c := range []struct{ tmp, dir string }{{tmpOffline, dir + offlineSuffix}, {tmp, dir}} {
		old := c.dir + ".old"
		if err := removeTree(old); err != nil {
			return nil, fmt.Errorf("prepare sandbox /etc: %w", err)
		}
		if err := os.Rename(c.dir, old); err != nil && !os.IsNotExist(err) {
			return nil, fmt.Errorf("prepare sandbox /etc: %w", err)
		}
		if err := os.Rename(c.tmp, c.dir); err != nil {
			return nil, fmt.Errorf("prepare sandbox /etc: %w", err)
		}
		if err := removeTree(old); err != nil {
			return nil, fmt.Errorf("prepare sandbox /etc: %w", err)
		}
	}
	return skipped, nil
}

// addBuildUsers appends a "build" user and group for every id of ids to
// the passwd and group files of the copy at etc.
func addBuildUsers(etc string, ids *IDPool) error {
	first, count := ids.Range()
	for _, f := range []struct {
		name string
		line func(id int) string
	}{
		{"passwd", func(id int) string { return fmt.Sprintf("build:x:%d:%d:Slipway build:%s:/bin/sh\n", id, id, HomeDir) }},
		{"group", func(id int) string { return fmt.Sprintf("build:x:%d:\n", id) }},
	} {
		p := filepath.Join(etc, f.name)
		var b strings.Builder
		if old, err := os.ReadFile(p); err == nil {
			b.Write(old)
			if len(old) > 0 && old[len(old)-1] != '\n' {
				b.WriteByte('\n')
			}
		}
		for id := first; id < first+count; id++ {
			b.WriteString(f.line(id))
		}
		// The copy may be a link into the host's /etc: replace it.
		_ = os.Remove(p)
		if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// offlineSuffix names the copy of a prepared /etc for steps without
// network, beside it: <dir>-offline.
const offlineSuffix = "-offline"

// ensureFile makes an empty file at p unless something is there.
func ensureFile(p string) error {
	if _, err := os.Lstat(p); err == nil {
		return nil
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	return f.Close()
}

// linkTargetsKept returns the folders a symlink of the copy may point into
// and stay a link: the ones the sandbox mounts as they are on the host (src
// stands for /etc). A link elsewhere, like Ubuntu's /etc/resolv.conf to
// /run/systemd/resolve, would dangle in the sandbox; its target is copied.
func linkTargetsKept(src string) []string {
	dirs := []string{src, "/usr"}
	dirs = append(dirs, systemDirs...)
	kept := make([]string, 0, len(dirs))
	for _, d := range dirs {
		if real, err := filepath.EvalSymlinks(d); err == nil {
			kept = append(kept, real)
		}
	}
	return kept
}

func within(p string, dirs []string) bool {
	for _, d := range dirs {
		if p == d || strings.HasPrefix(p, d+"/") {
			return true
		}
	}
	return false
}

// copyTree copies a file, symlink or folder as it is: symlinks stay links
// when their targets are mounted in the sandbox anyway (such as
// /usr/share/ca-certificates); a link to anywhere else is replaced by a copy
// of the file it names. A missing source is skipped; other kinds of files
// are left out. Entries that may not be read are left out and returned.
func copyTree(src, dst string, keepLinksInto []string) (skipped []string, err error) {
	links := newResolver()
	err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			switch {
			case os.IsNotExist(err) && p == src:
				return nil
			case errors.Is(err, fs.ErrPermission):
				skipped = append(skipped, p)
				if d != nil && d.IsDir() {
					// The folder was made, empty, before it failed to list.
					if rel, rerr := filepath.Rel(src, p); rerr == nil {
						_ = os.Remove(filepath.Join(dst, rel))
					}
				}
				return nil
			}
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		if d.Type()&fs.ModeSymlink != 0 {
			return copyLink(p, to, keepLinksInto, links, &skipped)
		}
		info, err := d.Info()
		if errors.Is(err, fs.ErrPermission) {
			skipped = append(skipped, p)
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(to, info.Mode().Perm()|0o700)
		case d.Type().IsRegular():
			return skipUnreadable(copyFile(p, to, info.Mode().Perm()), p, &skipped)
		}
		return nil
	})
	return skipped, err
}

// copyLink copies the symlink p to "to": as a link when what it names is
// mounted in the sandbox anyway (or cannot be resolved: it dangles on the
// host too), else as a copy of the file it names.
func copyLink(p, to string, keepLinksInto []string, links *resolver, skipped *[]string) error {
	target, err := os.Readlink(p)
	if err != nil {
		return err
	}
	real, err := links.resolve(p)
	if err != nil || within(real, keepLinksInto) {
		return os.Symlink(target, to)
	}
	fi, err := os.Stat(real)
	if err != nil || !fi.Mode().IsRegular() {
		return os.Symlink(target, to)
	}
	return skipUnreadable(copyFile(real, to, fi.Mode().Perm()), p, skipped)
}

// resolver is filepath.EvalSymlinks for many paths of one tree: it
// remembers what each folder and link it met resolves to, so that the
// hundreds of links of /etc/ssl/certs and /etc/alternatives, which point
// into a few folders, cost an lstat each rather than one per component of
// their own path and their target's.
type resolver struct {
	real map[string]string
}

func newResolver() *resolver { return &resolver{real: map[string]string{"/": "/"}} }

// maxLinks bounds the links followed for one path, as the kernel's
// ELOOP does: a loop of links is an error, not a hang.
const maxLinks = 40

var errLinkLoop = errors.New("too many links")

// resolve returns the path p names with every symlink followed, as
// filepath.EvalSymlinks does for an absolute p.
func (r *resolver) resolve(p string) (string, error) {
	hops := 0
	return r.walk(filepath.Clean(p), &hops)
}

func (r *resolver) walk(p string, hops *int) (string, error) {
	if real, ok := r.real[p]; ok {
		return real, nil
	}
	dir, err := r.walk(filepath.Dir(p), hops)
	if err != nil {
		return "", err
	}
	here := filepath.Join(dir, filepath.Base(p))
	fi, err := os.Lstat(here)
	if err != nil {
		return "", err
	}
	real := here
	if fi.Mode()&fs.ModeSymlink != 0 {
		if *hops++; *hops > maxLinks {
			return "", &fs.PathError{Op: "resolve", Path: p, Err: errLinkLoop}
		}
		target, err := os.Readlink(here)
		if err != nil {
			return "", err
		}
		if !filepath.IsAbs(target) {
			// Leading ".." steps up from dir, which has no links left;
			// a ".." after a name that may be a link is not lexical.
			for strings.HasPrefix(target, "../") {
				dir, target = filepath.Dir(dir), target[3:]
			}
			if target == ".." {
				dir, target = filepath.Dir(dir), "."
			}
			target = dir + "/" + target // not Join: it would drop ".." lexically
		}
		if slices.Contains(strings.Split(target, "/"), "..") {
			real, err = filepath.EvalSymlinks(target)
		} else {
			real, err = r.walk(filepath.Clean(target), hops)
		}
		if err != nil {
			return "", err
		}
	}
	r.real[p] = real
	return real, nil
}

// skipUnreadable turns a permission error on p into an entry of skipped.
func skipUnreadable(err error, p string, skipped *[]string) error {
	if errors.Is(err, fs.ErrPermission) {
		*skipped = append(*skipped, p)
		return nil
	}
	return err
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

// removeTree removes dir and everything in it, also folders a step made
// read-only (as Go's module cache does), which os.RemoveAll cannot empty
// unless the daemon is root.
func removeTree(dir string) error {
	if err := os.RemoveAll(dir); err == nil {
		return nil
	}
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(p, 0o700)
		}
		return nil
	})
	return os.RemoveAll(dir)
}
