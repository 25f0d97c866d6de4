package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"slipway/configs"
)

// config_repo needs a file the daemon can write: without --config (the
// embedded default) the start is refused with the way out, and a file the
// daemon could not replace is refused naming it.
func TestCheckConfigRepo(t *testing.T) {
	on, off := &configs.Config{ConfigRepo: true}, &configs.Config{}
	if err := checkConfigRepo(off, ""); err != nil {
		t.Errorf("config_repo off, no file: %v", err)
	}
	err := checkConfigRepo(on, "")
	if err == nil || !strings.Contains(err.Error(), "config_repo = true needs a configuration file") || !strings.Contains(err.Error(), "--config FILE") {
		t.Errorf("config_repo without --config: %v", err)
	}
	file := filepath.Join(t.TempDir(), "slipway.toml")
	if err := os.WriteFile(file, []byte("config_repo = true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := checkConfigRepo(on, file); err != nil {
		t.Errorf("a writable file: %v", err)
	}
	gone := filepath.Join(t.TempDir(), "gone", "slipway.toml")
	err = checkConfigRepo(on, gone)
	if err == nil || !strings.Contains(err.Error(), "the daemon must be able to write "+gone) {
		t.Errorf("a file the daemon cannot write: %v", err)
	}
}
