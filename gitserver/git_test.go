package gitserver

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestFirstPushCreatesRepoAndCloneFetchMatch(t *testing.T) {
	t.Parallel()
	ts := startServer(t, serverOpt{})
	env := ts.gitEnv("alice")
	work := newWork(t, env, "one", "two")

	r := run(t, work, env, "", "git", "push", ts.url("team/app.git"), "main")
	if r.code != 0 {
		t.Fatalf("first push by an admin failed: %s", r.stderr)
	}
	if got := must(t, "", env, "git", "--git-dir="+ts.repoDir("team/app"), "config", "core.hooksPath"); got != ts.srv.hooksDir {
		t.Errorf("created repo has core.hooksPath %q, want %q", got, ts.srv.hooksDir)
	}
	if got := must(t, "", env, "git", "--git-dir="+ts.repoDir("team/app"), "symbolic-ref", "HEAD"); got != "refs/heads/main" {
		t.Errorf("created repo HEAD is %q", got)
	}
	ts.fsck("team/app")

	// The scp-like form sends 'team/app.git' without the leading slash.
	clone := filepath.Join(t.TempDir(), "clone")
	must(t, "", env, "git", "clone", "-q", "git@127.0.0.1:team/app.git", clone)
	objects := func(dir string) string {
		return must(t, dir, env, "sh", "-c", "git rev-list --objects --all | sort")
	}
	if a, b := objects(work), objects(clone); a != b || a == "" {
		t.Fatalf("clone has other objects than the pushed repo:\n%s\n---\n%s", a, b)
	}
	must(t, clone, env, "git", "fsck", "--strict", "--no-dangling")

	head := commit(t, work, env, "three.txt", "3\n")
	must(t, work, env, "git", "push", "-q", ts.url("team/app"), "main")
	must(t, clone, env, "git", "fetch", "-q")
	if got := must(t, clone, env, "git", "rev-parse", "origin/main"); got != head {
		t.Errorf("fetch got %s, want %s", got, head)
	}
	if a, b := objects(work), objects(clone); a != b {
		t.Errorf("after fetch the clone has other objects than the pushed repo")
	}

	// A repository not in the config is visible to admins only, and is
	// "not found" for others, as a missing one is.
	for _, name := range []string{"team/app", "team/nothing"} {
		r := run(t, "", ts.gitEnv("carol"), "", "git", "ls-remote", ts.url(name))
		if r.code == 0 || !strings.Contains(r.stderr, `repository "`+name+`" not found`) {
			t.Errorf("carol ls-remote %s: exit %d, stderr %q; want not found", name, r.code, r.stderr)
		}
	}
}

func TestProtocolV2WhenAsked(t *testing.T) {
	t.Parallel()
	ts, env, work := startWithApp(t)

	trace := append(env, "GIT_TRACE_PACKET=1")
	v2 := run(t, work, trace, "", "git", "-c", "protocol.version=2", "ls-remote", ts.url("app"))
	if v2.code != 0 || !strings.Contains(v2.stderr, "version 2") {
		t.Fatalf("protocol v2 not used when asked: exit %d\n%s", v2.code, v2.stderr)
	}
	if !strings.Contains(v2.stdout, "refs/heads/main") {
		t.Errorf("ls-remote over v2 lists no main: %q", v2.stdout)
	}
	v0 := run(t, work, trace, "", "git", "-c", "protocol.version=0", "ls-remote", ts.url("app"))
	if v0.code != 0 || strings.Contains(v0.stderr, "version 2") {
		t.Fatalf("protocol v0 requested but v2 spoken: exit %d\n%s", v0.code, v0.stderr)
	}
}

func TestShallowAndPartialClone(t *testing.T) {
	t.Parallel()
	ts := startServer(t, serverOpt{})
	env := ts.gitEnv("alice")
	work := newWork(t, env, "one", "two", "three")
	must(t, work, env, "git", "push", "-q", ts.url("app"), "main")

	shallow := filepath.Join(t.TempDir(), "shallow")
	must(t, "", env, "git", "clone", "-q", "--depth", "1", ts.url("app"), shallow)
	if n := must(t, shallow, env, "git", "rev-list", "--count", "HEAD"); n != "1" {
		t.Errorf("shallow clone has %s commits, want 1", n)
	}
	if got := must(t, shallow, env, "git", "rev-parse", "--is-shallow-repository"); got != "true" {
		t.Errorf("clone --depth 1 is not shallow")
	}

	partial := filepath.Join(t.TempDir(), "partial")
	must(t, "", env, "git", "clone", "-q", "--no-checkout", "--filter=blob:none", ts.url("app"), partial)
	missing := must(t, partial, env, "git", "rev-list", "--objects", "--all", "--missing=print")
	if n := strings.Count("\n"+missing, "\n?"); n == 0 { // "?oid": missing object
		t.Errorf("blob:none clone fetched every blob; the filter was ignored:\n%s", missing)
	}
	// Blobs are fetched on demand, through the same server.
	must(t, partial, env, "git", "checkout", "-q", "main")
	if b, err := os.ReadFile(filepath.Join(partial, "f2.txt")); err != nil || string(b) != "three\n" {
		t.Errorf("lazy fetch of a blob: %q, %v", b, err)
	}
}

