package hooks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"slipway/configs"
	"slipway/record"
)

// fakeVerifier stands in for the build service: it checks that the pushed
// commit is readable through the quarantine with real git, then passes or
// refuses each ref as told, and holds what a real one holds.
type fakeVerifier struct {
	t      *testing.T
	gitDir string
	fail   string // refuse with this when not ""

	mu       sync.Mutex
	calls    []string // "ref commit quarantine"
	held     map[string]string
	released int
}

func (v *fakeVerifier) Verify(ctx context.Context, p record.Push, refs []record.RefUpdate, q string, out io.Writer) (func(), error) {
	v.mu.Lock()
	for _, u := range refs {
		v.calls = append(v.calls, u.Name+" "+u.New+" "+q)
	}
	v.mu.Unlock()
	for _, u := range refs {
		// The commit is not in the repository yet, only in the quarantine.
		cmd := exec.Command("git", "--git-dir="+v.gitDir, "cat-file", "-e", u.New+"^{commit}")
		if cmd.Run() == nil {
			return nil, fmt.Errorf("%s: the commit is in the repository before the push landed", u.Name)
		}
		cmd = exec.Command("git", "--git-dir="+v.gitDir, "cat-file", "-e", u.New+"^{commit}")
		cmd.Env = append(os.Environ(), "GIT_OBJECT_DIRECTORY="+q, "GIT_ALTERNATE_OBJECT_DIRECTORIES="+filepath.Join(v.gitDir, "objects"))
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("%s: the commit is not in the quarantine: %v %s", u.Name, err, out)
		}
		fmt.Fprintf(out, "fake build of %s passes\n", u.Name)
	}
	if v.fail != "" {
		return nil, errors.New(refs[0].Name + ": " + v.fail)
	}
	v.mu.Lock()
	v.held = map[string]string{}
	for _, u := range p.Refs {
		v.held[u.Name] = p.User
	}
	v.mu.Unlock()
	return func() {
		v.mu.Lock()
		defer v.mu.Unlock()
		v.held = nil
		v.released++
	}, nil
}

func (v *fakeVerifier) Holder(repo, ref string) string {
	v.mu.Lock()
	defer v.mu.Unlock()
	if who, ok := v.held[ref]; ok {
		return "another push is being verified (build #1 by " + who + "); push again when it ends"
	}
	return ""
}

func (v *fakeVerifier) state() (calls []string, released int) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]string(nil), v.calls...), v.released
}

// verifyEnv is a hook server with a fakeVerifier over a bare "app"; extra is
// added to app's [[repo]].
func verifyEnv(t *testing.T, extra string) (*testEnv, *fakeVerifier, string) {
	e := prepareEnv(t)
	if extra != "" {
		cfg, err := configs.Parse([]byte(e.cfgText+extra), "test.toml")
		if err != nil {
			t.Fatal(err)
		}
		e.cfg = cfg
	}
	v := &fakeVerifier{t: t}
	e.start(func(o *ServerOptions) { o.Verifier = v })
	repo := e.bareRepo("app")
	v.gitDir = repo
	return e, v, repo
}

