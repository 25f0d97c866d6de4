package testutil

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// WriteFile writes content to path (mode 0644), making its folders first.
func WriteFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// ProcessesWith lists the host's processes whose command line (its
// arguments joined by spaces) contains every one of parts, as "pid: line".
func ProcessesWith(parts ...string) []string {
	var found []string
	dirs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, d := range dirs {
		b, err := os.ReadFile(d)
		if err != nil || len(b) == 0 {
			continue
		}
		line := strings.ReplaceAll(string(b), "\x00", " ")
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			found = append(found, filepath.Base(filepath.Dir(d))+": "+line)
		}
	}
	return found
}
