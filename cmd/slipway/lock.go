package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// lockFileName is the file in the data dir whose lock says a daemon runs on
// it. It holds the pid of that daemon, for the message a second one prints.
const lockFileName = "slipway.lock"

// errDataDirInUse is the error of a second daemon on a data dir that one
// already runs on.
var errDataDirInUse = errors.New("the data dir is in use by another slipway daemon")

// dataDirLock is the exclusive lock of a daemon on its data dir. It is a
// flock(2) on <data>/slipway.lock: the kernel drops it when the process
// ends, however it ends, so a daemon killed with SIGKILL never leaves a
// stale lock. The file is opened close-on-exec (Go's default), so git, hooks
// and build processes the daemon starts never hold it.
type dataDirLock struct {
	f *os.File
}

// lockDataDir takes the lock of dataDir, which must exist. When another
// daemon holds it, the error wraps errDataDirInUse and names the data dir
// and, when the holder wrote it, its pid; nothing in the data dir is
// changed then.
func lockDataDir(dataDir string) (*dataDirLock, error) {
	path := filepath.Join(dataDir, lockFileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock the data dir: %w", err)
	}
	if err := flock(f); err != nil {
		defer f.Close()
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("lock the data dir: %s: %w", path, err)
		}
		holder := ""
		if b, rerr := os.ReadFile(path); rerr == nil {
			if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); perr == nil && pid > 0 {
				holder = fmt.Sprintf(" (pid %d)", pid)
			}
		}
		return nil, fmt.Errorf("%s: %w%s; stop it first, or give this one another data dir (--data DIR)", dataDir, errDataDirInUse, holder)
	}
	// Ours now: say who holds it.
	if err := f.Truncate(0); err == nil {
		_, err = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("lock the data dir: write the pid into %s: %w", path, err)
		}
	} else {
		f.Close()
		return nil, fmt.Errorf("lock the data dir: %s: %w", path, err)
	}
	return &dataDirLock{f: f}, nil
}

// lockExistingDataDir takes the lock of dataDir when the folder exists
// already, and returns nil, nil when it does not (there is nothing a
// daemon could be running on yet; lockDataDir is called once it is made).
func lockExistingDataDir(dataDir string) (*dataDirLock, error) {
	if _, err := os.Stat(dataDir); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return lockDataDir(dataDir)
}

// flock takes an exclusive lock on f without waiting, retrying when a
// signal interrupts the call.
func flock(f *os.File) error {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}

// Close releases the lock. The pid is left in the file: the next daemon
// overwrites it, and a pid without a lock means nothing.
func (l *dataDirLock) Close() error {
	if l == nil {
		return nil
	}
	return l.f.Close()
}
