package hooks

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteScripts(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "hooks")
	if err := WriteScripts(dir, filepath.Join(dir, "push"), "/usr/local/bin/slipway", "/var/lib/slipway/run/hook.sock"); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"pre-receive", "post-receive"} {
		path := filepath.Join(dir, name)
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		want := "#!/bin/sh\nexec '/usr/local/bin/slipway' hook --socket '/var/lib/slipway/run/hook.sock' " + name + "\n"
		if string(b) != want {
			t.Errorf("%s is %q, want %q", name, b, want)
		}
		fi, _ := os.Stat(path)
		if fi.Mode().Perm() != 0o755 {
			t.Errorf("%s has mode %v", name, fi.Mode())
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "reference-transaction"))
	if err != nil {
		t.Fatal(err)
	}
	want := "#!/bin/sh\ncase \"$1\" in\nprepared|committed|aborted) exec '/usr/local/bin/slipway' hook --socket '/var/lib/slipway/run/hook.sock' reference-transaction \"$1\" ;;\nesac\ncat >/dev/null\n"
	if string(b) != want {
		t.Errorf("reference-transaction is %q, want %q", b, want)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 4 {
		t.Errorf("hooks dir holds %d entries, want only the three scripts and push/", len(entries))
	}
	entries, _ = os.ReadDir(filepath.Join(dir, "push"))
	if len(entries) != 2 {
		t.Errorf("push hooks dir holds %d entries, want only the two receive hooks", len(entries))
	}
	if err := WriteScripts(dir, filepath.Join(dir, "push"), "slipway", "/s"); err == nil {
		t.Error("relative binary path accepted")
	}
}

// TestScriptQuoting runs a script whose paths hold every character a shell
// would otherwise interpret, and checks the binary gets them verbatim.
func TestScriptQuoting(t *testing.T) {
	t.Parallel()
	odd := filepath.Join(t.TempDir(), `it's $HOME "quoted" `+"`x`; *")
	if err := os.MkdirAll(odd, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(odd, "fake slipway")
	argsFile := filepath.Join(t.TempDir(), "args")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\nprintf '%s\\n' \"$@\" > \"$ARGS_FILE\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(odd, "hook.sock")
	hooks := filepath.Join(odd, "hooks")
	if err := WriteScripts(hooks, filepath.Join(hooks, "push"), bin, sock); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), filepath.Join(hooks, "post-receive"))
	cmd.Env = []string{"ARGS_FILE=" + argsFile, "PATH=" + os.Getenv("PATH")}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("run script: %v\n%s", err, out)
	}
	got, err := os.ReadFile(argsFile)
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.Join([]string{"hook", "--socket", sock, "post-receive"}, "\n") + "\n"; string(got) != want {
		t.Errorf("binary got args %q, want %q", got, want)
	}
}
