package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// objects lists every object reachable from all refs of the repository at dir.
func objects(t *testing.T, u *user, dir string) []string {
	t.Helper()
	out := u.mustGit(t, dir, "rev-list", "--all", "--objects")
	var ids []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		ids = append(ids, strings.Fields(line)[0])
	}
	slices.Sort(ids)
	return ids
}

func TestFirstPushCreatesRepoAndClonesMatch(t *testing.T) {
	t.Parallel()
	alice, bob := newUser(t, "alice"), newUser(t, "bob")
	d := startDaemon(t, configFor(`
[[repo]]
name = "app"
read = ["bob"]
`, []*user{alice}, bob))

	src := alice.newProject(t, map[string]string{"README": "hello\n", "src/main.go": "package main\n"})
	out := alice.mustGit(t, src, "push", d.url("app.git"), "main")
	if _, err := os.Stat(filepath.Join(d.dataDir(), "repos", "app.git", "HEAD")); err != nil {
		t.Fatalf("first push did not create the bare repo: %v\n%s", err, out)
	}

	clone := filepath.Join(t.TempDir(), "clone")
	bob.mustGit(t, "", "clone", "-q", d.url("app"), clone)
	bob.mustGit(t, clone, "fsck", "--strict", "--no-dangling")
	if a, b := objects(t, alice, src), objects(t, bob, clone); !slices.Equal(a, b) {
		t.Fatalf("clone has %d objects, source %d", len(b), len(a))
	}

	// A second commit reaches the clone by fetch.
	head := alice.commit(t, src, "README", "hello again\n")
	alice.mustGit(t, src, "push", "-q", d.url("app.git"), "main")
	bob.mustGit(t, clone, "fetch", "-q", "origin")
	if got := strings.TrimSpace(bob.mustGit(t, clone, "rev-parse", "origin/main")); got != head {
		t.Fatalf("fetched origin/main = %s, want %s", got, head)
	}
	bob.mustGit(t, clone, "fsck", "--strict", "--no-dangling")
}

func TestProtocolV2ShallowAndPartialClone(t *testing.T) {
	t.Parallel()
	alice := newUser(t, "alice")
	d := startDaemon(t, configFor("", []*user{alice}))
	src := alice.newProject(t, map[string]string{"a": "1\n", "b/c": "2\n"})
	alice.commit(t, src, "a", "3\n")
	alice.mustGit(t, src, "push", "-q", d.url("team/app"), "main")

	// Protocol v2 is negotiated when the client asks for it.
	out, err := alice.gitEnv([]string{"GIT_TRACE_PACKET=1"}, "", "-c", "protocol.version=2", "ls-remote", d.url("team/app"))
	if err != nil || !strings.Contains(out, "< version 2") {
		t.Fatalf("protocol v2 not used: %v\n%s", err, out)
	}
	out, err = alice.gitEnv([]string{"GIT_TRACE_PACKET=1"}, "", "-c", "protocol.version=0", "ls-remote", d.url("team/app"))
	if err != nil || strings.Contains(out, "< version 2") {
		t.Fatalf("protocol v0 request answered with v2: %v\n%s", err, out)
	}

	shallow := filepath.Join(t.TempDir(), "shallow")
	alice.mustGit(t, "", "clone", "-q", "--depth", "1", d.url("team/app"), shallow)
	if n := strings.TrimSpace(alice.mustGit(t, shallow, "rev-list", "--count", "HEAD")); n != "1" {
		t.Fatalf("shallow clone has %s commits, want 1", n)
	}

	partial := filepath.Join(t.TempDir(), "partial")
	alice.mustGit(t, "", "clone", "-q", "--no-checkout", "--filter=blob:none", d.url("team/app"), partial)
	missing := alice.mustGit(t, partial, "rev-list", "--objects", "--all", "--missing=print")
	if !strings.Contains(missing, "\n?") && !strings.HasPrefix(missing, "?") {
		t.Fatalf("blob:none clone fetched every blob:\n%s", missing)
	}
	alice.mustGit(t, partial, "checkout", "-q", "main") // fetches the blobs it needs on demand
	if b, err := os.ReadFile(filepath.Join(partial, "b", "c")); err != nil || string(b) != "2\n" {
		t.Fatalf("partial clone checkout: %q, %v", b, err)
	}
}