// TestVerifiedPushThroughGit: with -o verify, real git's pre-receive hands
// the daemon the push's quarantine, from which the pushed commit is read
// before it is in the repository; a refusal leaves the ref where it was and
// names the reason, a pass lets it move; release runs when the session
// ends, and while the push holds main another push to it is refused.
func TestVerifiedPushThroughGit(t *testing.T) {
	t.Parallel()
	e, v, repo := verifyEnv(t, "")
	work := e.workRepo()
	head := e.git(work, "rev-parse", "HEAD")

	v.fail = "build #1 failed: step 2 (make test) exited 1"
	out, err := e.push(work, e.token("app", "alice"), "-o", "verify", repo, "main")
	if err == nil {
		t.Fatalf("a push whose verification failed was accepted:\n%s", out)
	}
	for _, want := range []string{
		"remote: fake build of refs/heads/main passes",
		"remote: refs/heads/main: build #1 failed: step 2 (make test) exited 1",
		"remote: slipway: push refused; no ref was updated",
		"[remote rejected] main -> main (pre-receive hook declined)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("push output lacks %q:\n%s", want, out)
		}
	}
	if e.refExists(repo, "refs/heads/main") {
		t.Fatal("main exists after a refused verified push")
	}
	calls, _ := v.state()
	if len(calls) != 1 || !strings.HasPrefix(calls[0], "refs/heads/main "+head+" "+filepath.Join(repo, "objects")+"/") {
		t.Fatalf("verifier calls %q", calls)
	}
	if _, ok := e.lastPush("app"); ok {
		t.Error("a refused push was recorded")
	}

	v.fail = ""
	tok, end := e.reg.Begin("app", "alice", e.fps["alice"], nil)
	out, err = e.push(work, tok, "-o", "verify", repo, "main")
	if err != nil {
		t.Fatalf("a push whose verification passed was refused: %v\n%s", err, out)
	}
	if got := e.git(repo, "rev-parse", "refs/heads/main"); got != head {
		t.Fatalf("main is at %s after the verified push, want %s", got, head)
	}
	if _, released := v.state(); released != 0 {
		t.Fatal("release ran before the push's session ended")
	}
	// The session is still open: main is held.
	e.git(work, "commit", "-q", "--allow-empty", "-m", "second")
	out, err = e.push(work, e.token("app", "bob"), repo, "main")
	if err == nil || !strings.Contains(out, "remote: refs/heads/main: another push is being verified (build #1 by alice); push again when it ends") {
		t.Fatalf("a push to main while it is held: %v\n%s", err, out)
	}
	end()
	if _, released := v.state(); released != 1 {
		t.Fatalf("release ran %d times after the session ended, want 1", released)
	}
	e.mustPush("a plain push after the hold ended", work, e.token("app", "bob"), repo, "main")
	if calls, _ := v.state(); len(calls) != 2 {
		t.Errorf("a push without -o verify was verified: %q", calls)
	}
}

// TestVerifyBranchesMakeEveryPushVerified: with verify_branches, a plain
// push to main is verified (and refused when its build fails), one to
// another branch is not; a push made on the server's disk, which has no
// session to tie the verification to, is refused for main.
func TestVerifyBranchesMakeEveryPushVerified(t *testing.T) {
	t.Parallel()
	e, v, repo := verifyEnv(t, "verify_branches = [\"main\", \"release/*\"]\n")
	work := e.workRepo()
	v.fail = "build #1 failed: step 1 (false) exited 1"
	out, err := e.push(work, e.token("app", "alice"), repo, "main")
	if err == nil || !strings.Contains(out, "remote: refs/heads/main: build #1 failed: step 1 (false) exited 1") {
		t.Fatalf("a plain push to a verified branch: %v\n%s", err, out)
	}
	if e.refExists(repo, "refs/heads/main") {
		t.Fatal("main moved although its build failed")
	}
	e.mustPush("a push to dev, which is not verified", work, e.token("app", "alice"), repo, "main:dev")
	if calls, _ := v.state(); len(calls) != 1 {
		t.Fatalf("verifier calls %q; dev was verified", calls)
	}
	out, err = e.push(work, "", repo, "main")
	if err == nil || !strings.Contains(out, "refs/heads/main must pass its build first (verify_branches), which only a push through Slipway's SSH server can do") {
		t.Fatalf("a push on the server's disk to a verified branch: %v\n%s", err, out)
	}
	// Deleting a verified branch builds nothing.
	v.fail = ""
	e.git(work, "commit", "-q", "--allow-empty", "-m", "new")
	tok, end := e.reg.Begin("app", "alice", e.fps["alice"], nil)
	e.mustPush("a passing push", work, tok, repo, "main:release/1")
	end()
	e.mustPush("deleting release/1", work, e.token("app", "alice"), repo, ":release/1")
	if calls, _ := v.state(); len(calls) != 2 {
		t.Errorf("verifier calls %q", calls)
	}
}