func TestRightsReadOnlyAndWriter(t *testing.T) {
	t.Parallel()
	ts := startServer(t, serverOpt{})
	alice := ts.gitEnv("alice")
	work := newWork(t, alice, "one")
	must(t, work, alice, "git", "push", "-q", ts.url("app"), "main")
	before := ts.serverRef("app", "refs/heads/main")

	bob := ts.gitEnv("bob")
	clone := filepath.Join(t.TempDir(), "bob")
	must(t, "", bob, "git", "clone", "-q", ts.url("app"), clone)
	commit(t, clone, bob, "bob.txt", "bob\n")
	r := run(t, clone, bob, "", "git", "push", "origin", "main")
	if r.code == 0 || !strings.Contains(r.stderr, `user bob may read "app" but not push to it`) {
		t.Fatalf("read-only push: exit %d, stderr %q", r.code, r.stderr)
	}
	if got := ts.serverRef("app", "refs/heads/main"); got != before {
		t.Fatalf("refused push moved main from %s to %s", before, got)
	}

	carol := ts.gitEnv("carol")
	must(t, clone, carol, "git", "push", "-q", ts.url("app"), "main")
	if got, want := ts.serverRef("app", "refs/heads/main"), must(t, clone, bob, "git", "rev-parse", "HEAD"); got != want {
		t.Errorf("writer's push: main is %s, want %s", got, want)
	}

	// carol may not create repositories: only admins may.
	r = run(t, clone, carol, "", "git", "push", ts.url("newrepo"), "main")
	if r.code == 0 || !strings.Contains(r.stderr, `repository "newrepo" not found`) {
		t.Errorf("non-admin push to a new name: exit %d, stderr %q", r.code, r.stderr)
	}
	if _, err := os.Stat(ts.repoDir("newrepo")); !os.IsNotExist(err) {
		t.Errorf("a non-admin push created a repository: %v", err)
	}
	// "secret" is readable by carol only; to bob it does not exist, whether
	// it exists on disk or not.
	must(t, work, alice, "git", "push", "-q", ts.url("secret"), "main")
	r = run(t, "", bob, "", "git", "ls-remote", ts.url("secret"))
	if r.code == 0 || !strings.Contains(r.stderr, `repository "secret" not found`) {
		t.Errorf("bob reading secret: exit %d, stderr %q", r.code, r.stderr)
	}
	must(t, "", carol, "git", "ls-remote", ts.url("secret"))
}

func TestUnknownKeyRefused(t *testing.T) {
	t.Parallel()
	ts := startServer(t, serverOpt{})
	ts.keys["mallory"] = keygen(t, t.TempDir(), "mallory")
	r := ts.ssh("mallory", "", "whoami")
	if r.code != 255 || !strings.Contains(r.stderr, "Permission denied") {
		t.Fatalf("unknown key: exit %d, stderr %q", r.code, r.stderr)
	}
	r = run(t, "", ts.gitEnv("mallory"), "", "git", "ls-remote", ts.url("app"))
	if r.code == 0 {
		t.Fatalf("unknown key could list refs")
	}
}

