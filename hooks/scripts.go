package hooks

import (
	"fmt"
	"os"
	"path/filepath"
	"slipway/internal/shell"
)

// WriteScripts writes the pre-receive, post-receive and
// reference-transaction scripts into dir (created 0755 if missing), and the
// receive hooks again into pushDir, each only exec'ing
//
//	'<binary>' hook --socket '<socket>' <name> [<state>]
//
// pushDir is for pushes through the SSH server: git runs them with it as
// core.hooksPath. It has no reference-transaction hook: a push's
// pre-receive records all its refs in one write before git moves any, and
// the per-ref hook would only cost (git runs it for every ref of a
// non-atomic push, twice: about 10 ms a ref, seconds for a mirror push).
// Repositories name dir (core.hooksPath in their config), so git run by
// anything else on the server's disk records its updates through the hook.
//
// Both paths must be absolute: git runs hooks from inside the repository.
// Each script is written to a temporary file and renamed into place, so a
// push running while the daemon starts sees the old script or the new one,
// never half of one.
func WriteScripts(dir, pushDir, binary, socket string) error {
	for _, p := range []string{binary, socket} {
		if !filepath.IsAbs(p) {
			return fmt.Errorf("write hook scripts: %q is not an absolute path", p)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write hook scripts: create %q: %w", dir, err)
	}
	if err := os.MkdirAll(pushDir, 0o755); err != nil {
		return fmt.Errorf("write hook scripts: create %q: %w", pushDir, err)
	}
	for _, name := range []string{PreReceive, PostReceive, RefTransaction} {
		if err := writeScript(dir, name, script(binary, socket, name)); err != nil {
			return fmt.Errorf("write hook script %q: %w", name, err)
		}
		if name == RefTransaction {
			continue
		}
		if err := writeScript(pushDir, name, script(binary, socket, name)); err != nil {
			return fmt.Errorf("write hook script push/%q: %w", name, err)
		}
	}
	return nil
}

// script returns the text of the hook script called name.
func script(binary, socket, name string) string {
	run := fmt.Sprintf("exec %s hook --socket %s %s", shell.Quote(binary), shell.Quote(socket), name)
	if name != RefTransaction {
		return "#!/bin/sh\n" + run + "\n"
	}
	// git runs this hook for every transaction state; newer gits know
	// states (preparing) that Slipway has nothing to do in.
	return fmt.Sprintf("#!/bin/sh\ncase \"$1\" in\n%s|%s|%s) %s \"$1\" ;;\nesac\ncat >/dev/null\n",
		StatePrepared, StateCommitted, StateAborted, run)
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
