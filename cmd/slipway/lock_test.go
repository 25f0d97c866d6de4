package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The lock is exclusive per open file, so two takes in one process stand
// for two daemons: the second is refused with the data dir and the pid,
// changes nothing, and can take the lock once the first lets go.
func TestDataDirLockIsExclusive(t *testing.T) {
	dir := t.TempDir()
	first, err := lockDataDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	pidFile := filepath.Join(dir, lockFileName)
	before, _ := os.ReadFile(pidFile)
	if want := fmt.Sprintf("%d\n", os.Getpid()); string(before) != want {
		t.Fatalf("lock file holds %q, want %q", before, want)
	}

	second, err := lockDataDir(dir)
	if !errors.Is(err, errDataDirInUse) {
		t.Fatalf("second lock: %v, %v; want errDataDirInUse", second, err)
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, dir+": ") || !strings.Contains(msg, fmt.Sprintf("(pid %d)", os.Getpid())) || strings.Contains(msg, "\n") {
		t.Errorf("message %q does not name the data dir and the holder's pid on one line", msg)
	}
	if after, _ := os.ReadFile(pidFile); string(after) != string(before) {
		t.Errorf("the refused lock changed the lock file: %q, was %q", after, before)
	}

	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := lockDataDir(dir)
	if err != nil {
		t.Fatalf("lock after the holder closed it: %v", err)
	}
	again.Close()
}

// A data dir that does not exist yet is not created by the early lock.
func TestLockExistingDataDirLeavesAMissingDirAlone(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	l, err := lockExistingDataDir(dir)
	if l != nil || err != nil {
		t.Fatalf("lockExistingDataDir of a missing dir: %v, %v", l, err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("the data dir was created: %v", err)
	}
}
