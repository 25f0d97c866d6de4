package notes

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"slipway/configs"
	"slipway/internal/testutil"
	"slipway/record"
	"slipway/store"
)

type fixture struct {
	t      *testing.T
	st     *store.Store
	gitDir string
	cfg    *configs.Config
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	st, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "slipway.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	gitDir, _, _ := bareRepo(t, 0)
	return &fixture{t: t, st: st, gitDir: gitDir, cfg: &configs.Config{HTTP: configs.HTTP{PublicURL: "https://ci.example/"}}}
}

// commit makes a new commit in the repository and returns it.
func (f *fixture) commit(msg string) string {
	f.t.Helper()
	tree := testutil.Git(f.t, f.gitDir, "hash-object", "-t", "tree", "-w", "/dev/null")
	return testutil.Git(f.t, f.gitDir, "commit-tree", "-m", msg, tree)
}

func (f *fixture) service() *Service {
	f.t.Helper()
	s, err := New(Options{Events: f.st, Records: f.st, Config: f.cfg,
		GitDir: func(repo string) (string, error) {
			if repo != "app" {
				return filepath.Join(f.t.TempDir(), repo+".git"), nil
			}
			return f.gitDir, nil
		}, Retry: 10 * time.Millisecond})
	if err != nil {
		f.t.Fatal(err)
	}
	if err := s.Start(f.t.Context()); err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	return s
}

// build records a build of commit in repo that runs and ends in state,
// with an artifact digest when it passes.
func (f *fixture) build(repo, commit string, state record.State) int64 {
	f.t.Helper()
	ctx := f.t.Context()
	if _, err := f.st.EnqueueBuilds(ctx, []record.Build{{Repo: repo, Ref: "refs/heads/main", Commit: commit,
		Trigger: record.TriggerManual, Pipeline: record.DefaultPipeline}}); err != nil {
		f.t.Fatal(err)
	}
	b, ok, err := f.st.ClaimBuild(ctx, "w1")
	if err != nil || !ok {
		f.t.Fatalf("claim: %v %v", ok, err)
	}
	if state == record.StatePassed {
		if err := f.st.SetArtifactsDigest(ctx, b.ID, "sha256:"+strings.Repeat("ab", 32)); err != nil {
			f.t.Fatal(err)
		}
	}
	if err := f.st.FinishBuild(ctx, b.ID, state, "", nil); err != nil {
		f.t.Fatal(err)
	}
	return b.ID
}

// await waits until commit's note has n lines, and returns them.
func (f *fixture) await(commit string, n int) []string {
	f.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		lines := note(f.t, f.gitDir, commit)
		if len(lines) >= n || time.Now().After(deadline) {
			if len(lines) != n {
				f.t.Fatalf("note of %.7s: %q, want %d lines", commit, lines, n)
			}
			return lines
		}
		time.Sleep(20 * time.Millisecond) // polling git: there is no event to wait on
	}
}

func TestServiceWritesFinishedBuilds(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	c1, c2 := f.commit("one"), f.commit("two")
	s := f.service()
	id := f.build("app", c1, record.StatePassed)
	lines := f.await(c1, 1)
	l, err := ParseLine(lines[0])
	if err != nil {
		t.Fatal(err)
	}
	want := Line{Time: l.Time, Kind: KindBuild, ID: id, State: "passed", Digest: "sha256:" + strings.Repeat("ab", 32),
		Link: fmt.Sprintf("https://ci.example/builds/%d", id)}
	if l != want || time.Since(l.Time) > time.Hour {
		t.Errorf("line %+v, want %+v", l, want)
	}
	// A build of a repository that is gone, then one of a commit the
	// repository does not have: skipped, and the next note still comes.
	f.build("gone", c1, record.StateFailed)
	f.build("app", strings.Repeat("c", 40), record.StateFailed)
	// Stopped, the notes wait; a new start writes what came meanwhile,
	// and nothing twice.
	if err := s.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	id2 := f.build("app", c2, record.StateFailed)
	f.service()
	if got := f.await(c2, 1); !strings.Contains(got[0], fmt.Sprintf(" build %d failed https://ci.example/builds/%d", id2, id2)) {
		t.Errorf("note of the second build: %q", got)
	}
	f.await(c1, 1)
	if out, _ := exec.Command("git", "--git-dir", f.gitDir, "notes", "--ref=slipway", "list").Output(); strings.Count(string(out), "\n") != 2 {
		t.Errorf("notes: %s", out)
	}
}

// At its first start on a database with history, the notes begin with
// the next event.
func TestServiceSkipsThePastAtItsFirstStart(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	c1, c2 := f.commit("one"), f.commit("two")
	f.build("app", c1, record.StatePassed)
	f.service()
	f.build("app", c2, record.StatePassed)
	f.await(c2, 1)
	if lines := note(t, f.gitDir, c1); len(lines) != 0 {
		t.Errorf("the past was written: %q", lines)
	}
}
