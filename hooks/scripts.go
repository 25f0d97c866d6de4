package hooks

import (
	"fmt"
	"os"
	"path/filepath"
	"slipway/internal/shell"
)

// WriteScripts writes the pre-receive and post-receive scripts into dir
// (created 0755 if missing), each only exec'ing
//
//	'<binary>' hook --socket '<socket>' <name>
//
// Both paths must be absolute: git runs hooks from inside the repository.
// Each script is written to a temporary file and renamed into place, so a
// push running while the daemon starts sees the old script or the new one,
// never half of one.
func WriteScripts(dir, binary, socket string) error {
	for _, p := range []string{binary, socket} {
		if !filepath.IsAbs(p) {
			return fmt.Errorf("write hook scripts: %q is not an absolute path", p)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write hook scripts: create %q: %w", dir, err)
	}
	for _, name := range []string{PreReceive, PostReceive} {
		if err := writeScript(dir, name, script(binary, socket, name)); err != nil {
			return fmt.Errorf("write hook script %q: %w", name, err)
		}
	}
	return nil
}

// script returns the text of the hook script called name.
func script(binary, socket, name string) string {
	return fmt.Sprintf("#!/bin/sh\nexec %s hook --socket %s %s\n", shell.Quote(binary), shell.Quote(socket), name)
}

func writeScript(dir, name, text string) error {
	f, err := os.CreateTemp(dir, "."+name+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // fails harmlessly once renamed
	if _, err := f.WriteString(text); err != nil {
		_ = f.Close()
		return err
	}
	// CreateTemp makes 0600 files; git needs the script executable.
	if err := f.Chmod(0o755); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, name))
}
