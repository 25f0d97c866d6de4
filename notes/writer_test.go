package notes

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"slipway/internal/testutil"
	"strings"
	"sync"
	"testing"
	"time"
)

// bareRepo makes a bare repository with n commits on main, whose
// core.hooksPath names hooks that leave a mark when they run (as the
// daemon's reference-transaction hook would record a push), and returns
// it, its commits and the mark's path.
func bareRepo(t *testing.T, n int) (gitDir string, commits []string, mark string) {
	t.Helper()
	root := t.TempDir()
	gitDir = filepath.Join(root, "app.git")
	testutil.Git(t, "", "init", "-q", "--bare", "--initial-branch=main", gitDir)
	hooks := filepath.Join(root, "hooks")
	mark = filepath.Join(root, "hooks-ran")
	if err := os.Mkdir(hooks, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"reference-transaction", "post-update", "pre-receive", "post-receive", "update"} {
		script := fmt.Sprintf("#!/bin/sh\necho %s >>'%s'\ncat >/dev/null\n", h, mark)
		if err := os.WriteFile(filepath.Join(hooks, h), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	work := t.TempDir()
	testutil.Git(t, work, "init", "-q", "--initial-branch=main")
	for i := range n {
		testutil.Git(t, work, "commit", "-q", "--allow-empty", "-m", fmt.Sprintf("commit %d", i))
		commits = append(commits, testutil.Git(t, work, "rev-parse", "HEAD"))
	}
	if n > 0 {
		testutil.Git(t, work, "push", "-q", gitDir, "main")
	}
	testutil.Git(t, gitDir, "config", "core.hooksPath", hooks)
	return gitDir, commits, mark
}

// note is the note of commit as a client reads it.
func note(t *testing.T, gitDir, commit string) []string {
	t.Helper()
	cmd := exec.Command("git", "--git-dir", gitDir, "notes", "--ref=slipway", "show", commit)
	out, err := cmd.CombinedOutput()
	if err != nil {
		if strings.Contains(string(out), "no note found") {
			return nil
		}
		t.Fatalf("git notes show %s: %v\n%s", commit, err, out)
	}
	return strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
}

func buildLine(id int64, state string) Line {
	return Line{Time: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC), Kind: KindBuild, ID: id, State: state,
		Digest: "sha256:0123abcd", Link: "https://ci.example/builds/" + fmt.Sprint(id)}
}

func noHooksRan(t *testing.T, mark string) {
	t.Helper()
	if b, err := os.ReadFile(mark); err == nil {
		t.Errorf("hooks ran for notes:\n%s", b)
	}
}

func TestAddWritesOneLinePerResultWithoutHooks(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	gitDir, commits, mark := bareRepo(t, 1)
	c := commits[0]
	w := NewWriter()
	build := buildLine(7, "passed")
	dep := Line{Time: build.Time.Add(time.Minute), Kind: KindDeploy, ID: 3, State: "succeeded", Env: "staging", Build: 7, Digest: "sha256:0123abcd"}
	for i, l := range []Line{build, dep, build, dep} {
		added, err := w.Add(ctx, gitDir, c, l)
		if err != nil {
			t.Fatal(err)
		}
		if want := i < 2; added != want {
			t.Errorf("Add %d of %s: added %v, want %v", i, l, added, want)
		}
	}
	// The link may change (a new public_url): the same result still is
	// not written again.
	moved := build
	moved.Link = "https://elsewhere.example/builds/7"
	if added, err := w.Add(ctx, gitDir, c, moved); err != nil || added {
		t.Errorf("the same result with another link: added %v, %v", added, err)
	}
	want := []string{
		"2026-12-01T10:00:00Z build 7 passed digest=sha256:0123abcd https://ci.example/builds/7",
		"2026-12-01T10:01:00Z deploy 3 succeeded env=staging build=7 digest=sha256:0123abcd",
	}
	if got := note(t, gitDir, c); !slices.Equal(got, want) {
		t.Errorf("note:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for i, s := range want {
		l, err := ParseLine(s)
		if err != nil || l.String() != s {
			t.Errorf("line %d parsed as %+v (%v), written back %q", i, l, err, l.String())
		}
	}
	noHooksRan(t, mark)
	// The branch is where it was; only the notes ref is new.
	refs := testutil.Git(t, gitDir, "for-each-ref", "--format=%(refname)")
	if refs != "refs/heads/main\nrefs/notes/slipway" {
		t.Errorf("refs after notes:\n%s", refs)
	}
}

// Ten writers at once, each with a Writer of its own (as if in as many
// processes: only the compare-and-swap keeps them apart), on ten commits
// and on one: no line is lost, none is doubled.
func TestConcurrentWritersLoseNoLine(t *testing.T) {
	t.Parallel()
	for _, same := range []bool{false, true} {
		t.Run(fmt.Sprintf("same commit %v", same), func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			const n = 10
			gitDir, commits, mark := bareRepo(t, n)
			var wg sync.WaitGroup
			errs := make([]error, n)
			start := make(chan struct{})
			for i := range n {
				wg.Go(func() {
					<-start
					c := commits[i]
					if same {
						c = commits[0]
					}
					_, errs[i] = NewWriter().Add(ctx, gitDir, c, buildLine(int64(i+1), "passed"))
				})
			}
			close(start)
			wg.Wait()
			if err := errors.Join(errs...); err != nil {
				t.Fatal(err)
			}
			total := 0
			for i := range n {
				lines := note(t, gitDir, commits[i])
				total += len(lines)
				if !same && (len(lines) != 1 || !strings.Contains(lines[0], fmt.Sprintf(" build %d passed ", i+1))) {
					t.Errorf("note of commit %d: %q", i, lines)
				}
			}
			if total != n {
				t.Errorf("%d lines in the notes, want %d", total, n)
			}
			if same {
				lines := note(t, gitDir, commits[0])
				for i := range n {
					if !slices.ContainsFunc(lines, func(s string) bool { return strings.Contains(s, fmt.Sprintf(" build %d passed ", i+1)) }) {
						t.Errorf("build %d lost from the note:\n%s", i+1, strings.Join(lines, "\n"))
					}
				}
			}
			noHooksRan(t, mark)
		})
	}
}

// One Writer used by many goroutines serializes them per repository.
func TestSharedWriterSerializes(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	gitDir, commits, _ := bareRepo(t, 1)
	w := NewWriter()
	var wg sync.WaitGroup
	errs := make([]error, 10)
	for i := range 10 {
		wg.Go(func() { _, errs[i] = w.Add(ctx, gitDir, commits[0], buildLine(int64(i+1), "failed")) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if lines := note(t, gitDir, commits[0]); len(lines) != 10 {
		t.Errorf("%d lines, want 10:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	if len(w.repos) != 0 {
		t.Errorf("locks left behind: %d", len(w.repos))
	}
}

func TestAddToAMissingRepository(t *testing.T) {
	t.Parallel()
	_, err := NewWriter().Add(t.Context(), filepath.Join(t.TempDir(), "gone.git"), strings.Repeat("a", 40), buildLine(1, "passed"))
	if !errors.Is(err, ErrNoRepo) {
		t.Errorf("Add to a missing repository: %v, want ErrNoRepo", err)
	}
}

func TestParseLine(t *testing.T) {
	for _, s := range []string{
		"2026-12-01T10:00:00Z build 1 passed",
		"2026-12-01T10:00:00Z deploy 2 rolled_back env=prod build=1",
		"2026-12-01T10:00:00Z build 3 passed https://ci.example/x?a=b",
	} {
		l, err := ParseLine(s)
		if err != nil || l.String() != s {
			t.Errorf("ParseLine(%q) = %+v, %v; back: %q", s, l, err, l.String())
		}
	}
	for _, s := range []string{"", "build 1 passed", "yesterday build 1 passed", "2026-12-01T10:00:00Z build one passed"} {
		if _, err := ParseLine(s); err == nil {
			t.Errorf("ParseLine(%q) accepted", s)
		}
	}
	// Whatever a value holds, a line stays one line of fields.
	l := Line{Time: time.Unix(0, 0), Kind: KindDeploy, ID: 1, State: "failed", Env: "a b\nc"}
	if s := l.String(); strings.ContainsAny(s, "\n") || len(strings.Fields(s)) != 5 {
		t.Errorf("line %q", s)
	}
}

// A commit the repository does not have (a refused push's) gets no note.
func TestAddToAMissingCommit(t *testing.T) {
	t.Parallel()
	gitDir, _, _ := bareRepo(t, 1)
	_, err := NewWriter().Add(t.Context(), gitDir, strings.Repeat("a", 40), buildLine(1, "failed"))
	if !errors.Is(err, ErrNoCommit) {
		t.Errorf("Add on a missing commit: %v, want ErrNoCommit", err)
	}
	if refs := testutil.Git(t, gitDir, "for-each-ref", "--format=%(refname)"); refs != "refs/heads/main" {
		t.Errorf("refs: %s", refs)
	}
}

// BenchmarkAdd is one note written into a repository that holds b.N
// notes already: four git runs, whatever the number of notes (git keeps
// them in a fan-out tree).
func BenchmarkAdd(b *testing.B) {
	root := b.TempDir()
	gitDir := filepath.Join(root, "app.git")
	if out, err := exec.Command("git", "init", "-q", "--bare", gitDir).CombinedOutput(); err != nil {
		b.Fatalf("%v: %s", err, out)
	}
	tree, err := exec.Command("git", "--git-dir", gitDir, "hash-object", "-t", "tree", "-w", "/dev/null").Output()
	if err != nil {
		b.Fatal(err)
	}
	w := NewWriter()
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		cmd := exec.Command("git", "--git-dir", gitDir, "commit-tree", "-m", fmt.Sprint(i), strings.TrimSpace(string(tree)))
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=T", "GIT_AUTHOR_EMAIL=t@x", "GIT_COMMITTER_NAME=T", "GIT_COMMITTER_EMAIL=t@x")
		c, err := cmd.Output()
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if _, err := w.Add(b.Context(), gitDir, strings.TrimSpace(string(c)), buildLine(int64(i+1), "passed")); err != nil {
			b.Fatal(err)
		}
	}
}

// TestStaleLockOfTheNotesRef: a lock of the notes ref that a daemon
// killed in the middle of a swap left is removed once it is older than
// any live writer's, and the note is written; a young one is left to its
// writer and the note fails, naming it.
func TestStaleLockOfTheNotesRef(t *testing.T) {
	t.Parallel()
	gitDir, commits, _ := bareRepo(t, 1)
	lock := filepath.Join(gitDir, "refs", "notes", "slipway.lock")
	if err := os.MkdirAll(filepath.Dir(lock), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(lock, []byte(strings.Repeat("0", 40)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	w := NewWriter()
	if _, err := w.Add(t.Context(), gitDir, commits[0], buildLine(1, "passed")); err == nil || !strings.Contains(err.Error(), "slipway.lock") {
		t.Errorf("a note beside a young lock: %v, want a failure naming the lock", err)
	}
	old := time.Now().Add(-2 * staleLock)
	if err := os.Chtimes(lock, old, old); err != nil {
		t.Fatal(err)
	}
	if added, err := w.Add(t.Context(), gitDir, commits[0], buildLine(1, "passed")); err != nil || !added {
		t.Fatalf("a note beside a stale lock: %v, %v", added, err)
	}
	if lines := note(t, gitDir, commits[0]); len(lines) != 1 {
		t.Errorf("note after the stale lock went: %q", lines)
	}
}