// gitEnv runs git with extra environment variables (see git).
func (u *user) gitEnv(extra []string, dir string, args ...string) (string, error) {
	cmd := execGit(dir, append(u.env(), extra...), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String() + stderr.String(), err
}

func TestPushOptionsAndMirrorPushAreRecorded(t *testing.T) {
	t.Parallel()
	alice := newUser(t, "alice")
	d := startDaemon(t, configFor("", []*user{alice}))
	src := alice.newProject(t, map[string]string{"f": "x\n"})
	alice.mustGit(t, src, "push", "-q", "-o", "ci.skip", "-o", "note=hello world", d.url("app"), "main")

	// 1,500 refs, pushed with --mirror into a new repository.
	var refs strings.Builder
	head := alice.head(t, src)
	for i := range 1500 {
		kind := "heads/branch-"
		if i%3 == 0 {
			kind = "tags/v0."
		}
		refs.WriteString("create refs/" + kind + strconv.Itoa(i) + " " + head + "\n")
	}
	update := execGit(src, alice.env(), "update-ref", "--stdin")
	update.Stdin = strings.NewReader(refs.String())
	if out, err := update.CombinedOutput(); err != nil {
		t.Fatalf("update-ref: %v\n%s", err, out)
	}
	start := time.Now()
	alice.mustGit(t, src, "push", "-q", "--mirror", d.url("mirror"))
	t.Logf("mirror push of 1,501 refs took %v", time.Since(start))
	remote := alice.mustGit(t, src, "ls-remote", d.url("mirror"))
	if n := strings.Count(remote, "\n"); n < 1501 {
		t.Fatalf("ls-remote after mirror push lists %d refs, want >= 1501", n)
	}

	db := d.store(t)
	last, err := db.LastPushes(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	app, ok := last["app"]
	if !ok || app.User != "alice" || !slices.Equal(app.Options, []string{"ci.skip", "note=hello world"}) {
		t.Fatalf("push to app recorded as %+v", app)
	}
	mirror, err := db.GetPush(t.Context(), last["mirror"].ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(mirror.Refs) != 1501 || mirror.KeyFingerprint == "" {
		t.Fatalf("mirror push recorded with %d refs, fingerprint %q; want 1501", len(mirror.Refs), mirror.KeyFingerprint)
	}
}

func TestRightsAreEnforced(t *testing.T) {
	t.Parallel()
	alice, bob, carol, dave, mallory := newUser(t, "alice"), newUser(t, "bob"), newUser(t, "carol"), newUser(t, "dave"), newUser(t, "mallory")
	d := startDaemon(t, configFor(`
[[repo]]
name = "app"
read = ["*"]
write = ["carol"]
release = ["dave"]
`, []*user{alice}, bob, carol, dave))
	src := alice.newProject(t, map[string]string{"f": "1\n"})
	alice.mustGit(t, src, "push", "-q", d.url("app"), "main")

	// A reader cannot push, and is told why.
	bob.commit(t, src, "f", "2\n")
	out, err := bob.git(src, "push", d.url("app"), "main")
	if err == nil || !strings.Contains(out, "bob") || !strings.Contains(out, "app") {
		t.Fatalf("read-only push: err=%v\n%s", err, out)
	}

	// An unknown key gets nothing.
	if _, stderr, code := d.ssh(mallory, "whoami"); code == 0 || !strings.Contains(stderr, "Permission denied") {
		t.Fatalf("unknown key: exit %d, stderr %q", code, stderr)
	}
	if out, err := mallory.git("", "ls-remote", d.url("app")); err == nil {
		t.Fatalf("unknown key could ls-remote:\n%s", out)
	}

	// A writer who is no releaser cannot push refs/release/prod.
	out, err = carol.git(src, "push", d.url("app"), "main:refs/release/prod")
	if err == nil || !strings.Contains(out, "refs/release/prod") || !strings.Contains(out, "carol") {
		t.Fatalf("non-releaser release push: err=%v\n%s", err, out)
	}
	// A releaser gets past the rights check, to the release gate: this repo
	// has no environments (the deployment tests cover releases that ship).
	out, err = dave.git(src, "push", d.url("app"), "HEAD~1:refs/release/prod")
	if err == nil || !strings.Contains(out, `unknown environment "prod"`) {
		t.Fatalf("releaser pushing to an environment that does not exist: err=%v\n%s", err, out)
	}
	// A release ref that exists (made on the server's disk here) can be
	// deleted by nobody.
	run(t, filepath.Join(d.dataDir(), "repos", "app.git"), alice.env(), "git", "update-ref", "refs/release/prod", "HEAD")
	for _, u := range []*user{dave, alice} {
		out, err = u.git(src, "push", d.url("app"), ":refs/release/prod")
		if err == nil || !strings.Contains(out, "refs/release/prod") || !strings.Contains(out, "deleted") {
			t.Fatalf("%s deleting a release ref: err=%v\n%s", u.name, err, out)
		}
	}
	remote := alice.mustGit(t, src, "ls-remote", d.url("app"))
	if !strings.Contains(remote, "refs/release/prod") {
		t.Fatalf("release ref gone after refused deletion:\n%s", remote)
	}

	// Readers of one repo do not see others: an unlisted repo is admins' only.
	alice.mustGit(t, src, "push", "-q", d.url("secret"), "main")
	out, err = bob.git("", "ls-remote", d.url("secret"))
	if err == nil || !strings.Contains(out, "not found") {
		t.Fatalf("bob reading an unlisted repo: err=%v\n%s", err, out)
	}
	list, _, code := d.ssh(bob, "repos")
	if code != 0 || !strings.Contains(list, "app") || strings.Contains(list, "secret") {
		t.Fatalf("bob's repos (exit %d):\n%s", code, list)
	}
	list, _, _ = d.ssh(alice, "repos")
	if !strings.Contains(list, "secret") || !strings.Contains(list, "alice") {
		t.Fatalf("alice's repos do not show secret with its last push:\n%s", list)
	}
}

func TestHostileRepoNamesAreRefused(t *testing.T) {
	t.Parallel()
	alice, carol := newUser(t, "alice"), newUser(t, "carol")
	d := startDaemon(t, configFor(`
[[repo]]
name = "app"
write = ["carol"]
`, []*user{alice}, carol))
	src := alice.newProject(t, map[string]string{"f": "1\n"})
	hostile := []string{"../x", "a/../../b", ".git", "..", "a/b/c/d", "x/.git", "./app",
		strings.Repeat("a", 300), "UPPER", "-oProxyCommand=x", "a b", "a\\b", "//app"}
	for _, u := range []*user{alice, carol} {
		for _, name := range hostile {
			_, stderr, code := d.ssh(u, "git-receive-pack", "'"+name+"'")
			if code == 0 || !strings.Contains(stderr, "invalid repository name") {
				t.Errorf("%s: receive-pack %q: exit %d, stderr %q", u.name, name, code, stderr)
			}
			if out, err := u.git(src, "push", "ssh://git@"+d.addr+"/"+name, "main"); err == nil {
				t.Errorf("%s: push to %q succeeded:\n%s", u.name, name, out)
			}
		}
	}
	// A name that merely looks like a system path is a repository path like
	// any other: someone who may not create repositories is told it does not
	// exist, and an admin's push stays inside the repos folder.
	passwd, err := os.ReadFile("/etc/passwd")
	if err != nil {
		t.Fatal(err)
	}
	out, err := carol.git(src, "push", "ssh://git@"+d.addr+"/etc/passwd", "main")
	if err == nil || !strings.Contains(out, "not found") {
		t.Fatalf("carol pushing to /etc/passwd: %v\n%s", err, out)
	}
	entries, err := os.ReadDir(filepath.Join(d.dataDir(), "repos"))
	if err != nil {
		t.Fatal(err)
	}
	// Only the configured repository, made at start, is there.
	if len(entries) != 1 || entries[0].Name() != "app.git" {
		t.Fatalf("refused names created %v in the repos folder", entries)
	}
	alice.mustGit(t, src, "push", "-q", "ssh://git@"+d.addr+"/etc/passwd", "main")
	if _, err := os.Stat(filepath.Join(d.dataDir(), "repos", "etc", "passwd.git", "HEAD")); err != nil {
		t.Fatalf("admin push to /etc/passwd did not land in repos/etc/passwd.git: %v", err)
	}
	if after, _ := os.ReadFile("/etc/passwd"); string(after) != string(passwd) {
		t.Fatal("/etc/passwd changed")
	}
	for _, p := range []string{filepath.Join(d.dataDir(), "x"), filepath.Join(d.dataDir(), "x.git"), filepath.Join(d.root, "b.git")} {
		if _, err := os.Stat(p); err == nil {
			t.Fatalf("%s was created", p)
		}
	}
}

func TestConcurrentPushesToOneBranch(t *testing.T) {
	t.Parallel()
	alice, carol := newUser(t, "alice"), newUser(t, "carol")
	d := startDaemon(t, configFor("", []*user{alice, carol}))
	src := alice.newProject(t, map[string]string{"f": "base\n"})
	alice.mustGit(t, src, "push", "-q", d.url("app"), "main")

	clones := make([]string, 2)
	heads := make([]string, 2)
	for i, u := range []*user{alice, carol} {
		clones[i] = filepath.Join(t.TempDir(), "c")
		u.mustGit(t, "", "clone", "-q", d.url("app"), clones[i])
		heads[i] = u.commit(t, clones[i], "f", u.name+"\n")
	}
	var wg sync.WaitGroup
	outs, errs := make([]string, 2), make([]error, 2)
	for i, u := range []*user{alice, carol} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			outs[i], errs[i] = u.git(clones[i], "push", "origin", "main")
		}()
	}
	wg.Wait()
	if (errs[0] == nil) == (errs[1] == nil) {
		t.Fatalf("want exactly one push to win: %v / %v\n%s\n%s", errs[0], errs[1], outs[0], outs[1])
	}
	winner, loser := 0, 1
	if errs[0] != nil {
		winner, loser = 1, 0
	}
	if !strings.Contains(outs[loser], "non-fast-forward") && !strings.Contains(outs[loser], "fetch first") &&
		!strings.Contains(outs[loser], "failed to lock") && !strings.Contains(outs[loser], "cannot lock ref") {
		t.Fatalf("the losing push was not told why:\n%s", outs[loser])
	}
	check := filepath.Join(t.TempDir(), "check")
	alice.mustGit(t, "", "clone", "-q", d.url("app"), check)
	if got := alice.head(t, check); got != heads[winner] {
		t.Fatalf("main is %s, want the winner's %s", got, heads[winner])
	}
	bare := filepath.Join(d.dataDir(), "repos", "app.git")
	run(t, bare, alice.env(), "git", "fsck", "--strict")
}

func TestDisconnectMidPushLeavesRepoClean(t *testing.T) {
	t.Parallel()
	alice := newUser(t, "alice")
	d := startDaemon(t, configFor("", []*user{alice}))
	src := alice.newProject(t, map[string]string{"f": "1\n"})
	alice.mustGit(t, src, "push", "-q", d.url("app"), "main")
	before := alice.mustGit(t, src, "ls-remote", d.url("app"))

	// A commit with 8 MB of random data, sent through a proxy that cuts the
	// connection after 1 MB of it.
	big := make([]byte, 8<<20)
	if _, err := rand.Read(big); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "big.bin"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	alice.mustGit(t, src, "add", "big.bin")
	alice.mustGit(t, src, "commit", "-q", "-m", "big")
	proxy := cutAfter(t, d.addr, 1<<20)
	out, err := alice.git(src, "push", "ssh://git@"+proxy+"/app", "main")
	if err == nil {
		t.Fatalf("push through a cut connection succeeded:\n%s", out)
	}

	// The daemon lives on, the refs are as they were, the repo is sound and
	// the half-received pack is gone.
	if whoami, _, code := d.ssh(alice, "whoami"); code != 0 || !strings.Contains(whoami, "alice") {
		t.Fatalf("daemon unhealthy after a cut push: exit %d %q\n%s", code, whoami, d.logs)
	}
	if after := alice.mustGit(t, src, "ls-remote", d.url("app")); after != before {
		t.Fatalf("refs changed by a cut push:\nbefore %s\nafter %s", before, after)
	}
	bare := filepath.Join(d.dataDir(), "repos", "app.git")
	run(t, bare, alice.env(), "git", "fsck", "--strict")
	d.eventually(t, 30*time.Second, "the quarantine of the cut push to go", func() bool {
		m, _ := filepath.Glob(filepath.Join(bare, "objects", "incoming-*"))
		p, _ := filepath.Glob(filepath.Join(bare, "objects", "pack", "tmp_*"))
		return len(m) == 0 && len(p) == 0
	})
	// And a full push still works afterwards.
	alice.mustGit(t, src, "push", "-q", d.url("app"), "main")
}

// cutAfter starts a TCP proxy to addr that closes the connection once n bytes
// went from the client to the server, as a client dropping off mid-push.
func cutAfter(t *testing.T, addr string, n int64) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				s, err := net.Dial("tcp", addr)
				if err != nil {
					return
				}
				defer s.Close()
				go io.Copy(c, s)
				io.CopyN(s, c, n)
			}()
		}
	}()
	return ln.Addr().String()
}

