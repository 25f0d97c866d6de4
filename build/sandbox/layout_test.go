package sandbox

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// stepEnv is the environment a caller builds from the runner's layout.
func stepEnv(l Layout) []string {
	env := []string{"PATH=/usr/bin:/bin"}
	if l.Home != "" {
		env = append(env, "HOME="+l.Home)
	}
	if l.Tmp != "" {
		env = append(env, "TMPDIR="+l.Tmp)
	}
	return env
}

// What a step keeps in ~ the next step of the build finds; what it leaves
// in /tmp it does not.
func TestHomePersistsAcrossSteps(t *testing.T) {
	t.Parallel()
	ws, _ := layout(t)
	home := filepath.Join(filepath.Dir(ws), "home")
	if err := os.Mkdir(home, 0o700); err != nil {
		t.Fatal(err)
	}
	r := newBwrap()
	spec := Spec{Workspace: ws, Home: home}
	l := r.Layout(spec)
	if l != (Layout{Workspace: WorkspaceDir, Home: HomeDir, Tmp: TmpDir}) {
		t.Errorf("layout %+v", l)
	}
	spec.Env = stepEnv(l)
	res, out := run(t, r, spec, `cd && pwd && mkdir -p .config && echo token > .config/login && echo left > "$TMPDIR/scratch"`)
	if res.ExitCode != 0 || strings.TrimSpace(out) != HomeDir {
		t.Fatalf("first step: exit %d, %q", res.ExitCode, out)
	}
	res, out = run(t, r, spec, `cat ~/.config/login; ls -A "$TMPDIR"; echo end`)
	if res.ExitCode != 0 || out != "token\nend\n" {
		t.Errorf("second step: exit %d, %q; want the login kept and the temporary folder empty", res.ExitCode, out)
	}
	if b, err := os.ReadFile(filepath.Join(home, ".config", "login")); err != nil || string(b) != "token\n" {
		t.Errorf("home on the host: %q, %v", b, err)
	}
	if os.Geteuid() == 0 {
		fi, err := os.Stat(filepath.Join(home, ".config"))
		if err != nil || fi.Sys().(*syscall.Stat_t).Uid != buildUID {
			t.Errorf("the step's folder in home is not the build uid's: %v", err)
		}
	}

	// Without Spec.Home, every step starts with an empty home of its own.
	spec.Home = ""
	res, out = run(t, r, spec, `echo x > ~/f && ls -A ~`)
	if res.ExitCode != 0 || out != "f\n" {
		t.Errorf("step with no home given: exit %d, %q", res.ExitCode, out)
	}
	res, out = run(t, r, spec, `ls -A ~; echo end`)
	if res.ExitCode != 0 || out != "end\n" {
		t.Errorf("the next step's home is not empty: exit %d, %q", res.ExitCode, out)
	}
}

// With sandbox = "none" the step's folders are the host's own, and nothing
// of them is in the host's shared temporary folder.
func TestNoneLayout(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	ws, home, cache := filepath.Join(base, "ws"), filepath.Join(base, "home"), filepath.Join(base, "cache")
	for _, d := range []string{ws, home, cache} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	spec := Spec{Workspace: ws, Home: home, Cache: cache}
	l := None{}.Layout(spec)
	if want := (Layout{Workspace: ws, Cache: cache, Home: home, Tmp: filepath.Join(home, ".tmp")}); l != want {
		t.Fatalf("layout %+v, want %+v", l, want)
	}
	if noHome := (None{}).Layout(Spec{Workspace: ws}); noHome.Home != "" || noHome.Tmp != "" {
		t.Errorf("layout without a home names %+v", noHome)
	}
	spec.Env = stepEnv(l)
	// A read-only folder, as Go's module cache makes, must not stop the
	// clean-up of the temporary folder.
	res, out := run(t, None{}, spec, `mktemp && mkdir "$TMPDIR/ro" && touch "$TMPDIR/ro/f" && chmod 555 "$TMPDIR/ro" && echo kept > ~/f && pwd`)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if res.ExitCode != 0 || len(lines) != 2 || !strings.HasPrefix(lines[0], l.Tmp+"/") || lines[1] != ws {
		t.Fatalf("first step: exit %d, %q", res.ExitCode, out)
	}
	if _, err := os.Stat(l.Tmp); !os.IsNotExist(err) {
		t.Errorf("the step's temporary folder outlived it: %v", err)
	}
	res, out = run(t, None{}, spec, `cat ~/f; ls -A "$TMPDIR"; echo end`)
	if res.ExitCode != 0 || out != "kept\nend\n" {
		t.Errorf("second step: exit %d, %q", res.ExitCode, out)
	}
	if _, err := (None{}).Run(t.Context(), Spec{Workspace: ws, Home: filepath.Join(base, "missing")}, "true"); err == nil {
		t.Error("a missing home was accepted")
	}
}

// Layout is what a caller builds cache variables from; a step finds the
// cache there under either runner.
func TestCacheThroughLayout(t *testing.T) {
	t.Parallel()
	ws, _ := layout(t)
	cache := filepath.Join(filepath.Dir(ws), "cache")
	if err := os.Mkdir(cache, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, r := range []Runner{newBwrap(), None{}} {
		spec := Spec{Workspace: ws, Cache: cache}
		l := r.Layout(spec)
		spec.Env = append(stepEnv(l), "GOCACHE="+l.Cache+"/go-build")
		name := fmt.Sprintf("%T", r)
		res, out := run(t, r, spec, `mkdir -p "$GOCACHE" && echo `+name+` > "$GOCACHE/mark"`)
		b, err := os.ReadFile(filepath.Join(cache, "go-build", "mark"))
		if res.ExitCode != 0 || err != nil || strings.TrimSpace(string(b)) != name {
			t.Errorf("%s: exit %d, %q; cache file %q, %v", name, res.ExitCode, out, b, err)
		}
	}
	if l := newBwrap().Layout(Spec{Workspace: ws}); l.Cache != "" {
		t.Errorf("layout without a cache names %q", l.Cache)
	}
}
