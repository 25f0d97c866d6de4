package configrepo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"slipway/configs"
	"slipway/internal/gitrev"
	"slipway/record"
)

// Apply puts in force what an accepted push made of main: the file of
// main's new commit is written to the configuration's path and the daemon
// reloads it, telling the pusher on out (see hooks.ConfigRepo). A push to
// another branch applies nothing, and says so.
func (r *Repo) Apply(ctx context.Context, user string, refs []record.RefUpdate, out io.Writer) {
	for _, u := range refs {
		switch {
		case u.Name != mainRef:
			if !record.ZeroID(u.New) {
				fmt.Fprintf(out, "slipway: %s is not %s: nothing was put in force (the configuration is %s's)\n",
					gitrev.ShortRef(u.Name), configs.ConfigBranch, configs.ConfigBranch)
			}
		case record.ZeroID(u.New):
			// Refused in pre-receive; one made on the server's disk
			// leaves the file, the source, as it is.
		default:
			r.apply(ctx, user, u.New, out)
		}
	}
}

// apply writes the file of commit, main's new value, and reloads it,
// telling the pusher on out.
func (r *Repo) apply(ctx context.Context, user, commit string, out io.Writer) {
	// One push at a time, in the order git moved main, reload included:
	// a push that finds main moved on leaves the file to the push that
	// moved it, and each reload reads the file its own push wrote.
	r.applyMu.Lock()
	defer r.applyMu.Unlock()
	short := gitrev.Short(commit)
	head, err := r.head(ctx)
	if err != nil {
		r.log.Error("apply a configuration push", "commit", commit, "err", err)
		fmt.Fprintf(out, "slipway: could not read %s of %s (see the daemon's log); the configuration in force is unchanged\n", configs.ConfigBranch, configs.ConfigRepoName)
		return
	}
	if head != commit {
		fmt.Fprintf(out, "slipway: %s has moved on to %s since this push; the push that moved it puts its configuration in force\n", configs.ConfigBranch, gitrev.Short(head))
		return
	}
	data, why, err := r.read(ctx, commit, "")
	if err == nil && why != "" {
		err = errors.New(why)
	}
	if err != nil {
		r.log.Error("apply a configuration push: read the file", "commit", commit, "err", err)
		fmt.Fprintf(out, "slipway: could not read %s at %s (see the daemon's log); the configuration in force is unchanged\n", configs.ConfigFile, short)
		return
	}
	if err := WriteFile(r.o.File, data); err != nil {
		r.log.Error("apply a configuration push: write the file", "file", r.o.File, "commit", commit, "err", err)
		fmt.Fprintf(out, "slipway: could not write the configuration to %s: %v; the configuration in force is unchanged\n", r.o.File, err)
		return
	}
	r.log.Info("configuration pushed; written to its file", "user", user, "commit", commit, "file", r.o.File)
	r.o.Reload(ctx, fmt.Sprintf("push to %s by %s (commit %s)", configs.ConfigRepoName, user, short), out)
}

// WriteFile replaces the file at path (the file a symbolic link at path
// names) with data in one step: a reader, or a daemon starting, sees the
// old file or the new one, never part of one, and a crash leaves one of
// them whole. data goes to a temporary file in the same folder, which is
// flushed to disk, given the old file's mode (and, as root, its owner) and
// renamed over it; then the folder is flushed, so that the rename itself
// survives a crash. A new file gets mode 0600.
func WriteFile(path string, data []byte) error {
	real, err := filepath.EvalSymlinks(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		real = path
	case err != nil:
		return fmt.Errorf("write %s: %w", path, err)
	}
	mode, uid, gid := fs.FileMode(0o600), -1, -1
	if fi, err := os.Stat(real); err == nil {
		mode = fi.Mode().Perm()
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			uid, gid = int(st.Uid), int(st.Gid)
		}
	}
	dir := filepath.Dir(real)
	f, err := os.CreateTemp(dir, "."+filepath.Base(real)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // fails harmlessly once renamed
	err = writeAll(f, data, mode, uid, gid)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, real); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("write %s: flush its folder: %w", path, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("write %s: flush its folder: %w", path, err)
	}
	return nil
}

func writeAll(f *os.File, data []byte, mode fs.FileMode, uid, gid int) error {
	if _, err := f.Write(data); err != nil {
		return err
	}
	// Only root may give a file away; anyone else's new file is its own,
	// as the old one was when it could write it.
	if uid >= 0 && os.Geteuid() == 0 {
		if err := f.Chown(uid, gid); err != nil {
			return err
		}
	}
	if err := f.Chmod(mode); err != nil {
		return err
	}
	return f.Sync()
}

// CheckWritable reports why the daemon could not replace the file at path
// the way WriteFile does: the file must exist and be writable, and its
// folder must take a new file.
func CheckWritable(path string) error {
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(real, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	f.Close()
	tmp, err := os.CreateTemp(filepath.Dir(real), "."+filepath.Base(real)+".check*")
	if err != nil {
		return err
	}
	tmp.Close()
	return os.Remove(tmp.Name())
}