func TestSSHCommands(t *testing.T) {
	t.Parallel()
	alice := newUser(t, "alice")
	d := startDaemon(t, configFor("", []*user{alice}))
	out, _, code := d.ssh(alice, "whoami")
	if code != 0 || !strings.Contains(out, "alice") {
		t.Fatalf("whoami: exit %d %q", code, out)
	}
	out, _, code = d.ssh(alice, "help")
	if code != 0 || !strings.Contains(out, "repos") || !strings.Contains(out, "whoami") {
		t.Fatalf("help: exit %d %q", code, out)
	}
	_, stderr, code := d.ssh(alice, "rm", "-rf", "/")
	if code != 1 || strings.Count(strings.TrimSpace(stderr), "\n") != 0 || !strings.Contains(stderr, "unknown command") {
		t.Fatalf("unknown command: exit %d, stderr %q", code, stderr)
	}
	// An interactive login gets a greeting and the help, never a shell.
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	login := exec.CommandContext(ctx, "ssh", "-tt", "-i", alice.key, "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=no",
		"-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-p", d.port(), "git@127.0.0.1")
	login.Env = alice.env()
	login.Stdin = strings.NewReader("echo pwned\n")
	b, err := login.CombinedOutput()
	if err != nil || !strings.Contains(string(b), "alice") || !strings.Contains(string(b), "help") || strings.Contains(string(b), "pwned\r\npwned") {
		t.Fatalf("interactive login: %v\n%s", err, b)
	}
}
