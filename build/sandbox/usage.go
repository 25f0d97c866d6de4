package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// The workspace limit is held by accounting: the daemon measures what the
// build's folders hold on disk and stops the step that takes them over the
// limit. A filesystem of its own per build would let the kernel refuse the
// write instead, but each way to make one costs where Slipway runs: a
// size-limited tmpfs puts the workspace in memory, a loop-mounted image
// needs root, a loop device and mkfs per build (and is not there in many
// containers), project quotas need a filesystem mounted for them.
// Accounting works for a daemon run as root or as an ordinary user, on any
// filesystem; its price is that a step may write past the limit for as
// long as one measurement takes to notice (see usageWatch), and the cost
// of the measurements, which usageWatch bounds.

// minBlock is what every file and folder counts at least: a step must not
// use up the filesystem's inodes with empty files that hold no blocks.
const minBlock = 4096

// diskUsage returns the disk the trees at dirs hold: the allocated blocks
// of every file, folder and link in them (sparse files count what they
// hold, not their length), each at least minBlock, each inode once (hard
// links), and how many entries it looked at. Symbolic links are not
// followed. Entries that vanish meanwhile are skipped. A folder the step
// closed to its owner (chmod 0) is opened again for the daemon's user when
// that is its owner; root reads it anyway.
func diskUsage(dirs []string) (bytes int64, entries int, err error) {
	u := usageWalk{seen: map[inode]struct{}{}}
	for _, d := range dirs {
		var st unix.Stat_t
		if err := unix.Lstat(d, &st); err != nil {
			if errors.Is(err, unix.ENOENT) {
				continue
			}
			return 0, 0, fmt.Errorf("measure %s: %w", d, err)
		}
		u.add(&st)
		fd, err := openDir(unix.AT_FDCWD, d, &st)
		if err != nil {
			return 0, 0, fmt.Errorf("measure %s: %w", d, err)
		}
		err = u.dir(fd)
		if err != nil {
			return 0, 0, fmt.Errorf("measure %s: %w", d, err)
		}
	}
	return u.bytes, u.entries, nil
}

type inode struct{ dev, ino uint64 }

type usageWalk struct {
	bytes   int64
	entries int
	seen    map[inode]struct{} // inodes with more than one link
}

func (u *usageWalk) add(st *unix.Stat_t) {
	u.entries++
	if st.Nlink > 1 && st.Mode&unix.S_IFMT != unix.S_IFDIR {
		k := inode{uint64(st.Dev), st.Ino}
		if _, ok := u.seen[k]; ok {
			return
		}
		u.seen[k] = struct{}{}
	}
	u.bytes += max(st.Blocks*512, minBlock)
}

// openDir opens the folder name (relative to dirfd), whose lstat is st,
// without following a link put in its place meanwhile.
func openDir(dirfd int, name string, st *unix.Stat_t) (int, error) {
	const flags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
	fd, err := unix.Openat(dirfd, name, flags, 0)
	if errors.Is(err, unix.EACCES) && int(st.Uid) == os.Geteuid() {
		// The daemon's own folder, closed by a step running as the
		// daemon's user: what it holds counts all the same.
		if unix.Fchmodat(dirfd, name, st.Mode&0o7777|0o700, 0) == nil {
			fd, err = unix.Openat(dirfd, name, flags, 0)
		}
	}
	return fd, err
}

// dir adds what the open folder fd holds, and closes it.
func (u *usageWalk) dir(fd int) error {
	f := os.NewFile(uintptr(fd), "")
	defer f.Close()
	for {
		names, err := f.Readdirnames(1024)
		for _, name := range names {
			var st unix.Stat_t
			if err := unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				if errors.Is(err, unix.ENOENT) {
					continue
				}
				return err
			}
			u.add(&st)
			if st.Mode&unix.S_IFMT != unix.S_IFDIR {
				continue
			}
			sub, err := openDir(fd, name, &st)
			if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) {
				continue // replaced or removed meanwhile
			}
			if err != nil {
				return fmt.Errorf("open %s: %w", name, err)
			}
			if err := u.dir(sub); err != nil {
				return err
			}
		}
		if errors.Is(err, io.EOF) || err == nil && len(names) == 0 {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// usageWatch holds a byte limit on what some folders hold (diskUsage),
// for as long as one step runs.
//
// Measuring walks the whole tree, so its cost grows with the number of
// files: the watch walks every minEvery (100 ms), but never spends more
// than about a twentieth of its time walking (a tree that takes 100 ms to
// walk is measured every 2 s). Between walks it asks the filesystems
// themselves (statfs, a constant cost) how much more they hold than at
// the last walk, and walks again at once (at most once in four walks'
// time) when that growth, from whatever wrote it, could have used up the
// room left: a step that writes fast is caught within about a tick and a
// walk. The filesystems' growth is theirs, not the step's: space another
// process frees meanwhile hides as much of the step's writing, which the
// next regular walk then finds.
type usageWatch struct {
	dirs  []string
	limit int64
	// tick is how often the filesystems are asked; minEvery the longest
	// time between walks.
	tick, minEvery time.Duration
}

// run measures until ctx ends or the folders reach the limit, and then
// calls over with what they hold. err is the last failed measurement, if
// the watch ended on one: what cannot be measured cannot be held.
func (w usageWatch) run(ctx context.Context, over func(used int64)) error {
	tick := w.tick
	if tick <= 0 {
		tick = 25 * time.Millisecond
	}
	every := w.minEvery
	if every <= 0 {
		every = 100 * time.Millisecond
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		start := time.Now()
		used, _, err := diskUsage(w.dirs)
		if err != nil {
			return err
		}
		if used >= w.limit {
			over(used)
			return nil
		}
		cost := time.Since(start)
		base := fsUsed(w.dirs)
		room := w.limit - used
		due := start.Add(max(every, 20*cost))
		earliest := start.Add(4 * cost) // a walk at most a fifth of the time
	wait:
		for {
			select {
			case <-ctx.Done():
				return nil
			case now := <-t.C:
				if !now.Before(due) {
					break wait
				}
				if now.Before(earliest) {
					continue
				}
				if fsUsed(w.dirs)-base >= room {
					break wait
				}
			}
		}
	}
}

// fsUsed is what the filesystems holding dirs use, in bytes, each inode
// counted as minBlock more (see diskUsage); each filesystem once.
func fsUsed(dirs []string) int64 {
	var total int64
	seen := map[[2]int32]bool{}
	for _, d := range dirs {
		var s unix.Statfs_t
		if unix.Statfs(d, &s) != nil || seen[s.Fsid.Val] {
			continue
		}
		seen[s.Fsid.Val] = true
		total += int64(s.Blocks-s.Bfree)*int64(s.Bsize) + int64(s.Files-s.Ffree)*minBlock
	}
	return total
}