func TestHostileRepoNamesRefused(t *testing.T) {
	t.Parallel()
	ts := startServer(t, serverOpt{})
	long := strings.Repeat("a", 300)
	for _, name := range []string{"../x", "a/../../b", ".git", long, "/../../x", "a/b/c/d", "-x", "~root/x", "a//b"} {
		for _, svc := range []string{"git-receive-pack", "git-upload-pack", "git upload-archive"} {
			quoted := "'" + strings.ReplaceAll(name, "'", `'\''`) + "'"
			r := ts.ssh("alice", "", svc+" "+quoted)
			if r.code != 1 || !strings.Contains(r.stderr, "invalid repository name") {
				t.Errorf("%s %q: exit %d, stderr %q", svc, name, r.code, r.stderr)
			}
			if n := strings.Count(strings.TrimRight(r.stderr, "\n"), "\n"); n != 0 {
				t.Errorf("%s %q: reason is %d lines, want one: %q", svc, name, n+1, r.stderr)
			}
			if len(r.stderr) > 200 {
				t.Errorf("%s %q: the refusal echoes the whole name: %d bytes", svc, name, len(r.stderr))
			}
		}
	}
	// The leading slash is part of every ssh:// URL: "/etc/passwd" names the
	// repository etc/passwd inside the repos folder, which does not exist.
	r := ts.ssh("bob", "", "git-upload-pack '/etc/passwd'")
	if r.code != 1 || !strings.Contains(r.stderr, `repository "etc/passwd" not found`) || strings.Contains(r.stdout, "root:") {
		t.Errorf("/etc/passwd: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	// Nothing was created anywhere.
	entries, _ := os.ReadDir(ts.cfg.ReposDir())
	if len(entries) != 0 {
		t.Errorf("hostile names left %d entries in the repos folder", len(entries))
	}
	for _, p := range []string{"x.git", "b.git", "x", "b"} {
		for _, dir := range []string{ts.dataDir, filepath.Dir(ts.dataDir)} {
			if _, err := os.Stat(filepath.Join(dir, p)); err == nil {
				t.Errorf("%s exists after hostile pushes", filepath.Join(dir, p))
			}
		}
	}
}

func TestConcurrentPushesToOneBranch(t *testing.T) {
	t.Parallel()
	ts := startServer(t, serverOpt{})
	env := ts.gitEnv("alice")
	base := newWork(t, env, "base")
	must(t, base, env, "git", "push", "-q", ts.url("app"), "main")

	var clones [2]string
	var heads [2]string
	for i := range clones {
		clones[i] = filepath.Join(t.TempDir(), "c")
		must(t, "", env, "git", "clone", "-q", ts.url("app"), clones[i])
		heads[i] = commit(t, clones[i], env, "f.txt", strings.Repeat("x", i+1))
	}
	var results [2]result
	var wg sync.WaitGroup
	for i := range clones {
		wg.Go(func() { results[i] = run(t, clones[i], env, "", "git", "push", "origin", "main") })
	}
	wg.Wait()
	won := -1
	for i, r := range results {
		if r.code == 0 {
			if won >= 0 {
				t.Fatalf("both pushes of diverging commits succeeded")
			}
			won = i
		}
	}
	if won < 0 {
		t.Fatalf("neither push succeeded:\n%s\n%s", results[0].stderr, results[1].stderr)
	}
	lost := 1 - won
	loser := results[lost].stderr
	// Depending on the timing git refuses the loser before sending (the
	// branch moved: non-fast-forward) or at the ref lock.
	if !strings.Contains(loser, "non-fast-forward") && !strings.Contains(loser, "fetch first") &&
		!strings.Contains(loser, "cannot lock ref") && !strings.Contains(loser, "failed to update ref") {
		t.Errorf("loser was not told why: %q", loser)
	}
	if got := ts.serverRef("app", "refs/heads/main"); got != heads[won] {
		t.Fatalf("main is %s, want the winner's %s", got, heads[won])
	}
	ts.fsck("app")
	// Trying again, the loser is told plainly that it is behind.
	r := run(t, clones[lost], env, "", "git", "push", "origin", "main")
	if r.code == 0 || !(strings.Contains(r.stderr, "fetch first") || strings.Contains(r.stderr, "non-fast-forward")) {
		t.Errorf("retry of the losing push: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestUploadArchive(t *testing.T) {
	t.Parallel()
	ts := startServer(t, serverOpt{})
	env := ts.gitEnv("alice")
	work := newWork(t, env, "one", "two")
	must(t, work, env, "git", "push", "-q", ts.url("app"), "main")
	list := must(t, work, ts.gitEnv("bob"), "sh", "-c", "git archive --format=tar --remote="+ts.url("app")+" main | tar -t")
	if list != "f0.txt\nf1.txt" {
		t.Errorf("archive lists %q", list)
	}
	r := run(t, work, ts.gitEnv("bob"), "", "git", "archive", "--remote="+ts.url("secret"), "main")
	if r.code == 0 || !strings.Contains(r.stderr, `repository "secret" not found`) {
		t.Errorf("archive of a hidden repo: exit %d, stderr %q", r.code, r.stderr)
	}
}