// TestForgedQuarantineRefused: a hook request that names any folder but a
// quarantine folder of the push's own repository is refused before the
// verifier sees it, whatever the folder: outside the repositories, another
// repository's, a symbolic link out, an objects subfolder git uses for
// other things, one that does not exist, a relative path, or none.
func TestForgedQuarantineRefused(t *testing.T) {
	t.Parallel()
	e, v, repo := verifyEnv(t, "")
	other := e.bareRepo("other")
	objects := filepath.Join(repo, "objects")
	mkdir := func(p string) string {
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	outside := mkdir(filepath.Join(t.TempDir(), "tmp_objdir-incoming-abc123"))
	link := filepath.Join(objects, "tmp_objdir-incoming-link01")
	if err := os.Symlink(outside, link); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(objects, "incoming-file01")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	good := mkdir(filepath.Join(objects, "tmp_objdir-incoming-Ok_123"))
	newID := strings.Repeat("1", 40)
	send := func(q string) string {
		req := request{Hook: PreReceive, Token: e.token("app", "alice"), GitDir: repo, Options: []string{VerifyOption},
			Refs: []record.RefUpdate{{Name: "refs/heads/main", Old: zero, New: newID}}, Quarantine: q}
		return exchange(t, e.socket, encode(t, req))
	}
	for name, q := range map[string]string{
		"none":                "",
		"outside":             outside,
		"etc":                 "/etc",
		"dot-dot":             objects + "/../../other.git/objects/" + filepath.Base(good),
		"other repo":          mkdir(filepath.Join(other, "objects", "tmp_objdir-incoming-abc123")),
		"link out":            link,
		"a file":              file,
		"objects itself":      objects,
		"objects/pack":        filepath.Join(objects, "pack"),
		"objects/info":        filepath.Join(objects, "info"),
		"missing":             filepath.Join(objects, "tmp_objdir-incoming-gone00"),
		"bad name":            mkdir(filepath.Join(objects, "tmp_objdir-incoming-a.b")),
		"empty suffix":        mkdir(filepath.Join(objects, "incoming-")),
		"nested":              mkdir(filepath.Join(good, "incoming-abc")),
		"repo dir":            repo,
		"hooks of the daemon": e.cfg.HooksDir(),
	} {
		got := send(q)
		if !strings.HasSuffix(got, `{"exit":1}`+"\n") || !strings.Contains(got, "refs/heads/main must pass its build first") {
			t.Errorf("%s (%q): answered %q", name, q, got)
		}
	}
	got := send("relative/tmp_objdir-incoming-abc")
	if !strings.Contains(got, "the hook's request was malformed") || !strings.HasSuffix(got, `{"exit":1}`+"\n") {
		t.Errorf("relative quarantine answered %q", got)
	}
	if calls, _ := v.state(); len(calls) != 0 {
		t.Fatalf("the verifier was asked with a forged quarantine: %q", calls)
	}
	// The real thing is taken, by its real path.
	got = send(good)
	calls, _ := v.state()
	if len(calls) != 1 || calls[0] != "refs/heads/main "+newID+" "+good {
		t.Fatalf("a valid quarantine: verifier calls %q; answered %q", calls, got)
	}
}

func TestQuarantineName(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]bool{
		"tmp_objdir-incoming-Ab_09z": true, "incoming-abcdef": true,
		"tmp_objdir-incoming-": false, "incoming-": false, "incoming-a/b": false, "incoming-a.b": false,
		"tmp_objdir-other-abc": false, "pack": false, "info": false, "..": false, "xincoming-abc": false,
	} {
		if got := quarantineName(name); got != want {
			t.Errorf("quarantineName(%q) = %v, want %v", name, got, want)
		}
	}
}
